"""Figures of the durable outbox (issue #9): append and drain time per record on the virtual device's
flash (LittleFS over the image file, every block write flushed to it as the bridge's power cut
needs), and the heap the outbox holds."""

from .vdev.device import VirtualDevice

N = 200  # records
BATCH = 8  # records per drained batch (mqtt.batch's default)

# one record = one sampling round of three readings, as the reporter stores it
_RUN = """
import gc, time
gc.collect()
a0 = gc.mem_alloc()
from m2m.outbox import Outbox
from m2m.report.contract import pack_readings
gc.collect()
a1 = gc.mem_alloc()
ob = Outbox("/bench-outbox", segment_bytes=4096, max_segments=16)
gc.collect()
a2 = gc.mem_alloc()
p = pack_readings([("temperature", 21.5, "Cel", 1767225600), ("humidity", 40.2, "%%RH", 1767225600),
                   ("pressure", 101325, "Pa", 1767225600)])
t = time.ticks_us()
for i in range(%(n)d):
    ob.append(1, p)
t1 = time.ticks_us()
gc.collect()
a3 = gc.mem_alloc()
done = 0
while True:
    recs = ob.peek(%(batch)d)
    if not recs:
        break
    ob.ack(recs[-1][0])
    done += len(recs)
t2 = time.ticks_us()
ob.close()
for n in __import__("os").listdir("/bench-outbox"):
    __import__("os").remove("/bench-outbox/" + n)
print("M2M_OUTBOX", len(p), done, time.ticks_diff(t1, t), time.ticks_diff(t2, t1), a1 - a0, a2 - a1, a3 - a2)
"""


def outbox_figures():
    from mpremote.transport_serial import SerialTransport

    with VirtualDevice(env={}) as dev:
        dev.wait_boot(1)
        t = SerialTransport(dev.port, baudrate=115200)
        try:
            t.enter_raw_repl(soft_reset=True)
            out = t.exec(_RUN % {"n": N, "batch": BATCH}).decode()
            t.exit_raw_repl()
        finally:
            t.close()
    size, done, t_app, t_drain, mod_heap, obj_heap, growth = (int(x) for x in out.split("M2M_OUTBOX")[1].split())
    assert done == N, out
    yield {"name": "outbox_append_us", "value": round(t_app / N, 1), "unit": "us",
           "note": "per record of %d bytes (three readings), each flushed to LittleFS (lfs_file_sync), "
                   "on the virtual device's flash image; host CPU, not an ESP32's flash" % size}
    yield {"name": "outbox_drain_us", "value": round(t_drain / N, 1), "unit": "us",
           "note": "per record, draining %d records in batches of %d (peek, then ack: one 8-byte journal "
                   "append a batch, acknowledged segments removed)" % (N, BATCH)}
    yield {"name": "outbox_heap_bytes", "value": mod_heap + obj_heap, "unit": "bytes",
           "note": "m2m.outbox and m2m.report.contract from .py (%d) plus an open Outbox (%d), "
                   "gc.mem_alloc() after gc.collect(); unix port (64-bit objects: about 2x ESP32)"
                   % (mod_heap, obj_heap)}
    yield {"name": "outbox_heap_growth_bytes", "value": max(growth, 1), "unit": "bytes",
           "note": "heap still held after %d appends (after gc.collect()): the segment list and the "
                   "open segment, no record is kept in RAM" % N}

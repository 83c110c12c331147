"""Figures of the durable outbox (issue #9): append and drain time per record on the virtual device's
flash (LittleFS over the image file, every block write flushed to it as the bridge's power cut
needs), the heap the outbox holds, and its flash wear (block erases and bytes programmed, counted
under MicroPython's VfsLfs2 with the ESP32's settings)."""

from .testing import run_micropython
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


# LittleFS over a counting RAM flash: 4096-byte blocks, read / prog / lookahead 32 as on the ESP32
_WEAR = """
import vfs
class Flash:
    def __init__(self, blocks):
        self.data = bytearray(blocks * 4096)
        self.blocks = blocks
        self.erases = self.progs = 0
    def readblocks(self, n, buf, off=0):
        a = n * 4096 + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, n, buf, off=None):
        a = n * 4096 + (off or 0)
        self.data[a:a + len(buf)] = buf
        self.progs += len(buf)
    def ioctl(self, op, arg):
        if op == 4: return self.blocks
        if op == 5: return 4096
        if op == 6: self.erases += 1
        return 0
f = Flash(64)
opts = {"readsize": 32, "progsize": 32, "lookahead": 32}
vfs.VfsLfs2.mkfs(f, **opts)
vfs.mount(vfs.VfsLfs2(f, **opts), "/fl")
from m2m.outbox import Outbox
ob = Outbox("/fl/ob", sync_every=%(every)d)
p = bytes(110)
for i in range(20):
    ob.append(1, p)
e0, p0 = f.erases, f.progs
for i in range(%(n)d):
    ob.append(1, p)
ob.sync()
e1, p1 = f.erases, f.progs
acks = 0
while True:
    recs = ob.peek(%(batch)d)
    if not recs:
        break
    ob.ack(recs[-1][0])
    acks += 1
print("M2M_WEAR", e1 - e0, p1 - p0, f.erases - e1, f.progs - p1, acks)
"""


WRITE_BACK = 8  # the write-back figure's sync_every


def _wear(every):
    rc, out, err = run_micropython(_WEAR % {"n": N, "batch": BATCH, "every": every}, heapsize="2M", timeout=300)
    if rc != 0 or "M2M_WEAR" not in out:
        raise RuntimeError(f"outbox wear run failed: {out}{err}")
    return [int(x) for x in out.split("M2M_WEAR")[1].split()]


def outbox_wear():
    e_app, p_app, e_ack, p_ack, acks = _wear(1)
    e_wb, p_wb = _wear(WRITE_BACK)[:2]
    yield {"name": "outbox_erases_per_record_write_back", "value": round(e_wb / N, 3), "unit": "ratio",
           "note": "the same with Outbox(sync_every=%d): telemetry synced every %d records (a power cut "
                   "may cost the %d not yet synced); %d bytes programmed per record"
                   % (WRITE_BACK, WRITE_BACK, WRITE_BACK - 1, round(p_wb / N))}
    yield {"name": "outbox_erases_per_record", "value": round(e_app / N, 2), "unit": "ratio",
           "note": "4 KB block erases per appended record of 122 bytes on flash (LittleFS copies the "
                   "segment's incomplete last block at each sync), VfsLfs2 with the ESP32's settings"}
    yield {"name": "outbox_prog_bytes_per_record", "value": round(p_app / N), "unit": "bytes",
           "note": "bytes programmed per appended record (block copy and metadata commit included)"}
    yield {"name": "outbox_prog_bytes_per_ack", "value": round(p_ack / acks), "unit": "bytes",
           "note": "bytes programmed per ack() of a batch of %d (the 8-byte pointer entry in an inline "
                   "file, segment removal included); %.2f erases per ack" % (BATCH, e_ack / acks)}

"""Issue #9 figures: what one MQTT report costs on the air, from the modem simulator's byte counters
(IPv4 + TCP headers counted per segment as the radio carries them: sim/modem/netsock.py), and the
firmware's heap high-water while it reports 1000 readings at -X heapsize=160K.

- kept: a report of three readings (one outbox record, one SenML message) on a connection kept open,
  both directions, the PUBACK segment and the modem's TCP ACK for it left out (the broker's PUBACK
  carries its ACK for the PUBLISH: delayed ACKs, netsock.py); reports a second apart, as reports are
  minutes apart on a device, so that the modem's ACK for the PUBACK goes alone and is left out whole;
- naive: the same report on its own connection: TCP open, CONNECT, CONNACK, PUBLISH, PUBACK,
  DISCONNECT, TCP close, everything both ways (the peer of issue #9, "about 740 B").
"""

import json
import tempfile
import time
from pathlib import Path

from .broker import Broker
from . import bench_device
from .vdev.bridge import qstr_count, qstr_heap, qstr_plan

SCALE = 20
KEPT = 10  # kept reports measured
READINGS = 1000
HEAP = "160K"
PUBACK = 4 + 40  # the PUBACK segment down (MQTT 3.1.1 3.4: 4 bytes) with its headers
ACK = 40  # the modem's TCP ACK for it (alone: nothing goes up within its delay)
# the heap run's recovery: the modem reboots halfway, and the network's recovery steps load the
# bring-up modules (m2m.net.netup, ...) again; the reporting stack leaves the heap meanwhile and is
# built again at the attach (m2m.supervisor_mqtt, the supervisor's own MQTT service)
FAULTS = [(495, "reboot")]

DEVICE = """
import gc, json, os
gc.collect()
BASE = gc.mem_alloc()  # the ESP32 port's stand-in, which the heap size leaves out (vdev/bridge.py)
from m2m import hal, loop, config, outbox
from m2m.at import AT
from m2m import modem
from m2m.net.network import Network
gc.collect()
cfg = config.validate({"device": {"id": "dev-1"}, "net": {"apn": "internet"},
                       "mqtt": {"broker": os.getenv("BROKER"), "keepalive": 600, "batch": 1}})
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=3000)
m = modem.create(at, {"model": os.getenv("MODEL")})
D = os.getenv("DIR")
net = Network(m, cfg, state_dir=D + "/")
ob = outbox.Outbox(D + "/outbox")
# the reporting side is the supervisor's MQTT service (m2m.supervisor_mqtt, as main.py runs it):
# built at the first attach, dropped while the link is down, so the bring-up modules (dropped once
# attached) and the reporting stack are never held at the same time; its sockets call the recovery
if not net.up():
    raise SystemExit("no attach")
gc.collect()
from m2m.report import contract
from m2m.supervisor_mqtt import Mqtt
class R:  # what the supervisor's Run gives its MQTT service
    pass
R.net, R.outbox, R.cfg, R.id, R.reporter = net, ob, cfg, "dev-1", None
mq = Mqtt(R, "tcp", None)
mq.step()
peak = [0]
def sample():
    gc.collect()
    a = gc.mem_alloc()
    if a > peak[0]:
        peak[0] = a
def flag(n):
    while True:
        try:
            os.stat(D + "/GO%d" % n)
            return
        except OSError:
            loop.run([net], max_ms=100)
def three(i):
    t = int(hal.epoch())  # whole seconds, as a board's time.time() gives them (the unix port's is a float)
    return contract.pack_readings([("temperature", 21.5, "Cel", t), ("humidity", 40 + i % 9, "%RH", t),
                                   ("battery", 3.71, "V", t)])
def report(i):
    ob.append(outbox.TELEMETRY, three(i))
    loop.run([net, mq], until=lambda: ob.pending() == 0, max_ms=60000)
flag(0)
report(0)
hal.sleep_ms(1000)  # the modem's delayed ACK for this PUBACK, before the counters are read
print(json.dumps({"phase": 0}))
flag(1)
for i in range(int(os.getenv("KEPT"))):
    report(i)
    hal.sleep_ms(1000)  # reports are minutes apart: the modem's delayed ACK for the PUBACK goes alone
print(json.dumps({"phase": 1}))
# phase 11 (mqtt_figures only; the heap runs go on to GO2): the same kept reports with mqtt.units "each"
def there(n):
    try:
        return bool(os.stat(D + "/GO%d" % n))
    except OSError:
        return False
while not there(11) and not there(2):
    loop.run([net], max_ms=100)
if there(11):
    R.reporter.units = None  # a "u" in every record, as mqtt.units "each" makes the Reporter
    for i in range(int(os.getenv("KEPT"))):
        report(i)
        hal.sleep_ms(1000)
    print(json.dumps({"phase": 11}))
del there
flag(2)
cl = R.reporter.client
cl.close(clean=True)
from umqtt import simple
c = simple.MQTTClient("dev-1", cl.host, cl.port)
c.connect()
c.publish(cl.topic("telemetry"), contract.senml("dev-1", [(99, contract.unpack_readings(three(1)))]), qos=1)
c.disconnect()
c = cl = simple = None  # held here, umqtt.simple (its socket attribute: the first Stack) would outlive the drop
print(json.dumps({"phase": 2}))
flag(3)
gc.collect()
peak[0] = gc.mem_alloc()
n = 0
while n < int(os.getenv("READINGS")):
    report(n)
    n += 3
    sample()
    if n % 99 == 0:
        print(json.dumps({"progress": n}))
import micropython
micropython.qstr_info()  # the interned names' count, for the qstr pools' share (vdev/bridge.py qstr_heap)
print(json.dumps({"phase": 3, "peak": peak[0] - BASE, "readings": n}))
"""


def _counters(sim):
    return {k: dict(v) for k, v in sim.counters().items()}


def _session(model, heap, phases, readings=READINGS, qstr_extra=0, machinery="pools", faults=(), romfs=False):
    """Run the bench device through `phases` ([(n, fn(sim, reply))]); returns the replies (phase 3's
    with "qstr": the names interned at its end), or raises RuntimeError with the device's last lines
    and how many readings it had made. machinery, qstr_extra: bridge.qstr_plan's. faults: [(readings,
    kind)], the simulator's fault `kind` once the device has made that many readings (its progress
    lines), so that the heap is measured through a recovery with the reporting stack loaded.
    romfs: the firmware from a ROMFS image mounted at /rom (host/m2mkit/romfs.py), umqtt as before."""
    from .sim.modem import ModemSim

    with tempfile.TemporaryDirectory(prefix="m2mkit-bench-mqtt-") as d, Broker(tls=False) as b, \
            ModemSim(model=model, time_scale=SCALE) as sim:
        d = Path(d)
        # the firmware as .mpy (what a board runs; compiling .py needs more heap than 160K leaves) and
        # umqtt.simple as .mpy too (a board has it frozen: its code is not on the heap at all)
        tree, rom = bench_device.firmware_tree(d, romfs)
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_TIME_SCALE": str(SCALE), "MODEL": model, "BROKER": b.url, "DIR": str(d),
               "KEPT": str(KEPT), "READINGS": str(readings)}
        p = bench_device.start(DEVICE, env, heap, machinery, qstr_extra, tree, rom)
        lines = []
        made = [0]
        done = []

        def phase(n, timeout=900):
            (d / f"GO{n}").write_text("")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if line.startswith("{"):
                    r = json.loads(line)
                    r["qstr"] = qstr_count("".join(lines[-3:]))
                    made[0] = r.get("progress", made[0])
                    for f in faults:
                        if f[0] <= made[0] and f not in done:
                            done.append(f)
                            sim.fault(f[1])
                    if r.get("phase") == n:
                        return r
            e = RuntimeError("the bench device stopped after %d readings:\n%s" % (made[0], "".join(lines[-12:])))
            e.readings = made[0]
            raise e

        out = []
        try:
            for n, fn in phases:
                out.append(fn(sim, phase(n)))
        finally:
            p.kill()
            p.wait()
        return out


def mqtt_figures(model="bg95"):
    snap = {}

    def before(sim, r):
        snap["before"] = _counters(sim)

    def kept(sim, r):
        after = _counters(sim)
        k = [k for k in after if after[k]["state"] == "open"][0]
        b = snap["before"][k]
        snap["k"] = k
        snap["before"] = after  # phase 11 counts from here
        return ((after[k]["tx_air"] - b["tx_air"]) + (after[k]["rx_air"] - b["rx_air"]),
                after[k]["round_trips"] - b["round_trips"])

    def naive(sim, r):
        c = _counters(sim)[snap["k"]]  # the naive connection reused the id: its own counters
        return c["tx_air"] + c["rx_air"]

    _, (both, trips), (each, _), naive_bytes = _session(model, "512K", [(0, before), (1, kept), (11, kept),
                                                                         (2, naive)])
    kept_bytes = both / KEPT - PUBACK - ACK
    yield {"name": "mqtt_report_bytes_kept", "value": round(kept_bytes, 1), "unit": "bytes", "model": model,
           "note": "three readings in one SenML message on a kept connection, both directions, the PUBACK "
                   "and the modem's TCP ACK for it left out, the broker's ACK riding on its PUBACK "
                   "(goal <= 200; about 40 B of IP + TCP header, 29 B of PUBLISH header and topic, "
                   "117 B of SenML: mqtt.units \"status\", the default, the units in the retained status)"}
    yield {"name": "mqtt_report_bytes_kept_units_each", "value": round(each / KEPT - PUBACK - ACK, 1), "unit": "bytes",
           "model": model,
           "note": "mqtt_report_bytes_kept with mqtt.units \"each\": a \"u\" in every record (about 28 B more "
                   "for Cel, %RH and V)"}
    yield {"name": "mqtt_report_bytes_naive", "value": naive_bytes, "unit": "bytes", "model": model,
           "note": "the same report with umqtt.simple's connect-publish-disconnect on its own connection, "
                   "everything both ways (issue: about 740)"}
    yield {"name": "mqtt_report_bytes_ratio", "value": round(naive_bytes / kept_bytes, 2), "unit": "ratio",
           "note": "naive / kept"}
    yield {"name": "mqtt_round_trips_per_report", "value": trips / KEPT, "unit": "count",
           "note": "radio round trips per report on the kept connection (goal 1), simulator counters"}
    heap = HEAP
    note = ""
    steps = [(n, lambda sim, r: r) for n in range(4)]
    # two passes: the names a run interns, counted on a short one with room to spare, give the qstr
    # pools a board's firmware would make, cut from the heap of the prelude that made its pools
    # before (vdev/bridge.py qstr_heap); the run's own count is checked after
    pools, qstrs = qstr_plan(_session(model, "512K", steps, readings=60)[-1]["qstr"], DEVICE)
    for heap in (HEAP, "176K", "192K", "224K"):
        try:
            last = _session(model, heap, steps, qstr_extra=qstrs, machinery=pools, faults=FAULTS)[-1]
            break
        except RuntimeError as e:
            if heap != HEAP:
                continue
            got = getattr(e, "readings", 0)
            where = [ln.strip() for ln in str(e).splitlines() if ln.strip().startswith(("File ", "MemoryError"))]
            note = "; did NOT fit %s: %s after %d readings (%s)" % (
                HEAP, where[-1] if where else "stopped", got, where[-2] if len(where) > 1 else "?")
    if heap != HEAP:
        note += ", measured at %s" % heap
    own = qstr_heap(last["qstr"], DEVICE, machinery=pools)
    if own != qstrs:  # the short run's count was not the whole run's: say so
        note += "; the qstr pools' share for the run's own %d names is %d B" % (last["qstr"], own)
    yield {"name": "mqtt_heap_qstr_cut", "value": -qstrs, "unit": "bytes", "model": model,
           "note": "cut from the heap for the qstr pools: the prelude makes its pools before "
                   "the firmware runs, a board's firmware makes them as it goes (%d names interned by the "
                   "run with the prelude's; vdev/bridge.py qstr_heap)" % last["qstr"]}
    yield {"name": "mqtt_heap_high_water", "value": last["peak"] - qstrs, "unit": "bytes", "model": model,
           "note": "highest gc.mem_alloc() after gc.collect() between reports (what stays live) while "
                   "reporting %d readings with the network, sockets, umqtt.simple and the outbox loaded "
                   "(the supervisor's MQTT service, m2m.supervisor_mqtt: the reporting side built at the "
                   "first attach, after the bring-up modules left, and dropped while the link is down; the "
                   "modem rebooted after %d readings, its recovery measured too), "
                   "firmware as .mpy, the port stand-in left out, the qstr pools a board's firmware makes "
                   "counted in (mqtt_heap_qstr_cut); unix port (about 2x ESP32 objects)%s"
                   % (last["readings"], FAULTS[0][0], note)}


def romfs_figures(model="bg95"):
    """mqtt_heap_high_water's run (1000 readings, the modem rebooted halfway) with the firmware from a
    ROMFS image (host/m2mkit/romfs.py): bytecode, constants and names' text stay in the image, which a
    board maps from flash; on the unix port it is read into the heap and left out like the port
    stand-in (romfs.heap_extra). The qstr pools as for the LittleFS figure, the names' characters not
    cut (bridge.qstr_heap rom=)."""
    steps = [(n, lambda sim, r: r) for n in range(4)]
    pools, qstrs = qstr_plan(_session(model, "512K", steps, readings=60, romfs=True)[-1]["qstr"], DEVICE, rom=True)
    note = ""
    for heap in (HEAP, "176K", "192K", "224K"):
        try:
            last = _session(model, heap, steps, qstr_extra=qstrs, machinery=pools, faults=FAULTS, romfs=True)[-1]
            break
        except RuntimeError as e:
            if heap == "224K":
                raise
            where = [ln.strip() for ln in str(e).splitlines() if ln.strip().startswith(("File ", "MemoryError"))]
            note = note or "; did NOT fit %s: %s after %d readings" % (HEAP, where[-1] if where else "stopped",
                                                                       getattr(e, "readings", 0))
    if heap != HEAP:
        note += ", measured at %s" % heap
    yield {"name": "mqtt_heap_high_water_romfs", "value": last["peak"] - qstrs, "unit": "bytes", "model": model,
           "note": "mqtt_heap_high_water's run (%d readings, the modem rebooted after %d) with the firmware "
                   "from a ROMFS image mounted at /rom (a board built with ROMFS: bytecode, constants and the "
                   "names' text in flash), umqtt.simple as .mpy on the heap as in mqtt_heap_high_water; the image's own hold "
                   "left out as a board maps it; qstr pools counted in (%d B); unix port%s"
                   % (last["readings"], FAULTS[0][0], -qstrs, note)}

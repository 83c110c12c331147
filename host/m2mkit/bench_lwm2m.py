"""Issue #10 figures: what one LwM2M Send of three readings costs on the air, beside the MQTT report
of the same readings (bench_mqtt.py), from the modem simulator's byte counters (IPv4 + UDP headers,
28 bytes a datagram: sim/modem/netsock.py), and the heap with the LwM2M client registered and MQTT
also loaded, at -X heapsize=160K.

The device runs the firmware (as .mpy) on the unix port: network, UDP sockets over the simulated
modem, the outbox, a sampler whose three readings name the IPSO objects, and m2m.lwm2m's Client with
`lwm2m.send` on, registered with m2mkit's own LwM2M server (m2mkit.lwm2m) on loopback. Each report is
one outbox record of three readings (temperature, humidity, battery: those of bench_mqtt) sent by
`POST /dp` in SenML CBOR and answered 2.04 in the CoAP ACK.
"""

import json
import tempfile
import time
from pathlib import Path

from . import bench_device
from .vdev.bridge import qstr_count, qstr_heap, qstr_plan

SCALE = 20
REPORTS = 5
HEAP = "160K"

DEVICE = """
import gc, json, os
gc.collect()
BASE = gc.mem_alloc()  # the ESP32 port's stand-in, which the heap size leaves out (vdev/bridge.py)
from m2m import hal, loop, config, outbox
from m2m.at import AT
from m2m import modem
from m2m.net import sock
from m2m.net.network import Network
from m2m.report import contract
from m2m.sense.sampler import Sampler
gc.collect()
cfg = config.validate({"device": {"id": "dev-1"}, "net": {"apn": "internet"},
                       "mqtt": {"broker": "mqtt://127.0.0.1:1", "keepalive": 600, "batch": 1},
                       "lwm2m": {"server": os.getenv("SERVER"), "lifetime_s": 86400, "send": True}})
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=3000)
m = modem.create(at, {"model": os.getenv("MODEL")})
D = os.getenv("DIR")
net = Network(m, cfg, state_dir=D + "/")
ob = outbox.Outbox(D + "/outbox")
if os.getenv("MQTT"):  # MQTT loaded beside it, as a device that reports both ways: never connected here
    from m2m.report import mqtt
    import umqtt.simple
    rep = mqtt.Reporter(sock.Stack(m, timeout_ms=8000), ob, cfg, "dev-1", up=lambda: False)
class Env:
    QUANT = ("temperature", "humidity", "battery")
    RANGE = None
    def start(self):
        return 0
    def read(self):
        return (21.5, 40.0, 3.71)
smp = Sampler(lambda readings, urgent: None)
smp.add("env", Env(), interval_s=3600)
if os.getenv("NO_LWM2M"):  # lwm2m_heap_share's baseline: the same device without the LwM2M client
    loop.run([net], until=net.attached, max_ms=120000)
    gc.collect()
    print(json.dumps({"phase": 0, "heap": gc.mem_alloc() - BASE}))
    raise SystemExit
from m2m.lwm2m.client import Client
cl = Client(cfg, network=net, sampler=smp, outbox=ob, stack=sock.Stack(m, kind="udp", timeout_ms=8000))
def flag(n):
    while True:
        try:
            os.stat(D + "/GO%d" % n)
            return
        except OSError:
            loop.run([net, cl], max_ms=100)
loop.run([net], until=net.attached, max_ms=120000)
loop.run([net, cl], until=cl.registered, max_ms=120000)
import micropython
micropython.qstr_info()  # the interned names' count, for the qstr pools' share (vdev/bridge.py qstr_heap)
gc.collect()
print(json.dumps({"phase": 0, "heap": gc.mem_alloc() - BASE, "registered": cl.registered()}))
flag(1)
for i in range(int(os.getenv("REPORTS"))):
    t = int(hal.epoch())  # whole seconds, as the ESP32's hal.epoch() (time.time(): an int there)
    sent = cl.sent
    ob.append(outbox.TELEMETRY, contract.pack_readings([("temperature", 21.5, "Cel", t),
              ("humidity", 40 + i % 9, "%RH", t), ("battery", 3.71, "V", t)]))
    loop.run([net, cl], until=lambda: cl.sent > sent, max_ms=60000)
    loop.run([net, cl], max_ms=300)  # nothing else goes meanwhile (checked by the host: datagrams)
gc.collect()
print(json.dumps({"phase": 1, "sent": cl.sent, "heap": gc.mem_alloc() - BASE}))
"""


def _session(model, heap, mqtt_loaded, phases, qstr_extra=0, machinery="prelude", romfs=False, lwm2m=True):
    # machinery, qstr_extra: bridge.qstr_plan's (the replies carry "qstr", the names' count); romfs:
    # the firmware from a ROMFS image mounted at /rom (host/m2mkit/romfs.py), umqtt as before;
    # lwm2m=False: the device stops attached, without the LwM2M client (phase 0 only)
    from .lwm2m.runner import ServerThread
    from .sim.modem import ModemSim

    with tempfile.TemporaryDirectory(prefix="m2mkit-bench-lwm2m-") as d, \
            ModemSim(model=model, time_scale=SCALE) as sim, ServerThread(log=None) as srv:
        d = Path(d)
        tree, rom = bench_device.firmware_tree(d, romfs)
        host, port = srv.address
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_TIME_SCALE": str(SCALE), "MODEL": model, "SERVER": f"coap://{host}:{port}", "DIR": str(d),
               "REPORTS": str(REPORTS), "MQTT": "1" if mqtt_loaded else "", "NO_LWM2M": "" if lwm2m else "1"}
        p = bench_device.start(DEVICE, env, heap, machinery, qstr_extra, tree, rom)
        lines = []

        def phase(n, timeout=600):
            if n:
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
                    if r.get("phase") == n:
                        return r
            raise RuntimeError("the bench device stopped:\n%s" % "".join(lines[-12:]))

        out = []
        try:
            for n, fn in phases:
                out.append(fn(sim, srv, phase(n)))
        finally:
            p.kill()
            p.wait()
        return out


def _udp(sim):
    c = [dict(v) for v in sim.counters().values() if v.get("proto") == "udp"]
    if len(c) != 1:
        raise RuntimeError("expected the LwM2M client's one UDP socket, the simulator has %d" % len(c))
    return c[0]


def lwm2m_figures(model="bg95"):
    from .bench_mqtt import KEPT, PUBACK, ACK
    from .bench_mqtt import _session as mqtt_session

    snap = {}

    def before(sim, srv, r):
        snap["before"] = _udp(sim)

    def reports(sim, srv, r):
        a, b = _udp(sim), snap["before"]
        sent = srv.run(_sent(srv.server))
        if r["sent"] != REPORTS or sent != REPORTS:
            raise RuntimeError("%d Sends made, %d reached the server (%d expected)" % (r["sent"], sent, REPORTS))
        return {k: a[k] - b[k] for k in ("tx_air", "rx_air", "tx_packets", "rx_packets", "round_trips")}

    _, d = _session(model, "512K", False, [(0, before), (1, reports)])
    if d["tx_packets"] != REPORTS or d["rx_packets"] != REPORTS:
        raise RuntimeError("other datagrams went during the Sends: %r" % d)
    up = d["tx_air"] / REPORTS
    both = (d["tx_air"] + d["rx_air"]) / REPORTS

    # the MQTT report of the same readings, measured in this run (bench_mqtt's device and counters)
    m = {}

    def m_before(sim, r):
        m["before"] = {k: dict(v) for k, v in sim.counters().items()}

    def m_kept(sim, r):
        after = {k: dict(v) for k, v in sim.counters().items()}
        k = [k for k in after if after[k]["state"] == "open"][0]
        m["k"] = k
        return (after[k]["tx_air"] - m["before"][k]["tx_air"]) + (after[k]["rx_air"] - m["before"][k]["rx_air"])

    def m_naive(sim, r):
        c = {k: dict(v) for k, v in sim.counters().items()}[m["k"]]
        return c["tx_air"] + c["rx_air"]

    _, kept_all, naive = mqtt_session(model, "512K", [(0, m_before), (1, m_kept), (2, m_naive)])
    kept = kept_all / KEPT - PUBACK - ACK

    yield {"name": "lwm2m_send_bytes", "value": round(up, 1), "unit": "bytes", "model": model,
           "note": "one LwM2M Send (POST /dp, SenML CBOR) of three readings, the datagram up with its IPv4 + "
                   "UDP headers (goal <= 90; the header floor is about 40); its 2.04 ACK down is %.0f bytes"
                   % (both - up)}
    yield {"name": "lwm2m_send_bytes_both_ways", "value": round(both, 1), "unit": "bytes", "model": model,
           "note": "the Send and its 2.04 ACK; beside it the MQTT report of the same readings: %.0f bytes on "
                   "a kept connection (PUBACK left out), %d bytes connect-publish-disconnect" % (kept, naive)}
    yield {"name": "lwm2m_send_ratio_mqtt_naive", "value": round(naive / both, 2), "unit": "ratio",
           "note": "MQTT connect-publish-disconnect / LwM2M Send both ways (goal >= 6)"}
    yield {"name": "lwm2m_send_datagram_ratio_mqtt_naive", "value": round(naive / up, 2), "unit": "ratio",
           "note": "MQTT connect-publish-disconnect (both ways) / the LwM2M Send datagram alone, the issue's "
                   "'bytes on air for one LwM2M Send' (goal >= 6); lwm2m_send_ratio_mqtt_naive counts its ACK too"}
    yield {"name": "lwm2m_send_ratio_mqtt_kept", "value": round(kept / up, 2), "unit": "ratio",
           "note": "MQTT report on a kept connection (PUBACK left out) / LwM2M Send datagram"}
    yield {"name": "lwm2m_round_trips_per_report", "value": d["round_trips"] / REPORTS, "unit": "count",
           "note": "radio round trips per Send (a datagram up, its answer down), simulator counters"}

    note = ""
    steps = [(0, lambda sim, srv, r: r)]
    # two passes, as bench_mqtt: the names the run interns give the qstr pools a board's firmware would
    # make, cut from the heap of the prelude that made its pools before (vdev/bridge.py qstr_heap)
    pools, qstrs = qstr_plan(_session(model, "512K", True, steps, machinery="pools")[-1]["qstr"], DEVICE)
    for heap in (HEAP, "176K", "192K", "224K", "320K", "512K"):
        try:
            last = _session(model, heap, True, steps, qstr_extra=qstrs, machinery=pools)[-1]
            break
        except RuntimeError as e:
            if heap == "512K":
                raise
            why = str(e).strip().splitlines()[-1][:80]
            note = note or "; did NOT fit %s (%s)" % (HEAP, why)
    if note:
        note += ", measured at %s" % heap
    own = qstr_heap(last["qstr"], DEVICE, machinery=pools)
    if own != qstrs:  # the first pass's count was not this run's: say so
        note += "; the qstr pools' share for the run's own %d names is %d B" % (last["qstr"], own)
    yield {"name": "lwm2m_heap_qstr_cut", "value": -qstrs, "unit": "bytes", "model": model,
           "note": "cut from the heap for the qstr pools: the prelude makes its pools before "
                   "the firmware runs, a board's firmware makes them as it goes (%d names interned by the "
                   "run with the prelude's; vdev/bridge.py qstr_heap)" % last["qstr"]}
    yield {"name": "lwm2m_heap_registered", "value": last["heap"] - qstrs, "unit": "bytes", "model": model,
           "note": "gc.mem_alloc() after gc.collect() with the LwM2M client registered, the network, UDP "
                   "sockets, the outbox, a sampler and MQTT (m2m.report.mqtt, umqtt.simple, a Reporter) "
                   "loaded, firmware as .mpy, the port stand-in left out, the qstr pools a board's firmware "
                   "makes counted in (lwm2m_heap_qstr_cut); unix port (about 2x ESP32 objects)%s" % note}
    # its LwM2M share: the same run, registered, less the same device without the client, both at
    # 512K with the same pools prelude
    share = (_session(model, "512K", True, steps, qstr_extra=qstrs, machinery=pools)[-1]["heap"]
             - _session(model, "512K", True, steps, qstr_extra=qstrs, machinery=pools, lwm2m=False)[-1]["heap"])
    yield {"name": "lwm2m_heap_share", "value": share, "unit": "bytes", "model": model,
           "note": "lwm2m_heap_registered's LwM2M share: held with the client registered and idle less the "
                   "same device without it (m2m.coap, the client's resident modules, its objects and "
                   "endpoint, the names they intern; what loads per operation left out); unix port"}


async def _sent(server):
    return sum(len(r.sent) for r in server.registrations.values())


def romfs_figures(model="bg95"):
    """lwm2m_heap_registered's run with the firmware from a ROMFS image (host/m2mkit/romfs.py; see
    bench_mqtt.romfs_figures): the image's own hold left out as a board maps it from flash."""
    steps = [(0, lambda sim, srv, r: r)]
    pools, qstrs = qstr_plan(_session(model, "512K", True, steps, machinery="pools", romfs=True)[-1]["qstr"],
                             DEVICE, rom=True)
    note = ""
    for heap in (HEAP, "176K", "192K", "224K", "320K", "512K"):
        try:
            last = _session(model, heap, True, steps, qstr_extra=qstrs, machinery=pools, romfs=True)[-1]
            break
        except RuntimeError as e:
            if heap == "512K":
                raise
            note = note or "; did NOT fit %s (%s)" % (HEAP, str(e).strip().splitlines()[-1][:80])
    if note:
        note += ", measured at %s" % heap
    yield {"name": "lwm2m_heap_registered_romfs", "value": last["heap"] - qstrs, "unit": "bytes", "model": model,
           "note": "lwm2m_heap_registered's run (client registered, MQTT loaded beside it) with the firmware "
                   "from a ROMFS image mounted at /rom (a board built with ROMFS: bytecode, constants and the "
                   "names' text in flash), umqtt.simple as .mpy on the heap as in lwm2m_heap_registered; qstr "
                   "pools counted in (%d B); unix port%s" % (-qstrs, note)}

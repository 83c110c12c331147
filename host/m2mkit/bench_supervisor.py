"""The whole device as main.py runs it (m2m.supervisor.start: sensors, outbox, network, MQTT
reporter, events) in a limited heap, through a modem reboot and a power-key recovery (issue #9's heap
goal): the most held after gc.collect() between loop steps, per phase (before the first attach, while
reporting, while the link is down and the network recovers), at -X heapsize plus what the port
stand-in holds (vdev/bridge.py port_heap) with the qstr pools a board's firmware makes counted
(qstr_plan / qstr_heap, as bench_mqtt.py). Firmware and umqtt.simple as .mpy (what `m2mkit deploy`
puts on a board); the board is esp32-devkitc-bg95's file (no PSRAM) with the model asked for, its
modem simulator wired as the virtual device wires it (power key, STATUS line)."""

import json
import tempfile
import time

SCALE = 20
HEAP = "160K"
# (reports sent, simulator fault): the modem reboots (the sockets see the link fail; the network
# reloads m2m.net.netup), then hangs (no answer: the power-key recovery loads m2m.modem.up too)
FAULTS = ((6, "reboot"), (12, "hang"))
REPORTS = 18
HEAPS = (HEAP, "176K", "192K", "208K", "224K", "256K")  # tried in turn: the figure is at the first that fits

# The run's own names (it is compiled on the device, so each of its identifiers and short strings is
# interned like the firmware's, counted in its qstr figure) are few, most of them names the firmware
# or the port have already: one environment variable, output lines whose words are longer than the
# 10 characters up to which the compiler interns a string (py/parse.c, MICROPY_ALLOC_PARSE_INTERN_STRING_LEN)
DEVICE = """
import gc, json, os
gc.collect()
base = gc.mem_alloc()
from m2m import config, supervisor
cfg, board, path, n, faults, max_ms = json.loads(os.getenv("M2M_SUPERVISOR_RUN"))
cfg = config.validate(cfg)
del config
r = supervisor.start(cfg, board, path + "/ob")
del board
mq = [g.svc for g in r.services if g.name == "mqtt"][0]
peak = [0, 0, 0]
seen = [0]
class Probe:
    def step(self):
        gc.collect()
        a = gc.mem_alloc() - base
        k = 0 if mq.builds == 0 else 1 if r.reporter is not None else 2
        if a > peak[k]:
            peak[k] = a
        s = r.reporter.sent if r.reporter is not None else 0
        if s > seen[0]:
            seen[0] = s
            print("M2M_SENT_NOW %d" % s)
        return 250
r.services.append(supervisor.Guard("probe", Probe()))
def crashes():
    return sum(g.crashes for g in r.services)
# until reported past both recoveries, or given up: a service that keeps crashing does not fit
r.run(until=lambda: seen[0] >= n and mq.builds > faults or crashes() >= 6, max_ms=max_ms)
import micropython
micropython.qstr_info()
print("M2M_RESULT_JSON " + json.dumps({"peak": peak, "sent": seen[0], "builds": mq.builds, "counts": r.net.counts,
                                       "state": r.net.status()["state"], "crashes": crashes()}))
"""


def config(broker):
    return {"device": {"id": "sup-1", "watchdog_s": 0},
            "mqtt": {"broker": broker, "keepalive": 60},
            "sense": {"battery": False, "interval_s": 2, "max_interval_s": 2, "deadband": 0.0,
                      "sensors": [{"type": "bme280"},
                                  {"type": "sht4x", "id": "out",
                                   "alarms": [{"q": "temperature", "above": 30, "hyst": 1}]}]}}


def board(model):
    from . import boards

    b = boards.load("esp32-devkitc-bg95")
    b["modem"]["model"] = model
    return b


def session(model="bg95", heap="512K", faults=FAULTS, reports=REPORTS, machinery="pools", qstr_extra=0,
            max_ms=600000, timeout=120, romfs=False):
    """One run; returns (result dict or None, the device's output). The simulator's fault `kind` is set
    once the reporter has sent that many reports. romfs: the firmware from a ROMFS image mounted at
    /rom (host/m2mkit/romfs.py, as bench_mqtt.py's ROMFS run: umqtt.simple stays .mpy on the heap),
    -X heapsize raised by what the image holds on the unix port (romfs.bench_start)."""
    from . import bench_device
    from .broker import Broker, Subscriber
    from .sim.bus import BusSim
    from .sim.sensors import BME280, SHT4x
    from .vdev.device import modem_for

    b = board(model)
    with tempfile.TemporaryDirectory(prefix="m2mkit-bench-supheap-") as d, Broker(tls=False) as br, \
            BusSim() as bus:
        sim = modem_for(b, SCALE)
        sub = Subscriber(br.url, topics=("+/sup-1/telemetry",))  # what Mosquitto delivers, seen from the host
        got = []  # telemetry messages delivered, counted when each fault was set: [(fault, delivered)]
        try:
            tree, rom = bench_device.firmware_tree(d, romfs)
            bus.i2c[(0, 0x76)] = BME280()
            bus.i2c[(0, 0x44)] = SHT4x()
            env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
                   "M2M_GPIO": "%s:%d" % tuple(sim.control_address), "M2M_BUS": bus.address_str,
                   "M2M_TIME_SCALE": str(SCALE),
                   "M2M_SUPERVISOR_RUN": json.dumps([config(br.url), b, d, reports, len(faults), max_ms])}
            p = bench_device.start(DEVICE, env, heap, machinery, qstr_extra, tree, rom)
            lines, done = [], []
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline:
                    line = p.stdout.readline()
                    if not line:
                        break
                    lines.append(line)
                    if line.startswith("M2M_SENT_NOW "):
                        n = int(line.split()[1])
                        for f in faults:
                            if f[0] <= n and f not in done:
                                done.append(f)
                                got.append((f[1], sub.messages.qsize()))
                                sim.fault(f[1])
            finally:
                p.kill()
                p.wait()
            time.sleep(0.2)  # the last PUBACKed report's delivery to the subscriber
        finally:
            sub.close()
            sim.stop()
    out = "".join(lines)
    res = [ln for ln in lines if ln.startswith("M2M_RESULT_JSON ")]
    res = json.loads(res[-1].split(" ", 1)[1]) if res else None
    if res is not None:
        res["delivered"] = sub.messages.qsize()  # telemetry messages Mosquitto delivered to the host
        res["delivered_at_faults"] = got
    return res, out


def frozen():
    """What a stock ESP32 MicroPython has frozen of what the run loads: umqtt.simple
    (ports/esp32/boards/manifest.py: require("umqtt.simple")), whose names are in its firmware's
    const pool (bridge.qstr_heap frozen=)."""
    from . import umqtt_setup

    return (str(umqtt_setup.path() / "umqtt" / "simple.py"),)


def plan(model="bg95", romfs=False):
    """The qstr pools' (machinery, qstr_extra) for the run: its names counted on a run with room
    (romfs: the names' characters stay in the image, bridge.qstr_heap rom=), umqtt.simple's as a
    stock board has them (frozen)."""
    from .vdev.bridge import qstr_count, qstr_plan

    res, out = session(model, "512K", romfs=romfs)
    if res is None:
        raise RuntimeError("the supervisor's heap run failed at 512K:\n" + out[-3000:])
    return qstr_plan(qstr_count(out), DEVICE, rom=romfs, frozen=frozen())



def fits(model, heap, pools, romfs=False):
    """(result or None, where it stopped) for one run at `heap`."""
    res, out = session(model, heap, machinery=pools[0], qstr_extra=pools[1], romfs=romfs)
    ok = res is not None and res["sent"] >= REPORTS and res["builds"] > len(FAULTS) and res["state"] == "attached" \
        and not res["crashes"]
    if ok:
        return res, None
    errs = [ln.strip() for ln in out.splitlines() if "MemoryError" in ln or "memory" in ln]
    return None, (errs[-1] if errs else out.strip().splitlines()[-1] if out.strip() else "no output")


def supervisor_heap_figures(model="bg95", heaps=HEAPS):
    pools = plan(model)
    note = ""
    for heap in heaps:
        res, why = fits(model, heap, pools)
        if res is not None:
            break
        note += "; did NOT fit %s (%s)" % (heap, why[:160])
    else:
        raise RuntimeError("the supervisor did not fit any of %s%s" % (heaps, note))
    peak = [v - pools[1] for v in res["peak"]]  # the qstr pools a board's firmware makes counted in
    yield {"name": "supervisor_heap_fault_run", "value": max(peak), "unit": "bytes", "model": model,
           "heap": heap,
           "note": "the most held after gc.collect() between loop steps by the whole device as main.py runs it "
                   "(esp32-devkitc-bg95's board file, a BME280 and an SHT4x with an alarm, MQTT), through a modem "
                   "reboot and a power-key recovery, at -X heapsize=%s (the first of %s that fits) plus the port "
                   "stand-in, the qstr pools a board's firmware makes counted in (%d B); by phase: before the "
                   "first attach %d, reporting %d, link down and recovering %d; firmware and umqtt.simple as "
                   ".mpy; unix port (about 2x ESP32)%s"
                   % (heap, ", ".join(heaps), -pools[1], peak[0], peak[1], peak[2], note)}


def supervisor_romfs_figures(model="bg95", heaps=HEAPS):
    """supervisor_heap_fault_run's run with the firmware from a ROMFS image (a board built with ROMFS:
    bytecode, constants and the names' text in flash), at the first of `heaps` that fits."""
    pools = plan(model, romfs=True)
    note = ""
    for heap in heaps:
        res, why = fits(model, heap, pools, romfs=True)
        if res is not None:
            break
        note += "; did NOT fit %s (%s)" % (heap, why[:160])
    else:
        raise RuntimeError("the supervisor from ROMFS did not fit any of %s%s" % (heaps, note))
    peak = [v - pools[1] for v in res["peak"]]
    yield {"name": "supervisor_heap_fault_run_romfs", "value": max(peak), "unit": "bytes", "model": model,
           "heap": heap,
           "note": "supervisor_heap_fault_run's run (main.py's supervisor through a modem reboot and a power-key "
                   "recovery) with the firmware from a ROMFS image mounted at /rom, umqtt.simple as .mpy on the "
                   "heap, at -X heapsize=%s (the first of %s that fits) plus the port stand-in and the image's own "
                   "hold (left out as a board maps it from flash), the qstr pools counted in (%d B, the names' "
                   "characters in the image); by phase: before the first attach %d, reporting %d, link down and "
                   "recovering %d; unix port (about 2x ESP32)%s"
                   % (heap, ", ".join(heaps), -pools[1], peak[0], peak[1], peak[2], note)}

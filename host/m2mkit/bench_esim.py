"""Issue #13 figures: what an eSIM profile switch costs the firmware beyond what the card and the network
need (the eUICC's refresh and the new profile's attach, read from the simulator's settings), on a BG95
whose eUICC holds two profiles; and the heap m2m.net.esim (with m2m.bertlv) adds to an attached network
stack (modules from .mpy)."""

import json
import tempfile

from .testing import run_micropython

SCALE = 5  # low: loopback latency scaled up would count as overhead
BOARD = {"model": "bg95", "pwrkey": {"pin": 25, "active": 1, "on_pulse_ms": 750, "off_pulse_ms": 1000,
                                     "boot_ms": 5000}}
EID = "89049032123451234512345678901235"
A = "89440000000000000011"
B = "89440000000000000029"

CODE = """
import gc, json, os, sys
sys.path.insert(0, os.getenv("MPY_TREE"))
from m2m import hal, loop, events, config, modem
from m2m.at import AT
from m2m.net.network import Network
from m2m.report import contract
events.log = False
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=2000)
m = modem.create(at, json.loads(os.getenv("BOARD")))
cfg = config.validate({"net": {"apn": "apn-a", "profiles": [{"iccid": os.getenv("B"), "apn": "apn-b"}]},
                       "esim": {"enabled": True}})
gc.collect()
base = gc.mem_alloc()
n = Network(m, cfg, state_dir=os.getenv("STATE") + "/")
ok = n.up(120000)
gc.collect()
held = gc.mem_alloc() - base
t0 = hal.ticks_ms()
n.t_registered = None
r = contract.handle_cmd(json.dumps({"id": 1, "cmd": "esim", "args": {"action": "switch", "iccid": os.getenv("B")}}),
                        cfg)
ok2 = loop.run((n,), lambda: n.t_registered is not None and m.iccid == os.getenv("B"), 120000)
print(json.dumps({"ok": ok and ok2, "ms": hal.ticks_diff(n.t_registered, t0), "held": held,
                  "reply": r[0].decode()}))
"""

BASE = CODE.replace('"esim": {"enabled": True}', '"esim": {"enabled": False}').replace(
    "t0 = hal.ticks_ms()", "print(json.dumps({'held': held}))\nraise SystemExit")


def _run(code, sim, tmp, tree):
    env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
           "M2M_TIME_SCALE": str(SCALE), "BOARD": json.dumps(BOARD), "STATE": tmp, "MPY_TREE": str(tree),
           "B": B}
    rc, out, err = run_micropython(code, env=env, heapsize="512K", timeout=120)
    if rc != 0:
        raise RuntimeError(out + err)
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


def _sim():
    from .sim.modem import ModemSim

    sim = ModemSim(model="bg95", time_scale=SCALE, power_on=False, pwrkey_pin=25, pwrkey_active=1)
    sim.start()
    sim.request({"op": "euicc", "action": "install", "eid": EID, "profiles": [
        {"iccid": A, "imsi": "001010000000011", "apn": "apn-a"},
        {"iccid": B, "imsi": "001030000000022", "apn": "apn-b"}]})
    return sim


def esim_figures():
    from .bench import heap_trees
    from .sim.modem import euicc

    with tempfile.TemporaryDirectory() as tmp:
        tree = heap_trees(tmp + "/lib")["mpy"]
        sim = _sim()
        try:
            attach_s = max(e[0] for e in sim.modem.timeline if e[1] in ("home", "roaming"))
            r = _run(CODE, sim, tmp, tree)
        finally:
            sim.stop()
        if not r["ok"]:
            raise RuntimeError("the switch did not register: %s" % r)
        sim = _sim()
        try:
            b = _run(BASE, sim, tmp, tree)
        finally:
            sim.stop()
    required_ms = 1000 * (euicc.REFRESH_TIME + attach_s)
    yield {"name": "esim_switch_overhead_bg95", "value": round(r["ms"] - required_ms), "unit": "ms",
           "note": "the esim switch command to registered on the new profile, minus what the card and the "
                   "network need (refresh %.1f s, attach %.1f s, from the simulator's settings): the ES10 "
                   "exchange, the SIM step (ICCID, IMSI), the profile's configuration (RAT, APN, CFUN, COPS) "
                   "and the URC waits; device time at %dx" % (euicc.REFRESH_TIME, attach_s, SCALE)}
    yield {"name": "esim_heap", "value": max(1, r["held"] - b["held"]), "unit": "bytes",
           "note": "gc.mem_alloc() of an attached network stack with esim.enabled minus the same without: "
                   "m2m.net.esim, m2m.bertlv, the EID / profile list, and m2m.report.contract for the esim "
                   "command (a reporting device holds it anyway), from .mpy; unix port, "
                   "64-bit objects: about 2x ESP32"}

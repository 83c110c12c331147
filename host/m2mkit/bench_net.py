"""Issue #8 figures: the firmware's own overhead from power-on to registered for a switched-off BG95
(the time beyond the key pulse the board asks for, the modem's boot and SIM start-up and the simulated
network's attach, all read from the simulator's settings), and the heap the network stack holds once
attached (over the baseline taken after the hal import, modules from .mpy)."""

import json
import tempfile

from .testing import run_micropython

SCALE = 5  # low: loopback latency scaled up would count as overhead
# the esp32-devkitc-bg95 board's modem wiring: PWRKEY on 25, the modem's STATUS output on 34
BOARD = {"model": "bg95", "pwrkey": {"pin": 25, "active": 1, "on_pulse_ms": 750, "off_pulse_ms": 1000,
                                     "boot_ms": 5000}, "status_pin": 34}

CODE = """
import gc, json, os, sys
sys.path.insert(0, os.getenv("MPY_TREE"))
gc.collect()
from m2m import hal, loop
u = loop.Guarded(hal.UART(1, 115200))
gc.collect()
base = gc.mem_alloc()
from m2m import events, config, modem
from m2m.at import AT
from m2m.net.network import Network
events.log = False
at = AT(u, timeout_ms=2000)
m = modem.create(at, json.loads(os.getenv("BOARD")))
cfg = config.validate({"net": {"apn": "internet"}})
config.release()  # as config.load() does on the device: the validated dict stays, not the table
n = Network(m, cfg, state_dir=os.getenv("STATE") + "/")
t0 = hal.ticks_ms()
ok = loop.run((n,), lambda: n.t_registered is not None, 120000)
t = hal.ticks_diff(n.t_registered, t0)  # when the firmware saw the registration
n.up(60000)
gc.collect()
print(json.dumps({"ok": ok, "ms": t, "heap": gc.mem_alloc() - base}))
"""


def net_figures():
    from .bench import heap_trees
    from .sim.modem import ModemSim

    with tempfile.TemporaryDirectory() as tmp:
        tree = heap_trees(tmp + "/lib")["mpy"]
        with ModemSim(model="bg95", time_scale=SCALE, power_on=False, pwrkey_pin=25, pwrkey_active=1,
                      status_pin=BOARD["status_pin"]) as sim:
            cls = sim.cls
            attach_s = max(e[0] for e in sim.modem.timeline if e[1] in ("home", "roaming"))
            # the registration timeline starts once the SIM is ready: SIM_INIT_TIME after boot
            required_ms = (BOARD["pwrkey"]["on_pulse_ms"] + 1000 * (cls.BOOT_TIME + cls.SIM_INIT_TIME + attach_s))
            env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
                   "M2M_TIME_SCALE": str(SCALE), "BOARD": json.dumps(BOARD), "STATE": tmp, "MPY_TREE": str(tree)}
            rc, out, err = run_micropython(CODE, env=env, heapsize="512K", timeout=120)
            if rc != 0:
                raise RuntimeError(out + err)
            r = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    yield {"name": "net_bringup_overhead_bg95", "value": round(r["ms"] - required_ms), "unit": "ms",
           "note": "power-on to registered for a switched-off BG95 whose STATUS line the board wires "
                   "(read low: one 100 ms AT probe before the key, not 300 ms) minus what the modem needs (key pulse "
                   "%d ms, boot %.1f s, SIM start-up %.1f s, network attach %.1f s, from the simulator's "
                   "settings); goal <= 300 ms; device time at %dx" % (BOARD["pwrkey"]["on_pulse_ms"], cls.BOOT_TIME,
                                                                     cls.SIM_INIT_TIME, attach_s, SCALE)}
    yield {"name": "net_attached_heap", "value": r["heap"], "unit": "bytes",
           "note": "gc.mem_alloc() once attached over the baseline after the hal and its UART: m2m.at, "
                   "m2m.modem + the BG95 dialect, m2m.config, m2m.events, m2m.net.network from .mpy; "
                   "unix port, 64-bit objects: about 2x ESP32"}

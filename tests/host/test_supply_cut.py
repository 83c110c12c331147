"""A modem whose supply the firmware has just cut is known to be off: the network's hard-reset step
(m2m.net.netup._hard_reset) and app.modem_check() on a board whose PMU rail feeds the modem
(T-SIM7080G-S3: the AXP2101's DC3 held off for cycle_off_ms, m2m.boardpmu; LilyGO's
ModemResetExample likewise cuts DC3, then starts the modem with the power key) pulse the key at
once (Modem.power_on(known_off=True)). Without that, after a reset other than the ESP32's power-on
(here a watchdog reset) power_on takes the silent modem for one that may be booting: two AT probes,
then the boot time (5 s) of probing, before the key. Where nothing was cut (modem_check a second
time in one boot) the running modem is probed and never pulsed.

The firmware runs in the real MicroPython unix port; the modem simulator is fed by the PMU model on
the simulated I2C bus (m2mkit.vdev.device.modem_for, as on the virtual device). What is checked is
the firmware's own transcript between the cut and the key: which AT commands went out, not how long
anything took on the host."""

import json

from m2mkit import boards
from m2mkit.sim.bus import BusSim
from m2mkit.testing import run_micropython
from m2mkit.vdev.device import modem_for

S3 = boards.load("lilygo-t-sim7080g-s3")
WDT_RESET = 3  # machine.reset_cause() (ports/esp32/modmachine.c): a restart that may cut into a boot
SCALE = 10

# the firmware's transcript: each AT command (None: no answer), each key pulse and each rail
# switched off, with the device's ms
LOG = """
import json, os
from m2m import hal, board
from m2m.at import AT
from m2m.axp2101 import AXP2101
from m2m.modem import Modem
log = []
_cmd = AT.cmd
def _logged(self, c, **kw):
    t = hal.ticks_ms()
    try:
        r = _cmd(self, c, **kw)
    except OSError:
        log.append([c, None, t])
        raise
    log.append([c, r.ok, t])
    return r
AT.cmd = _logged
_pulse = Modem._pulse
def _pulsed(self, ms):
    log.append(["PULSE", ms, hal.ticks_ms()])
    return _pulse(self, ms)
Modem._pulse = _pulsed
_disable = AXP2101.disable
def _cut(self, rail):
    log.append(["CUT", rail, hal.ticks_ms()])
    return _disable(self, rail)
AXP2101.disable = _cut
B = json.loads(os.getenv("BOARD"))
"""

HARD_RESET = LOG + """
from m2m import config
from m2m.net import netup
from m2m.net.network import Network
n = Network(B, config.validate({}), state_dir=os.getenv("STATE") + "/")
netup._power(n)  # the cold boot: the PMU's cut, then the modem powered on
first = log[:]
del log[:]
netup._hard_reset(n)  # the recovery ladder's last step
print(json.dumps({"first": first, "hard": log, "ok": n.modem.ping()}))
"""

CHECK = LOG + """
from m2m import app
board._board = B
app.modem_check()
first = log[:]
del log[:]
app.modem_check()  # again in the same boot: the supply is not cut again
print(json.dumps({"first": first, "again": log}))
"""


def run(code, tmp_path):
    with BusSim() as bus:
        sim = modem_for(S3, SCALE, bus)
        try:
            env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
                   "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
                   "M2M_BUS": bus.address_str, "M2M_TIME_SCALE": str(SCALE),
                   "M2M_RESET_CAUSE": str(WDT_RESET), "BOARD": json.dumps(S3), "STATE": str(tmp_path)}
            rc, out, err = run_micropython(code, env=env, heapsize="512K", timeout=120)
            assert rc == 0, out + err
            boots = sim.status()["boots"]
        finally:
            sim.stop()
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1]), boots


def after_cut(log):
    # what the firmware did from the modem's rail cut to its first key pulse
    names = [e[0] for e in log]
    assert "CUT" in names and "PULSE" in names, log
    return names[names.index("CUT") + 1:names.index("PULSE")]


def test_the_hard_reset_step_pulses_the_modem_at_once_after_cutting_its_rail(tmp_path):
    r, boots = run(HARD_RESET, tmp_path)
    assert after_cut(r["first"]) == [], r["first"]  # the cold boot (netup._open): known off already
    # the hard reset: DC3 off and on, then the key, no probe of a modem that cannot be booting
    assert r["hard"][0][:2] == ["CUT", "DC3"], r["hard"]
    assert after_cut(r["hard"]) == [], r["hard"]
    assert [e[0] for e in r["hard"]].count("PULSE") == 1, r["hard"]
    assert r["ok"] and boots == 2, (r, boots)


def test_modem_check_pulses_the_modem_at_once_after_the_cold_cut_and_never_pulses_it_again(tmp_path):
    r, boots = run(CHECK, tmp_path)
    assert r["first"][0][:2] == ["CUT", "DC3"], r["first"]
    assert after_cut(r["first"]) == [], r["first"]
    assert [e[0] for e in r["first"]].count("PULSE") == 1, r["first"]
    # the second check: no cut, so the running modem is probed (it answers) and not pulsed
    again = [e[0] for e in r["again"]]
    assert "CUT" not in again and "PULSE" not in again and again[0] == "AT", r["again"]
    assert r["again"][0][1] is True, r["again"]
    assert boots == 1, boots

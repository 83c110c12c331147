"""Issue #8: the modem's STATUS line where the board wires it (esp32-devkitc-bg95: GPIO34). The
firmware reads it through the port stand-in's machine.Pin, which the modem simulator's STATUS output
drives (ModemSim status_pin): low, the modem is off and pulsed at once, without an AT probe; high, it
runs and is never pulsed, across an ESP32 reset too."""

import json
import time

from m2mkit.sim.modem import ModemSim
from m2mkit.testing import run_micropython

SCALE = 20
BOARD = {"model": "bg95", "pwrkey": {"pin": 25, "active": 1, "on_pulse_ms": 750, "off_pulse_ms": 1000,
                                     "boot_ms": 5000}, "status_pin": 34}

CODE = """
import json, os
from m2m import hal, loop, modem
from m2m.at import AT
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=2000)
m = modem.create(at, json.loads(os.getenv("BOARD")))
log = []
cmd = at.cmd
def logged(c, **kw):
    log.append(c)
    return cmd(c, **kw)
at.cmd = logged
pulse = m._pulse
def pulsed(ms):
    log.append("PULSE")
    return pulse(ms)
m._pulse = pulsed
before = m.status()
on = m.power_on()
print(json.dumps({"before": before, "on": on, "after": m.status(), "log": log,
                  "other": hal.Pin(33, hal.Pin.IN).value()}))
"""


def bring_up(sim, reset_cause=None):
    env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
           "M2M_TIME_SCALE": str(SCALE), "BOARD": json.dumps(BOARD)}
    if reset_cause is not None:
        env["M2M_RESET_CAUSE"] = str(reset_cause)
    rc, out, err = run_micropython(CODE, env=env, heapsize="512K", timeout=60)
    assert rc == 0, out + err
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


def test_status_low_the_key_is_pulsed_after_one_short_probe():
    with ModemSim(model="bg95", time_scale=SCALE, power_on=False, pwrkey_pin=25, pwrkey_active=1,
                  status_pin=34) as sim:
        r = bring_up(sim)
        assert r["before"] is False and r["on"] and r["after"] is True, r
        assert r["log"][:2] == ["AT", "PULSE"] and r["log"].count("PULSE") == 1, r["log"]
        assert r["other"] == 0  # an input wired to nothing reads its (absent) pull
        st = sim.modem.status()
        assert st["power"] == "on" and st["boots"] == 1


def test_a_modem_left_running_across_an_esp32_reset_is_never_pulsed():
    with ModemSim(model="bg95", time_scale=SCALE, power_on=False, pwrkey_pin=25, pwrkey_active=1,
                  status_pin=34) as sim:
        assert bring_up(sim)["on"]
        for cause in (1, 5, 4):  # power-on (a modem on its own supply), soft reset, deep-sleep wake
            r = bring_up(sim, cause)
            assert r["before"] is True and r["on"] and "PULSE" not in r["log"], (cause, r)
        st = sim.modem.status()
        assert st["power"] == "on" and st["boots"] == 1


def test_a_status_line_that_reads_low_wrongly_never_gets_a_running_modem_pulsed():
    # the board names GPIO34 but nothing drives it (a simulator started without status_pin): it
    # reads low; the modem answers the short probe, so it is not pulsed off
    with ModemSim(model="bg95", time_scale=SCALE, power_on=True, pwrkey_pin=25, pwrkey_active=1) as sim:
        while sim.modem.power != "on":  # booted, left running across the ESP32's soft reset
            time.sleep(0.01)
        r = bring_up(sim, 5)
        assert r["before"] is False and r["on"] and "PULSE" not in r["log"], r
        st = sim.modem.status()
        assert st["power"] == "on" and st["boots"] == 1


def test_the_simulator_command_takes_the_status_pin():
    # `m2mkit sim modem --status-pin N` wires STATUS for a device run against a separate simulator
    # (the DevKitC board reads GPIO34): a bad number is a one-line error
    from click.testing import CliRunner

    from m2mkit.sim.modem.cli import modem_command

    r = CliRunner().invoke(modem_command, ["--model", "bg95", "--status-pin", "-1"])
    assert r.exit_code != 0 and "--status-pin must be a GPIO number" in r.output

"""The modem at the ESP32's (re)start: on, still booting, or off. A power-key pulse toggles the modem,
so one given to a modem that runs (or is booting) switches it off: the firmware's power-on probe must
tell the three apart before it pulses. The ESP32 resets (watchdog, machine.reset(), a crash) while a
modem on a supply of its own keeps its power, so after such a reset the modem may be in any of them;
one still booting answers nothing until its boot ends (the UART and STATUS come up at its end: SIM7000
Hardware Design V1.07 table 8, Ton(uart) = Ton(status), at least 4.5 s), so it gets the boot time before the
key. After the ESP32's own power-on a modem that is silent is pulsed after one probe (a modem sharing
its supply was off too): that start costs no boot-time wait.

Each case runs the firmware in the real MicroPython unix port against the modem simulator (its PWRKEY
on the port's GPIO stand-in): BG95 with the DevKitC board's STATUS line and without one, and SIM7080G
on a board without its PMU (the modem on a supply of its own, as on the T-SIM7080G-S3-Standard); the
"booting" case is the ESP32 resetting right after its own on-pulse. The outcome: the modem runs, booted
once, and was pulsed only when it was off. The last test does it on the whole virtual device."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from m2mkit import boards
from m2mkit.sim.modem import ModemSim
from m2mkit.testing import run_micropython
from m2mkit.vdev.device import VirtualDevice

MPREMOTE = str(Path(sys.executable).parent / "mpremote")

WDT_RESET, HARD_RESET, PWRON_RESET = 3, 2, 1  # machine.reset_cause() (ports/esp32/modmachine.c)
SCALE = 4  # a boot of 4-5 modem seconds is 1-1.25 s here: the restarted firmware starts within it
FAST = 10  # the cases without a boot under way

BG95 = dict(boards.load("esp32-devkitc-bg95")["modem"])
BG95_NO_STATUS = dict(BG95, status_pin=None)
SIM7080 = dict(boards.load("lilygo-t-sim7080g-s3")["modem"], power_enable=None)
CASES = {"bg95": BG95, "bg95-no-status": BG95_NO_STATUS, "sim7080g": SIM7080}

# the ESP32's last on-pulse just before it restarted: the restarted firmware (what follows, with the
# reset cause given) meets the boot that pulse started; in one process, so that the boot is surely
# still under way when the probe comes, however loaded the machine (the virtual device test below
# has the real restart)
PULSED = """
import json
from m2m import hal
_k = json.loads(__import__("os").getenv("BOARD"))["pwrkey"]
_p = hal.Pin(_k["pin"], hal.Pin.OUT, value=1 - _k["active"])
_p.value(_k["active"])
hal.sleep_ms(_k["on_pulse_ms"])
_p.value(1 - _k["active"])
"""

CODE = """
import json, os
from m2m import hal, loop, modem
from m2m.at import AT
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=2000)
m = modem.create(at, json.loads(os.getenv("BOARD")))
log = []
cmd = at.cmd
def logged(c, **kw):
    try:
        r = cmd(c, **kw)
    except OSError:
        log.append([c, None])
        raise
    log.append([c, r.ok])
    return r
at.cmd = logged
pulse = m._pulse
def pulsed(ms):
    log.append(["PULSE", ms])
    return pulse(ms)
m._pulse = pulsed
before = m.status()
on = m.power_on()
print(json.dumps({"on": on, "log": log, "before": before}))
"""


def sim_for(b, scale=SCALE, **kw):
    return ModemSim(model=b["model"], time_scale=scale, pwrkey_pin=b["pwrkey"]["pin"],
                    pwrkey_active=b["pwrkey"]["active"], status_pin=b.get("status_pin"), **kw)


def firmware(sim, b, cause, code=CODE, pulsed=False, **env):
    env.update({"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
                "M2M_TIME_SCALE": str(sim.time_scale), "BOARD": json.dumps(b), "M2M_RESET_CAUSE": str(cause)})
    rc, out, err = run_micropython((PULSED if pulsed else "") + code, env=env, heapsize="512K", timeout=120)
    assert rc == 0, out + err
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


def pulses(r):
    return [e for e in r["log"] if e[0] == "PULSE"]


def settle(sim):
    st = sim.status()
    assert st["power"] == "on", st
    return st


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_modem_still_booting_at_the_esp32_restart_is_waited_for_not_pulsed_off(case):
    b = CASES[case]
    with sim_for(b, power_on=False).start() as sim:
        r = firmware(sim, b, WDT_RESET, pulsed=True)
        assert r["on"] and not pulses(r), r
        if b.get("status_pin") is None:
            # it was probed while booting: its first AT went unanswered
            assert r["log"][0] == ["AT", None], r
        else:
            assert r["before"] is False, r  # STATUS low: still booting as the firmware started
        st = settle(sim)
        assert st["boots"] == 1, st


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("cause", [WDT_RESET, HARD_RESET])
def test_a_running_modem_at_the_esp32_restart_is_never_pulsed(case, cause):
    b = CASES[case]
    with sim_for(b, FAST, power_on=True).start() as sim:
        while sim.status()["power"] != "on":
            time.sleep(0.02)
        r = firmware(sim, b, cause)
        assert r["on"] and not pulses(r), r
        assert settle(sim)["boots"] == 1


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("cause", [PWRON_RESET, WDT_RESET])
def test_a_modem_that_is_off_at_the_esp32_start_is_pulsed_on_once(case, cause):
    b = CASES[case]
    with sim_for(b, FAST, power_on=False).start() as sim:
        r = firmware(sim, b, cause)
        assert r["on"] and len(pulses(r)) == 1, r
        if cause == PWRON_RESET:
            assert r["log"][1][0] == "PULSE", r  # one probe, then the key: no boot-time wait
        elif b.get("status_pin") is None:
            assert r["log"].index(pulses(r)[0]) > 1, r  # AT probes through the boot time, then the key
        assert settle(sim)["boots"] == 1


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_power_cycle_of_a_modem_that_is_off_leaves_it_on(case):
    # the recovery's power cycle (off-pulse, then on-pulse) meets a modem that is already off (one a
    # pulse switched off while it booted, or powered down): the key toggles, so its off-pulse starts
    # the modem, and the on-pulse that followed met it at the end of its boot and switched it off
    # again, after an AT answer that made the cycle look good
    b = CASES[case]
    with sim_for(b, FAST, power_on=False).start() as sim:
        r = firmware(sim, b, WDT_RESET, code=CODE.replace("on = m.power_on()", "on = m.power_cycle()"))
        assert r["on"], r
        time.sleep(3 * ModemSim(model=b["model"]).cls.POWER_DOWN_DELAY / FAST)  # a power-down under way ends
        st = settle(sim)
        assert st["boots"] == 1 and len(pulses(r)) == 1, (st, r)  # STATUS low: no off-pulse; else its off-pulse started it


NET = """
import json, os
from m2m import hal, loop, config, modem
from m2m.at import AT
from m2m.net.network import Network
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=2000)
m = modem.create(at, json.loads(os.getenv("BOARD")))
n = Network(m, config.validate({"net": {"apn": "internet"}}), state_dir=os.getenv("STATE") + "/")
ok = loop.run((n,), n.attached, 300000)
print(json.dumps({"ok": ok, "counts": n.status()["counts"]}))
"""


@pytest.mark.parametrize("case", ["bg95", "bg95-no-status"])
def test_a_bg95_booting_at_the_esp32_power_on_gets_the_network_up_after_one_power_key_step(case, tmp_path):
    # a BG95 booting when the ESP32 powers on (a simulator started with power_on=True and a power
    # key; here the boot of the ESP32's last pulse before a brown-out of the ESP32 alone, which the
    # port reports as PWRON_RESET). The
    # power-on keeps its one probe there (no boot-time wait at a cold start), so its pulse meets the
    # boot and switches the modem off; the recovery's power cycle then starts it and leaves it on
    # (it used to switch it off again: 22 boots and no attach in 300 modem seconds)
    b = CASES[case]
    with sim_for(b, power_on=False).start() as sim:
        r = firmware(sim, b, PWRON_RESET, code=NET, pulsed=True, STATE=str(tmp_path))
        assert r["ok"] and r["counts"]["powerkey"] == 1 and r["counts"]["recovery"] == 1, r
        assert settle(sim)["boots"] == 2


# ---- the whole virtual device: machine.reset() while the modem boots, then while it runs ---------------
def mpremote(port, *args, check=True):
    p = subprocess.run([MPREMOTE, "connect", port, *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 or not check, p.stdout + p.stderr
    return p.stdout


def reset_seen(dev, seen):
    deadline = time.monotonic() + 20
    while ("reset", {"cause": "hard"}) not in dev.events[seen:]:
        assert time.monotonic() < deadline, dev.events[seen:]
        time.sleep(0.01)


def test_the_virtual_devkitc_keeps_its_bg95_through_machine_reset_while_it_boots_and_runs():
    # esp32-devkitc-bg95 (STATUS on GPIO34): the device pulses its modem on and resets at once
    # (machine.reset()); after the restart app.modem_check() finds the modem booting and waits
    # for it; a second machine.reset() finds it running. One boot, never switched off.
    with VirtualDevice("esp32-devkitc-bg95", modem=True, time_scale=1) as dev:  # a 4 s boot
        dev.wait_boot()
        key = dev.board["modem"]["pwrkey"]
        seen = len(dev.events)
        mpremote(dev.port, "exec", "--no-follow", "import machine, time\n"
                 "k = machine.Pin(%d, machine.Pin.OUT, value=%d)\n"
                 "k.value(%d); time.sleep_ms(%d); k.value(%d)\n"
                 "machine.reset()\n" % (key["pin"], 1 - key["active"], key["active"],
                                        key["on_pulse_ms"], 1 - key["active"]), check=False)
        reset_seen(dev, seen)
        assert dev.modem.status()["power"] == "booting"
        dev.wait_boot(2)
        for n in (1, 2):
            # STATUS as modem_check starts: low (still booting) the first time, high the second
            out = mpremote(dev.port, "exec", "from m2m import app, hal\n"
                           "print('status', hal.Pin(%d, hal.Pin.IN).value())\n"
                           "app.modem_check()" % dev.board["modem"]["status_pin"])
            assert "modem: " in out and "imei=%s" % dev.modem.imei in out, out
            assert "status %d" % (n - 1) in out, out
            st = dev.modem.status()
            assert st["power"] == "on" and st["boots"] == 1, st
            if n == 1:
                seen = len(dev.events)
                mpremote(dev.port, "reset", check=False)
                reset_seen(dev, seen)
                dev.wait_boot(3)

"""A modem that restarts by itself (brown-out, its own watchdog, a crash) while attached: the firmware
hears its boot line (Quectel / SIMCom RDY, Sequans +SYSSTART), posts modem.rebooted once, drops the
sockets, sets the modem up again from the AT sync on (echo, URC modes, RAT, APN, PSM, AT+COPS=3,2)
without a power cycle, registers again and reports through a real Mosquitto; the same while it waits
for registration; a socket open across the restart hears its close (no link failure). A restart the
firmware causes itself (the recovery ladder's power key, the BG95's SIM slot switch with
AT+CFUN=1,1) is no such reboot.

The real MicroPython runs the firmware (m2m.net.network, m2m.report.mqtt over m2m.net.sock) against
the modem simulator, whose `reboot` fault restarts the modem the way a brown-out does; the
simulator's .atlog recording is the witness of the commands the firmware sent after the restart."""

import json
import subprocess
import time

import pytest

from m2mkit.sim.modem import ModemSim
from m2mkit.testing import _prelude, micropython, mpy_env

SCALE = 20

DEVICE = """
import json, os
from m2m import hal, loop, config, outbox, modem
from m2m.at import AT
from m2m.net import sock
from m2m.net.network import Network
from m2m.report import mqtt, contract
import m2m.net
D = os.getenv("DIR")
cfg = config.validate({"device": {"id": "dev-1"},
                       "net": {"apn": "internet", "psm_tau_s": 3600, "psm_active_s": 60},
                       "mqtt": {"broker": os.getenv("BROKER"), "keepalive": 60}})
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=3000)
m = modem.create(at, json.loads(os.getenv("BOARD")))
net = Network(m, cfg, state_dir=D + "/")
st = sock.Stack(m, kind="tcp", timeout_ms=8000, on_fail=m2m.net.link_failed)
ob = outbox.Outbox(D + "/outbox")
rep = mqtt.Reporter(st, ob, cfg, "dev-1", up=net.attached, config_path=D + "/config.json")


def flag(name):
    try:
        os.stat(D + "/" + name)
        return True
    except OSError:
        return False


def say(phase, **kw):
    s = net.status()
    kw.update(phase=phase, state=s["state"], counts=s["counts"], reboots=m.reboots)
    print(json.dumps(kw))


phase = 0
while not flag("STOP"):
    if flag("GO%d" % phase):
        if os.getenv("OWN") and phase == 1:  # the recovery ladder's power key, the firmware's own
            net.level = 2
            net.link_failed("test: the power key")
        seq = ob.append(outbox.TELEMETRY, contract.pack_readings([("temperature", 20 + phase, "Cel", hal.epoch())]))
        ok = loop.run([net, rep], until=lambda: ob.pending() == 0 and rep.client.connected()
                      and net.attached(), max_ms=int(os.getenv("PHASE_MS")))
        say(phase, seq=seq, ok=ok)
        phase += 1
    else:
        loop.run([net, rep], max_ms=200)
"""


class Device:
    def __init__(self, tmp, sim, url, model, own=False, phase_ms=120000, lines=None):
        self.dir = tmp
        env = {"BOARD": json.dumps(dict(lines or {}, model=model)),
               "M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_TIME_SCALE": str(SCALE), "MODEL": model, "BROKER": url, "DIR": str(tmp),
               "PHASE_MS": str(phase_ms), "OWN": "1" if own else ""}
        self.p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + DEVICE],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=mpy_env(env))
        self.lines = []

    def go(self, phase, timeout=60):
        (self.dir / ("GO%d" % phase)).write_text("")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("{"):
                d = json.loads(line)
                if d.get("phase") == phase:
                    return d
        raise AssertionError("device did not finish phase %d:\n%s" % (phase, "".join(self.lines[-60:])))

    def events(self, kind):
        return [ln for ln in self.lines if ln.startswith("event: %s " % kind) or ln.strip() == "event: " + kind]

    def stop(self):
        (self.dir / "STOP").write_text("")
        self.p.kill()
        self.p.wait()


def sent_after(path, marker):
    """The command lines the firmware sent after the simulator's last `marker` line."""
    recs = [json.loads(x) for x in path.read_text().splitlines()[1:]]
    got = ""
    at = None
    for i, r in enumerate(recs):
        if r["d"] == "<":
            got += r["b"]
            if ("\r\n%s\r\n" % marker) in got:
                at = i
                got = ""
    assert at is not None, "no %s in the recording" % marker
    return "".join(r["b"] for r in recs[at + 1:] if r["d"] == ">").split("\r")


def seqs(sub, want, timeout=30):
    seen = []
    deadline = time.monotonic() + timeout
    while not set(want) <= set(seen) and time.monotonic() < deadline:
        for _, payload, _ in sub.wait(1, timeout=1, topic="m2mkit/dev-1/telemetry"):
            seen += [r["v"] for r in json.loads(payload) if "n" not in r]  # each group's sequence
    return seen


# the first line of a boot per dialect: Quectel RDY (bg96_boot-rdy-pdpdeact-echo transcript),
# SIMCom RDY (ASSUMED docs/ASSUMED.md#A-SIM7080-BANNER), Sequans +SYSSTART (gm02s transcript)
BOOT = {"bg95": "RDY", "sim7080g": "RDY", "gm02s": "+SYSSTART"}
# the APN command of each dialect's bring-up scripts
APN = {"bg95": "AT+QICSGP=1", "sim7080g": "AT+CGDCONT=1", "gm02s": "AT+CGDCONT=1"}


@pytest.mark.parametrize("model", ("bg95", "sim7080g", "gm02s"))
def test_a_modem_that_reboots_by_itself_is_set_up_again(model, broker, subscriber, tmp_path):
    sub = subscriber("m2mkit/dev-1/telemetry")
    rec = tmp_path / "modem.atlog"
    with ModemSim(model=model, time_scale=SCALE, record=str(rec)) as sim:
        dev = Device(tmp_path, sim, broker.url, model)
        try:
            d0 = dev.go(0)
            assert d0["ok"], "".join(dev.lines[-40:])
            assert d0["seq"] in seqs(sub, [d0["seq"]])
            boots = sim.status()["boots"]
            sim.fault("reboot")  # a brown-out: no goodbye line, the boot line when it is back
            d1 = dev.go(1)
            assert d1["ok"], "".join(dev.lines[-60:])
            # the report made after the restart reaches the broker
            assert d1["seq"] in seqs(sub, [d1["seq"]])
            assert d1["state"] == "attached" and d1["counts"]["rebooted"] == 1
            # one restart, the modem's own: no power cycle by the firmware, no recovery step
            assert sim.status()["boots"] == boots + 1
            assert len(dev.events("modem.rebooted")) == 1, "".join(dev.lines)
            assert d1["reboots"] == 1
            assert not dev.events("net.recovery"), "".join(dev.lines)
            assert any("after=reboot" in ln for ln in dev.events("net.sync")), "".join(dev.lines)
        finally:
            dev.stop()
    # after the restart the firmware sent the set-up again: echo off, registration URCs, the APN,
    # PSM, numeric operator format, before it registered and opened the new connection
    cmds = sent_after(rec, BOOT[model])
    for want in ("ATE0", "AT+CEREG=", APN[model], "AT+CPSMS=1", "AT+COPS=3,2"):
        assert any(c.startswith(want) for c in cmds), (want, cmds)
    first_open = min(i for i, c in enumerate(cmds) if c.startswith(("AT+QIOPEN", "AT+CAOPEN", "AT+SQNSD")))
    assert max(i for i, c in enumerate(cmds) if c.startswith("ATE0")) < first_open


def test_the_firmwares_own_restart_is_no_reboot(broker, subscriber, tmp_path):
    # the recovery ladder's power-key step restarts the modem (its RDY comes back): that restart is
    # the firmware's, set up by the recovery itself: no modem.rebooted, no second set-up
    sub = subscriber("m2mkit/dev-1/telemetry")
    line = {"pwrkey": {"pin": 25, "active": 1, "on_pulse_ms": 750, "off_pulse_ms": 1000, "boot_ms": 5000}}
    with ModemSim(model="bg95", time_scale=SCALE, power_on=False, pwrkey_pin=25, pwrkey_active=1) as sim:
        dev = Device(tmp_path, sim, broker.url, "bg95", own=True, lines=line)
        try:
            d0 = dev.go(0)
            assert d0["ok"], "".join(dev.lines[-60:])
            boots = sim.status()["boots"]
            d1 = dev.go(1)
            assert d1["ok"], "".join(dev.lines[-60:])
            assert d1["seq"] in seqs(sub, [d0["seq"], d1["seq"]])
            assert sim.status()["boots"] == boots + 1  # the key did restart it
            assert any("step=powerkey" in ln for ln in dev.events("net.recovery")), "".join(dev.lines)
            assert not dev.events("modem.rebooted"), "".join(dev.lines)
            assert d1["counts"]["rebooted"] == 0 and d1["reboots"] == 0
        finally:
            dev.stop()


UP = """
import json, os
from m2m import hal, loop, config, modem
from m2m.at import AT
from m2m.net.network import Network
cfg = config.validate(json.loads(os.getenv("CFG")))
m = modem.create(AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=2000), {"model": "bg95"})
n = Network(m, cfg, state_dir=os.getenv("STATE") + "/")
ok = n.up(300000)
print(json.dumps({"ok": ok, "counts": n.status()["counts"], "reboots": m.reboots}))
"""


def test_the_sim_slot_restart_is_no_reboot(tmp_path):
    # the BG95's slot switch restarts the module with AT+CFUN=1,1 (its RDY comes back) after the init
    # script ran: the firmware's own restart, no modem.rebooted
    from m2mkit.sim.modem.core import Card, make_iccid
    from m2mkit.testing import run_micropython

    with ModemSim(model="bg95", time_scale=SCALE) as sim:
        other = Card(None, "12345678", make_iccid("slot1"), "001019876543210")
        sim.modem.slot_cards = {0: sim.modem.card, 1: other}
        boots = sim.status()["boots"]
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_TIME_SCALE": str(SCALE), "STATE": str(tmp_path),
               "CFG": json.dumps({"net": {"apn": "internet", "sim_slot": 1}})}
        rc, out, err = run_micropython(UP, env=env, heapsize="512K", timeout=120)
        assert rc == 0, out + err
        r = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
        assert r["ok"], out
        assert sim.modem.card is other and sim.status()["boots"] == boots + 1  # it did restart
        assert "event: net.sim_slot " in out and "event: modem.boot line=RDY" in out, out
        assert "modem.rebooted" not in out and r["reboots"] == 0 and r["counts"]["rebooted"] == 0, out


def test_a_reboot_while_registering(tmp_path):
    # the modem restarts after CONFIG, while it searches for the network: set up again (the +CEREG
    # mode and the operator format CONFIG gives come back), then it registers; no recovery step,
    # one modem.rebooted
    import threading

    from m2mkit.testing import run_micropython

    tl = [[0, "searching"], [20, "home"]]
    with ModemSim(model="sim7080g", time_scale=SCALE, timeline=tl) as sim:
        boots = sim.status()["boots"]
        done = threading.Event()

        def reboot_once_configured():
            # CONFIG's +CEREG mode and numeric operator format (then its AT+COPS=0) were taken
            while not done.wait(0.01):
                if sim.modem.reg_n.get("+CEREG", 0) >= 4 and sim.modem.cops_format == 2:
                    done.wait(0.2)  # 4 s of modem time: the firmware waits for registration
                    sim.fault("reboot")
                    return
        t = threading.Thread(target=reboot_once_configured, daemon=True)
        t.start()
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_TIME_SCALE": str(SCALE), "STATE": str(tmp_path),
               "CFG": json.dumps({"net": {"apn": "internet"}})}
        try:
            rc, out, err = run_micropython(UP.replace('"bg95"', '"sim7080g"'), env=env, heapsize="512K", timeout=120)
        finally:
            done.set()
        assert rc == 0, out + err
        r = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
        assert r["ok"], out
        assert sim.status()["boots"] == boots + 1, out
        assert sim.modem.reg_n["+CEREG"] >= 4 and sim.modem.cops_format == 2, out
        assert out.count("event: modem.rebooted ") == 1 and r["counts"]["rebooted"] == 1, out
        assert "event: net.sync after=reboot" in out and "event: net.recovery " not in out, out


SOCKET = """
import json, os
from m2m import hal, loop, config, modem
from m2m.at import AT
from m2m.net import sock
from m2m.net.network import Network
import m2m.net
from simctl import control
cfg = config.validate({"net": {"apn": "internet"}})
m = modem.create(AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=2000), {"model": os.getenv("MODEL")})
n = Network(m, cfg, state_dir=os.getenv("STATE") + "/")
assert n.up(300000)
st = sock.Stack(m, kind="tcp", timeout_ms=3000, on_fail=m2m.net.link_failed)
s = st.socket()
s.connect(("127.0.0.1", int(os.getenv("PORT"))))
s.write(b"ping")
echo = s.read(4)
assert control({"op": "fault", "kind": "reboot"})["ok"]
ok = loop.run((n,), lambda: n.counts["rebooted"] and n.attached(), 120000)
print("-- set up again")
try:  # the socket the modem lost: its close was heard, so this is the peer's end, not the link's
    s.write(b"more")
    s.flush()
    why = "sent"
except OSError as e:
    why = e.args[1]
s.close()
n.step()  # a link failure would start a recovery step here
print(json.dumps({"ok": ok, "echo": echo.decode(), "why": why, "counts": n.status()["counts"]}))
"""


@pytest.mark.parametrize("model", ("bg96", "gm02s"))
def test_a_socket_open_across_the_reboot_hears_its_close(model, echo_port, tmp_path):
    from m2mkit.testing import run_micropython

    with ModemSim(model=model, time_scale=SCALE) as sim:
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_CTRL": "%s:%d" % tuple(sim.control_address), "M2M_TIME_SCALE": str(SCALE),
               "STATE": str(tmp_path), "MODEL": model, "PORT": str(echo_port)}
        rc, out, err = run_micropython(SOCKET, env=env, heapsize="512K", timeout=120)
        assert rc == 0, out + err
        r = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
        assert r["ok"] and r["echo"] == "ping", out
        assert r["why"].startswith("closed by the peer"), out
        after = out.split("-- set up again", 1)[1]
        assert "net.link_failed" not in after and "net.recovery" not in after, out
        assert r["counts"]["recovery"] == 0 and r["counts"]["rebooted"] == 1, out

"""SIM management in the real MicroPython against the modem simulator (issue #8): the PIN entered
only when safe on each counter kind (SIMCom AT+SPIC, Quectel AT+QPINC, Sequans none), a wrong PIN
spends exactly one try also across reboots, a swapped card is a tamper alarm with no telemetry, data
usage caps and rollovers persisted across reboots on a time-scaled clock, and the endpoint allowlist
refusing a connect before the modem sees it."""

import datetime
import json
import socketserver
import threading

import pytest

from m2mkit.sim.modem import ModemSim
from m2mkit.testing import run_micropython

SCALE = 20
# one model per way of reading the PIN counter
MODELS = ("sim7080g", "bg95", "gm02s")

CHECK = """
import json, os
from m2m import hal, config, events
from m2m.at import AT
from m2m import modem
from m2m.net import sim
events.log = False
at = AT(hal.UART(1, 115200), timeout_ms=2000)
m = modem.create(at, {"model": os.getenv("MODEL")})
m.power_on()
m.init()
cfg = config.validate(json.loads(os.getenv("CFG")))
sent = []
real_cmd = at.cmd
def cmd(c, *a, **kw):
    sent.append(c)
    return real_cmd(c, *a, **kw)
at.cmd = cmd
deadline = hal.ticks_add(hal.ticks_ms(), 20000)
while True:
    st = sim.check(m, cfg)
    if st != "busy" or hal.ticks_diff(deadline, hal.ticks_ms()) <= 0:
        break
    m.wait_event(("sim",), 500)
evs = []
while True:
    e = events.take()
    if e is None:
        break
    if e[0].startswith("sim."):
        evs.append([e[0], e[2].get("reason"), e[2].get("alarm")])
print(json.dumps({"state": st, "events": evs, "info": sim.info, "telemetry": sim.telemetry_allowed(),
                  "pins": [c for c in sent if c.startswith("AT+CPIN=")]}))
"""


def env_for(sim, model, state_dir, **extra):
    e = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
         "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
         "M2M_TIME_SCALE": str(SCALE), "M2M_STATE_DIR": str(state_dir), "MODEL": model}
    e.update(extra)
    return e


def run(code, env):
    rc, out, err = run_micropython(code, env=env, timeout=90)
    assert rc == 0, out + err
    return [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")][-1]


def check(sim, model, state_dir, cfg):
    return run(CHECK, env_for(sim, model, state_dir, CFG=json.dumps(cfg)))


def card(sim):
    r = sim.request({"op": "sim", "action": "set_pin", "pin": sim.card.pin})  # a no-op that reports the card
    assert r["ok"], r
    return r


@pytest.mark.parametrize("model", MODELS)
def test_correct_pin(model, tmp_path):
    with ModemSim(model=model, time_scale=SCALE, pin="1234") as sim:
        r = check(sim, model, tmp_path, {"sim": {"pin": "1234"}})
        assert r["state"] == "ready" and r["pins"] == ['AT+CPIN="1234"'] and r["events"] == []
        assert r["info"]["iccid"] == sim.card.iccid and r["info"]["imsi"] == sim.card.imsi
        assert r["info"]["imei"] == sim.imei
        assert card(sim)["pin_left"] == 3 and sim.status()["sim"] == "ready"


@pytest.mark.parametrize("model", MODELS)
def test_wrong_pin_spends_exactly_one_try_across_reboots(model, tmp_path):
    with ModemSim(model=model, time_scale=SCALE, pin="1234") as sim:
        r = check(sim, model, tmp_path, {"sim": {"pin": "9999"}})
        assert r["state"] == "pin_refused" and r["pins"] == ['AT+CPIN="9999"']
        assert r["events"] == [["sim.pin_refused", "wrong_pin", True]]
        assert card(sim)["pin_left"] == 2
        # a reboot loop: the device and the modem restart; the PIN is never entered again
        for _ in range(2):
            sim.power(False)
            sim.power(True)
            r = check(sim, model, tmp_path, {"sim": {"pin": "9999"}})
            assert r["state"] == "pin_refused" and r["pins"] == []
            # with a counter the card's 2 tries say no; without one (GM02S) the NVS record does
            reason = "refused_before" if model == "gm02s" else "tries_left"
            assert r["events"] == [["sim.pin_refused", reason, True]]
        assert card(sim)["pin_left"] == 2


@pytest.mark.parametrize("model", ("sim7080g", "bg95"))
def test_pin_not_entered_when_fewer_than_three_tries_are_left(model, tmp_path):
    with ModemSim(model=model, time_scale=SCALE, pin="1234") as sim:
        sim.card.pin_left = 2  # someone else spent a try
        r = check(sim, model, tmp_path, {"sim": {"pin": "1234"}})
        # even the right PIN is not entered (it would have reset the counter to 3)
        assert r["state"] == "pin_refused" and r["pins"] == [] and r["info"]["pin_left"] == 2
        assert r["events"] == [["sim.pin_refused", "tries_left", True]]
        assert card(sim)["pin_left"] == 2


def test_puk_is_never_entered(tmp_path):
    with ModemSim(model="bg95", time_scale=SCALE, pin="1234") as sim:
        sim.card.pin_left = 0
        sim.power(False)
        sim.power(True)
        r = check(sim, "bg95", tmp_path, {"sim": {"pin": "1234"}})
        assert r["state"] == "puk_needed" and r["pins"] == []
        assert r["events"] == [["sim.puk_needed", None, True]]
        assert card(sim)["puk_left"] == 10


@pytest.mark.parametrize("model", ("sim7080g", "gm02s"))
def test_swapped_card_is_a_tamper_alarm_and_stops_telemetry(model, tmp_path):
    with ModemSim(model=model, time_scale=SCALE) as sim:
        bound = {"sim": {"bind_iccid": sim.card.iccid, "bind_imei": sim.imei}}
        r = check(sim, model, tmp_path, bound)
        assert r["state"] == "ready" and r["telemetry"] and r["events"] == []
        r = sim.request({"op": "sim", "action": "swap", "iccid": "8949000000000000025",
                         "imsi": "001019999999999"})
        assert r["ok"] and r["iccid"] == "8949000000000000025", r
        sim.power(False)  # the card is read at the modem's next boot
        sim.power(True)
        r = check(sim, model, tmp_path, bound)
        assert r["state"] == "tamper" and not r["telemetry"]
        assert r["events"] == [["sim.tamper", None, True]]
        assert r["info"]["iccid"] == "8949000000000000025"


USAGE = """
import json, os
from m2m import hal, config, events
from m2m.net import usage
events.log = False
usage.setup(config.validate({"usage": {"soft_cap_kb": 1, "hard_cap_kb": 2,
                                        "billing_day": int(os.getenv("BILLING_DAY"))}}))
out = {"start": usage.stats()}
for step in json.loads(os.getenv("STEPS")):
    if step[0] == "count":
        usage.count(step[1], step[2])
    elif step[0] == "days":
        hal.sleep_ms(step[1] * 86400000)
    out[step[0] + str(len(out))] = dict(usage.stats(), telemetry=usage.allowed("telemetry"),
                                        summary=usage.allowed("summary"), alarm=usage.allowed("alarm"))
evs = []
while True:
    e = events.take()
    if e is None:
        break
    if e[0].startswith("usage."):
        evs.append(e[0])
out["events"] = evs
print(json.dumps(out))
"""


def test_usage_caps_and_rollovers_survive_reboots(tmp_path):
    # a device day is 0.1 s of real time; NVS lives in the state folder across the runs
    # the billing month starts so that tomorrow is still in this one (device time is host time)
    today = datetime.datetime.now(datetime.timezone.utc).day
    env = {"M2M_STATE_DIR": str(tmp_path), "M2M_TIME_SCALE": "864000",
           "BILLING_DAY": str(today if today <= 28 else 2)}

    def boot(*steps):
        return run(USAGE, dict(env, STEPS=json.dumps(steps)))

    r = boot(["count", 1000, 100])
    assert r["events"] == ["usage.soft_cap"]
    s = r["count1"]
    assert (s["month_tx"], s["month_rx"], s["level"]) == (1000, 100, 1)
    assert not s["telemetry"] and s["summary"] and s["alarm"]
    # reboot: the counters and the cap come back (the cap was saved when it was reached)
    r = boot(["count", 1000, 0])
    assert r["start"]["month_tx"] == 1000 and r["start"]["level"] == 1
    assert r["events"] == ["usage.hard_cap"]
    s = r["count1"]
    assert s["level"] == 2 and not s["telemetry"] and not s["summary"] and s["alarm"]
    # a day later: new day counters, the billing month (and its hard cap) still on
    r = boot(["days", 1])
    s = r["days1"]
    assert s["day_tx"] == 0 and s["month_tx"] == 2000 and s["level"] == 2
    # the next billing month: everything allowed again, and counted from zero
    r = boot(["days", 31], ["count", 10, 0])
    assert r["days1"]["month_tx"] == 0 and r["days1"]["telemetry"] and r["events"] == []
    assert r["count2"]["month_tx"] == 10


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        data = self.request.recv(1024)
        self.request.sendall(data)


@pytest.fixture
def echo_port():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


ALLOW = """
import json, os
from m2m import hal, creg, config, events
from m2m.at import AT
from m2m import modem
from m2m.net import allow, sock, usage
events.log = False
cfg = config.validate({"allow": {"hosts": ["127.0.0.1:%s" % os.getenv("ECHO_PORT")]}})
allow.setup(cfg)
usage.setup(cfg)
at = AT(hal.UART(1, 115200), timeout_ms=2000)
m = modem.create(at, {"model": os.getenv("MODEL")})
from simctl import attach
attach(m)
st = sock.Stack(m, timeout_ms=3000)
out = {}
s = st.socket()
try:
    s.connect(("127.0.0.1", int(os.getenv("ECHO_PORT")) + 1))
    out["refused"] = None
except OSError as e:
    out["refused"] = [e.args[0], e.args[1] if len(e.args) > 1 else ""]
out["count"] = allow.refused
s = st.socket()
s.connect(("127.0.0.1", int(os.getenv("ECHO_PORT"))))
s.write(b"hello")
out["echo"] = s.read(5).decode()
s.close()
out["usage"] = usage.stats()
out["events"] = []
while events.pending():
    e = events.take()
    if e[0] == "net.refused":
        out["events"].append(e[0])
print(json.dumps(out))
"""


@pytest.mark.parametrize("model", ("sim7080g", "bg95"))
def test_allowlist_refuses_before_the_modem_connects(model, echo_port, tmp_path):
    with ModemSim(model=model, time_scale=SCALE) as sim:
        r = run(ALLOW, env_for(sim, model, tmp_path, ECHO_PORT=str(echo_port)))
        assert r["refused"][0] == 13 and "not in allow.hosts" in r["refused"][1]
        assert r["count"] == 1 and "net.refused" in r["events"]
        assert r["echo"] == "hello"
        assert r["usage"]["month_tx"] == 5 and r["usage"]["month_rx"] == 5
        # the modem opened exactly one socket: the refused endpoint never reached it
        assert len(sim.counters()) == 1


NETWORK = """
import gc, json, os
from m2m import hal, events, loop, config, modem
from m2m.at import AT
from m2m.net.network import Network
from m2m.net import sim, usage
gc.collect()
events.log = False
cfg = config.validate(json.loads(os.getenv("CFG")))
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=2000)
m = modem.create(at, {"model": os.getenv("MODEL")})
n = Network(m, cfg, state_dir=os.getenv("M2M_STATE_DIR") + "/")
ok = n.up(int(os.getenv("UP_MS")))
evs = []
while events.pending():
    e = events.take()
    if e[0].startswith("sim."):
        evs.append([e[0], e[2].get("reason")])
print(json.dumps({"ok": ok, "sim": n.status()["sim"], "state": n.status()["state"], "events": evs,
                  "telemetry": usage.allowed("telemetry"), "alarm": usage.allowed("alarm")}))
"""


def test_through_the_network_state_machine(tmp_path):
    # the network's SIM step calls sim.check: a right PIN attaches, a wrong one stops at the SIM
    # with one try spent, a swapped card attaches with telemetry off
    model = "bg95"
    with ModemSim(model=model, time_scale=SCALE, pin="1234") as sim:
        cfg = {"net": {"apn": "internet"}, "sim": {"pin": "1234", "bind_iccid": sim.card.iccid}}
        r = run(NETWORK, env_for(sim, model, tmp_path / "a", CFG=json.dumps(cfg), UP_MS="120000"))
        assert r["ok"] and r["state"] == "attached" and r["events"] == [] and r["telemetry"]
    with ModemSim(model=model, time_scale=SCALE, pin="1234") as sim:
        cfg = {"net": {"apn": "internet"}, "sim": {"pin": "4321"}}
        r = run(NETWORK, env_for(sim, model, tmp_path / "b", CFG=json.dumps(cfg), UP_MS="60000"))
        assert not r["ok"] and r["sim"] == "pin_refused"
        assert r["events"] == [["sim.pin_refused", "wrong_pin"]]
        assert card(sim)["pin_left"] == 2
    with ModemSim(model=model, time_scale=SCALE) as sim:
        cfg = {"net": {"apn": "internet"}, "sim": {"bind_iccid": "8949000000000000017"}}
        r = run(NETWORK, env_for(sim, model, tmp_path / "c", CFG=json.dumps(cfg), UP_MS="120000"))
        assert r["ok"] and r["sim"] == "tamper" and r["events"] == [["sim.tamper", None]]
        assert not r["telemetry"] and r["alarm"]

"""Issue #13: eSIM profiles on an eUICC, in the real MicroPython (m2m.net.esim driven by the network
state machine) against the modem simulator's eUICC (m2mkit.sim.modem.euicc): the EID and profile list
read through logical channels, a switch to a second profile and back on the MQTT command, a fallback
switch when the first profile's network denies registration, a rollback when the new profile never
registers, a network-initiated swap accepted or (outside the bound set) the tamper alarm, on each
dialect with logical channels; an ordinary UICC, and the dialects whose manuals list no logical
channels (SIM7080G, SIM7000G, BG96), reported as such."""

import json

import pytest

from m2mkit.sim.modem import ModemSim
from m2mkit.testing import run_micropython

SCALE = 50
MODELS = ("sim7080g", "sim7000g", "bg95", "bg96", "gm02s")
# Which dialects have the logical-channel commands (the simulator's LOGICAL_CHANNELS): the SIM7080,
# SIM7000 and BG96 AT manuals list none of AT+CCHO / AT+CGLA / AT+CCHC (simcom.py, quectel.py cite
# them); the BG95 and GM02S manuals could not be read: ASSUMED docs/ASSUMED.md#A-ESIM-CCHO.
CHANNELS = ("bg95", "gm02s")
NO_CHANNELS = tuple(m for m in MODELS if m not in CHANNELS)
LINES = {
    "sim7080g": {"pwrkey": {"pin": 41, "active": 1, "on_pulse_ms": 1000, "off_pulse_ms": 1300, "boot_ms": 5000}},
    "sim7000g": {"pwrkey": {"pin": 4, "active": 1, "on_pulse_ms": 1000, "off_pulse_ms": 1300, "boot_ms": 5000}},
    "bg95": {"pwrkey": {"pin": 25, "active": 1, "on_pulse_ms": 750, "off_pulse_ms": 1000, "boot_ms": 5000}},
    "bg96": {"pwrkey": {"pin": 25, "active": 1, "on_pulse_ms": 750, "off_pulse_ms": 1000, "boot_ms": 6000}},
    "gm02s": {"reset": {"pin": 45, "active": 0, "pulse_ms": 100, "boot_ms": 5000}},
}
EID = "89049032123451234512345678901235"
A = "89440000000000000011"
B = "89440000000000000029"
C = "89440000000000000037"
PROFILES = [
    {"iccid": A, "imsi": "001010000000011", "apn": "apn-a", "nickname": "home", "provider": "Operator A"},
    {"iccid": B, "imsi": "001030000000022", "apn": "apn-b", "nickname": "partner", "provider": "Operator B"},
    {"iccid": C, "imsi": "001010000000033", "apn": "apn-c", "provider": "Operator C"},
]
CFG = {"net": {"apn": "apn-a", "profiles": [{"iccid": B, "apn": "apn-b"}]},
       "esim": {"enabled": True, "eid": EID, "iccids": [A, B], "switch_s": 30}}

HEAD = """
import json, os
from m2m import hal, events, loop, config, modem
from m2m.at import AT
from m2m.net.network import Network
from m2m.net import sim
from m2m.report import contract
import simctl
A, B, C = os.getenv("A"), os.getenv("B"), os.getenv("C")
cfg = config.validate(json.loads(os.getenv("CFG")))
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=2000)
m = modem.create(at, json.loads(os.getenv("BOARD")))
n = Network(m, cfg, state_dir=os.getenv("STATE") + "/")
def out(tag, **kw):
    kw["tag"] = tag
    kw["esim"] = n.status()["esim"]
    kw["iccid"] = m.iccid
    kw["imsi"] = m.imsi
    kw["apn"] = getattr(n, "apn", None)
    kw["attached"] = n.attached()
    kw["telemetry"] = sim.telemetry_allowed()
    print(json.dumps(kw))
def until(fn, ms=600000):
    return loop.run((n,), fn, ms)
def cmd(args):
    return json.loads(contract.handle_cmd(json.dumps({"id": "1", "cmd": "esim", "args": args}), cfg)[0])
def on(iccid):
    return lambda: n.attached() and n.esim.p is None and m.iccid == iccid
out("up", ok=n.up(600000))
"""

SWITCH = HEAD + """
out("b", r=cmd({"action": "switch", "iccid": B}), ok=until(on(B)))
out("a", r=cmd({"action": "switch", "iccid": A}), ok=until(on(A)))
out("bad", r=cmd({"action": "switch", "iccid": C}), r2=cmd({"action": "switch", "iccid": A}),
    r3=cmd({"action": "fly"}))
"""

WAIT_B = HEAD + """
out("end", ok=until(on(B)))
"""

ROLLBACK = HEAD + """
simctl.control({"op": "euicc", "action": "network", "iccid": B, "state": "silent"})
out("b", r=cmd({"action": "switch", "iccid": B}), ok=until(lambda: n.esim.p is not None and n.esim.p[1] == A))
out("a", ok=until(on(A)))
"""

SWAP = HEAD + """
simctl.control({"op": "euicc", "action": "enable", "iccid": os.getenv("TO")})
out("swap", ok=until(on(os.getenv("TO"))))
"""


def sim_for(model, **kw):
    line = LINES[model].get("pwrkey") or LINES[model]["reset"]
    return ModemSim(model=model, time_scale=SCALE, power_on=False, pwrkey_pin=line["pin"],
                    pwrkey_active=line["active"], **kw)


def install(sim, denied=None):
    profiles = [dict(p) for p in PROFILES]
    r = sim.request({"op": "euicc", "action": "install", "eid": EID, "profiles": profiles})
    assert r["ok"], r
    if denied:
        r = sim.request({"op": "euicc", "action": "network", "iccid": denied, "state": "denied"})
        assert r["ok"], r


def run(code, sim, model, tmp_path, cfg=CFG, **extra):
    env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
           "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
           "M2M_CTRL": "%s:%d" % tuple(sim.control_address),
           "M2M_TIME_SCALE": str(SCALE), "CFG": json.dumps(cfg),
           "BOARD": json.dumps(dict(LINES[model], model=model)), "STATE": str(tmp_path),
           "A": A, "B": B, "C": C}
    env.update(extra)
    rc, out, err = run_micropython(code, env=env, timeout=120)
    assert rc == 0, out + err
    res = {}
    for ln in out.splitlines():
        if ln.startswith("{"):
            d = json.loads(ln)
            res[d["tag"]] = d
    evs = [ln[len("event: "):].split(" ", 1) for ln in out.splitlines() if ln.startswith("event: ")]
    return res, [(e[0], e[1] if len(e) > 1 else "") for e in evs]


def ev(evs, kind):
    return [f for k, f in evs if k == kind]


def check_read(r):
    es = r["esim"]
    assert es["kind"] == "euicc" and es["eid"] == EID and es["iccid"] == A
    assert [(p["iccid"], p["state"], p["nickname"], p["provider"], p["class"]) for p in es["profiles"]] == [
        (A, "enabled", "home", "Operator A", "operational"), (B, "disabled", "partner", "Operator B", "operational"),
        (C, "disabled", None, "Operator C", "operational")]


@pytest.mark.parametrize("model", CHANNELS)
def test_read_and_switch_to_a_second_profile_and_back(model, tmp_path):
    with sim_for(model) as sim:
        install(sim)
        res, evs = run(SWITCH, sim, model, tmp_path)
        up, b, a, bad = res["up"], res["b"], res["a"], res["bad"]
        assert up["ok"] and up["iccid"] == A and up["apn"] == "apn-a", evs
        check_read(up)
        assert ev(evs, "esim.read") and "eid=%s" % EID in ev(evs, "esim.read")[0]
        # to B on the command: the card refreshed, ICCID / IMSI read again, B's APN, registered on
        # B's home network
        assert b["r"]["ok"] and b["r"]["switching"] == B, b
        assert b["ok"] and b["iccid"] == B and b["imsi"] == "001030000000022" and b["apn"] == "apn-b", evs
        assert b["esim"]["iccid"] == B and [p["state"] for p in b["esim"]["profiles"]] == [
            "disabled", "enabled", "disabled"]
        assert a["ok"] and a["iccid"] == A and a["apn"] == "apn-a" and a["esim"]["iccid"] == A
        sw = ev(evs, "esim.switched")
        assert len(sw) == 2 and "from=%s" % A in sw[0] and "to=%s" % B in sw[0] and "to=%s" % A in sw[1]
        assert all("reason=command" in f for f in ev(evs, "esim.switch"))
        # C is on the card but not in esim.iccids; A is enabled already; an unknown action
        assert not bad["r"]["ok"] and "esim.iccids" in bad["r"]["error"], bad
        assert not bad["r2"]["ok"] and "already enabled" in bad["r2"]["error"]
        assert not bad["r3"]["ok"] and "give status, read or switch" in bad["r3"]["error"]
        st = sim.request({"op": "euicc", "action": "status"})
        assert st["enabled"] == A and st["refreshes"] == 2 and st["channels"] == []
        assert sim.status()["operator"] == "00101"
        assert bad["telemetry"] is True


@pytest.mark.parametrize("model", CHANNELS)
def test_fallback_switch_when_the_first_profiles_network_denies(model, tmp_path):
    with sim_for(model) as sim:
        install(sim, denied=A)
        res, evs = run(WAIT_B, sim, model, tmp_path)
        end = res["end"]
        assert end["ok"] and end["iccid"] == B and end["apn"] == "apn-b", evs
        assert ev(evs, "net.denied")
        sw = ev(evs, "esim.switch")
        assert len(sw) == 1 and "reason=fallback: denied" in sw[0] and "to=%s" % B in sw[0]
        assert ev(evs, "esim.switched") and sim.status()["operator"] == "00103"


@pytest.mark.parametrize("model", CHANNELS)
def test_rollback_when_the_new_profile_never_registers(model, tmp_path):
    with sim_for(model) as sim:
        install(sim)
        res, evs = run(ROLLBACK, sim, model, tmp_path)
        assert res["b"]["r"]["ok"] and res["b"]["ok"], evs
        a = res["a"]
        assert a["ok"] and a["iccid"] == A and a["apn"] == "apn-a", evs
        rb = ev(evs, "esim.rollback")
        # both attempts reported: the one that did not register and the way back
        assert len(rb) == 1 and "tried=%s" % B in rb[0] and "back=%s" % A in rb[0]
        assert "no registration in 30 s" in rb[0]
        sw = ev(evs, "esim.switch")
        assert len(sw) == 2 and "to=%s" % B in sw[0] and "to=%s" % A in sw[1] and "reason=rollback" in sw[1]
        assert sim.request({"op": "euicc", "action": "status"})["enabled"] == A


@pytest.mark.parametrize("model", CHANNELS)
def test_network_initiated_swap_detected_and_reported(model, tmp_path):
    with sim_for(model) as sim:
        install(sim)
        res, evs = run(SWAP, sim, model, tmp_path, TO=B)
        s = res["swap"]
        assert s["ok"] and s["iccid"] == B and s["apn"] == "apn-b" and s["esim"]["iccid"] == B, evs
        sw = ev(evs, "esim.swap")
        assert len(sw) == 1 and "accepted=True" in sw[0] and "from=%s" % A in sw[0] and "to=%s" % B in sw[0]
        assert not ev(evs, "sim.tamper") and s["telemetry"] is True
        assert not ev(evs, "esim.switch")  # the device did not ask for it


@pytest.mark.parametrize("model", CHANNELS)
def test_a_swap_outside_the_bound_set_is_the_tamper_case(model, tmp_path):
    with sim_for(model) as sim:
        install(sim)
        res, evs = run(SWAP, sim, model, tmp_path, TO=C)
        s = res["swap"]
        assert s["ok"] and s["iccid"] == C, evs
        sw = ev(evs, "esim.swap")
        assert len(sw) == 1 and "accepted=False" in sw[0] and "alarm=True" in sw[0]
        t = ev(evs, "sim.tamper")
        assert t and "field=iccid" in t[0] and "alarm=True" in t[0] and "iccid=%s" % C in t[0]
        assert s["telemetry"] is False


def test_another_eid_is_the_tamper_case(tmp_path):
    cfg = json.loads(json.dumps(CFG))
    cfg["esim"]["eid"] = "89049032123451234512345678909999"
    with sim_for("bg95") as sim:
        install(sim)
        res, evs = run(HEAD, sim, "bg95", tmp_path, cfg=cfg)
        assert res["up"]["ok"] and res["up"]["telemetry"] is False
        t = ev(evs, "sim.tamper")
        assert t and "field=eid" in t[0] and "eid=%s" % EID in t[0]


def test_an_ordinary_uicc_is_reported_as_such(tmp_path):
    with sim_for("bg95") as sim:
        cfg = {"net": {"apn": "internet"}, "esim": {"enabled": True}}
        res, evs = run(HEAD + 'out("cmd", r=cmd({"action": "switch", "iccid": B}))\n', sim, "bg95", tmp_path,
                       cfg=cfg)
        up = res["up"]
        assert up["ok"] and up["esim"]["kind"] == "uicc" and up["esim"]["eid"] is None, evs
        assert ev(evs, "esim.uicc") and up["telemetry"] is True
        r = res["cmd"]["r"]
        assert not r["ok"] and "no eUICC to switch on (uicc)" in r["error"]


@pytest.mark.parametrize("model", NO_CHANNELS)
def test_a_dialect_whose_manual_has_no_logical_channels_says_so(model, tmp_path):
    # an eUICC in a modem whose AT manual lists no AT+CCHO / AT+CGLA / AT+CCHC: AT+CCHO=? answers
    # ERROR, the device reports esim.unsupported, registers with the card's enabled profile and
    # refuses a switch in one line
    with sim_for(model) as sim:
        install(sim)
        assert sim.request({"op": "euicc", "action": "status"})["logical_channels"] is False
        res, evs = run(HEAD + 'out("cmd", r=cmd({"action": "switch", "iccid": B}))\n', sim, model, tmp_path)
        up = res["up"]
        assert up["ok"] and up["esim"]["kind"] == "unsupported" and up["iccid"] == A, evs
        u = ev(evs, "esim.unsupported")
        assert u and "model=%s" % model in u[0]
        r = res["cmd"]["r"]
        assert not r["ok"] and "no eUICC to switch on (unsupported)" in r["error"], r
        st = sim.request({"op": "euicc", "action": "status"})
        assert st["enabled"] == A and st["apdus"] == 0 and st["channels"] == []


def test_a_modem_firmware_without_logical_channels_says_so(tmp_path):
    with sim_for("gm02s") as sim:
        install(sim)
        assert sim.request({"op": "euicc", "action": "channels", "on": False})["logical_channels"] is False
        res, evs = run(HEAD, sim, "gm02s", tmp_path)
        up = res["up"]
        assert up["ok"] and up["esim"]["kind"] == "unsupported" and up["iccid"] == A, evs
        u = ev(evs, "esim.unsupported")
        assert u and "model=gm02s" in u[0]


def test_inventory_records_the_eid_and_profiles_a_device_reports(tmp_path):
    # the status the device itself reports (Network.status()["esim"]), imported into the inventory
    import os
    import subprocess

    from m2mkit import inventory
    from m2mkit.paths import ROOT

    with sim_for("bg95") as sim:
        install(sim)
        res, evs = run(HEAD, sim, "bg95", tmp_path)
    es = res["up"]["esim"]
    assert es["eid"] == EID, evs
    db = tmp_path / "inv.sqlite"
    with inventory.Inventory(db) as inv:
        inv.record("meter-1", board="esp32-devkitc-bg95")
    older = dict(es, eid="89049032123451234512345678900000")
    lines = [{"device_id": "meter-1", "t": 1000, "rat": "lte-m", "plmn": "00101", "roaming": False, "esim": es},
             {"device_id": "meter-1", "t": 900, "rat": "lte-m", "plmn": "00101", "roaming": False, "esim": older}]
    (tmp_path / "status.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    m2mkit = [str(ROOT / ".venv" / "bin" / "m2mkit")]
    p = subprocess.run(m2mkit + ["inventory", "import-status", str(tmp_path / "status.jsonl"), "--db", str(db)],
                       capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert p.returncode == 0 and "imported 2" in p.stdout, p.stderr
    p = subprocess.run(m2mkit + ["inventory", "show", "meter-1", "--db", str(db)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    shown = json.loads(p.stdout)["esim"]
    # the newest report wins (the older one, imported after it, does not replace it)
    assert shown["eid"] == EID and shown["iccid"] == A and shown["t"] == 1000
    assert [q["iccid"] for q in shown["profiles"]] == [A, B, C]
    assert shown["profiles"][0]["state"] == "enabled" and shown["profiles"][1]["nickname"] == "partner"


@pytest.mark.parametrize("fault,why", [({"sw": "6985"}, "card answered 6985 (conditions of use not satisfied)"),
                                       ({"sw": "6A88"}, "card answered 6A88 (reference data not found)"),
                                       ({"cut": 9}, "needs")])
def test_a_card_answer_that_makes_no_sense_is_reported(fault, why, tmp_path):
    # an error status word, or an answer cut short: an esim.error alarm with what was wrong; the
    # device registers anyway, and a later read (the fault gone) recovers
    code = HEAD + """
simctl.control({"op": "euicc", "action": "fault"})
out("read", r=cmd({"action": "read"}))
"""
    with sim_for("bg95") as sim:
        install(sim)
        assert sim.request(dict({"op": "euicc", "action": "fault"}, **fault))["ok"]
        res, evs = run(code, sim, "bg95", tmp_path)
        up = res["up"]
        assert up["ok"] and up["esim"]["kind"] == "error" and why in up["esim"]["error"], evs
        e = ev(evs, "esim.error")
        assert e and why in e[0] and "alarm=True" in e[0]
        r = res["read"]["r"]
        assert r["ok"] and r["kind"] == "euicc" and r["eid"] == EID and len(r["profiles"]) == 3


def test_session_ids_that_are_handles_go_back_as_they_came(tmp_path):
    # some modems answer AT+CCHO with an opaque handle, not a channel number (lpac issue #138)
    with sim_for("bg95") as sim:
        install(sim)
        assert sim.request({"op": "euicc", "action": "channels", "on": True, "handles": True})["handles"]
        res, evs = run(SWITCH, sim, "bg95", tmp_path)
        check_read(res["up"])
        assert res["b"]["ok"] and res["b"]["iccid"] == B and res["a"]["ok"] and res["a"]["iccid"] == A, evs
        assert sim.request({"op": "euicc", "action": "status"})["channels"] == []

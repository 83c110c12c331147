"""Issue #8 (network half): the registration state machine (m2m.net.network) in the real
MicroPython against the modem simulator: attach on each dialect, denied then the fallback profile,
ten minutes without coverage (recovery, escalation order in the log), a hung modem (power-key
cycle), roaming days across a reboot, and a long time-scaled run with coverage coming and going."""

import json
import threading
import time

import pytest

from m2mkit.sim.modem import ModemSim
from m2mkit.testing import run_micropython

MODELS = ("sim7080g", "sim7000g", "bg95", "bg96", "gm02s")

# power lines as the boards/*.json files give them
LINES = {
    "sim7080g": {"pwrkey": {"pin": 41, "active": 1, "on_pulse_ms": 1000, "off_pulse_ms": 1300, "boot_ms": 5000}},
    "sim7000g": {"pwrkey": {"pin": 4, "active": 1, "on_pulse_ms": 1000, "off_pulse_ms": 1300, "boot_ms": 5000}},
    "bg95": {"pwrkey": {"pin": 25, "active": 1, "on_pulse_ms": 750, "off_pulse_ms": 1000, "boot_ms": 5000}},
    "bg96": {"pwrkey": {"pin": 25, "active": 1, "on_pulse_ms": 750, "off_pulse_ms": 1000, "boot_ms": 6000}},
    "gm02s": {"reset": {"pin": 45, "active": 0, "pulse_ms": 100, "boot_ms": 5000}},
}

CODE = """
import gc, json, os
from m2m import hal, events, loop, config, modem
from m2m.at import AT
gc.collect()
from m2m.net.network import Network
gc.collect()
cfg = config.validate(json.loads(os.getenv("CFG")))
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=2000)
m = modem.create(at, json.loads(os.getenv("BOARD")))
n = Network(m, cfg, state_dir=os.getenv("STATE") + "/")
"""

UP = CODE + """
ok = n.up(int(os.getenv("UP_MS", "600000")))
import sys
print(json.dumps({"ok": ok, "status": n.status(), "t": hal.ticks_ms(),
                  "held": sorted(k for k in sys.modules if k.startswith("m2m"))}))
"""


def sim_for(model, scale, **kw):
    line = LINES[model].get("pwrkey") or LINES[model]["reset"]
    return ModemSim(model=model, time_scale=scale, power_on=False, pwrkey_pin=line["pin"],
                    pwrkey_active=line["active"], **kw)


def run(code, sim, scale, cfg, tmp_path, model, heapsize="512K", timeout=120, fill=0, raw=False, **extra):
    board = dict(LINES[model], model=model)
    env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
           "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
           "M2M_CTRL": "%s:%d" % tuple(sim.control_address),
           "M2M_TIME_SCALE": str(scale), "CFG": json.dumps(cfg), "BOARD": json.dumps(board),
           "STATE": str(tmp_path)}
    env.update(extra)
    rc, out, err = run_micropython(code, env=env, heapsize=heapsize, timeout=timeout, fill=fill)
    assert rc == 0, out + err
    res = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    evs = [ln[len("event: "):].split(" ", 1) for ln in out.splitlines() if ln.startswith("event: ")]
    return (res, [(e[0], e[1] if len(e) > 1 else "") for e in evs]) + ((out,) if raw else ())


def kinds(evs):
    return [k for k, _ in evs]


@pytest.mark.parametrize("model", MODELS)
def test_attach_on_each_dialect(model, tmp_path):
    with sim_for(model, 20, signal={"sinr": -6}) as sim:
        (r,), evs = run(UP, sim, 20, {"net": {"apn": "internet"}}, tmp_path, model)
        assert r["ok"], evs
        st = r["status"]
        assert st["state"] == "attached" and st["rat"] == "lte-m" and st["plmn"] == sim.card.imsi[:5]
        assert st["roaming"] is False
        k = kinds(evs)
        # every transition posted, in order
        order = ["net.power", "net.sync", "net.sim", "net.config", "net.register", "net.pdp", "net.attached"]
        assert [x for x in k if x in order] == order, k
        sig = st["signal"]
        # the simulator's default signal: rssi -71 dBm (CSQ 21), rsrp -95, rsrq -10
        assert sig["rssi"] == -71 and sig["rsrp"] == -95 and sig["rsrq"] == -10
        assert 0 < sig["quality"] <= 100
        # band and SINR from the vendor reads (AT+QNWINFO + AT+QCSQ / AT+CPSI? / AT+SQNMONI=9, whose
        # EARFCN gives the band), each in its own unit: 1/5 dB from -20, RSSNR in 2 dB steps, dB
        assert sig["band"] == 20
        assert sig["sinr"] == -6
        assert sim.status()["boots"] == 1
        # the bring-up steps' code (SIM step, configuration, the modem's detection / init / power
        # code) is not held once attached
        assert "m2m.net.simpin" not in r["held"] and "m2m.net.netcfg" not in r["held"], r["held"]
        assert "m2m.modem.up" not in r["held"] and not [k for k in r["held"] if k.endswith("_up")], r["held"]


def test_denied_then_the_fallback_profile_registers(tmp_path):
    # the home network rejects the SIM (cause 15, no suitable cells in the tracking area); the
    # second profile names the partner network 00103 and registers there (roaming)
    tl = [[0, "searching"], [2, "denied", {"reject_cause": 15}]]
    cfg = {"net": {"apn": "internet", "profiles": [{"operator": "00103", "apn": "partner"}]}}
    with sim_for("bg95", 20, timeline=tl) as sim:
        (r,), evs = run(UP, sim, 20, cfg, tmp_path, "bg95")
        assert r["ok"], evs
        st = r["status"]
        assert st["profile"] == 1 and st["plmn"] == "00103" and st["roaming"] is True
        assert st["counts"]["denied"] >= 1 and st["counts"]["profile"] == 1
        denied = [f for k, f in evs if k == "net.denied"]
        assert denied and "cause=15" in denied[0] and "profile=0" in denied[0]
        assert any(k == "net.profile" and "index=1" in f for k, f in evs)
        assert any(k == "net.attached" and "profile=1" in f for k, f in evs)
        assert sim.status()["operator"] == "00103"


def test_gsm_only_where_the_config_allows_it_and_the_rat_recorded(tmp_path):
    # a network with a GSM cell only: "gsm" in the RAT list does nothing without net.gsm (the BG95
    # scans LTE only and never finds it); with net.gsm the scan mode takes GSM in and the device
    # registers there, recorded as rat "gsm" (+CGREG AcT 0)
    tl = [[0, "searching"], [3, "home", {"act": 0}]]
    for model in ("bg95", "sim7000g"):
        for allow in (False, True):
            cfg = {"net": {"apn": "internet", "rat": ["lte-m", "gsm"], "gsm": allow}}
            with sim_for(model, 20, timeline=tl) as sim:
                (r,), evs = run(UP, sim, 20, cfg, tmp_path, model, UP_MS="60000")
                assert r["ok"] is allow, (model, allow, r["status"])
                if model == "bg95":
                    assert sim.modem.qcfg["nwscanmode"] == ("0" if allow else "3")
                else:
                    assert sim.modem.cnmp == (51 if allow else 38)
                if allow:
                    assert r["status"]["rat"] == "gsm" and r["status"]["state"] == "attached"
                    assert any(k == "net.attached" and "rat=gsm" in f for k, f in evs)


def test_a_profile_on_a_dialect_without_gsm_runs_on_lte(tmp_path):
    cfg = {"net": {"apn": "internet", "rat": ["lte-m", "gsm"], "gsm": True, "sim_slot": 1}}
    with sim_for("sim7080g", 20) as sim:
        (r,), evs = run(UP, sim, 20, cfg, tmp_path, "sim7080g")
        assert r["ok"] and r["status"]["rat"] == "lte-m"
        k = kinds(evs)
        # the SIM7080G has neither a 2G radio nor a second SIM slot: said, then ignored
        assert "net.rat_unsupported" in k and "net.sim_slot_unsupported" in k


def test_a_fallback_profile_on_the_other_sim_slot(tmp_path):
    # BG95 with two SIM slots: the card in slot 0 is denied; the second profile names slot 1, the
    # firmware selects it (AT+QDSIM=1), restarts the modem, reads the other card and registers
    from m2mkit.sim.modem.core import Card, make_iccid

    tl = [[0, "searching"], [2, "denied", {"reject_cause": 15}]]
    cfg = {"net": {"apn": "internet", "sim_slot": 0, "profiles": [{"sim_slot": 1, "apn": "second"}]}}
    with sim_for("bg95", 20, timeline=tl) as sim:
        other = Card(None, "12345678", make_iccid("slot1"), "001019876543210")
        sim.modem.slot_cards = {0: sim.modem.card, 1: other}

        def network_for_the_other_card():
            while sim.modem.nv.get("qdsim") != 1:
                time.sleep(0.02)
            sim.set_timeline([[0, "searching"], [2, "home"]])
        threading.Thread(target=network_for_the_other_card, daemon=True).start()
        (r,), evs = run(UP, sim, 20, cfg, tmp_path, "bg95")
        assert r["ok"], evs
        assert r["status"]["profile"] == 1 and sim.modem.card is other
        assert any(k == "net.sim_slot" and "slot=1" in f for k, f in evs)
        idents = [f for k, f in evs if k == "net.modem"]
        assert other.iccid in idents[-1] and other.iccid not in idents[0]
        assert sim.status()["boots"] == 2  # the one restart that reads the other card


def _later(sim, modem_s, fn):
    # call fn once the simulator's clock has passed modem_s seconds
    def run():
        while sim.modem_time() < modem_s:
            time.sleep(0.02)
        fn()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_no_coverage_for_ten_minutes_escalates_then_recovers(tmp_path):
    scale = 50
    cfg = {"net": {"apn": "internet", "reg_timeout_s": 60}}
    with sim_for("sim7080g", scale, timeline=[[0, "searching"]]) as sim:
        t = _later(sim, 600, lambda: sim.set_timeline([[0, "home"]]))
        # the simulator's clock once attached: the device's own started a little later (its
        # process start), so its ticks_ms read 599.5-599.9 s at attaches just after 600 s
        code = UP.replace("import sys\n", "import sys\nfrom simctl import control\n"
                          "print(json.dumps({'modem_s': control({'op': 'status'})['modem_time']}))\n")
        (c, r), evs = run(code, sim, scale, cfg, tmp_path, "sim7080g", UP_MS="1500000")
        t.join(1)
        assert r["ok"], evs
        steps = [f.split("step=")[1].split()[0] for k, f in evs if k == "net.recovery"]
        # re-select the operator, radio off/on, power-key cycle, hard reset, in this order
        assert steps[:4] == ["reselect", "radio", "powerkey", "hardreset"], steps
        waits = [int(f.split("wait_s=")[1].split()[0]) for k, f in evs if k == "net.recovery"]
        assert waits == sorted(waits) and max(waits) <= 900, waits
        st = r["status"]
        assert st["state"] == "attached" and st["level"] == 0
        assert st["counts"]["recovery"] == len(steps) and st["counts"]["powerkey"] >= 1
        assert c["modem_s"] >= 600  # attached only after the coverage came back
        assert sim.status()["boots"] >= 2  # the power-key cycle happened


HANG = CODE + """
from simctl import control
assert n.up(300000)
assert control({"op": "fault", "kind": "hang"})["ok"]
ok = loop.run((n,), lambda: n.counts["powerkey"] and n.attached(), 300000)
print(json.dumps({"ok": ok, "status": n.status()}))
"""


@pytest.mark.parametrize("model", ("bg95", "gm02s"))
def test_modem_stops_answering_power_key_cycle(model, tmp_path):
    cfg = {"net": {"apn": "internet", "check_s": 5}}
    with sim_for(model, 20) as sim:
        (r,), evs = run(HANG, sim, 20, cfg, tmp_path, model)
        assert r["ok"], evs
        k = kinds(evs)
        i = k.index("net.link_failed")
        rec = [f for kk, f in evs[i:] if kk == "net.recovery"]
        assert rec and "step=powerkey" in rec[0], rec  # straight to the power key
        assert r["status"]["state"] == "attached"
        assert sim.status()["boots"] == 2


LATE = CODE + """
from simctl import control
assert n.up(300000)
assert control({"op": "timeline", "timeline": [[0, "searching"]]})["ok"]
assert loop.run((n,), lambda: n.state == 5, 120000)  # REGISTER: AT+CEREG? every 5 s
# the answer to the next command (an AT+CEREG?) comes 8 s late, after the command's 5 s timeout
assert control({"op": "fault", "kind": "delay", "seconds": 8, "count": 1})["ok"]
loop.run((n,), None, 60000)
print(json.dumps({"status": n.status()}))
"""


def test_a_late_answer_to_a_registration_read_is_no_registration(tmp_path):
    # no coverage, and the answer to AT+CEREG? (n=5 after CONFIG: "+CEREG: 5,2") arrives after its
    # timeout, among the URCs: it is a solicited line by its shape (27.007 10.1.22: a URC's second
    # field is the quoted <tac>), not "registered, roaming" with tac 2 (a PDP step without
    # coverage, then a recovery step, as the day run showed again and again)
    with sim_for("bg95", 20) as sim:
        (r,), evs = run(LATE, sim, 20, {"net": {"apn": "internet", "psm_tau_s": 3600, "psm_active_s": 60}},
                        tmp_path, "bg95")
        i = [k for k, _ in evs].index("net.register", [k for k, _ in evs].index("net.attached"))
        assert any(k == "net.at_timeout" and "AT+CEREG?" in f for k, f in evs[i:]), evs[i:]
        assert "net.pdp" not in kinds(evs[i:]) and "net.link_failed" not in kinds(evs[i:]), evs[i:]
        assert r["status"]["state"] == "register", r["status"]


ROAM = CODE + """
ok = n.up(300000)
print(json.dumps({"ok": ok, "status": n.status()}))
"""


def test_roaming_days_survive_a_reboot(tmp_path):
    cfg = {"net": {"apn": "internet", "roam_days_limit": 1}}
    tl = [[0, "searching"], [3, "roaming"]]
    with sim_for("bg95", 20, timeline=tl) as sim:
        (r,), evs = run(ROAM, sim, 20, cfg, tmp_path, "bg95")
        assert r["ok"] and r["status"]["roaming"] is True and r["status"]["roam_days"] == 1
        saved = json.loads((tmp_path / "net_roam.json").read_text())
        assert saved["days"] == 1
        assert any(k == "net.roaming" and "days=1" in f for k, f in evs)
    # a day later (the saved day moved back by one), after a reboot: the count goes on
    saved["last"] -= 1
    (tmp_path / "net_roam.json").write_text(json.dumps(saved))
    with sim_for("bg95", 20, timeline=tl) as sim:
        (r,), evs = run(ROAM, sim, 20, cfg, tmp_path, "bg95")
        assert r["ok"] and r["status"]["roam_days"] == 2
        # past the limit of 1 day: the policy (warn) is reported
        assert any(k == "net.roaming" and "days=2" in f and "policy=warn" in f and "limit=1" in f
                   for k, f in evs), evs


DAY = "import os, sys; sys.path.insert(0, os.getenv('MPY_TREE'))\n" + CODE + """
from simctl import control

class Judge:
    # every 5 minutes of device time: does the simulated network offer coverage (the modem is
    # registered there), and is the firmware attached? Coverage seen twice in a row (5 minutes)
    # while the firmware is not attached is a miss.
    def __init__(self):
        self.t = hal.ticks_ms()
        self.before = False
        self.samples = self.covered = self.attached = self.misses = 0
        self.missed = []
    def step(self):
        now = hal.ticks_ms()
        if hal.ticks_diff(now, self.t) < 300000:
            return 300000 - hal.ticks_diff(now, self.t)
        self.t = now
        st = control({"op": "status"})
        cov = st["stat"] in (1, 5) and st["cfun"] == 1
        self.samples += 1
        if cov:
            self.covered += 1
        if n.attached():
            self.attached += 1
        elif cov and self.before:
            self.misses += 1
            self.missed.append((hal.ticks_ms() // 1000, n.status()["state"], n.level))
        self.before = cov
        return 300000

j = Judge()
loop.run((n, j), None, 24 * 3600 * 1000)
gc.collect()
print(json.dumps({"status": n.status(), "samples": j.samples, "covered": j.covered,
                  "attached": j.attached, "misses": j.misses, "missed": j.missed, "free": gc.mem_free()}))
"""


def exchanges(atlog):
    # the simulator's transcript (t in real ms where it took a command in and wrote its answer out)
    # as [command, t sent, t of its final result or None] in order, and None for each power-down
    seq, buf, cur, out = [], b"", None, b""
    for ln in atlog.read_text(encoding="utf-8").splitlines()[1:]:
        c = json.loads(ln)
        b = c["b"].encode("latin-1")
        if c["d"] == ">":
            buf += b
            while b"\r" in buf:
                line, buf = buf.split(b"\r", 1)
                if line.strip().upper().startswith(b"AT"):
                    cur, out = [line.strip().decode("latin-1"), c["t"], None], b""
                    seq.append(cur)
        else:
            if cur is not None and cur[2] is None:
                out += b
                if any(f in out for f in (b"\r\nOK\r\n", b"ERROR", b"\r\n> ")):
                    cur[2] = c["t"]
            if b"POWERED DOWN" in b:
                seq.append(None)
    return seq


def answer_times(atlog, scale):
    # from the simulator's transcript (t in real ms where it took a command in and wrote its answer
    # out): each answered command's time from command to final result, in modem ms at `scale`,
    # sorted. It is what the device's AT timeouts (1000 ms for the BG95's init script) are up
    # against, the host's share included: at 750x the simulator's median 1.2 ms real was about
    # 920 modem ms (p90 1100, max 14700), so three in a row past 1000 ms ("modem unresponsive", a
    # power-key cycle) came in every day run; at 500x the same real times are 615 and 730 ms
    return sorted(round((x[2] - x[1]) * scale) for x in exchanges(atlog) if x is not None and x[2] is not None)


def answered_streaks(atlog, evs):
    # the "modem unresponsive" recoveries (the AT driver's streak of three timeouts) whose timed-out
    # commands the simulator did answer: for each, the commands the device's events name as
    # unanswered since the step before (net.at_timeout, net.recovery_failed, net.link_failed) are
    # looked up in the transcript, each at its last sending before the power-down that the recovery
    # made (the modem's k-th POWERED DOWN line is the events' k-th modem.power_down); answered
    # there, the modem was not silent: the device's wait, a second of modem time that is 2 ms of
    # the host's at 500x, ran out on an answer under way. Returns their indexes in evs
    seq = exchanges(atlog)
    downs = [i for i, x in enumerate(seq) if x is None]
    found, named, k = [], set(), 0
    for i, (kind, f) in enumerate(evs):
        if kind == "modem.power_down":
            k += 1
        elif kind in ("net.at_timeout", "net.recovery_failed", "net.link_failed") and "no answer to " in f:
            named.add(f.split("no answer to ", 1)[1].split(" state=")[0].split(" step=")[0])
        elif kind == "net.recovery":
            if "reason=modem unresponsive" in f and named and k < len(downs):
                before = seq[:downs[k]]
                last = {x[0]: x[2] is not None for x in before if x is not None}
                if all(last.get(c) for c in named):
                    found.append(i)
            named = set()
    return found


def test_a_day_with_coverage_coming_and_going(tmp_path):
    # 24 hours of modem time at 250x (about six minutes): coverage drops for an hour every four
    # hours; the firmware must be attached whenever coverage has lasted five minutes, from .mpy in a
    # board's 160 KB heap plus room for the port stand-in (ROM on a board), the one allowance the
    # virtual device also adds (vdev/bridge.py _with_port), its qstr pools made before and those a
    # board's firmware makes cut (qstr_plan: the names counted on the day's first hour at 512K)
    from m2mkit.bench import heap_trees
    from m2mkit.vdev.bridge import _with_port, fill_for, qstr_count, qstr_heap, qstr_plan

    # 750x made the simulator's answers about as slow as the AT timeouts (answer_times); at 500x its
    # median answer (about 1.2 ms real, 615 modem ms) still took 60 % of a 1000 ms AT timeout (2 ms
    # real), and a busy shared machine's stalls of a few ms gave streaks of timeouts, power cycles and
    # misses (4 of 6 runs on one idle-looking machine). 250x leaves a timeout 4 ms real: about 6 min
    scale = 250
    cfg = {"net": {"apn": "internet", "check_s": 60}}
    tree = heap_trees(tmp_path / "lib")["mpy"]  # .mpy files, as a board with a tight heap gets them
    day = DAY + "import micropython\nmicropython.qstr_info()\n"
    (tmp_path / "hour").mkdir()
    with sim_for("bg95", scale) as sim:
        out = run(day.replace("24 * 3600 * 1000", "3600 * 1000"), sim, scale, cfg, tmp_path / "hour", "bg95",
                  fill=fill_for("pools"), raw=True, MPY_TREE=str(tree))[2]
    pools, share = qstr_plan(qstr_count(out), day)
    with sim_for("bg95", scale, record=str(tmp_path / "day.atlog")) as sim:
        stop = threading.Event()

        def outages():
            t0 = sim.modem_time()
            for h in range(4, 24, 4):
                for at, tl in ((h * 3600, [[0, "searching"]]), (h * 3600 + 3600, [[0, "home"]])):
                    while sim.modem_time() - t0 < at:
                        if stop.wait(0.05):
                            return
                    sim.set_timeline(tl)

        t = threading.Thread(target=outages, daemon=True)
        t.start()
        try:
            (r,), evs, out = run(day, sim, scale, cfg, tmp_path, "bg95", heapsize=_with_port(
                "160K", pools, qstr_extra=share), timeout=700, fill=fill_for(pools), raw=True, MPY_TREE=str(tree))
        finally:
            stop.set()
        (tmp_path / "events.txt").write_text("\n".join(" ".join(e) for e in evs))
        assert r["misses"] == 0, (r["missed"], str(tmp_path / "events.txt"))
        assert r["samples"] >= 250 and r["covered"] >= r["samples"] * 0.7
        assert r["attached"] >= r["covered"] - 10
        k = kinds(evs)
        assert k.count("net.attached") >= 6  # the first attach and once after each of the 5 outages
        # an hour's outage takes about six recovery steps (waits of 3, 6, 12, 15, 15 minutes); slow
        # answers must not add power cycles of their own (single late answers once made 40-odd; a
        # late AT+CEREG? answer read as "registered, roaming" made 30-odd PDP failures and steps)
        a = answer_times(tmp_path / "day.atlog", scale)
        slow = "the simulator's answers in modem ms: median %d, p90 %d, max %d; %s" % (
            a[len(a) // 2], a[len(a) * 9 // 10], a[-1], tmp_path / "events.txt")
        # a streak of timeouts on answers the simulator gave (measured in its transcript) is the
        # host's, not a silent modem's: not counted; a recovery for one late answer still is
        host = set(answered_streaks(tmp_path / "day.atlog", evs))
        other = [f for i, (kk, f) in enumerate(evs)
                 if kk == "net.recovery" and "registration stalled" not in f and i not in host]
        assert len(other) <= 5, (other, slow)
        rec = [i for i, (kk, f) in enumerate(evs) if kk == "net.recovery" and i not in host]
        assert len(rec) <= 9 * 5, (len(rec), len(host), slow)
        # registration waits of 3, 6, 12, 15, 15, 15 minutes: six "registration stalled" steps an
        # outage (seven allowed). A power-key / hard-reset step whose modem set-up timed out once got
        # net.reg_timeout_s instead (8-9 steps an outage were reported); now it keeps its wait
        stalled = [f for kk, f in evs if kk == "net.recovery" and "registration stalled" in f]
        assert len(stalled) <= 7 * 5, (len(stalled), slow)
        assert r["status"]["state"] == "attached"
        assert qstr_heap(qstr_count(out), day, machinery=pools) >= share  # the first hour's count was not short


def test_psm_and_edrx_requested_and_the_grant_reported(tmp_path):
    # T3412 1 h ("00000110": 6 x 10 min), T3324 60 s ("00011110": 30 x 2 s), eDRX 20.48 s ("0010")
    cfg = {"net": {"apn": "internet", "psm_tau_s": 3600, "psm_active_s": 60, "edrx_s": 20.48}}
    with sim_for("bg95", 20) as sim:
        (r,), evs = run(UP, sim, 20, cfg, tmp_path, "bg95")
        assert r["ok"], evs
        st = sim.status()
        assert st["psm"] == {"mode": 1, "tau": "00000110", "active": "00011110"}
        assert st["edrx"] == {"4": "0010"}
        assert r["status"]["psm"] == [60, 3600]  # read back from +CEREG (n=5)
        assert r["status"]["edrx"] == 20.48  # AT+CEDRXRDP
        assert any(k == "net.psm" and "tau_s=3600" in f and "active_s=60" in f for k, f in evs)


def test_permanent_roaming_policy_prefers_another_profile(tmp_path):
    # five roaming days already counted (the last one yesterday), limit 3, policy next_profile: the
    # day counted at attach is past the limit, so the second profile (the home PLMN, manual) is used
    import datetime

    yesterday = int(datetime.datetime.now(datetime.timezone.utc).timestamp()) // 86400 - 1
    (tmp_path / "net_roam.json").write_text(json.dumps({"days": 5, "last": yesterday}))
    cfg = {"net": {"apn": "internet", "roam_days_limit": 3, "roam_policy": "next_profile",
                   "profiles": [{"operator": "00101"}]}}
    code = UP.replace('ok = n.up(int(os.getenv("UP_MS", "600000")))',
                      'ok = n.up(300000) and loop.run((n,), lambda: n.profile == 1 and n.attached(), 300000)')
    with sim_for("bg95", 20, timeline=[[0, "searching"], [3, "roaming"]]) as sim:
        (r,), evs = run(code, sim, 20, cfg, tmp_path, "bg95")
        assert r["ok"], evs
        assert any(k == "net.roaming" and "days=6" in f and "policy=next_profile" in f for k, f in evs), evs
        assert any(k == "net.profile" and "reason=permanent roaming" in f for k, f in evs), evs
        st = r["status"]
        assert st["profile"] == 1 and st["roaming"] is False and st["plmn"] == "00101"

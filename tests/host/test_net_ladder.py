"""The network's recovery ladder (m2m.net.netup._recover) in the real MicroPython against the modem
simulator, time-scaled: a long outage where every power-key / hard-reset step's modem setup fails on
one AT timeout (the simulator's delay fault on the init script's first answer). Such a step goes
through SYNC and CONFIG again; the registration wait it then gets is still the step's own (doubling
from net.reg_timeout_s, capped at net.recovery_max_s), not a fresh net.reg_timeout_s, so an outage
takes as few steps as when every setup succeeds (README "Network": "After each step the wait for
registration doubles")."""

import json

import pytest

from test_net import CODE, _later, run, sim_for

LADDER = CODE + """
from simctl import control

init = m.init

def late_init(**kw):
    # a recovery step (state RECOVER) sets the power-cycled modem up again: the modem's next output,
    # the answer to its first command, comes after that command's timeout (a URC that came first
    # instead, e.g. +CPIN: READY on a loaded host, took the delay: then the set-up went through)
    if n.state != 8:
        return init(**kw)
    armed.append(hal.ticks_ms())
    assert control({"op": "fault", "kind": "delay", "seconds": 3, "count": 1})["ok"]
    try:
        return init(**kw)
    except OSError:
        late.append(n.counts["recovery"])
        raise

armed = []
late = []
m.init = late_init

class Rec:
    # the events with their device time: each recovery step (t, step, wait_s, reason)
    def __init__(self):
        self.steps = []
        self.failed = 0
    def step(self):
        while True:
            e = events.take()
            if e is None:
                return 1000
            if e[0] == "net.recovery":
                f = e[2]
                self.steps.append((e[1], f["step"], f["wait_s"], f["reason"]))
            elif e[0] == "net.recovery_failed":
                self.failed += 1

rec = Rec()
t0 = hal.ticks_ms()
loop.run((n, rec), None, int(os.getenv("RUN_MS")))
rec.step()
print(json.dumps({"steps": rec.steps, "failed": rec.failed, "armed": len(armed), "late": late,
                  "t0": t0, "status": n.status()}))
"""


def test_a_power_key_step_whose_setup_fails_keeps_its_wait(tmp_path):
    # 20 minutes of modem time without coverage, reg_timeout_s 30, recovery_max_s 240: the waits
    # are 30 (the first registration), 30 reselect, 60 radio, 120 power key, 240 hard reset, 240 ...
    # Seven steps; with each failed setup's wait cut back to 30 s it was 21
    scale = 100
    cfg = {"net": {"apn": "internet", "reg_timeout_s": 30, "recovery_max_s": 240}}
    with sim_for("bg95", scale, timeline=[[0, "searching"]]) as sim:
        (r,), evs = run(LADDER, sim, scale, cfg, tmp_path, "bg95", timeout=90, RUN_MS=str(1200 * 1000))
    steps = r["steps"]
    names = [s[1] for s in steps]
    assert names[:4] == ["reselect", "radio", "powerkey", "hardreset"], steps
    # the fault did its part: power-key and hard-reset steps' set-ups failed and went on from the
    # AT sync (net.recovery_failed, then net.sync after=<step>); each of them is one that a fresh
    # net.reg_timeout_s would have cut short
    cycled = [s for s in steps if s[1] in ("powerkey", "hardreset")]
    assert len(cycled) >= 3 and r["armed"] == len(cycled), (r, evs)
    assert len(r["late"]) >= 3 and r["failed"] >= len(r["late"]), (r, evs)
    assert any(k == "net.sync" and ("after=powerkey" in f or "after=hardreset" in f) for k, f in evs)
    # each step's wait was kept: the next step that came because registration stalled came no
    # sooner than the wait the step announced (device time)
    for a, b in zip(steps, steps[1:]):
        if b[3] == "registration stalled":
            assert b[0] - a[0] >= a[2] * 1000, (a, b, json.dumps(steps))
    stalled = [s for s in steps if s[3] == "registration stalled"]
    assert len(stalled) <= 8, (len(stalled), steps)


REFUSED = CODE + """
from m2m.modem import ModemError

init = m.init
refused = []
crashed = []

def refusing_init(**kw):
    # the power-key step's setup of the restarted modem fails once: a command of its init script
    # refused (Modem.run raises ModemError for a required step's error answer), or the heap
    if n.state == 8 and not refused:
        refused.append(n.counts["recovery"])
        if os.getenv("FAIL") == "heap":
            raise MemoryError("memory allocation failed, allocating 1280 bytes")
        raise ModemError("ATE0 failed: ERROR")
    return init(**kw)

m.init = refusing_init
while True:
    try:
        ok = n.up(int(os.getenv("RUN_MS")))
        break
    except MemoryError:  # reaches the caller (docs/CONTRACTS.md), who steps the network again
        crashed.append(n.status()["state"])
print(json.dumps({"ok": ok, "refused": refused, "crashed": crashed, "status": n.status()}))
"""


@pytest.mark.parametrize("fail", ("refused", "heap"))
def test_a_recovery_step_whose_setup_fails_otherwise_goes_on(fail, tmp_path):
    # no coverage for 5 modem minutes, then coverage: the power-key step's init is refused (a
    # ModemError, not a timeout) or runs out of heap (a MemoryError, which reaches the caller, who
    # steps the network again); the ladder goes on and the device attaches once coverage is back,
    # instead of staying in the RECOVER state, which no step left
    scale = 100
    cfg = {"net": {"apn": "internet", "reg_timeout_s": 30, "recovery_max_s": 240}}
    with sim_for("bg95", scale, timeline=[[0, "searching"]]) as sim:
        t = _later(sim, 300, lambda: sim.set_timeline([[0, "home"]]))
        (r,), evs = run(REFUSED, sim, scale, cfg, tmp_path, "bg95", timeout=60, RUN_MS=str(900 * 1000),
                        FAIL=fail)
        t.join(1)
    # once, in the power-key step (the third, or the first after a streak of timeouts)
    assert len(r["refused"]) == 1, r
    assert r["ok"] and r["status"]["state"] == "attached", (r, evs[-20:])
    if fail == "heap":
        assert r["crashed"] == ["recover"], r
        assert any(k == "net.sync" and "after=recover" in f for k, f in evs), evs
    else:
        assert r["crashed"] == [], r
        assert any(k == "net.recovery_failed" and "step=powerkey" in f for k, f in evs), evs

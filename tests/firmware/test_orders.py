# Replenishment orders on the device (m2m.orders): one need is one order with a stable id (kept
# across a reboot), hysteresis, the request repeated with the same id until the host answers,
# rejection and delivery kept on flash, meter rules, bad rules and commands refused with a reason.
import json
import os
import time

from m2m import config, events, hal
from m2m.orders import ORDER, Orders, check_rule, sampler_level
from m2m.outbox import Outbox
from m2m.report import contract

events.log = False
# this file's own folder (pytest's tmp_path for it, m2mkit.testing.run_file): never a shared path
TMP = os.getenv("M2M_TEST_TMP")
_n = [0]
# a new state file's id epoch is random: fixed here so the ids below can be written out
# (test_a_lost_state_file_never_reuses_an_id uses the real ones)
import m2m.orders as _orders  # noqa: E402

_new_epoch = _orders.new_epoch
_orders.new_epoch = lambda: "abcdef01"


def _dir():
    _n[0] += 1
    d = TMP + "/orders-%d" % _n[0]
    os.mkdir(d)
    return d


INK = {"item": "ink-black", "reading": "ink.level", "below": 15, "rearm": 50, "qty": 2}
FILTER = {"item": "filter", "meter": "pump_h", "every": 500}


class Env:
    # a device: outbox and state file in one folder, the level of each reading in a dict
    def __init__(self, rules=(INK,), d=None, repeat_s=60):
        self.d = d or _dir()
        self.levels = {}
        self.meters = {}
        self.cfg = config.validate({"orders": {"rules": list(rules), "check_s": 1, "repeat_s": repeat_s,
                                               "state": self.d + "/orders.json"}})
        self.boot()

    def boot(self):
        self.ob = Outbox(self.d + "/outbox")
        self.o = Orders(self.ob, self.cfg, "dev-1", level=self.levels.get, meter=self.meters.get)

    def check(self):
        self.o.due = hal.ticks_ms()
        self.o.step()

    def sent(self):
        # the order requests waiting in the outbox, acknowledged as the Reporter would after PUBACK
        recs = self.ob.peek(100)
        if recs:
            self.ob.ack(recs[-1][0])
        out = []
        for seq, kind, payload in recs:
            assert kind == ORDER
            out.append(json.loads(payload))
        return out

    def repeat_due(self):
        self.o.resend = hal.ticks_ms()
        self.o.due = hal.ticks_add(hal.ticks_ms(), 100000)
        self.o.step()


def test_one_need_is_one_order_and_hysteresis_keeps_it_so():
    e = Env()
    e.check()
    assert e.sent() == []  # no reading yet: nothing
    e.levels["ink.level"] = 40
    e.check()
    assert e.sent() == []
    e.levels["ink.level"] = 14.5
    e.check()
    m = e.sent()
    assert len(m) == 1
    assert m[0]["order"] == "dev-1:ink-black:abcdef01-1" and m[0]["item"] == "ink-black" and m[0]["qty"] == 2
    assert m[0]["reason"] == "ink.level 14.5 below 15" and m[0]["try"] == 1
    # the level wobbles around the threshold, below the rearm level: still one need
    for v in (16, 13, 20, 14, 49):
        e.levels["ink.level"] = v
        e.check()
    assert e.sent() == []
    # refilled (at or above rearm), then low again: a second need, a new id
    e.levels["ink.level"] = 50
    e.check()
    e.levels["ink.level"] = 10
    e.check()
    m = e.sent()
    assert [x["order"] for x in m] == ["dev-1:ink-black:abcdef01-2"]


def test_above_rule():
    e = Env(rules=({"item": "waste-bin", "reading": "bin.fill", "above": 90, "rearm": 10},))
    e.levels["bin.fill"] = 95
    e.check()
    e.levels["bin.fill"] = 50
    e.check()
    e.levels["bin.fill"] = 99
    e.check()
    assert [x["order"] for x in e.sent()] == ["dev-1:waste-bin:abcdef01-1"]
    e.levels["bin.fill"] = 5
    e.check()
    e.levels["bin.fill"] = 91
    e.check()
    assert [x["order"] for x in e.sent()] == ["dev-1:waste-bin:abcdef01-2"]


def test_a_reboot_sends_the_same_id_and_makes_no_new_need():
    e = Env()
    e.levels["ink.level"] = 5
    e.check()
    first = e.sent()
    assert [x["order"] for x in first] == ["dev-1:ink-black:abcdef01-1"]
    for _ in range(3):  # reboots while the need lasts
        e.ob.close()
        e.boot()
        e.check()
        e.o.step()
        m = e.sent()
        # the open order goes out again at boot, with its id, reason and time unchanged
        assert [(x["order"], x["reason"], x["t"]) for x in m] == [(first[0]["order"], first[0]["reason"], first[0]["t"])]
    assert e.o.status()["ink-black"][1] == "open"


def test_repeated_until_confirmed_then_quiet():
    e = Env()
    e.levels["ink.level"] = 5
    e.check()
    assert [x["try"] for x in e.sent()] == [1]
    e.repeat_due()
    e.repeat_due()  # the copy before is sent (acknowledged in sent()) only below: no pile-up
    m = e.sent()
    assert [(x["order"], x["try"]) for x in m] == [("dev-1:ink-black:abcdef01-1", 2)]
    e.repeat_due()
    assert [x["try"] for x in e.sent()] == [3]
    rep = contract.EXTRA["order"]({"order": "dev-1:ink-black:abcdef01-1", "status": "confirmed", "ref": "S-77"})
    assert rep == {"order": "dev-1:ink-black:abcdef01-1", "status": "confirmed"}
    e.repeat_due()
    e.repeat_due()
    assert e.sent() == []
    # the answer is kept on flash
    e.ob.close()
    e.boot()
    e.repeat_due()
    assert e.sent() == []
    assert e.o.status()["ink-black"] == ("dev-1:ink-black:abcdef01-1", "confirmed", 3, "S-77")


def test_confirmation_through_the_mqtt_command_channel():
    e = Env()
    e.levels["ink.level"] = 5
    e.check()
    e.sent()
    p = json.dumps({"id": "c1", "cmd": "order", "args": {"order": "dev-1:ink-black:abcdef01-1", "status": "confirmed"}})
    res, action = contract.handle_cmd(p, e.cfg)
    assert json.loads(res) == {"id": "c1", "ok": True, "order": "dev-1:ink-black:abcdef01-1", "status": "confirmed"}
    assert action is None
    # a later delivery; then a late duplicate confirmation does not move it back
    p = json.dumps({"id": "c2", "cmd": "order", "args": {"order": "dev-1:ink-black:abcdef01-1", "status": "delivered"}})
    assert json.loads(contract.handle_cmd(p, e.cfg)[0])["status"] == "delivered"
    p = json.dumps({"id": "c3", "cmd": "order", "args": {"order": "dev-1:ink-black:abcdef01-1", "status": "confirmed"}})
    assert json.loads(contract.handle_cmd(p, e.cfg)[0]) == {"id": "c3", "ok": True, "order": "dev-1:ink-black:abcdef01-1",
                                                             "status": "delivered"}
    # unknown order, bad status: error replies that say what to do, nothing changed
    p = json.dumps({"id": "c4", "cmd": "order", "args": {"order": "dev-1:ink-black:abcdef01-9", "status": "confirmed"}})
    r = json.loads(contract.handle_cmd(p, e.cfg)[0])
    assert r["ok"] is False and "not this device's current order" in r["error"]
    p = json.dumps({"id": "c5", "cmd": "order", "args": {"order": "dev-1:ink-black:abcdef01-1", "status": "lost"}})
    r = json.loads(contract.handle_cmd(p, e.cfg)[0])
    assert r["ok"] is False and "confirmed, rejected or delivered" in r["error"]
    assert e.o.status()["ink-black"][1] == "delivered"


def test_rejection_ends_the_repeats_and_the_need_waits_for_a_refill():
    e = Env()
    e.levels["ink.level"] = 5
    e.check()
    e.sent()
    events.clear()
    assert e.o.command({"order": "dev-1:ink-black:abcdef01-1", "status": "rejected", "ref": "out of stock"})["status"] == "rejected"
    ev = events.take()
    assert ev[0] == "order.rejected" and ev[2]["order"] == "dev-1:ink-black:abcdef01-1" and ev[2]["ref"] == "out of stock"
    e.repeat_due()
    e.check()
    assert e.sent() == []
    # a rejected order is not confirmed later by a stray message
    assert e.o.command({"order": "dev-1:ink-black:abcdef01-1", "status": "confirmed"})["status"] == "rejected"
    e.levels["ink.level"] = 80
    e.check()
    e.levels["ink.level"] = 3
    e.check()
    assert [x["order"] for x in e.sent()] == ["dev-1:ink-black:abcdef01-2"]


def test_meter_rule_one_order_per_interval():
    e = Env(rules=(FILTER,))
    e.meters["pump_h"] = 120.0
    e.check()
    assert e.sent() == []
    e.meters["pump_h"] = 500.5
    e.check()
    e.check()
    m = e.sent()
    assert [(x["order"], x["reason"]) for x in m] == [("dev-1:filter:abcdef01-1", "pump_h 500.5 reached 500")]
    e.meters["pump_h"] = 999
    e.check()
    assert e.sent() == []
    e.ob.close()
    e.boot()
    e.o.command({"order": "dev-1:filter:abcdef01-1", "status": "confirmed"})
    e.meters["pump_h"] = 1000
    e.check()
    assert [x["order"] for x in e.sent()] == ["dev-1:filter:abcdef01-2"]


def test_two_rules_have_their_own_state():
    e = Env(rules=(INK, FILTER))
    e.levels["ink.level"] = 1
    e.meters["pump_h"] = 600
    e.check()
    assert sorted(x["order"] for x in e.sent()) == ["dev-1:filter:abcdef01-1", "dev-1:ink-black:abcdef01-1"]
    e.o.command({"order": "dev-1:filter:abcdef01-1", "status": "confirmed"})
    e.repeat_due()
    assert [x["order"] for x in e.sent()] == ["dev-1:ink-black:abcdef01-1"]


class _Level:
    QUANT = ("level",)
    RANGE = None

    def __init__(self):
        self.v = 70.0

    def start(self):
        return 0

    def read(self):
        return (self.v,)


def test_level_from_the_sampler():
    from m2m.sense.sampler import Sampler

    drv = _Level()
    sm = Sampler(lambda r, u: None)
    sm.add("ink", drv, prefix="ink", interval_s=1)
    e = Env()
    e.o.level = sampler_level(sm)
    sm.step()
    e.check()
    assert e.sent() == []
    drv.v = 12.0
    for s in sm.sensors:
        s.due = hal.ticks_ms()
    sm.step()
    e.check()
    assert [x["reason"] for x in e.sent()] == ["ink.level 12.0 below 15"]


def test_bad_rules_are_refused_with_what_to_write():
    bad = [
        ("x", "give an object"),
        ({"reading": "a", "below": 1, "rearm": 2}, '"item" must be'),
        ({"item": "a b", "reading": "a", "below": 1, "rearm": 2}, '"item" must be'),
        ({"item": "a", "below": 1, "rearm": 2}, "give one source"),
        ({"item": "a", "reading": "a", "meter": "m", "every": 1}, "give one source"),
        ({"item": "a", "reading": "a", "below": 1}, '"rearm"'),
        ({"item": "a", "reading": "a", "below": 10, "rearm": 5}, "far side"),
        ({"item": "a", "reading": "a", "above": 10, "rearm": 50}, "far side"),
        ({"item": "a", "meter": "m"}, '"every"'),
        ({"item": "a", "meter": "m", "every": 5, "qty": 0}, '"qty"'),
    ]
    for rule, want in bad:
        try:
            check_rule(3, rule)
        except ValueError as ex:
            assert str(ex).startswith("orders.rules[3]") and want in str(ex), str(ex)
        else:
            raise AssertionError("accepted %r" % (rule,))
    check_rule(0, INK)
    check_rule(0, FILTER)


def test_meter_rule_on_running_hours_of_m2m_meter():
    # "filter after N running hours" on the meter layer's own hours meter (counts seconds, k 1/3600)
    from m2m.meter import Meters
    from m2m.orders import meter_level
    from m2m.sense.sampler import Sampler

    drv = _Level()
    drv.v = 1.0  # the pump runs
    sm = Sampler(lambda r, u: None)
    sm.add("pump", drv, prefix="pump", interval_s=1)
    sm.step()
    e = Env(rules=({"item": "filter", "meter": "pump_h", "every": 1 / 3600},))  # one order per second run
    mc = config.validate({"meter": {"meters": [{"name": "pump_h", "type": "hours", "reading": "pump.level",
                                                "above": 0.5}], "state": e.d + "/meter.json"}})["meter"]
    ms = Meters(mc, e.ob, "dev-1", key=b"k" * 32, sampler=sm)
    e.o.meter = meter_level(ms)
    assert e.o.meter("nothing") is None
    ms.step()
    e.check()
    assert [r for r in e.ob.peek(100) if r[1] == ORDER] == []
    time.sleep(1.3)
    ms.step()
    h = e.o.meter("pump_h")
    assert 1 / 3600 <= h < 2 / 3600, h
    e.check()
    m = [json.loads(p) for _, k, p in e.ob.peek(100) if k == ORDER]
    assert [x["order"] for x in m] == ["dev-1:filter:abcdef01-1"] and m[0]["reason"].startswith("pump_h "), m


def test_the_supervisor_builds_it_from_config():
    from m2m import orders, supervisor
    from m2m.sense.sampler import Sampler

    assert ("orders", "rules", "m2m.orders", False) in supervisor.PLUGINS
    drv = _Level()
    drv.v = 9.0
    sm = Sampler(lambda r, u: None)
    sm.add("ink", drv, prefix="ink", interval_s=1)
    sm.step()
    e = Env()
    o = orders.service({"cfg": e.cfg, "id": "dev-7", "outbox": e.ob, "sampler": sm, "net": None, "board": {}})
    o.step()
    m = [json.loads(p) for _, k, p in e.ob.peek(100) if k == ORDER]
    assert [x["order"] for x in m] == ["dev-7:ink-black:abcdef01-1"]
    assert contract.EXTRA["order"] == o.command


def test_a_lost_state_file_never_reuses_an_id():
    # a new filesystem: /orders.json gone, the need numbers start at 1 again, but under a new random
    # epoch, so the host (which has the old ids) sees a new order, not a repeat of a delivered one
    _orders.new_epoch = _new_epoch
    try:
        e = Env()
        e.levels["ink.level"] = 5
        e.check()
        first = e.sent()[0]["order"]
        with open(e.d + "/orders.json") as f:
            ep = json.load(f)["@"]
        assert len(ep) == 8 and first == "dev-1:ink-black:%s-1" % ep, (first, ep)
        e.o.command({"order": first, "status": "delivered"})
        e.ob.close()
        os.remove(e.d + "/orders.json")
        e.boot()
        e.check()
        again = e.sent()
        assert len(again) == 1 and again[0]["order"].endswith("-1") and again[0]["order"] != first, (again, first)
        assert e.o.status()["ink-black"][1] == "open"
        # an unreadable state file is a lost one too
        with open(e.d + "/orders.json", "w") as f:
            f.write("{\"@\": \"ab")
        e.ob.close()
        e.boot()
        e.check()
        third = e.sent()
        assert len(third) == 1 and third[0]["order"] not in (first, again[0]["order"]), third
    finally:
        _orders.new_epoch = lambda: "abcdef01"


def test_a_state_file_from_before_epochs_keeps_its_ids():
    d = _dir()
    with open(d + "/orders.json", "w") as f:
        json.dump({"ink-black": [3, 0, "open", 2, 1764547200, "ink.level 9 below 15", None]}, f)
    e = Env(d=d)
    e.repeat_due()
    assert [(x["order"], x["try"]) for x in e.sent()] == [("dev-1:ink-black:3", 3)]
    assert e.o.command({"order": "dev-1:ink-black:3", "status": "confirmed"})["status"] == "confirmed"

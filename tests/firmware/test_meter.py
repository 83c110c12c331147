# Meters: a pulse counter scaled to a unit, running hours of a reading above a level, an integrated
# reading; records at the interval and on the "usage" command; counters re-derived at a restart so
# that nothing recorded is billed twice.
import json
import os

from m2m import events, hal
from m2m.outbox import USAGE, Outbox
from m2m.meter import Meters, _Meter
from m2m.report import contract

KEY = b"\x11" * 32
# this file's own folder (pytest's tmp_path for it, m2mkit.testing.run_file): never a shared path
TMP = os.getenv("M2M_TEST_TMP")
_n = [0]


def _dir():
    _n[0] += 1
    d = TMP + "/meter-%d" % _n[0]
    os.mkdir(d)
    return d


def _cfg(d, meters, **kw):
    c = {"meters": meters, "interval_s": 3600, "save_n": 1, "save_s": 60, "key_file": d + "/k",
         "state": d + "/meter.json"}
    c.update(kw)
    return c


class Readings:
    # the sampler's latest(name) -> (value, unit, t)
    def __init__(self):
        self.v = {}

    def latest(self, name):
        return self.v.get(name)


def _recs(ob):
    return [json.loads(r[2]) for r in ob.peek(1000, (USAGE,))]


WATER = {"name": "water", "type": "pulses", "pin": 4, "slot": 1, "k": "0.5", "unit": "L", "debounce_ms": -1}


def _pulse(meters, n):
    src = meters.meters[0].src
    for _ in range(n):
        src._edge(src.pin)


def test_pulse_meter_records_counts_and_survives_a_lost_counter():
    d = _dir()
    ob = Outbox(d + "/ob")
    ms = Meters(_cfg(d, [WATER]), ob, "dev-1", key=KEY)
    _pulse(ms, 7)
    assert ms.counters() == {"water": 7}
    assert ms.record() == [1]
    _pulse(ms, 3)
    ms.step()  # save_n 1: the count is on flash at the next step
    with open(d + "/meter.pulses.1") as f:
        assert f.read() == "10"
    ms.record("water")
    r1, r2 = _recs(ob)
    assert (r1["m"], r1["a"], r1["b"], r1["k"], r1["u"]) == ("water", 0, 7, "0.5", "L")
    assert (r2["a"], r2["b"], r2["p"]) == (7, 10, r1["s"])
    ms.meters[0].src.close()
    # a power cut that took the counter's flash file and RTC memory: it goes on from the last record
    os.remove(d + "/meter.pulses.1")
    hal.RTC().memory(b"")
    while events.take():
        pass
    ms2 = Meters(_cfg(d, [WATER]), Outbox(d + "/ob"), "dev-1", key=KEY)
    assert ms2.counters() == {"water": 10}
    e = events.take()
    assert e[0] == "meter.reset" and e[2]["now"] == 10 and e[2]["was"] == 0
    _pulse(ms2, 2)
    ms2.record()
    r3 = _recs(Outbox(d + "/ob"))[-1]
    assert (r3["n"], r3["a"], r3["b"], r3["p"]) == (3, 10, 12, r2["s"])
    ms2.meters[0].src.close()


def test_hours_of_a_reading_above_a_level_and_an_integral():
    rd = Readings()
    d = _dir()
    cfg = _cfg(d, [])
    h = _Meter({"name": "pump", "type": "hours", "reading": "power", "above": 50}, cfg, rd)
    i = _Meter({"name": "energy", "type": "integral", "reading": "power", "every": 3600, "k": "0.001",
                "unit": "kWh"}, cfg, rd)
    assert (h.k, h.unit) == ("1/3600", "h")
    for m in (h, i):
        m.update(5000)  # no reading yet: nothing counted
    assert h.count == i.count == 0
    rd.v["power"] = (20.0, "W", 0)
    h.update(10000)
    i.update(10000)
    assert h.count == 0 and i.count == 0 and i.frac == 200.0  # 20 W x 10 s, not yet a Wh
    rd.v["power"] = (1800.0, "W", 0)
    for _ in range(4):
        h.update(1500)
        i.update(1500)
    assert h.count == 6  # seconds above 50 W
    assert i.count == 3 and abs(i.frac - (200 + 1800 * 6 - 3 * 3600)) < 1e-6  # Wh


def test_running_hours_counter_is_saved_and_restored():
    rd = Readings()
    d = _dir()
    cfg = _cfg(d, [{"name": "pump", "type": "hours", "reading": "power", "above": 50}])
    ob = Outbox(d + "/ob")
    ms = Meters(cfg, ob, "dev-1", key=KEY, sampler=rd)
    rd.v["power"] = (100.0, "W", 0)
    ms.meters[0].update(90500)
    ms.record()
    ms.meters[0].update(30000)
    ms._update()
    ms.chain.save()  # what step() does every save_s
    ms2 = Meters(cfg, Outbox(d + "/ob"), "dev-1", key=KEY, sampler=rd)
    assert ms2.meters[0].count == 120 and 500 <= ms2.meters[0].frac < 1000  # + the ms the test took
    ms2.record()
    r = _recs(Outbox(d + "/ob"))
    assert [(x["a"], x["b"], x["k"], x["u"]) for x in r] == [(0, 90, "1/3600", "h"), (90, 120, "1/3600", "h")]


def test_the_interval_makes_records_on_its_boundaries():
    d = _dir()
    ob = Outbox(d + "/ob")
    ms = Meters(_cfg(d, [dict(WATER, slot=2)], interval_s=60), ob, "dev-1", key=KEY)
    ms._next = hal.epoch() - 1  # the boundary has passed
    _pulse(ms, 4)
    ms.step()
    r = _recs(ob)
    assert len(r) == 1 and r[0]["b"] == 4
    assert ms._next % 60 == 0 and ms._next > hal.epoch()
    ms.step()
    assert len(_recs(ob)) == 1  # not again before the next boundary
    ms.meters[0].src.close()


def test_usage_command_records_now_and_names_bad_meters():
    d = _dir()
    ob = Outbox(d + "/ob")
    ms = Meters(_cfg(d, [dict(WATER, slot=3)]), ob, "dev-1", key=KEY)
    _pulse(ms, 5)
    reply, action = contract.handle_cmd(b'{"id": "9", "cmd": "usage", "args": {}}', None)
    assert json.loads(reply)["records"] == [1] and action is None
    reply, _ = contract.handle_cmd(b'{"id": "10", "cmd": "usage", "args": {"meter": "gas"}}', None)
    r = json.loads(reply)
    assert "no meter 'gas'" in r["error"] and "water" in r["error"]
    assert len(_recs(ob)) == 1
    ms.meters[0].src.close()


def test_bad_meter_definitions_say_what_to_give():
    d = _dir()
    ob = Outbox(d + "/ob")
    for m, want in (({"name": "x", "type": "litres"}, "give one of pulses"),
                    ({"name": "x y", "type": "pulses", "pin": 4, "unit": "L"}, "use 1-32 letters"),
                    ({"name": "x", "type": "pulses", "unit": "L"}, "needs \"pin\""),
                    ({"name": "x", "type": "pulses", "pin": 4}, "give \"unit\""),
                    ({"name": "x", "type": "hours"}, "give \"pin\" or \"reading\""),
                    ({"name": "x", "type": "pulses", "pin": 4, "unit": "L", "k": "a lot"}, "units per count")):
        try:
            Meters(_cfg(d, [m]), ob, "dev-1", key=KEY, sampler=Readings())
            assert False, m
        except ValueError as e:
            assert want in str(e), (m, str(e))
    try:
        Meters(_cfg(d, [WATER]), ob, "dev-1")
        assert False
    except ValueError as e:
        assert "m2mkit provision" in str(e)


def test_hours_of_an_input_at_its_active_level():
    # an input nobody drives reads its idle level (0 without a pull-up on the port's stand-in)
    d = _dir()
    on = _Meter({"name": "pump", "type": "hours", "pin": 5, "active": 0}, _cfg(d, []), None)
    off = _Meter({"name": "fan", "type": "hours", "pin": 6, "active": 1}, _cfg(d, []), None)
    for m in (on, off):
        m.update(2500)
        m.update(2500)
    assert on.count == 5 and off.count == 0


def test_supervisor_plugin_hook_builds_the_service():
    from m2m import meter

    d = _dir()
    ob = Outbox(d + "/ob")
    with open(d + "/k", "w") as f:
        f.write("ab" * 32)
    svc = meter.service({"cfg": {"meter": _cfg(d, [dict(WATER, slot=0)])}, "id": "dev-1", "outbox": ob,
                         "sampler": None, "net": None})
    _pulse(svc, 2)
    assert svc.step() == 1000 and svc.record() == [1]
    r = _recs(ob)[0]
    assert r["b"] == 2
    from m2m.usagerec import Signer, message

    m = message("dev-1", r["m"], r["n"], r["a"], r["b"], r["k"], r["u"], r["t0"], r["t1"], r["p"])
    assert r["s"] == Signer(b"\xab" * 32).tag(m)  # signed with the key file's key
    svc.meters[0].src.close()


def test_the_config_refuses_a_meter_without_name_or_type():
    from m2m import config

    ok = config.validate({"meter": {"meters": [WATER]}})
    assert ok["meter"]["meters"][0]["name"] == "water" and ok["meter"]["interval_s"] == 3600
    for bad in ([{"type": "pulses"}], [{"name": "x", "type": "gallons"}], ["water"]):
        try:
            config.validate({"meter": {"meters": bad}})
            assert False, bad
        except config.ConfigError as e:
            assert "meter.meters" in str(e) and "\"type\": \"pulses\"" in str(e), str(e)

# The sampler (m2m.sense.sampler) with scripted drivers and a hand-turned clock: intervals, deadband,
# maximum interval, aggregation windows, alarms with hysteresis, faults as events, absent sensors.
from m2m import events
from m2m.sense import SensorError, ipso, sampler as S
from m2m.sense.sampler import Sampler


class Clock:
    def __init__(self):
        self.ms = 1000

    def ticks_ms(self):
        return self.ms

    def ticks_add(self, a, b):
        return a + b

    def ticks_diff(self, a, b):
        return a - b

    def epoch(self):
        return 1700000000 + self.ms // 1000


class Driver:
    QUANT = ("temperature",)
    RANGE = ((-40, 85),)

    def __init__(self, values, conv=0):
        self.values = list(values)
        self.conv = conv
        self.reads = 0
        self.starts = 0

    def start(self):
        self.starts += 1
        return self.conv

    def read(self):
        self.reads += 1
        v = self.values.pop(0)
        if isinstance(v, Exception):
            raise v
        return (v,)


def setup():
    clk = Clock()
    S.hal = clk
    out = []
    sm = Sampler(lambda readings, urgent: out.append((urgent, readings)))
    events.log = False
    events.clear()
    return clk, sm, out


def run_for(clk, sm, ms):
    end = clk.ms + ms
    while clk.ms < end:
        wait = sm.step()
        clk.ms += max(1, min(wait, end - clk.ms))


def drain():
    out = []
    while True:
        e = events.take()
        if e is None:
            return out
        out.append((e[0], e[2]))


def test_interval_deadband_and_max_interval():
    clk, sm, out = setup()
    d = Driver([20.0, 20.2, 20.6, 20.7, 20.8, 20.9, 21.0, 21.0, 21.0, 21.0])
    sm.add("t", d, interval_s=10, deadband=0.5, max_interval_s=60)
    run_for(clk, sm, 95000)
    assert d.reads == 10, d.reads  # at 0, 10, ..., 90 s
    vals = [(r[0][1], r[0][3] - 1700000001) for u, r in out]
    # first reading; 20.6 is 0.6 from 20.0; 21.0 is 0.4 from 20.6 (held); 60 s after 20.6 (at 20 s): 80 s
    assert vals == [(20.0, 0), (20.6, 20), (21.0, 80)], vals
    assert all(not u for u, r in out)
    assert out[0][1][0][:3] == ("temperature", 20.0, "Cel")


def test_conversion_time_is_waited_in_steps():
    clk, sm, out = setup()
    d = Driver([12.5], conv=750)
    sm.add("ds", d, interval_s=60)
    assert sm.step() == 750 and d.starts == 1 and d.reads == 0
    clk.ms += 749
    assert sm.step() == 1 and d.reads == 0
    clk.ms += 1
    assert sm.step() == 60000 - 750
    assert d.reads == 1 and out[0][1][0][1] == 12.5


def test_aggregation_window():
    clk, sm, out = setup()
    d = Driver([1.0, 3.0, 2.0, 6.0, 5.0, 4.0, 0.0])
    sm.add("t", d, prefix="room", interval_s=10, window_s=30)
    run_for(clk, sm, 61000)
    assert d.reads == 7
    got = [tuple((r[0], r[1], r[2]) for r in rs) for u, rs in out]
    assert got[0] == (("room.temperature.min", 1.0, "Cel"), ("room.temperature.max", 3.0, "Cel"),
                      ("room.temperature.mean", 2.0, "Cel"), ("room.temperature.count", 3, "")), got
    assert got[1] == (("room.temperature.min", 4.0, "Cel"), ("room.temperature.max", 6.0, "Cel"),
                      ("room.temperature.mean", 5.0, "Cel"), ("room.temperature.count", 3, "")), got
    assert ipso("room.temperature.mean") == 3303


def test_alarm_with_hysteresis_reports_at_once():
    clk, sm, out = setup()
    d = Driver([25.0, 30.5, 31.0, 29.5, 28.9, 30.2, 25.0])
    sm.add("t", d, interval_s=10, deadband=100, max_interval_s=100000, window_s=0,
           alarms=({"q": "temperature", "above": 30, "hyst": 1},))
    run_for(clk, sm, 65000)
    urgent = [rs[0][1] for u, rs in out if u]
    # raised at 30.5; 31.0 and 29.5 stay raised (29.5 is within the 1 degree hysteresis); cleared at
    # 28.9; raised again at 30.2, cleared at 25.0
    assert urgent == [30.5, 28.9, 30.2, 25.0], out
    assert [rs[0][1] for u, rs in out if not u] == [25.0]  # the first reading; the deadband holds the rest
    ev = [(k, f["state"], f["value"]) for k, f in drain() if k == "alarm" and f["unit"] == "Cel"]
    assert ev == [("alarm", "raised", 30.5), ("alarm", "cleared", 28.9), ("alarm", "raised", 30.2),
                  ("alarm", "cleared", 25.0)], ev


def test_alarm_below_and_ahead_of_a_window():
    clk, sm, out = setup()
    d = Driver([3.6, 3.4, 3.5, 3.7])
    d.QUANT = ("battery",)
    d.RANGE = None
    sm.add("bat", d, interval_s=10, window_s=3600, alarms=({"below": 3.45, "hyst": 0.2},))
    run_for(clk, sm, 35000)
    # 3.5 is inside the 0.2 V hysteresis, 3.7 clears; nothing else leaves before the window closes
    assert out == [(True, (("battery", 3.4, "V", 1700000011),)), (True, (("battery", 3.7, "V", 1700000031),))], out


def test_faults_are_events_once_per_change_and_never_raise():
    clk, sm, out = setup()
    d = Driver([SensorError("SHT4x CRC mismatch"), SensorError("SHT4x CRC mismatch"), OSError(19),
                200.0, 21.0, RuntimeError("driver bug"), 22.0])
    sm.add("sht", d, interval_s=10)
    run_for(clk, sm, 65000)
    assert d.reads == 7
    ev = [(k, f.get("fault")) for k, f in drain()]
    assert ev == [("sensor.fault", "crc"), ("sensor.fault", "missing"), ("sensor.fault", "range"),
                  ("sensor.ok", None), ("sensor.fault", "error"), ("sensor.ok", None)], ev
    assert [rs[0][1] for u, rs in out] == [21.0, 22.0]


def test_absent_sensor_reported_once_not_polled():
    clk, sm, out = setup()
    opened = []

    def make():
        opened.append(1)
        raise OSError(19)

    sm.add("bme", make, ("temperature", "humidity", "pressure"), interval_s=10)
    ok = sm.add("t", Driver([1.0] * 20), interval_s=10)
    run_for(clk, sm, 100000)
    assert len(opened) == 1
    ev = drain()
    assert ev == [("sensor.fault", {"sensor": "bme", "fault": "missing",
                                    "error": ev[0][1]["error"]})], ev
    assert "check its wiring" in ev[0][1]["error"]


def test_hook_reads_due_sensors_and_is_not_reentrant():
    clk, sm, out = setup()
    d = Driver([40.0, 41.0])
    quiet = Driver([1.0])
    sm.add("t", d, interval_s=10, alarms=({"above": 35},))
    sm.add("modbus", quiet, interval_s=10)  # no alarms: left to step(), never read from the hook
    from m2m import loop

    loop.add_hook(sm.hook)
    try:
        loop.idle()
        assert d.reads == 1 and out[0][0] is True
        sm._busy = True  # a step in progress: the hook does nothing
        clk.ms += 10000
        loop.idle()
        assert d.reads == 1
        sm._busy = False
        loop.idle()
        assert d.reads == 2 and quiet.reads == 0
    finally:
        loop.remove_hook(sm.hook)


def test_config_builds_sensors_and_refuses_bad_entries():
    from m2m import config
    from m2m.sense import build

    cfg = config.validate({"sense": {"sensors": [
        {"type": "bme280", "id": "in", "interval_s": 30, "alarms": [{"q": "humidity", "above": 80}]},
        {"type": "modbus", "unit": 3, "regs": [{"name": "energy", "fc": 4, "addr": 0, "unit": "kWh"}]},
    ]}})
    sm = build.sampler(cfg, lambda r, u: None, {"battery_adc": {"pin": 35, "divider": 2.0}})
    names = [s.names for s in sm.sensors]
    assert names == [("in.temperature", "in.humidity", "in.pressure"), ("energy",), ("battery",)], names
    assert sm.sensors[1].units == ("kWh",) and sm.sensors[0].interval == 30000
    for bad, words in (({"type": "bmx"}, "unknown type"), ("bme280", "must be an object"),
                       ({"type": "sht4x", "alarms": [{"q": "pressure", "above": 1}]}, "measures")):
        try:
            build.sampler(config.validate({"sense": {"sensors": [bad]}}), None, {})
        except ValueError as e:
            assert words in str(e), (words, str(e))
        else:
            raise AssertionError("accepted %r" % (bad,))


def test_the_sampler_does_not_hold_the_builder():
    # its openers are (fn, args, kwargs) of the drivers' and the board's functions: a function of
    # m2m.sense.build would keep the whole module (its globals, every function's code) alive
    import gc
    import sys

    import m2m.sense
    from m2m import board, config
    from m2m.sense import battery, bme280, ds18b20, modbus, sampler, sht4x  # noqa: F401 held anyway

    cfg = config.validate({"sense": {"sensors": [
        {"type": "bme280"}, {"type": "sht4x"}, {"type": "ds18b20", "pin": 4},
        {"type": "modbus", "regs": [{"name": "energy", "addr": 0}]}]}})
    b = {"battery_adc": {"pin": 35}}

    def drop():
        sys.modules.pop("m2m.sense.build", None)
        if hasattr(m2m.sense, "build"):
            delattr(m2m.sense, "build")
        gc.collect()
        return gc.mem_alloc()

    base = drop()
    build = __import__("m2m.sense.build", None, None, ("sampler",))
    gc.collect()
    module = gc.mem_alloc() - base  # what the module holds
    sm = build.sampler(cfg, lambda r, u: None, b)
    gc.collect()
    both = gc.mem_alloc() - base
    del build
    held = drop() - base  # the sampler with its five sensors' openers, and what they keep
    assert all(type(s.make) is tuple for s in sm.sensors), [s.make for s in sm.sensors]
    # the module left with its name (lambdas of it: 32 of 4352 bytes left, 9632 -> 9600)
    assert both - held >= module // 2, (both, held, module)


def test_latest_reading_per_name_for_readers():
    # Sampler.latest(name) -> (value, unit, t): the newest good reading, also one the deadband held
    # back; None before the first and for unknown names; a faulty reading leaves the last good one.
    clk, sm, out = setup()
    d = Driver([20.0, 20.1, SensorError("CRC mismatch"), 99.0, 20.2], conv=0)
    sm.add("t", d, prefix="room", interval_s=10, deadband=0.5)
    w = Driver([])
    w.read = lambda: (4.0, 5.0)
    sm.add("w", w, quant=("temperature", "humidity"), prefix="w", interval_s=10)
    assert sm.names() == ["room.temperature", "w.temperature", "w.humidity"], sm.names()
    assert sm.latest("w.humidity") is None
    assert sm.latest("room.temperature") is None and sm.latest("nope") is None
    sm.step()
    assert sm.latest("room.temperature") == (20.0, "Cel", 1700000001)
    clk.ms += 10000
    sm.step()
    assert [r[0][1] for u, r in out if r[0][0] == "room.temperature"] == [20.0]  # 20.1 is within the deadband: not reported ...
    assert sm.latest("room.temperature") == (20.1, "Cel", 1700000011)  # ... but it is the latest
    clk.ms += 10000
    sm.step()  # CRC error
    clk.ms += 10000
    sm.step()  # 99.0: out of range (-40..85)
    assert sm.latest("room.temperature") == (20.1, "Cel", 1700000011)
    clk.ms += 10000
    sm.step()
    assert sm.latest("room.temperature") == (20.2, "Cel", 1700000041)
    assert sm.latest("w.humidity") == (5.0, "%RH", 1700000041)

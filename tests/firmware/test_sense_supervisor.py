# The supervisor's parts (m2m.supervisor) in MicroPython with a hand-turned clock: a crashing
# service becomes an event and runs again after a doubling back-off (Ctrl-C still stops the loop),
# the sampler's queued readings become outbox records, events go to the outbox as ALARM / EVENT
# records; app.main() with a broken or autorun-less config prints one line and returns (with a
# good one it returns the config for main.py), supervisor.main() with a bad sensor entry likewise.
import json
import os
import sys

from m2m import app, config, events, outbox
from m2m import hal as REAL_HAL
from m2m import supervisor as S


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


# this file's own folder (pytest's tmp_path for it, m2mkit.testing.run_file): never a shared path
TMP = os.getenv("M2M_TEST_TMP")
_n = [0]


def _tmpdir():
    _n[0] += 1
    d = TMP + "/sup-%d" % _n[0]
    os.mkdir(d)
    return d


def _drain():
    out = []
    while True:
        e = events.take()
        if e is None:
            return out
        out.append((e[0], e[2]))


class Boom:
    def __init__(self, fail):
        self.fail = fail  # list of exceptions (None: a good step)
        self.steps = 0

    def step(self):
        self.steps += 1
        e = self.fail.pop(0) if self.fail else None
        if e is not None:
            raise e
        return 500


def test_a_crash_is_an_event_and_the_service_runs_again_after_a_backoff():
    clk = Clock()
    S.hal = clk
    events.log = False
    events.clear()
    closed = []
    svc = Boom([OSError(5), MemoryError("x"), None, ValueError("bad")])
    g = S.Guard("mqtt", svc, lambda: closed.append(1))
    assert g.step() == 1000 and svc.steps == 1  # crashed: wait 1 s
    clk.ms += 999
    assert g.step() == 1 and svc.steps == 1  # not before the back-off
    clk.ms += 1
    assert g.step() == 2000 and svc.steps == 2  # crashed again: 2 s
    clk.ms += 2000
    assert g.step() == 500 and svc.steps == 3  # runs
    assert g.step() == 4000  # crashed a third time: 4 s
    ev = _drain()
    assert [(k, f["service"], f["count"], f["retry_s"]) for k, f in ev] == \
        [("app.crash", "mqtt", 1, 1), ("app.crash", "mqtt", 2, 2), ("app.crash", "mqtt", 3, 4)], ev
    assert "OSError" in ev[0][1]["error"] and "MemoryError" in ev[1][1]["error"]
    assert closed == [1, 1, 1]
    clk.ms += 700000  # calm for longer than 10 minutes: the back-off starts again at 1 s
    svc.fail = [OSError(5)]
    assert g.step() == 1000
    # Ctrl-C is not a crash: it leaves the loop
    g2 = S.Guard("x", Boom([KeyboardInterrupt()]))
    try:
        g2.step()
        assert False, "KeyboardInterrupt swallowed"
    except KeyboardInterrupt:
        pass
    assert g2.crashes == 0
    S.hal = REAL_HAL


class Sampler:
    def __init__(self):
        self.sensors = []
        self.sink = None
        self.rounds = []

    def step(self):
        for readings, urgent in self.rounds:
            self.sink(readings, urgent)
        self.rounds = []
        return 1234


def test_sense_queues_in_the_sink_and_appends_records_in_step():
    events.log = False
    events.clear()
    ob = outbox.Outbox(_tmpdir() + "/ob")
    sense = S.Sense(ob)
    sm = Sampler()
    sm.sink = sense.sink
    sense.sampler = sm
    sense.sink((("temperature", 21.5, "Cel", 1700000000),), True)  # from an idle hook: only queued
    assert ob.pending() == 0 and len(sense.q) == 1
    sm.rounds = [(tuple(("r%d" % i, i, "", 1700000001) for i in range(20)), False)]
    assert sense.step() == 1234
    recs = ob.peek(10)
    assert [k for _, k, _ in recs] == [outbox.TELEMETRY] * 2
    got = [json.loads(p) for _, _, p in recs]
    assert got[0][0] == ["temperature", 21.5, "Cel", 1700000000] and len(got[0]) == 12 and len(got[1]) == 9
    assert sense.q == []
    # a queue that overflows (the loop stuck in a long wait) keeps the newest, says how many went
    for i in range(40):
        sense.sink((("x", i, "", 1),), False)
    sense.step()
    last = [json.loads(p) for _, _, p in ob.peek(10)][2:]
    assert [r[1] for rec in last for r in rec] == list(range(8, 40))
    assert _drain() == [("sense.dropped", {"readings": 8})]


def test_events_go_to_the_outbox_alarms_as_alarm_records():
    events.log = False
    events.clear()
    ob = outbox.Outbox(_tmpdir() + "/ob")
    fw = S.Forward(ob)
    events.post("net.signal", quality=50)  # read every minute: stays on the console
    events.post("alarm", sensor="in", name="in.temperature", value=31.0, unit="Cel", state="raised", level=30)
    events.post("app.crash", service="mqtt", error="OSError(5,)", count=1, retry_s=1)
    events.post("net.modem", model=b"bg95", x=[1], y=None)  # bytes and others: as text
    assert fw.step() == 1000
    recs = ob.peek(10)
    assert [k for _, k, _ in recs] == [outbox.ALARM, outbox.EVENT, outbox.EVENT]
    d = [json.loads(p) for _, _, p in recs]
    assert d[0]["kind"] == "alarm" and d[0]["state"] == "raised" and d[0]["unit"] == "Cel" and d[0]["t"] > 1.7e9
    assert d[1]["kind"] == "app.crash" and d[1]["service"] == "mqtt"
    assert d[2] == {"kind": "net.modem", "model": "bg95", "x": "[1]", "y": None, "t": d[2]["t"]}, d[2]
    for i in range(20):
        events.post("e%d" % i)
    assert fw.step() == 0  # a bounded amount per step; more waiting
    assert fw.step() == 0 and fw.step() == 1000 and ob.pending() == 23


def _main_with(text, ret=False):
    # app.main() on a config file holding `text` (None: no file); its last printed line
    d = _tmpdir()
    p = d + "/config.json"
    if text is not None:
        with open(p, "w") as f:
            f.write(text)
    config._cfg = None
    lines = []
    app.print = S.print = lambda *a: lines.append(" ".join(str(x) for x in a))
    try:
        got = app.main(p)
        if ret:
            return got
        assert got is None  # nothing to start: the REPL
    finally:
        config._cfg = None
        del app.print, S.print
    assert lines[0].startswith("m2mkit ") and lines[1].startswith("health: "), lines
    return lines[2] if len(lines) > 2 else None


def test_main_stays_at_the_repl_without_autorun_or_with_a_bad_config():
    assert _main_with(None) is None  # no config: a new board, nothing more said
    assert _main_with('{"device": {"id": "d1"}}').startswith("autorun: off (set device.autorun to true")
    assert _main_with('{"device": {"autorun": true}}', ret=True)["device"]["autorun"]  # for main.py
    assert _main_with('{"device": {"autorun": true, "watchdog_s": 99999}}') == \
        "config: config key device.watchdog_s must be between 0 and 3600, not 99999"
    # a sensor entry the schema cannot check: supervisor.main (what main.py calls next) says which
    cfg = _main_with('{"device": {"autorun": true}, "sense": {"sensors": [{"type": "bme281"}]}}', ret=True)
    lines = []
    S.print = lambda *a: lines.append(" ".join(str(x) for x in a))
    try:
        assert S.main(cfg) is None
    finally:
        del S.print
    assert lines == ["config: sense.sensors: unknown type 'bme281' (known: bme280, sht4x, ds18b20, battery, "
                     "pulses, modbus)"], lines
    assert _main_with('{"device": {"autorun": tru').startswith("config: ")
    assert "is not valid JSON" in _main_with('{"device": {"autorun": tru')


def test_config_errors_name_the_key():
    cfg = config.validate({"device": {"autorun": True, "id": "bad id"}})
    try:
        S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
        assert False
    except ValueError as e:
        assert "device id 'bad id'" in str(e) and "device.id" in str(e), e
    cfg = config.validate({"device": {"id": "d1"}, "mqtt": {"broker": "http://x:1"}})
    try:
        S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
        assert False
    except ValueError as e:
        assert "mqtt.broker" in str(e), e
    cfg = config.validate({"device": {"id": "d1"}, "sense": {"sensors": [{"type": "bme281"}]}})
    try:
        S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
        assert False
    except ValueError as e:
        assert "unknown type 'bme281'" in str(e), e


class Plugin:
    made = []

    def __init__(self, ctx):
        self.ctx = ctx
        self.closed = 0
        Plugin.made.append(self)

    def step(self):
        return 700

    def close(self):
        self.closed += 1


def test_plugins_join_when_their_key_is_set_and_close_at_stop():
    import sys

    class mod:  # MicroPython makes no module objects: any object in sys.modules imports
        service = Plugin

    sys.modules["m2m_test_plugin"] = mod
    saved = S.PLUGINS
    S.PLUGINS = [("mqtt", ("user", "ca"), "m2m_test_plugin")]
    try:
        cfg = config.validate({"device": {"id": "d1"}, "sense": {"battery": False}})
        r = S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
        assert [g.name for g in r.services] == ["events"] and not Plugin.made  # key unset: not imported
        assert "m2m.supervisor_build" not in sys.modules  # the build code has left the heap
        cfg = config.validate({"device": {"id": "d1"}, "sense": {"battery": False}, "mqtt": {"ca": "/ca.pem"}})
        r = S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
        assert [g.name for g in r.services] == ["net", "mqtt", "events"], [g.name for g in r.services]
        p = Plugin.made[0]
        assert sorted(p.ctx) == ["board", "cfg", "id", "meters", "net", "outbox", "sampler"]
        assert p.ctx["net"] is r.net and p.ctx["outbox"] is r.outbox and p.ctx["id"] == "d1" and p.ctx["sampler"] is None
        assert r.services[1].step() == 700
        r.stop()
        assert p.closed == 1
    finally:
        S.PLUGINS = saved
        del sys.modules["m2m_test_plugin"]


def test_the_outbox_gets_the_configs_write_back():
    # outbox.sync_every / sync_s reach the supervisor's outbox (m2m.outbox.from_config)
    cfg = config.validate({"device": {"id": "d1"}, "sense": {"battery": False},
                           "outbox": {"sync_every": 8, "sync_s": 5}})
    r = S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
    assert r.outbox.sync_every == 8 and r.outbox.sync_ms == 5000, (r.outbox.sync_every, r.outbox.sync_ms)
    r.stop()


def test_the_loop_feeds_the_watchdog_and_stop_stretches_it():
    from m2m import loop

    made = []

    class WDT:
        def __init__(self, id=0, timeout=5000):
            self.timeout = timeout
            self.fed = 0
            made.append(self)

        def feed(self):
            self.fed += 1

    saved = REAL_HAL.WDT
    REAL_HAL.WDT = WDT
    try:
        cfg = config.validate({"device": {"id": "d1", "watchdog_s": 5}, "sense": {"battery": False}})
        r = S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
        hooks = len(loop._hooks)
        assert r.run(max_ms=350) is False  # ran out of time
        assert made[0].timeout == 5000 and made[0].fed >= 3, (made[0].timeout, made[0].fed)  # each 100 ms slice
        assert [w.timeout for w in made] == [5000, S.STRETCH_MS] and r.wdt is made[1]
        assert len(loop._hooks) == hooks  # the feed hook is gone
        cfg = config.validate({"device": {"id": "d1", "watchdog_s": 0}, "sense": {"battery": False}})
        del made[:]
        S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob").run(max_ms=50)
        assert made == []  # 0: no watchdog
    finally:
        REAL_HAL.WDT = saved


def _mqtt_stack(r):
    # the reporter is built at the network's first attach (m2m.supervisor_mqtt): built here by hand
    svc = [g.svc for g in r.services if g.name == "mqtt"][0]
    assert r.reporter is None  # nothing of the reporting side before the attach
    assert "m2m.report.mqtt" not in sys.modules and "m2m.net.sock" not in sys.modules
    svc._build(r, r.net)
    assert r.reporter.client.stack is svc.st
    return svc.st


def test_mqtts_goes_over_tls_with_or_without_a_ca_and_a_missing_ca_file_is_a_config_error():
    base = {"device": {"id": "d1"}, "sense": {"battery": False}}
    for url, ca, kind in (("mqtt://h:1883", None, "tcp"), ("mqtts://h:8883", None, "tls")):
        cfg = config.validate(dict(base, mqtt={"broker": url, "ca": ca}))
        st = _mqtt_stack(S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob"))
        assert st.kind == kind, (url, st.kind)
    d = _tmpdir()
    with open(d + "/ca.pem", "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\n")
    cfg = config.validate(dict(base, mqtt={"broker": "mqtts://h:8883", "ca": d + "/ca.pem"}))
    st = _mqtt_stack(S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob"))
    assert st.kind == "tls" and st.tls == {"ca": "-----BEGIN CERTIFICATE-----\n"}
    cfg = config.validate(dict(base, mqtt={"broker": "mqtts://h:8883", "ca": d + "/nope.pem"}))
    try:
        S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
        assert False
    except ValueError as e:
        assert str(e).startswith("mqtt.ca: no file") and "nope.pem" in str(e), e


def test_meters_run_under_the_supervisor_and_the_orders_meter_rules_read_them():
    # meter.meters and an orders rule on a meter, no broker: the supervisor starts both without the
    # network, the meter records into the outbox on its interval, and the filter is ordered after
    # 500 running hours (the pin reads 0 with no pull on the port stand-in: active 0 = running)
    from m2m import meter as M
    from m2m import orders as O

    clk = Clock()
    clk.Pin = REAL_HAL.Pin
    M.hal = O.hal = clk
    events.log = False
    events.clear()
    d = _tmpdir()
    with open(d + "/usage.key", "w") as f:
        f.write("11" * 32)
    cfg = config.validate({"device": {"id": "d1"}, "sense": {"battery": False},
                           "meter": {"meters": [{"name": "pump", "type": "hours", "pin": 5, "active": 0}],
                                     "interval_s": 3600, "key_file": d + "/usage.key",
                                     "state": d + "/meter.json"},
                           "orders": {"rules": [{"item": "filter", "meter": "pump", "every": 500}],
                                      "check_s": 60, "state": d + "/orders.json"}})
    try:
        r = S.Run(cfg, {}, outbox_path=d + "/ob")
        assert [g.name for g in r.services] == ["meter", "orders", "events"], [g.name for g in r.services]
        assert r.net is None and r.meters is r.services[0].svc  # no broker: no network for them

        def steps(n=1):
            for _ in range(n):
                for g in r.services:
                    g.step()

        steps()
        clk.ms += 499 * 3600 * 1000  # 499 h running: records on the interval, no order yet
        steps()
        usage = [json.loads(p) for _, k, p in r.outbox.peek(100, (outbox.USAGE,))]
        assert [(u["m"], u["n"], u["a"], u["b"], u["k"], u["u"]) for u in usage] == \
            [("pump", 1, 0, 499 * 3600, "1/3600", "h")], usage
        assert r.outbox.peek(100, (5,)) == []
        clk.ms += 3600 * 1000 + 1000  # 500 h: the rule reads the running meter and orders
        steps()
        orders = [json.loads(p) for _, k, p in r.outbox.peek(100, (5,))]
        assert len(orders) == 1 and orders[0]["item"] == "filter", orders
        assert orders[0]["reason"].startswith("pump 500.") and orders[0]["reason"].endswith(" reached 500")
        usage = [json.loads(p) for _, k, p in r.outbox.peek(100, (outbox.USAGE,))]
        assert [u["n"] for u in usage] == [1, 2] and usage[1]["a"] == usage[0]["b"] and usage[1]["p"] == usage[0]["s"]
        clk.ms += 1500
        steps()
        r.stop()  # the live counter to flash: a restart goes on from it
        with open(d + "/meter.json") as f:
            assert json.load(f)["x"]["pump"][0] == 500 * 3600 + 2
        ev = [json.loads(p)["kind"] for _, k, p in r.outbox.peek(100, (outbox.EVENT,))]
        assert "order.need" in ev and "app.crash" not in ev, ev
    finally:
        M.hal = O.hal = REAL_HAL


def test_the_reporting_code_leaves_while_the_link_is_down_and_comes_back_with_its_state():
    # m2m.supervisor_mqtt.Mqtt: built at the attach, dropped when the link fails (the network's recovery then
    # loads its bring-up code beside what stays), built again at the next attach with the message in
    # flight (its resend goes with DUP), the queued /cmd payloads and the counters it had
    cfg = config.validate({"device": {"id": "d1"}, "sense": {"battery": False},
                           "mqtt": {"broker": "mqtt://h:1883"}})
    r = S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
    svc = [g.svc for g in r.services if g.name == "mqtt"][0]

    class Net:
        modem = None
        failed = None
        up = False

        def attached(self):
            return self.up

    net = r.net = Net()
    assert svc.step() == 1000 and r.reporter is None  # not attached: nothing built
    svc._build(r, net)
    rep = r.reporter
    rep.sent, rep.cmds = 7, [b'{"id":"1","cmd":"ping"}']
    rep.units["temperature"] = "Cel"  # learnt: the next connect's status carries it without a record waiting
    rep.client.inflight, rep.client.connects = (5, "m2mkit/d1/telemetry", b"[]"), 2
    svc._drop()
    assert r.reporter is None and svc.st is None
    from m2m.supervisor_mqtt import Mqtt

    for m in Mqtt.MODULES:
        assert m not in sys.modules, m
    svc._build(r, net)
    rep = r.reporter
    assert rep.sent == 7 and rep.cmds == [b'{"id":"1","cmd":"ping"}'] and rep.client.connects == 2
    assert rep.client.inflight == (5, "m2mkit/d1/telemetry", b"[]")
    assert rep.units == {"temperature": "Cel"}
    assert svc.builds == 2


def test_the_sockets_stay_when_a_plugin_that_needs_the_network_runs():
    # a LwM2M client may hold m2m.net.sock: dropped from sys.modules, its next import would load a
    # second copy of it; umqtt.simple and m2m.report.mqtt still go
    cfg = config.validate({"device": {"id": "d1"}, "sense": {"battery": False},
                           "mqtt": {"broker": "mqtt://h:1883"}})
    r = S.Run(cfg, {}, outbox_path=_tmpdir() + "/ob")
    svc = [g.svc for g in r.services if g.name == "mqtt"][0]
    r.services.append(S.Guard("lwm2m", Boom([])))
    svc._build(r, r.net)
    svc._drop()
    assert "m2m.net.sock" in sys.modules and "m2m.report.mqtt" not in sys.modules
    assert "umqtt.simple" not in sys.modules

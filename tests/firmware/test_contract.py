# The MQTT contract: topics, SenML telemetry checked against RFC 8428's rules, /cmd replies for bad
# input that change nothing, Home Assistant discovery.
import json

from m2m import config
from m2m.report import contract as c
from m2m.report import ha

T0 = 1767225600  # 2026-01-01T00:00:00Z

# RFC 8428 4.2 / 4.3: the JSON type of each label
_TYPES = {"bn": str, "bt": (int, float), "bu": str, "bv": (int, float), "bs": (int, float),
          "bver": int, "n": str, "u": str, "v": (int, float), "vs": str, "vb": bool, "vd": str,
          "s": (int, float), "t": (int, float), "ut": (int, float)}


def _name_char(ch, first):
    if "a" <= ch <= "z" or "A" <= ch <= "Z" or "0" <= ch <= "9":
        return True
    return not first and ch in "-:./_"


def check_senml(payload):
    # A JSON-schema-free check of RFC 8428: an array of objects, known labels with their types, no
    # must-understand label (ending in "_"), a resolved name of the allowed characters (4.5.1), one
    # value (v / vs / vb / vd) or a sum. Returns the resolved records [(name, value, unit, time)].
    pack = json.loads(payload)
    assert type(pack) is list and pack, "a SenML pack is a non-empty array"
    bn, bt = "", 0
    out = []
    for rec in pack:
        assert type(rec) is dict, rec
        for k, v in rec.items():
            assert not k.endswith("_"), "must-understand label %s" % k
            assert k in _TYPES, "unknown label %s" % k
            want = _TYPES[k]
            assert isinstance(v, want) and not (want is not bool and type(v) is bool), (k, v)
        if "bn" in rec:
            bn = rec["bn"]
        if "bt" in rec:
            bt = rec["bt"]
        name = bn + rec.get("n", "")
        assert name, "a record needs a name"
        for i, ch in enumerate(name):
            assert _name_char(ch, i == 0), "bad name %r" % name
        values = [k for k in ("v", "vs", "vb", "vd") if k in rec]
        assert len(values) == 1 or (not values and "s" in rec), rec
        out.append((name, rec[values[0]], rec.get("u", ""), bt + rec.get("t", 0)))
    return out


def test_topics():
    assert c.topic("m2mkit", "dev-1", c.TELEMETRY) == "m2mkit/dev-1/telemetry"
    assert c.topic("fleet/eu", "dev_2", c.CMD_RES) == "fleet/eu/dev_2/cmd/res"
    assert c.topic("m2mkit", "d", c.STATUS).endswith("/status")
    assert c.topic("m2mkit", "d", c.EVENTS).endswith("/events")
    assert c.topic("m2mkit", "d", c.CMD).endswith("/cmd")
    for prefix in ("", "/m2m", "m2m/", "a/+/b", "a/#", "a//b", "$SYS/x", 5):
        try:
            c.topic(prefix, "dev-1", c.TELEMETRY)
        except ValueError as e:
            assert "mqtt.prefix" in str(e)
        else:
            raise AssertionError("prefix %r accepted" % (prefix,))
    for dev in ("", "a/b", "a+b", "-lead", "x" * 65, None):
        try:
            c.topic("m2mkit", dev, c.TELEMETRY)
        except ValueError as e:
            assert "device.id" in str(e)
        else:
            raise AssertionError("device id %r accepted" % (dev,))


def test_senml_is_valid_and_carries_the_sequence_number():
    readings = [("temperature", 21.5, "Cel", T0), ("humidity", 40, "%RH", T0 + 2),
                ("pressure", 101325.0, "Pa", T0), ("battery", 0.82, "/", T0), ("pulses", 17, "", T0 + 1),
                ("door", True, "", T0), ("state", "ok", "", T0)]
    p = c.senml("dev-1", [(42, readings)])
    recs = check_senml(p)
    assert recs[0] == ("dev-1:", 42, "", T0)  # the sequence number: the record named by bn alone
    assert json.loads(p)[0] == {"bn": "dev-1:", "bt": T0, "v": 42}
    got = {r[0]: r for r in recs[1:]}
    assert got["dev-1:temperature"] == ("dev-1:temperature", 21.5, "Cel", T0)
    assert got["dev-1:humidity"] == ("dev-1:humidity", 40, "%RH", T0 + 2)
    assert got["dev-1:pulses"][3] == T0 + 1 and got["dev-1:pulses"][2] == ""
    assert got["dev-1:door"][1] is True and got["dev-1:state"][1] == "ok"
    assert len(recs) == 1 + len(readings)
    assert b" " not in p  # compact: bytes on air


def test_senml_batch_of_groups():
    p = c.senml("dev-1", [(7, [("temperature", 20.0, "Cel", T0)]), (8, [("temperature", 20.5, "Cel", T0 + 60)])])
    recs = check_senml(p)
    assert [r for r in recs if r[0] == "dev-1:"] == [("dev-1:", 7, "", T0), ("dev-1:", 8, "", T0 + 60)]
    assert ("dev-1:temperature", 20.5, "Cel", T0 + 60) in recs


def test_senml_leaves_out_non_finite_values_and_refuses_bad_names():
    recs = check_senml(c.senml("d", [(1, [("a", float("nan"), "", T0), ("b", float("inf"), "", T0), ("c", 1, "", T0)])]))
    assert [r[0] for r in recs] == ["d:", "d:c"]
    for bad in ("", "a b", "-x", "t\u00e9"):
        try:
            c.senml("d", [(1, [(bad, 1, "", T0)])])
        except ValueError as e:
            assert "reading name" in str(e)
        else:
            raise AssertionError("name %r accepted" % bad)


def test_units_learnt_once_and_left_out_of_the_records():
    # mqtt.units "status": the status carries the units, a record whose unit it holds has no "u"
    r = [("temperature", 21.5, "Cel", T0), ("humidity", 40, "%RH", T0), ("pulses", 3, "", T0)]
    units = {}
    assert c.learn(units, r) is True
    assert units == {"temperature": "Cel", "humidity": "%RH"}  # no unit: nothing to carry
    assert c.learn(units, r) is False  # nothing new: the status is not published again
    p = c.senml("dev-1", [(5, r)], units)
    assert [rec for rec in json.loads(p) if "u" in rec] == []
    assert [x[:3] for x in check_senml(p)[1:]] == [("dev-1:temperature", 21.5, ""), ("dev-1:humidity", 40, ""),
                                                   ("dev-1:pulses", 3, "")]
    # a new name, or a unit that changed, is news; a unit gone takes the name out
    assert c.learn(units, [("pressure", 1e5, "Pa", T0)]) is True and units["pressure"] == "Pa"
    assert c.learn(units, [("temperature", 294.65, "K", T0)]) is True and units["temperature"] == "K"
    assert c.learn(units, [("humidity", 40, "", T0)]) is True and "humidity" not in units
    assert c.learn(units, [(1, 2, 3, T0), ("x", 1, 5, T0)]) is False  # not readings: the status stays JSON of strings
    # a record whose unit the map does not hold (or holds another) keeps its "u"
    recs = json.loads(c.senml("d", [(1, [("temperature", 21.5, "Cel", T0), ("pressure", 1e5, "Pa", T0)])], units))
    assert recs[1] == {"n": "temperature", "u": "Cel", "v": 21.5} and "u" not in recs[2]
    # without a map (mqtt.units "each"): "u" in every record, as before
    assert [rec.get("u") for rec in json.loads(c.senml("d", [(1, r)]))[1:]] == ["Cel", "%RH", None]


def test_units_map_is_bounded():
    units = {}
    many = [("s%d" % i, i, "Cel", T0) for i in range(c.MAX_UNITS + 5)]
    assert c.learn(units, many) is True
    assert len(units) == c.MAX_UNITS and "s%d" % c.MAX_UNITS not in units
    # the names left out carry their unit in every record: nothing is lost
    recs = json.loads(c.senml("d", [(1, many)], units))
    assert [rec["n"] for rec in recs if "u" in rec] == ["s%d" % i for i in range(c.MAX_UNITS, c.MAX_UNITS + 5)]


def test_status_payloads():
    assert c.status() == b"online"  # mqtt.units "each"
    d = json.loads(c.status({"temperature": "Cel", "battery": "V"}))
    assert d == {"state": "online", "units": {"temperature": "Cel", "battery": "V"}}
    assert b" " not in c.status({"temperature": "Cel"})
    assert json.loads(c.status({})) == {"state": "online", "units": {}}


def test_readings_round_trip_through_the_outbox_payload():
    r = [("temperature", 21.5, "Cel", T0), ("pulses", 3, "", T0 + 1)]
    assert c.unpack_readings(c.pack_readings(r)) == r


def test_event_payload():
    d = json.loads(c.event(9, "alarm", T0, {"name": "temperature", "value": 41.0}))
    assert d == {"seq": 9, "kind": "alarm", "t": T0, "name": "temperature", "value": 41.0}


def _cfg():
    return config.validate({"device": {"id": "dev-1"}})


def _handle(payload, cfg):
    before = json.dumps(cfg)
    res, action = c.handle_cmd(payload, cfg)
    return json.loads(res), action, before == json.dumps(cfg)


def test_cmd_good_commands():
    cfg = _cfg()
    assert _handle(b'{"id": "1", "cmd": "ping"}', cfg) == ({"id": "1", "ok": True, "pong": True}, None, True)
    assert _handle(b'{"id": 2, "cmd": "report"}', cfg) == ({"id": 2, "ok": True}, "report", True)
    assert _handle(b'{"id": "r", "cmd": "reboot"}', cfg) == ({"id": "r", "ok": True}, "reboot", True)
    res, action, same = _handle(b'{"id": "s", "cmd": "set", "config": {"mqtt.prefix": "fleet", "mqtt.batch": 4}}', cfg)
    assert res == {"id": "s", "ok": True, "set": ["mqtt.batch", "mqtt.prefix"]} and action == "set" and not same
    assert cfg["mqtt"]["prefix"] == "fleet" and cfg["mqtt"]["batch"] == 4
    # a device without device.id (it reports under another name) can still be configured
    bare = config.validate({})
    res, action, same = _handle(b'{"id": "b", "cmd": "set", "config": {"mqtt.batch": 2}}', bare)
    assert res["ok"] and action == "set" and bare["mqtt"]["batch"] == 2


def test_cmd_bad_input_gets_an_error_and_changes_nothing():
    cfg = _cfg()
    bad = (
        (b"not json", None, "not JSON"),
        (b"\xff\xfe", None, "not JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"cmd": "ping"}', None, "id"),
        (b'{"id": ["x"], "cmd": "ping"}', None, "id"),
        (b'{"id": true, "cmd": "ping"}', None, "id"),
        (b'{"id": "", "cmd": "ping"}', None, "id"),
        (b'{"id": "3", "cmd": "dance"}', "3", "unknown command"),
        (b'{"id": "3", "cmd": 5}', "3", "unknown command"),
        (b'{"id": "3"}', "3", "unknown command"),
        (b'{"id": "4", "cmd": "ping", "x": 1}', "4", "unexpected field x"),
        (b'{"id": "4", "cmd": "ping", "config": {}}', "4", "unexpected field config"),
        (b'{"id": "5", "cmd": "set"}', "5", 'needs "config"'),
        (b'{"id": "5", "cmd": "set", "config": []}', "5", 'needs "config"'),
        (b'{"id": "5", "cmd": "set", "config": {}}', "5", 'needs "config"'),
        (b'{"id": "6", "cmd": "set", "config": {"mqtt.batch": "4"}}', "6", "must be int"),
        (b'{"id": "6", "cmd": "set", "config": {"mqtt.batch": 999}}', "6", "between"),
        (b'{"id": "6", "cmd": "set", "config": {"mqtt.nope": 1}}', "6", "unknown config key"),
        (b'{"id": "6", "cmd": "set", "config": {"nope": 1}}', "6", "unknown config"),
        # one good key and one bad: neither is applied
        (b'{"id": "7", "cmd": "set", "config": {"mqtt.prefix": "x", "mqtt.keepalive": -1}}', "7", "between"),
        (b'{"id": "8", "cmd": "ping", "pad": "' + b"x" * 600 + b'"}', None, "at most 512"),
        # a prefix or device id that makes no topic would cut the device off
        (b'{"id": "9", "cmd": "set", "config": {"mqtt.prefix": "a/#"}}', "9", "mqtt.prefix"),
        (b'{"id": "9", "cmd": "set", "config": {"device.id": "a/b"}}', "9", "device.id"),
    )
    for payload, cid, words in bad:
        res, action, same = _handle(payload, cfg)
        assert res["ok"] is False and res["id"] == cid, (payload, res)
        assert words in res["error"], (payload, res["error"])
        assert action is None and same, payload
    assert cfg["mqtt"]["prefix"] == "m2mkit"


def test_status_and_will_payloads():
    assert c.ONLINE == b"online" and c.OFFLINE == b"offline"


def test_home_assistant_discovery():
    t, p = ha.discovery("m2mkit", "dev-1", "temperature", "Cel")
    assert t == "homeassistant/sensor/dev-1/temperature/config"
    d = json.loads(p)
    assert d["unique_id"] == "dev-1_temperature" and d["state_topic"] == "m2mkit/dev-1/telemetry"
    assert d["availability_topic"] == "m2mkit/dev-1/status"
    assert "value_json.state" in d["availability_template"]  # the status is JSON with its units
    assert d["device_class"] == "temperature" and d["unit_of_measurement"] == "\u00b0C"
    assert "'temperature'" in d["value_template"] and d["device"]["identifiers"] == ["dev-1"]
    t, p = ha.discovery("m2mkit", "dev-1", "bme.battery", "/", ha_prefix="ha")
    d = json.loads(p)
    assert t == "ha/sensor/dev-1/bme_battery/config"
    assert d["unit_of_measurement"] == "%" and "* 100" in d["value_template"]
    d = json.loads(ha.discovery("m2mkit", "dev-1", "pulses", "")[1])
    assert "unit_of_measurement" not in d and "device_class" not in d


def test_cmd_extra_commands_other_layers_add():
    # a layer (eSIM, orders) adds a command with an "args" object; its ValueError is the error reply
    def swap(args):
        if "iccid" not in args:
            raise ValueError("swap needs args.iccid")
        return {"to": args["iccid"]}

    cfg = _cfg()
    c.EXTRA["swap"] = swap
    try:
        assert _handle(b'{"id": "1", "cmd": "swap", "args": {"iccid": "89"}}', cfg) == (
            {"id": "1", "ok": True, "to": "89"}, None, True)
        res, action, same = _handle(b'{"id": "2", "cmd": "swap"}', cfg)
        assert res["ok"] is False and "args.iccid" in res["error"] and same
        res, _, same = _handle(b'{"id": "3", "cmd": "swap", "args": [1]}', cfg)
        assert res["ok"] is False and "must be an object" in res["error"] and same
        res, _, same = _handle(b'{"id": "4", "cmd": "swap", "config": {}}', cfg)
        assert res["ok"] is False and "unexpected field config" in res["error"]
        res, _, _ = _handle(b'{"id": "5", "cmd": "dance"}', cfg)
        assert "swap" in res["error"]
    finally:
        del c.EXTRA["swap"]
    res, _, _ = _handle(b'{"id": "6", "cmd": "swap", "args": {}}', cfg)
    assert "unknown command" in res["error"]


def test_cmd_code_is_loaded_for_a_command_and_dropped_after():
    # /cmd handling lives in m2m.report.cmd, off the heap between commands (issue #9's heap goal)
    import sys

    import m2m.report

    res, _ = c.handle_cmd(b'{"id": "1", "cmd": "ping"}', _cfg())
    assert json.loads(res)["pong"] is True
    assert "m2m.report.cmd" not in sys.modules and not hasattr(m2m.report, "cmd")

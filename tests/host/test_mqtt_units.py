"""Units once in the retained status (mqtt.units "status", the default), not in every telemetry record:
the firmware in the real MicroPython over a simulated modem to a real Mosquitto, read by independent
paho subscribers; a new reading name publishes the status again before the first telemetry that
leaves its unit out; with mqtt.units "each" every record carries its unit and the status is plain
"online". The host side (m2mkit.senml.Units, the demo's subscriber view) joins the units back, and Home
Assistant's availability template reads both status forms. RFC 8428 4.2 (Unit: optional) and 4.5.2
(no Unit and no Base Unit: the application context gives it)."""

import json
import time

import pytest
from test_mqtt import SCALE, UNITS, Device, exactly_once_in_order, senml_groups

from m2mkit import senml
from m2mkit.demo_report import describe
from m2mkit.sim.modem import ModemSim

MODEL = "bg95"
THREE = {"temperature": "Cel", "humidity": "%RH", "battery": "V"}


def _gather(sub, want, timeout=30):
    """Messages as they arrive (status and telemetry, in order) until the telemetry has every seq in want."""
    msgs, seen = [], set()
    deadline = time.monotonic() + timeout
    while not set(want) <= seen and time.monotonic() < deadline:
        for m in sub.wait(1, timeout=1):
            msgs.append(m)
            if m[0].endswith("/telemetry"):
                seen |= {r["v"] for r in json.loads(m[1]) if "n" not in r}
    return msgs


def _split(msgs):
    return [m for m in msgs if m[0].endswith("/status")], [m for m in msgs if m[0].endswith("/telemetry")]


def test_a_new_reading_name_publishes_the_units_again_before_its_telemetry(broker, subscriber, tmp_path):
    both = subscriber("m2mkit/dev-1/status", "m2mkit/dev-1/telemetry")  # one connection: arrival order kept
    with ModemSim(model=MODEL, time_scale=SCALE) as sim:
        dev = Device(tmp_path, sim, broker.url, MODEL, phases=2, k=3, newname=True)
        try:
            made0, end0 = dev.go(0)
            assert end0["pending"] == 0, dev.lines
            msgs = _gather(both, made0)
            made1, end1 = dev.go(1)  # the readings now have a pressure too
            assert end1["pending"] == 0, dev.lines
            msgs += _gather(both, made1)
            live = [m for m in msgs if not m[2]]
            status, tele = _split(live)
            # the units at the connect, then again once pressure appeared, and only then
            assert [json.loads(m[1]) for m in status] == [
                {"state": "online", "units": THREE}, {"state": "online", "units": dict(THREE, pressure="Pa")}]
            first_pa = next(i for i, m in enumerate(live) if b'"pressure"' in m[1] and m[0].endswith("/telemetry"))
            assert live.index(status[1]) < first_pa  # the units came first
            groups = senml_groups(tele)  # no "u" in any record (checked there), the seq numbers in order
            exactly_once_in_order([g[0] for g in groups], made0 + made1)
            assert [g[1] for g in groups if g[0] in made1] == [["temperature", "humidity", "battery", "pressure"]] * 3
            # a subscriber that comes later gets the retained status with every unit
            late = subscriber("m2mkit/dev-1/status")
            kept = late.wait(1, timeout=10)
            assert kept and kept[0][2] and json.loads(kept[0][1])["units"] == dict(THREE, pressure="Pa")
        finally:
            dev.stop()
    # the receiving side joins them back: each reading with its unit, as with units in every record
    units = senml.Units()
    seen = {}
    for topic, payload, _ in live:
        if units.feed(topic, payload) is None:
            for _, _, readings in senml.groups(payload, units.names):
                seen.update({n: u for n, _, u, _ in readings})
    assert seen == UNITS


def test_units_each_keeps_a_unit_in_every_record_and_a_plain_status(broker, subscriber, tmp_path):
    sub = subscriber("m2mkit/dev-1/telemetry")
    status = subscriber("m2mkit/dev-1/status")
    with ModemSim(model=MODEL, time_scale=SCALE) as sim:
        dev = Device(tmp_path, sim, broker.url, MODEL, phases=1, k=3, units="each")
        try:
            made, end = dev.go(0)
            assert end["pending"] == 0, dev.lines
            seen = [g[0] for g in senml_groups(_gather(sub, made), each=True)]  # a "u" in every record
            exactly_once_in_order(seen, made)
            assert [m[1] for m in status.wait(2, timeout=3) if not m[2]] == [b"online"]
        finally:
            dev.stop()


# ---- the receiving side, without a device ----
T0 = 1767225600
TELE = b'[{"bn":"dev-1:","bt":1767225600,"v":7},{"n":"temperature","v":21.5},{"n":"pulses","v":3},' \
       b'{"n":"x","u":"K","v":1,"t":2}]'


def test_units_from_the_status_joined_to_records_without_one():
    u = senml.Units()
    assert senml.groups(TELE, u.names) == [("dev-1:", 7, [("temperature", 21.5, "", T0), ("pulses", 3, "", T0),
                                                          ("x", 1, "K", T0 + 2)])]
    assert u.feed("m2mkit/dev-1/status", b'{"state":"online","units":{"temperature":"Cel","x":"Cel"}}') == "online"
    assert u.feed("m2mkit/dev-1/telemetry", TELE) is None  # not a status: ignored
    assert u.feed("fleet/eu/dev-2/status", b'{"state":"online","units":{"temperature":"K"}}') == "online"
    # the record's own "u" wins; a name without a unit stays without; per device
    assert senml.groups(TELE, u.names)[0][2] == [("temperature", 21.5, "Cel", T0), ("pulses", 3, "", T0),
                                                 ("x", 1, "K", T0 + 2)]
    assert u.names["dev-2:temperature"] == "K"
    assert u.feed("m2mkit/dev-1/status", b"offline") == "offline"  # the last will: the units stay
    assert senml.resolve(TELE, u.names)[1] == ("dev-1:temperature", 21.5, "Cel", T0)
    d = senml.Dedup(units=u)
    assert d.new(TELE)[0][2][0] == ("temperature", 21.5, "Cel", T0) and d.new(TELE) == []
    # a base unit applies before the status's (RFC 8428 4.1)
    assert senml.resolve(b'[{"bn":"dev-1:","bu":"K","n":"temperature","v":1}]', u.names)[0][2] == "K"


def test_a_bad_status_says_what_it_wants():
    assert senml.status(b"online") == ("online", {})
    for bad in (b"{not json", b'{"units":{}}', b'{"state":"online","units":{"t":5}}', b'{"state":"online","units":[]}'):
        with pytest.raises(senml.SenMLError, match="status"):
            senml.status(bad)


def test_the_demo_shows_values_with_their_units_from_the_status():
    u = senml.Units()
    line = describe("m2mkit/dev-1/status", b'{"state":"online","units":{"temperature":"Cel"}}', True, u)
    assert line == "broker> m2mkit/dev-1/status (retained) online, units temperature=Cel"
    assert describe("m2mkit/dev-1/telemetry", TELE, False, u) == \
        "broker> m2mkit/dev-1/telemetry seq 7: temperature=21.50 Cel pulses=3 x=1.00 K"
    # units in every record (mqtt.units "each"), and a plain status, as before
    each = b'[{"bn":"dev-1:","bt":1767225600,"v":8},{"n":"humidity","u":"%RH","v":40}]'
    assert describe("m2mkit/dev-1/telemetry", each) == "broker> m2mkit/dev-1/telemetry seq 8: humidity=40.0 %RH"
    assert describe("m2mkit/dev-1/status", b"online") == "broker> m2mkit/dev-1/status online"
    assert describe("m2mkit/dev-1/telemetry", b"[1]").startswith("broker> m2mkit/dev-1/telemetry not SenML: ")


def test_home_assistant_availability_reads_both_status_forms():
    # HA renders availability_template with value, and value_json only when the payload is JSON
    # (homeassistant/helpers/template.py async_render_with_possible_json_value), then compares the
    # result with payload_available "online" / payload_not_available "offline"
    import sys

    import jinja2

    from m2mkit.paths import FIRMWARE

    if str(FIRMWARE / "lib") not in sys.path:
        sys.path.insert(0, str(FIRMWARE / "lib"))
    from m2m.report import contract, ha

    cfg = json.loads(ha.discovery("m2mkit", "dev-1", "temperature", "Cel")[1])
    tpl = jinja2.Environment().from_string(cfg["availability_template"])
    for payload, want in ((contract.status({"temperature": "Cel"}), "online"), (contract.ONLINE, "online"),
                          (contract.OFFLINE, "offline")):
        text = payload.decode()
        try:
            v = {"value": text, "value_json": json.loads(text)}
        except ValueError:
            v = {"value": text}
        assert tpl.render(**v) == want, payload
    assert cfg["unit_of_measurement"] == "\u00b0C"  # discovery still carries the unit

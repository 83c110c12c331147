# The MQTT contract: topics, payloads and /cmd handling as pure functions (no I/O), shared by the
# device's reporter and the host tools (this file also runs under CPython). Reference:
# README.md "MQTT contract".
#
# Telemetry is SenML JSON (RFC 8428). One outbox record is one group of records: its first record
# carries the base name "<device_id>:", the base time and the outbox sequence number as the value of
# the device itself, a record without a name ({"bn": "dev-1:", "bt": 1767225600, "v": 42}; RFC 8428
# 4.2: "The name is optional, if the Base Name is present"); the readings follow with their time
# relative to bt. Receivers drop a group whose (bn, seq) they have seen.
#
# Units (mqtt.units "status", the default) are a property of a sensor, not of a reading: the
# retained status carries them once, {"state":"online","units":{"temperature":"Cel",...}}, and the
# records leave "u" out (RFC 8428 4.2: Unit is optional; 4.5.2: with no Unit and no Base Unit the
# application context gives it). A record whose unit the status does not hold (a name beyond
# MAX_UNITS) keeps its "u". With mqtt.units "each": "u" in every record, status plain "online".
import json
import math

TELEMETRY = "telemetry"
STATUS = "status"  # retained: "online" (with the units: status()), and the last will "offline"
EVENTS = "events"
CMD = "cmd"
CMD_RES = "cmd/res"
USAGE = "usage"  # signed usage records (outbox kind 4), published as the layer made them
# outbox kind -> topic leaf for records that go as they are (others: telemetry batched, or events)
RAW_TOPICS = {4: USAGE, 5: "orders"}  # orders: order requests (outbox kind 5), likewise
ONLINE = b"online"
OFFLINE = b"offline"

MAX_UNITS = 32  # reading names whose unit the status carries (the map stays small on the heap)
# Commands other layers add (eSIM, orders, ...): name -> fn(args) -> dict of reply fields, or
# raise ValueError(message) for an error reply. Their payload may carry "args": an object.
EXTRA = {}

_SEP = (",", ":")  # m2m.report.ha imports it


def _name_ok(s, extra):
    # RFC 8428 4.5.1: names start with A-Z a-z 0-9 and go on with those and extra characters
    if not s:
        return False
    for i, c in enumerate(s):
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or (i and c in extra)):
            return False
    return True


def check_id(device_id):
    # A device id that works as a topic level, a SenML base name and a Home Assistant object id.
    if type(device_id) is not str or len(device_id) > 64 or not _name_ok(device_id, "-_"):
        raise ValueError("device id %r: give 1-64 letters, digits, '-' or '_' (set device.id)" % (device_id,))
    return device_id


def topic(prefix, device_id, leaf):
    # "<prefix>/<device_id>/<leaf>"; prefix may have levels ("fleet/eu") but no wildcards, and no
    # leading "$" (topics the broker keeps for itself, MQTT 3.1.1 section 4.7.2)
    if type(prefix) is not str or not prefix or prefix[0] in "/$" or prefix[-1] == "/" \
            or "+" in prefix or "#" in prefix or "\0" in prefix or "//" in prefix:
        raise ValueError("mqtt.prefix %r: give topic levels without '+', '#', a leading '$' or empty "
                         "levels, e.g. m2mkit" % (prefix,))
    return "%s/%s/%s" % (prefix, check_id(device_id), leaf)


# ---- readings in the outbox ----
def pack_readings(readings):
    # Readings [(name, value, unit, t)] as the bytes of one outbox record.
    return json.dumps([list(r) for r in readings], separators=_SEP).encode()


def unpack_readings(payload):
    return [tuple(r) for r in json.loads(payload)]


def _value(rec, v):
    t = type(v)
    if t is bool:
        rec["vb"] = v
    elif t is int or t is float:
        if t is float and (math.isnan(v) or math.isinf(v)):
            return False  # JSON has no NaN / infinity: the reading is left out
        rec["v"] = v
    elif t is str:
        rec["vs"] = v
    else:
        raise ValueError("reading value %r: give a number, bool or str" % (v,))
    return True


def learn(units, readings):
    # Take the readings' units into `units` (name -> unit, the status's map): True when it changed,
    # so the status is to be published again. A name beyond MAX_UNITS is not taken: its records
    # keep their "u". A name whose unit became "" leaves the map.
    changed = False
    for r in readings:
        name, unit = r[0], r[2]
        if type(name) is not str or type(unit) is not str:
            continue  # not a reading (senml_records refuses it): nothing for the status
        if unit:
            if units.get(name) != unit and (name in units or len(units) < MAX_UNITS):
                units[name] = unit
                changed = True
        elif name in units:
            del units[name]
            changed = True
    return changed


def status(units=None):
    # The retained status payload: "online" (mqtt.units "each": units=None), or with the units map
    if units is None:
        return ONLINE
    return json.dumps({"state": "online", "units": units}, separators=_SEP).encode()


def senml_records(device_id, seq, readings, units=None):
    # One group of SenML records (a list of dicts) for outbox record `seq`; a reading whose unit
    # `units` (the status's map) holds goes without "u".
    bt = None
    for r in readings:
        if bt is None or r[3] < bt:
            bt = r[3]
    head = {"bn": check_id(device_id) + ":", "v": seq}  # the seq: 10 bytes less than as "n": "seq"
    if bt is not None:
        head["bt"] = bt
    out = [head]
    for name, value, unit, t in readings:
        if not _name_ok(name, "-:./_"):
            raise ValueError("reading name %r: use letters, digits and - : . / _" % (name,))
        rec = {"n": name}
        if unit and (units is None or units.get(name) != unit):
            rec["u"] = unit
        if not _value(rec, value):
            continue
        if t != bt:
            rec["t"] = t - bt
        out.append(rec)
    return out


def senml(device_id, groups, units=None):
    # The telemetry payload (bytes) for [(seq, readings), ...] taken from the outbox.
    recs = []
    for seq, readings in groups:
        recs.extend(senml_records(device_id, seq, readings, units))
    return pack(recs)


def pack(records):
    # SenML records (senml_records' lists, joined) as the payload bytes, without whitespace
    return json.dumps(records, separators=_SEP).encode()


def event(seq, kind, t, fields=None):
    # An /events payload: {"seq", "kind", "t", ...fields}
    d = dict(fields or ())
    d["seq"] = seq
    d["kind"] = kind
    d["t"] = t
    return json.dumps(d, separators=_SEP).encode()


# ---- /cmd ----
def handle_cmd(payload, cfg):
    # (reply bytes, action) for a /cmd payload: m2m.report.cmd.handle, loaded for the call and
    # dropped again (commands are rare; their code need not stay on the heap)
    import sys

    try:
        from m2m.report import cmd  # inside: a load cut short by a MemoryError is dropped too

        return cmd.handle(payload, cfg)
    finally:
        sys.modules.pop("m2m.report.cmd", None)
        try:
            delattr(sys.modules["m2m.report"], "cmd")
        except (KeyError, AttributeError):
            pass

# The MQTT contract: topics, payloads and /cmd handling as pure functions (no I/O), shared by the
# device's reporter and the host tools (this file also runs under CPython). Reference:
# README.md "MQTT contract".
#
# Telemetry is SenML JSON (RFC 8428). One outbox record is one group of records: its first record
# carries the base name "<device_id>:", the base time and the outbox sequence number as a reading
# named "seq" ({"bn": "dev-1:", "bt": 1767225600, "n": "seq", "v": 42}); the readings follow with
# their time relative to bt. Receivers drop a group whose "<bn>seq" they have seen.
import json
import math

TELEMETRY = "telemetry"
STATUS = "status"  # retained: "online", and the last will "offline"
EVENTS = "events"
CMD = "cmd"
CMD_RES = "cmd/res"
USAGE = "usage"  # signed usage records (outbox kind 4), published as the layer made them
ORDERS = "orders"  # order requests (outbox kind 5), likewise
# outbox kind -> topic leaf for records that go as they are (others: telemetry batched, or events)
RAW_TOPICS = {4: USAGE, 5: ORDERS}
ONLINE = b"online"
OFFLINE = b"offline"

MAX_CMD = 512  # bytes of a /cmd payload
MAX_ID = 64  # characters of a command id
COMMANDS = ("ping", "report", "set", "reboot")
# Commands other layers add (eSIM, orders, ...): name -> fn(args) -> dict of reply fields, or
# raise ValueError(message) for an error reply. Their payload may carry "args": an object.
EXTRA = {}

_SEP = (",", ":")


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


def senml_records(device_id, seq, readings):
    # One group of SenML records (a list of dicts) for outbox record `seq`.
    bt = None
    for r in readings:
        if bt is None or r[3] < bt:
            bt = r[3]
    head = {"bn": check_id(device_id) + ":", "n": "seq", "v": seq}
    if bt is not None:
        head["bt"] = bt
    out = [head]
    for name, value, unit, t in readings:
        if not _name_ok(name, "-:./_"):
            raise ValueError("reading name %r: use letters, digits and - : . / _" % (name,))
        rec = {"n": name}
        if unit:
            rec["u"] = unit
        if not _value(rec, value):
            continue
        if t != bt:
            rec["t"] = t - bt
        out.append(rec)
    return out


def senml(device_id, groups):
    # The telemetry payload (bytes) for [(seq, readings), ...] taken from the outbox.
    recs = []
    for seq, readings in groups:
        recs.extend(senml_records(device_id, seq, readings))
    return json.dumps(recs, separators=_SEP).encode()


def event(seq, kind, t, fields=None):
    # An /events payload: {"seq", "kind", "t", ...fields}
    d = dict(fields or ())
    d["seq"] = seq
    d["kind"] = kind
    d["t"] = t
    return json.dumps(d, separators=_SEP).encode()


# ---- /cmd ----
class CmdError(ValueError):
    def __init__(self, cmd_id, message):
        super().__init__(message)
        self.cmd_id = cmd_id
        self.message = message


def reply(cmd_id, ok, **fields):
    # A /cmd/res payload: {"id", "ok", ...} (an error carries "error")
    fields["id"] = cmd_id
    fields["ok"] = ok
    return json.dumps(fields, separators=_SEP).encode()


def parse_cmd(payload):
    # (id, command, args) of a /cmd payload, or CmdError carrying the id when one was readable.
    # {"id": "7", "cmd": "ping"} | "report" | "reboot" | {"cmd": "set", "config": {"mqtt.prefix": "x"}}
    if len(payload) > MAX_CMD:
        raise CmdError(None, "command of %d bytes: at most %d" % (len(payload), MAX_CMD))
    try:
        d = json.loads(payload)
    except (ValueError, UnicodeError):
        raise CmdError(None, "command is not JSON: send an object like {\"id\": \"1\", \"cmd\": \"ping\"}")
    if type(d) is not dict:
        raise CmdError(None, "command must be a JSON object with \"id\" and \"cmd\"")
    cid = d.get("id")
    if not (type(cid) is str and 0 < len(cid) <= MAX_ID) and not (type(cid) is int and type(cid) is not bool):
        raise CmdError(None, "command \"id\" must be a string of 1-%d characters or an integer" % MAX_ID)
    name = d.get("cmd")
    if type(name) is not str or (name not in COMMANDS and name not in EXTRA):
        names = COMMANDS + tuple(sorted(EXTRA))
        raise CmdError(cid, "unknown command %r: give one of %s" % (name, ", ".join(names)))
    if name in EXTRA:
        extra = [k for k in d if k not in ("id", "cmd", "args")]
        if extra:
            raise CmdError(cid, "unexpected field %s for %s" % (extra[0], name))
        args = d.get("args", {})
        if type(args) is not dict:
            raise CmdError(cid, "\"args\" of %s must be an object" % name)
        return cid, name, args
    extra = [k for k in d if k not in ("id", "cmd", "config")]
    if extra or (name != "set" and "config" in d):
        raise CmdError(cid, "unexpected field %s for %s" % ((extra or ["config"])[0], name))
    args = None
    if name == "set":
        args = d.get("config")
        if type(args) is not dict or not args:
            raise CmdError(cid, "set needs \"config\": an object of \"section.key\": value")
    return cid, name, args


def handle_cmd(payload, cfg):
    # (reply bytes, action) for a /cmd payload. action is None (nothing to do: ping, or an error),
    # "report", "reboot", or "set" after the keys were applied to cfg in memory (the caller saves
    # it). A bad payload or key changes nothing.
    try:
        cid, name, args = parse_cmd(payload)
    except CmdError as e:
        return reply(e.cmd_id, False, error=e.message), None
    if name == "set":
        from m2m import config

        trial = {}
        for dotted, value in args.items():
            section = dotted.partition(".")[0]
            if section not in trial:
                trial[section] = dict(cfg.get(section) or {})
            try:
                config.set_key(trial, dotted, value)
            except (config.ConfigError, KeyError) as e:
                msg = str(e) if isinstance(e, config.ConfigError) else "unknown config key %s" % dotted
                return reply(cid, False, error=msg), None
        dev = (trial.get("device") or cfg["device"])["id"]
        try:  # a prefix or device id that makes no topic would cut the device off: refused
            topic((trial.get("mqtt") or cfg["mqtt"])["prefix"], "x" if dev is None else dev, CMD)
        except ValueError as e:
            return reply(cid, False, error=str(e)), None
        for section, keys in trial.items():
            cfg[section] = keys
        return reply(cid, True, set=sorted(args)), "set"
    if name == "ping":
        return reply(cid, True, pong=True), None
    if name in EXTRA:
        try:
            fields = EXTRA[name](args) or {}
        except (ValueError, TypeError, KeyError) as e:
            return reply(cid, False, error=str(e) or repr(e)), None
        return reply(cid, True, **fields), None
    return reply(cid, True), name

# /cmd handling (README.md "MQTT contract"): m2m.report.contract.handle_cmd loads this module for
# one command and drops it again. Pure functions, no I/O; also runs under CPython.
import json

from m2m.report.contract import CMD, EXTRA, _SEP, topic

# here, not in m2m.report.contract, so that their names are interned only once a command comes
MAX_CMD = 512  # bytes of a /cmd payload
MAX_ID = 64  # characters of a command id
COMMANDS = ("ping", "report", "set", "reboot")


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


def handle(payload, cfg):
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

# The device's configuration: /config.json (written by `m2mkit provision`) over the defaults below.
# One schema, enforced here on the device and imported by the host tools (this file also runs under
# CPython), so that a key the device would refuse is refused at provisioning too.
#
# SCHEMA: section -> key -> (type, default, check). type is one of int, float, str, bool, list, dict
# (float accepts int; None as default means "not set" and is always accepted). check is None, a tuple
# of allowed values, a (min, max) pair of numbers for int / float, or a function that returns what is
# wrong with a value (None when it is fine).
import json


def _endpoints(v):
    # allow.hosts: "host:port" or "host:*" entries (m2m.net.allow reads them the same way)
    for e in v:
        host, sep, port = (e if type(e) is str else "").rpartition(":")
        if not sep or not host or not (port == "*" or (port.isdigit() and 0 < int(port) < 65536)):
            return 'each entry must be "host:port" or "host:*" (port 1-65535), not %r' % (e,)
    return None


def _hex(v):
    try:
        if v and len(v) % 2 == 0:
            int(v, 16)
            return None
    except ValueError:
        pass
    return "must be an even number of hex digits, not %r" % (v,)


def _meters(v):
    # meter.meters: the shape m2m.meter needs (it checks the rest when it starts)
    for e in v:
        if type(e) is not dict or type(e.get("name")) is not str or e.get("type") not in ("pulses", "hours", "integral"):
            return 'each meter must be {"name": ..., "type": "pulses" | "hours" | "integral", ...}, not %r' % (e,)
    return None


def _rats(v):
    for r in v:
        if r not in ("lte-m", "nb-iot", "gsm"):
            return 'each RAT is "lte-m", "nb-iot" or "gsm" (with net.gsm), not %r' % (r,)


def _profiles(v):
    for p in v:
        if type(p) is not dict:
            return "each profile is an object with apn, operator, rat, sim_slot, iccid, not %r" % (p,)
        for k in p:
            if k not in ("apn", "operator", "rat", "sim_slot", "iccid"):
                return "profile key %r is not one of apn, operator, rat, sim_slot, iccid (eSIM)" % (k,)
        if type(p.get("rat") or []) is not list:
            return "a profile's rat is a list"
        why = _rats(p.get("rat") or ())
        if why:
            return why
        if p.get("sim_slot") not in (None, 0, 1):
            return ("a profile's sim_slot is 0 or 1 (BG95 / BG96 AT+QDSIM; SIMCom and Sequans modems "
                    "have one SIM and ignore it), not %r" % (p["sim_slot"],))


SCHEMA = {
    "device": {
        # the name the device reports under (MQTT topic level, LwM2M endpoint)
        "id": (str, None, None),
        "autorun": (bool, False, None),  # main.py starts the supervisor (m2m.supervisor) at boot
        "watchdog_s": (int, 120, (0, 3600)),  # the supervisor's hardware watchdog; 0: none
    },
    # ---- network and SIM (m2m.net) ----
    "net": {
        "apn": (str, None, None),
        "apn_user": (str, "", None),
        "apn_password": (str, "", None),
        "rat": (list, ["lte-m", "nb-iot"], _rats),
        # README "Network" documents each key below
        "gsm": (bool, False, None),  # "gsm" in a rat list is used only when this allows it
        "bands": (list, None, None),  # LTE band numbers for LTE-M and NB-IoT; None: the modem's own
        "operator": (str, None, None),  # a PLMN ("26201") for manual selection; None: automatic
        "operators": (list, None, None),  # ranked allowlist of PLMNs tried in order (operator unset)
        "profiles": (list, None, _profiles),  # fallback profiles: [{"apn", "operator", "rat", "sim_slot"}]
        "sim_slot": (int, None, (0, 1)),  # the SIM slot of the base profile (BG95 / BG96 only)
        "profile_after_s": (int, 600, (60, 86400)),  # no registration this long: next profile
        "reg_timeout_s": (int, 180, (10, 3600)),  # registration wait before recovery starts
        "recovery_max_s": (int, 900, (60, 900)),  # longest wait between recovery steps (15 min)
        "check_s": (int, 60, (5, 3600)),  # attached: registration / signal check period
        "psm_tau_s": (int, None, (60, 35712000)),  # PSM: requested T3412 (periodic TAU)
        "psm_active_s": (int, None, (0, 11160)),  # PSM: requested T3324 (active time)
        "edrx_s": (float, None, (5.12, 10485.76)),  # eDRX: requested cycle
        "modem_sleep": (bool, False, None),  # the modem's own UART sleep (AT+CSCLK / AT+QSCLK)
        "roam_days_limit": (int, 0, (0, 3650)),  # days on visited networks before the policy; 0 off
        "roam_policy": (str, "warn", ("warn", "next_profile")),
    },
    # SIM, data usage and endpoint allowlist (m2m.net.sim / usage / allow; README "SIM management")
    "sim": {
        "pin": (str, None, None),  # entered only when the card has all 3 tries left
        "bind_iccid": (str, None, None),  # a card with another ICCID: tamper alarm, no telemetry
        "bind_imei": (str, None, None),  # the same for the modem's IMEI
        "ready_ms": (int, 10000, (0, 120000)),  # how long the SIM may stay busy after the PIN
    },
    # eSIM profiles on an eUICC (m2m.net.esim, imported only when enabled; README "eSIM")
    "esim": {
        "enabled": (bool, False, None),  # read the eUICC, switch profiles, follow network swaps
        "eid": (str, None, None),  # bind to this EID: another eUICC raises the tamper alarm
        "iccids": (list, None, None),  # the profiles the device may run on; another is tamper
        "switch_s": (int, 300, (30, 3600)),  # a new profile not registered by then: switch back
    },
    "usage": {
        "billing_day": (int, 1, (1, 28)),  # day of the month the billing month starts (UTC)
        "soft_cap_kb": (int, None, (1, 2 ** 30)),  # per billing month: alarms and a daily summary only
        "hard_cap_kb": (int, None, (1, 2 ** 30)),  # per billing month: alarms only
        "save_kb": (int, 64, (1, 1048576)),  # write counters to flash after this many KB ...
        "save_min": (int, 60, (1, 1440)),  # ... or this many minutes of uncounted traffic
    },
    "allow": {
        "hosts": (list, None, _endpoints),  # ["host:port" or "host:*", ...]; None allows every endpoint
    },
    # ---- sensing (m2m.sense; README "Sensing") ----
    "sense": {
        "sensors": (list, [], None),  # [{"type": "bme280", "id": ..., "interval_s": ..., ...}, ...]
        "battery": (bool, True, None),  # read the board's battery (ADC or PMU) when it has one
        "interval_s": (int, 60, (1, 86400)),  # default per-sensor read interval
        "deadband": (float, 0.0, (0, 1e9)),  # default: report a change larger than this ...
        "max_interval_s": (int, 900, (1, 604800)),  # ... or at the latest after this long
        "flush_s": (int, 3600, (10, 86400)),  # pulse counts to flash at least this often
    },
    # ---- reporting (m2m.report) ----
    "mqtt": {
        "broker": (str, None, None),  # mqtt://HOST:PORT, or mqtts://HOST:PORT (TLS done by the modem)
        "prefix": (str, "m2mkit", None),  # topics <prefix>/<device.id>/... (README "MQTT contract")
        "user": (str, None, None),
        "password": (str, None, None),
        "ca": (str, None, None),  # CA certificate file on the device for mqtts (PEM)
        # mqtts client certificate and its key (PEM files on the device; both or neither, with ca):
        # m2m.report.tlsconf; `m2mkit provision --cert` sets them
        "cert": (str, "", None),
        "key": (str, "", None),
        "keepalive": (int, 300, (30, 3600)),  # seconds; PINGREQ traffic on a kept connection
        "batch": (int, 8, (1, 32)),  # outbox records per telemetry message
        "ha_discovery": (bool, False, None),  # announce the readings to Home Assistant
        "ha_prefix": (str, "homeassistant", None),  # Home Assistant's discovery prefix
        "units": (str, "status", ("status", "each")),  # readings' units: once in /status, or in each record
    },
    # the durable outbox's write-back (m2m.outbox; README "Durable outbox")
    "outbox": {
        "sync_every": (int, 1, (1, 64)),  # telemetry synced every N records (1: each); alarms at once
        "sync_s": (int, 60, (1, 3600)),  # with N > 1: synced once the oldest unsynced one is this old
    },
    # ---- usage metering (m2m.meter, m2m.usagerec; README "Usage metering") ----
    "meter": {
        "meters": (list, [], _meters),  # [{"name", "type": pulses|hours|integral, "pin" | "reading", ...}]
        "interval_s": (int, 3600, (60, 2678400)),  # a usage record per meter at each multiple (UTC)
        "save_n": (int, 1, (1, 100000)),  # pulse counts to flash after this many pulses
        "save_s": (int, 60, (1, 86400)),  # running time / integral counters to flash this often
        "key_file": (str, "/certs/usage.key", None),  # the usage signing key (hex; m2mkit provision)
        "state": (str, "/meter.json", None),  # the record chain's head and the live counters
    },
    # ---- replenishment orders (m2m.orders; README "Orders and the commerce service") ----
    "orders": {
        "rules": (list, [], None),  # [{"item", "reading" + "below"/"above" + "rearm" | "meter" + "every", "qty"}]
        "check_s": (int, 60, (1, 86400)),  # how often the rules look at their level or meter
        "repeat_s": (int, 900, (10, 86400)),  # an unconfirmed order's request is sent again this often
        "state": (str, "/orders.json", None),  # each rule's need number and its order's status
    },
    # ---- credentials written by `m2mkit provision` / `m2mkit image fleet` (README "Host tools") ----
    "lwm2m": {
        "psk_identity": (str, None, None),  # DTLS PSK identity (the device id unless given)
        "psk_key": (str, None, _hex),  # DTLS PSK key, hex
        # who ends a coaps:// server's DTLS: "device" (MicroPython's tls) or "modem" (SIM7080G)
        "dtls": (str, "device", ("device", "modem")),
        # the LwM2M client (m2m.lwm2m), README "LwM2M client (device)"; off unless server or
        # bootstrap is set
        "server": (str, None, None),  # coap://HOST:PORT or coaps://HOST:PORT (DTLS-PSK)
        "bootstrap": (str, None, None),  # a bootstrap server's URI: bootstrap first
        "endpoint": (str, None, None),  # endpoint name; None: device.id
        "lifetime_s": (int, 86400, (30, 31536000)),
        "queue_mode": (bool, False, None),  # sleep between exchanges (binding UQ)
        "awake_s": (int, 93, (1, 3600)),  # queue mode: listen this long after the last exchange
        "pmin": (int, 0, (0, 86400)),  # default minimum / maximum notification period
        "pmax": (int, 0, (0, 86400)),
        "send": (bool, False, None),  # telemetry from the outbox goes by Send (POST /dp)
        # a Send carries its readings' time only when the oldest is this old (s); 0: always
        "send_time_after_s": (int, 5, (0, 3600)),
        "fw_file": (str, "/fw.bin", None),  # where a firmware package is pulled to
    },
}


class ConfigError(ValueError):
    pass


# On the device the table is dropped after every use (validate, set_key, save read it again from this
# file): about 6 KB of a 64-bit heap that no caller keeps. The host tools (CPython) keep it.
_released = __import__("sys").implementation.name == "micropython"


def release():
    # Drop SCHEMA (its dicts and tuples: about 6 KB of a 64-bit heap) once the device's config is
    # validated; validate / set_key / save read it again from this file and drop it afterwards.
    global SCHEMA, _released
    SCHEMA = None
    _released = True


def schema():
    # SCHEMA, executing this file again (as a module nobody keeps) when release() dropped it. This
    # module may itself have left sys.modules (supervisor.start() drops it) while a caller still
    # holds it: then the copy leaves again too, and the module stays out
    global SCHEMA
    if SCHEMA is None:
        import sys

        me = sys.modules.pop(__name__, None)
        try:
            SCHEMA = __import__(__name__, None, None, ("SCHEMA",)).SCHEMA
        finally:
            pkg, _, attr = __name__.rpartition(".")
            pkg = sys.modules.get(pkg)
            if me is None:
                sys.modules.pop(__name__, None)
                if pkg is not None and attr in pkg.__dict__:
                    delattr(pkg, attr)
            else:
                sys.modules[__name__] = me
                if pkg is not None:
                    setattr(pkg, attr, me)
    return SCHEMA


def _done():
    global SCHEMA
    if _released:
        SCHEMA = None


def _check(section, key, value):
    S = schema()
    try:
        typ, _, check = S[section][key]
    except KeyError:
        if section not in S:
            raise ConfigError("unknown config section %r (known: %s)" % (section, ", ".join(sorted(S))))
        raise ConfigError("unknown config key %s.%s (known in %s: %s)"
                          % (section, key, section, ", ".join(sorted(S[section]))))
    if value is None:
        return value
    if typ is float and type(value) is int:
        value = float(value)
    if type(value) is not typ or (typ is int and type(value) is bool):
        raise ConfigError("config key %s.%s must be %s, not %r" % (section, key, typ.__name__, value))
    if check is not None:
        if callable(check):  # a function returning what is wrong with the value, or None
            why = check(value)
            if why:
                raise ConfigError("config key %s.%s: %s" % (section, key, why))
        elif type(check) is tuple and len(check) == 2 and typ in (int, float) and type(check[0]) in (int, float):
            if not check[0] <= value <= check[1]:
                raise ConfigError("config key %s.%s must be between %s and %s, not %r"
                                  % (section, key, check[0], check[1], value))
        elif value not in check:
            raise ConfigError("config key %s.%s must be one of %s, not %r"
                              % (section, key, ", ".join(repr(c) for c in check), value))
    return value


def validate(cfg):
    # The checked config with every default filled in; ConfigError names the first bad key.
    if type(cfg) is not dict:
        raise ConfigError("the config must be a JSON object of sections")
    S = schema()
    try:
        out = {}
        for section, keys in S.items():
            given = cfg.get(section) or {}
            if type(given) is not dict:
                raise ConfigError("config section %r must be an object" % section)
            out[section] = {k: spec[1] for k, spec in keys.items()}
        for section, given in cfg.items():
            if section not in S:
                _check(section, "", None)
            for key, value in (given or {}).items():
                out[section][key] = _check(section, key, value)
        return out
    finally:
        _done()


def set_key(cfg, dotted, value):
    # Change one key ("mqtt.prefix") of a validated config in place; ConfigError leaves it unchanged.
    section, _, key = dotted.partition(".")
    try:
        cfg[section][key] = _check(section, key, value)
    finally:
        _done()


_cfg = None


def load(path="/config.json"):
    # The device's validated config (cached). A missing file gives the defaults; a broken one raises
    # ConfigError saying which key is wrong, so that the device reports it instead of guessing.
    global _cfg
    if _cfg is None:
        try:
            with open(path) as f:
                raw = json.load(f)
        except OSError:
            raw = {}
        except ValueError as e:
            raise ConfigError("%s is not valid JSON (%s): fix it or provision the device again" % (path, e))
        _cfg = validate(raw)
        release()  # the device keeps the validated dict, not the table (about 6 KB, unix port)
    return _cfg


def save(cfg, path="/config.json"):
    # Write only what differs from the defaults, through a temporary file so a power cut never
    # leaves half a config.
    global _cfg
    small = {}
    for section, keys in schema().items():
        d = {k: v for k, v in cfg[section].items() if v != keys[k][1]}
        if d:
            small[section] = d
    _done()
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(small, f)
    import os

    os.rename(tmp, path)
    _cfg = cfg

"""SenML (RFC 8428) as a receiver of m2mkit telemetry sees it: `resolve(payload)` checks a JSON pack
against the RFC's rules and returns its resolved records; `groups(payload)` splits it at the
outbox sequence numbers (README "MQTT contract"); `Dedup` drops groups already seen, as receivers must.
`Units` keeps the units the devices' retained `/status` messages carry (mqtt.units "status": the
telemetry records leave `u` out), and the functions above join them to records without a unit.
"""

import json
import math

# RFC 8428 4.2 / 4.3: the JSON type of each label
_NUM = (int, float)
TYPES = {"bn": str, "bt": _NUM, "bu": str, "bv": _NUM, "bs": _NUM, "bver": int, "n": str, "u": str,
         "v": _NUM, "vs": str, "vb": bool, "vd": str, "s": _NUM, "t": _NUM, "ut": _NUM}
_VALUES = ("v", "vs", "vb", "vd")


class SenMLError(ValueError):
    pass


def _name_ok(name):
    # RFC 8428 4.5.1: A-Z a-z 0-9 first, then those and - : . / _
    if not name or not (name[0].isascii() and name[0].isalnum()):
        return False
    return all(c.isascii() and (c.isalnum() or c in "-:./_") for c in name)


def resolve(payload, units=None):
    """[(name, value, unit, time)] of a SenML JSON pack, base values applied; SenMLError names the
    first rule broken. `units` ({resolved name: unit}, e.g. `Units().names`) gives the unit of a
    record with neither `u` nor a base unit (RFC 8428 4.5.2: the application context gives it)."""
    try:
        pack = json.loads(payload)
    except (ValueError, UnicodeError) as e:
        raise SenMLError(f"not JSON: {e}") from None
    if not isinstance(pack, list) or not pack:
        raise SenMLError("a SenML pack is a non-empty JSON array")
    bn, bt, bu = "", 0, ""
    out = []
    for i, rec in enumerate(pack):
        if not isinstance(rec, dict):
            raise SenMLError(f"record {i} is not an object")
        for k, v in rec.items():
            if k.endswith("_"):
                raise SenMLError(f"record {i}: must-understand label {k!r}")
            if k not in TYPES:
                raise SenMLError(f"record {i}: unknown label {k!r}")
            want = TYPES[k]
            if not isinstance(v, want) or (want is not bool and isinstance(v, bool)):
                raise SenMLError(f"record {i}: {k} has the wrong type ({v!r})")
            if isinstance(v, float) and not math.isfinite(v):
                raise SenMLError(f"record {i}: {k} is not finite")
        bn = rec.get("bn", bn)
        bt = rec.get("bt", bt)
        bu = rec.get("bu", bu)
        name = bn + rec.get("n", "")
        if not _name_ok(name):
            raise SenMLError(f"record {i}: bad name {name!r}")
        values = [k for k in _VALUES if k in rec]
        if len(values) > 1 or (not values and "s" not in rec):
            raise SenMLError(f"record {i}: needs exactly one of v, vs, vb, vd (or a sum)")
        value = rec[values[0]] if values else rec["s"]
        unit = rec.get("u", bu)
        if not unit and "u" not in rec and units:
            unit = units.get(name, "")
        out.append((name, value, unit, bt + rec.get("t", 0)))
    return out


def groups(payload, units=None):
    """[(base name, seq, [(name, value, unit, time)])]: m2mkit telemetry split at its sequence numbers,
    the records named by the base name alone (an older firmware's records named `seq` count too);
    names returned without the base name."""
    out = []
    for name, value, unit, t in resolve(payload, units):
        base, _, short = name.rpartition(":")
        if short in ("", "seq"):
            out.append((base + ":", value, []))
        elif not out:
            raise SenMLError("telemetry must start with the outbox sequence number (a record without n)")
        else:
            out[-1][2].append((short, value, unit, t))
    return out


class Dedup:
    """Receivers drop a group whose (base name, seq) they have seen: `new(payload)` returns only the
    groups not seen before."""

    def __init__(self, units=None):
        self.seen = set()
        self.duplicates = 0
        self.units = units  # a Units: its names joined to records without a unit

    def new(self, payload):
        fresh = []
        for bn, seq, readings in groups(payload, self.units.names if self.units is not None else None):
            if (bn, seq) in self.seen:
                self.duplicates += 1
                continue
            self.seen.add((bn, seq))
            fresh.append((bn, seq, readings))
        return fresh


def status(payload):
    """(state, {name: unit}) of a `/status` payload: plain `online` / `offline`, or the JSON object
    `{"state": "online", "units": {...}}` a device with mqtt.units "status" publishes."""
    text = bytes(payload).decode("utf-8", "replace").strip()
    if not text.startswith("{"):
        return text, {}
    try:
        d = json.loads(text)
    except ValueError as e:
        raise SenMLError(f"status is not JSON: {e}") from None
    units = d.get("units", {}) if isinstance(d, dict) else None
    if not isinstance(d, dict) or not isinstance(d.get("state"), str) or not isinstance(units, dict) \
            or not all(isinstance(u, str) for u in units.values()):
        raise SenMLError(f'status: want {{"state": "online", "units": {{name: unit}}}}, not {text[:80]!r}')
    return d["state"], units


class Units:
    """The units each device's retained status carries, joined by name to its telemetry:
    `feed(topic, payload)` takes a `<prefix>/<id>/status` message (other topics are ignored) and
    returns its state; `names` is {"<id>:<name>": unit}, what `resolve` / `groups` take. A unit
    once seen stays (the last will `offline` carries none)."""

    def __init__(self):
        self.names = {}

    def feed(self, topic, payload):
        parts = topic.rsplit("/", 2)
        if len(parts) < 3 or parts[2] != "status":
            return None
        state, units = status(payload)
        for name, unit in units.items():
            self.names[f"{parts[1]}:{name}"] = unit
        return state

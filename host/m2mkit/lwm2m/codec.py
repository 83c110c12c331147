"""LwM2M payloads as the host server reads and writes them: TLV (OMA-TS-LightweightM2M_Core-V1_1
§7.4.3), SenML JSON and SenML CBOR with the LwM2M additions (§7.4.4, §7.4.5; RFC 8428 §4, §6),
plain text, opaque and the CoRE Link Format of Register / Discover (RFC 6690 §2).

Written from the specifications, independently of the firmware's coder. Decoders return
`{path: value}` with paths as strings ("/3/0/0"); bad input raises `CodecError` (a ValueError) whose
message says what was wrong.
"""

import base64
import json
import math
import struct

import cbor2

# CoAP Content-Formats (IANA registry; TS 1.1 §7.4)
TEXT, LINK, OPAQUE, CBOR, SENML_JSON, SENML_CBOR, TLV, LWM2M_JSON = 0, 40, 42, 60, 110, 112, 11542, 11543
FORMATS = {"text": TEXT, "opaque": OPAQUE, "tlv": TLV, "json": SENML_JSON, "cbor": SENML_CBOR, "link": LINK}
NAMES = {v: k for k, v in FORMATS.items()}


class CodecError(ValueError):
    pass


def parse_path(text):
    """'/3/0/1' -> (3, 0, 1); '/' -> (); CodecError for anything else."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise CodecError(f"path {text!r}: give an LwM2M path like /3/0 or /3303/0/5700")
    parts = [p for p in text.split("/")[1:] if p != ""]
    if len(parts) > 4 or not all(p.isdigit() and int(p) <= 65535 for p in parts):
        raise CodecError(f"path {text!r}: up to four numbers 0-65535 separated by /, e.g. /3/0/0")
    return tuple(int(p) for p in parts)


def path_str(path):
    return "/" + "/".join(str(p) for p in path)


# --- Resource types (OMA LwM2M registry object definitions: OpenMobileAlliance/lwm2m-registry
# b62ffc2 0.xml, 1.xml, 3.xml, 4.xml, 5.xml, 7.xml, 3303.xml, 3304.xml, 3315.xml, each entry checked
# against its <Type> / <Operations>). TLV carries no type, so a read
# in TLV is shown through this table; unknown resources are shown as text when they are printable.
S, I, F, B, O, T, E, L, U = "string", "integer", "float", "boolean", "opaque", "time", "none", "objlnk", "unsigned"
_IPSO = {5700: F, 5701: S, 5601: F, 5602: F, 5603: F, 5604: F, 5605: E, 5518: T, 5750: S}
TYPES = {
    0: {0: S, 1: B, 2: I, 3: O, 4: O, 5: O, 10: I, 11: I, 12: I},
    1: {0: I, 1: I, 2: I, 3: I, 4: E, 5: I, 6: B, 7: S, 8: E},
    3: {0: S, 1: S, 2: S, 3: S, 4: E, 5: E, 6: I, 7: I, 8: I, 9: I, 10: I, 11: I, 12: E, 13: T, 14: S,
        15: S, 16: S, 17: S, 18: S, 19: S, 20: I, 21: I},
    4: {0: I, 1: I, 2: I, 3: I, 4: S, 5: S, 6: I, 7: S, 8: I, 9: I, 10: I},
    5: {0: O, 1: S, 2: E, 3: I, 5: I, 6: S, 7: S, 8: I, 9: I},
    7: {0: I, 1: I, 2: I, 3: I, 4: I, 5: I, 6: E, 7: E, 8: I},
    3303: _IPSO, 3304: _IPSO, 3315: _IPSO,
    # 3316.xml Voltage (5821 Current Calibration), 3300.xml Generic Sensor (5751 Sensor Type),
    # 3200.xml Digital Input (lwm2m-registry 125e5b1; no 5700 / 5701)
    3316: {**_IPSO, 5821: F}, 3300: {**_IPSO, 5751: S},
    3200: {5500: B, 5501: I, 5502: B, 5503: I, 5504: I, 5505: E, 5750: S, 5751: S, 5518: T, 6050: F},
}


def rtype(path):
    if len(path) >= 3:
        return TYPES.get(path[0], {}).get(path[2])
    return None


# --- TLV (TS 1.1 §7.4.3): type byte = identifier kind (bits 7-6), 16-bit identifier (bit 5),
# length field size (bits 4-3) or the length itself (bits 2-0)
OBJ_INST, RES_INST, MULTI, RES = 0, 1, 2, 3


def tlv_entries(data):
    """[(kind, id, bytes or [children])] of a TLV payload; CodecError if it does not parse."""
    data = bytes(data)
    out = []
    i = 0
    while i < len(data):
        t = data[i]
        kind = t >> 6
        i += 1
        idlen = 2 if t & 0x20 else 1
        lenlen = (t >> 3) & 3
        if i + idlen + lenlen > len(data):
            raise CodecError(f"TLV truncated in the header at byte {i - 1}")
        ident = int.from_bytes(data[i:i + idlen], "big")
        i += idlen
        if lenlen:
            n = int.from_bytes(data[i:i + lenlen], "big")
            i += lenlen
        else:
            n = t & 7
        if i + n > len(data):
            raise CodecError(f"TLV value of {n} bytes at byte {i} runs past the end ({len(data)} bytes)")
        value = data[i:i + n]
        i += n
        if kind in (OBJ_INST, MULTI):
            inner = tlv_entries(value)
            want = (RES, MULTI) if kind == OBJ_INST else (RES_INST,)
            if any(k not in want for k, _, _ in inner):
                raise CodecError(f"TLV {'object instance' if kind == OBJ_INST else 'multiple resource'} "
                                 f"{ident} holds an entry of the wrong kind")
            value = inner
        out.append((kind, ident, value))
    return out


def tlv_decode(data, base=(), types=True):
    """{path: value} of a TLV payload read at `base` (a path tuple); values typed by TYPES when
    `types`, else raw bytes."""
    out = {}

    def put(path, raw):
        out[path_str(path)] = value_of(raw, rtype(path)) if types else raw

    def walk(entries, where):
        for kind, ident, value in entries:
            if kind == OBJ_INST:
                walk(value, where[:1] + (ident,))
            elif kind == RES:
                put((where[:2] + (ident,)) if len(where) >= 2 else where + (ident,), value)
            elif kind == MULTI:
                p = (where[:2] + (ident,)) if len(where) >= 2 else where + (ident,)
                for _, ri, v in value:
                    put(p + (ri,), v)
            else:
                put(where[:3] + (ident,), value)

    walk(tlv_entries(data), tuple(base))
    return out


def value_of(raw, kind):
    """A TLV value's bytes as the type says (TS 1.1 §7.4.3 / Appendix C); None: guess."""
    if kind in (I, T):
        if len(raw) not in (1, 2, 4, 8):
            raise CodecError(f"TLV integer of {len(raw)} bytes (1, 2, 4 or 8 expected)")
        return int.from_bytes(raw, "big", signed=True)
    if kind == U:
        return int.from_bytes(raw, "big")
    if kind == F:
        if len(raw) == 4:
            return struct.unpack(">f", raw)[0]
        if len(raw) == 8:
            return struct.unpack(">d", raw)[0]
        raise CodecError(f"TLV float of {len(raw)} bytes (4 or 8 expected)")
    if kind == B:
        if raw not in (b"\x00", b"\x01"):
            raise CodecError(f"TLV boolean {raw.hex()} (00 or 01 expected)")
        return raw == b"\x01"
    if kind == L:
        if len(raw) != 4:
            raise CodecError("TLV objlnk of other than 4 bytes")
        return "%d:%d" % struct.unpack(">HH", raw)
    if kind == O:
        return bytes(raw)
    try:
        text = raw.decode()
    except UnicodeError:
        if kind == S:
            raise CodecError("TLV string that is not UTF-8") from None
        return bytes(raw)
    if kind == S or text.isprintable():
        return text
    return bytes(raw)


def tlv_value(value, kind=None):
    """The TLV value bytes of a Python value (int: shortest of 1/2/4/8 bytes, float: 8 bytes)."""
    if kind == F or (kind is None and isinstance(value, float)):
        f = float(value)
        return struct.pack(">f", f) if struct.unpack(">f", struct.pack(">f", f))[0] == f else struct.pack(">d", f)
    if isinstance(value, bool) or kind == B:
        return b"\x01" if value else b"\x00"
    if isinstance(value, int):
        for n in (1, 2, 4, 8):
            try:
                return value.to_bytes(n, "big", signed=True)
            except OverflowError:
                pass
        raise CodecError(f"integer {value} does not fit 8 bytes")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if kind == L:
        a, b = (int(x) for x in str(value).split(":"))
        return struct.pack(">HH", a, b)
    return str(value).encode()


def tlv_one(kind, ident, value):
    n = len(value)
    t = kind << 6 | (0x20 if ident > 255 else 0)
    if n < 8:
        head = bytes([t | n])
    elif n < 256:
        head = bytes([t | 0x08])
        n_bytes = n.to_bytes(1, "big")
    elif n < 65536:
        head = bytes([t | 0x10])
        n_bytes = n.to_bytes(2, "big")
    elif n < 1 << 24:
        head = bytes([t | 0x18])
        n_bytes = n.to_bytes(3, "big")
    else:
        raise CodecError("TLV value over 16 MB")
    return head + ident.to_bytes(2 if ident > 255 else 1, "big") + (n_bytes if n >= 8 else b"") + value


def tlv_encode(values, base):
    """TLV payload for a Write at `base` (path tuple) of {path: value}: resources of an object
    instance at top level for /o/i, object instances for /o, one resource for /o/i/r; base (o, None):
    the resources of one instance without its object instance TLV (a Create where the client picks)."""
    base = tuple(base)
    if len(base) == 2 and base[1] is None:
        base = base[:1]
        flat = True
    else:
        flat = False
    groups = {}  # instance -> resource -> value or {ri: value}
    for p, v in values.items():
        path = parse_path(p) if isinstance(p, str) else tuple(p)
        if path[:len(base)] != base or len(path) < 3:
            raise CodecError(f"{path_str(path)} is not a resource under {path_str(base)}")
        res = groups.setdefault(path[1], {})
        if len(path) == 4:
            res.setdefault(path[2], {})[path[3]] = v
        else:
            res[path[2]] = v

    def resource(o, rid, v):
        if isinstance(v, dict):
            inner = b"".join(tlv_one(RES_INST, ri, tlv_value(x, TYPES.get(o, {}).get(rid)))
                             for ri, x in sorted(v.items()))
            return tlv_one(MULTI, rid, inner)
        return tlv_one(RES, rid, tlv_value(v, TYPES.get(o, {}).get(rid)))

    def instance(o, res):
        return b"".join(resource(o, rid, v) for rid, v in sorted(res.items()))

    if len(base) == 1 and not flat:
        return b"".join(tlv_one(OBJ_INST, i, instance(base[0], r)) for i, r in sorted(groups.items()))
    return b"".join(instance(base[0], r) for _, r in sorted(groups.items()))


# --- SenML (RFC 8428): JSON labels §4, CBOR integer labels §6 Table 6; LwM2M adds "vlo" (objlnk)
CBOR_LABELS = {-1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs", 0: "n", 1: "u", 2: "v",
               3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd", "vlo": "vlo"}
CBOR_KEYS = {v: k for k, v in CBOR_LABELS.items()}
_NUM = (int, float)
_LABEL_TYPES = {"bn": str, "bt": _NUM, "bu": str, "bv": _NUM, "bs": _NUM, "bver": int, "n": str, "u": str,
                "v": _NUM, "vs": str, "vb": bool, "s": _NUM, "t": _NUM, "ut": _NUM, "vlo": str}


def _resolve(pack, what, vd):
    """[(name, value, time)] of decoded SenML records (RFC 8428 §4.6: bn + n, bt + t, bv + v)."""
    if not isinstance(pack, list):
        raise CodecError(f"{what}: a SenML pack is an array of records")
    bn, bt, bv = "", 0, 0
    out = []
    for i, rec in enumerate(pack):
        if not isinstance(rec, dict):
            raise CodecError(f"{what}: record {i} is not a map")
        for k, v in rec.items():
            if k == "vd":
                continue
            want = _LABEL_TYPES.get(k)
            if want is None:
                if isinstance(k, str) and k.endswith("_"):
                    raise CodecError(f"{what}: record {i} has must-understand label {k!r}")
                continue
            if want is not bool and isinstance(v, bool) or not isinstance(v, want):
                raise CodecError(f"{what}: record {i}: {k} has the wrong type ({type(v).__name__})")
        bn = rec.get("bn", bn)
        bt = rec.get("bt", bt)
        bv = rec.get("bv", bv)
        vals = [k for k in ("v", "vs", "vb", "vd", "vlo") if k in rec]
        if len(vals) > 1:
            raise CodecError(f"{what}: record {i} has more than one value ({', '.join(vals)})")
        name = bn + rec.get("n", "")
        if not vals:
            if "s" in rec or "bv" in rec:
                value = rec.get("s")
            else:
                continue  # a record of base fields only, or a name with no value (Read-Composite)
        elif vals[0] == "v":
            value = bv + rec["v"]
        elif vals[0] == "vd":
            value = vd(rec["vd"], i)
        else:
            value = rec[vals[0]]
        out.append((name, value, bt + rec.get("t", 0)))
    return out


def _vd_json(v, i):
    if not isinstance(v, str):
        raise CodecError(f"SenML JSON: record {i}: vd is not a string")
    try:
        return base64.b64decode(v.replace("-", "+").replace("_", "/") + "=" * (-len(v) % 4), validate=True)
    except ValueError:
        raise CodecError(f"SenML JSON: record {i}: vd is not base64url") from None


def _vd_cbor(v, i):
    if not isinstance(v, bytes):
        raise CodecError(f"SenML CBOR: record {i}: vd is not a byte string")
    return v


def senml_json_records(payload):
    try:
        pack = json.loads(payload)
    except (ValueError, UnicodeError) as e:
        raise CodecError(f"SenML JSON: not JSON ({e})") from None
    return _resolve(pack, "SenML JSON", _vd_json)


def senml_cbor_records(payload):
    try:
        pack = cbor2.loads(bytes(payload))
    except Exception as e:  # cbor2 raises its own CBORDecodeError and ValueError / TypeError kinds
        raise CodecError(f"SenML CBOR: not CBOR ({e})") from None
    if not isinstance(pack, list):
        raise CodecError("SenML CBOR: a SenML pack is an array of records")
    named = []
    for i, rec in enumerate(pack):
        if not isinstance(rec, dict):
            raise CodecError(f"SenML CBOR: record {i} is not a map")
        r = {}
        for k, v in rec.items():
            if k not in CBOR_LABELS:
                if isinstance(k, int) and k < -6 or isinstance(k, str) and k.endswith("_"):
                    raise CodecError(f"SenML CBOR: record {i} has unknown label {k!r}")
                continue
            r[CBOR_LABELS[k]] = v
        named.append(r)
    return _resolve(named, "SenML CBOR", _vd_cbor)


REL_TIME_LIMIT = 2 ** 28


def senml_absolute(records, now):
    """Records' times as absolute epoch seconds: RFC 8428 §4.5.3, "Values less than 268,435,456
    (2**28) represent time relative to the current time": a record without a time (0) was made
    "roughly now", a negative one that many seconds before; `now` is the receiver's time."""
    return [(name, value, t if t >= REL_TIME_LIMIT else now + t) for name, value, t in records]


def senml_to_values(records):
    return {name: value for name, value, _ in records}


def senml_encode(values, cbor=False):
    """A SenML pack of {path: value}, one record per resource with its full path as name."""
    pack = []
    for p, v in values.items():
        if isinstance(v, bool):
            key = "vb"
        elif isinstance(v, (int, float)):
            key = "v"
        elif isinstance(v, (bytes, bytearray)):
            key = "vd"
            v = bytes(v) if cbor else base64.urlsafe_b64encode(bytes(v)).decode().rstrip("=")
        else:
            key = "vs"
        pack.append({"n": p, key: v})
    if cbor:
        return cbor2.dumps([{CBOR_KEYS[k]: v for k, v in r.items()} for r in pack])
    return json.dumps(pack, separators=(",", ":")).encode()


# --- One entry point per direction


def decode(fmt, payload, base=()):
    """{path: value} (TLV, SenML) or the text / bytes (text, opaque) of a payload in format `fmt`."""
    if fmt == TLV:
        return tlv_decode(payload, base)
    if fmt == SENML_JSON:
        return senml_to_values(senml_json_records(payload))
    if fmt == SENML_CBOR:
        return senml_to_values(senml_cbor_records(payload))
    if fmt == TEXT or fmt is None:
        try:
            return bytes(payload).decode()
        except UnicodeError:
            raise CodecError("text/plain payload that is not UTF-8") from None
    if fmt == LINK:
        return parse_links(bytes(payload).decode(errors="replace"))
    return bytes(payload)


def encode(fmt, value, base):
    """The payload of `value` in format `fmt` for a Write at `base` (path tuple): a {path: value}
    for TLV / SenML, one value for text / opaque."""
    if fmt == TLV:
        if not isinstance(value, dict):
            value = {path_str(base): value}
        return tlv_encode(value, base)
    if fmt in (SENML_JSON, SENML_CBOR):
        if not isinstance(value, dict):
            value = {path_str(base): value}
        return senml_encode(value, cbor=fmt == SENML_CBOR)
    if fmt == OPAQUE:
        return bytes(value)
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value).encode()
    return str(value).encode()


def parse_links(text):
    """CoRE Link Format (RFC 6690 §2): [(uri, {attr: value or None})]; quoted values unquoted."""
    out = []
    for item in _split(text, ","):
        item = item.strip()
        if not item:
            continue
        if not item.startswith("<") or ">" not in item:
            raise CodecError(f"link {item[:40]!r}: a link is <uri> followed by ;attributes")
        uri, _, rest = item[1:].partition(">")
        attrs = {}
        for a in _split(rest, ";"):
            a = a.strip()
            if not a:
                continue
            k, eq, v = a.partition("=")
            if eq and len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            attrs[k] = v if eq else None
        out.append((uri, attrs))
    return out


def _split(text, sep):
    parts, cur, quoted = [], [], False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def show(value):
    """One-line text of a decoded payload for the log and the operator."""
    if isinstance(value, dict):
        return " ".join(f"{k}={_show1(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join("<%s>%s" % (u, "".join(f";{k}" + (f"={v}" if v is not None else "")
                                               for k, v in a.items())) for u, a in value)
    return _show1(value)


def _show1(v):
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v[:32]).hex() + ("..." if len(v) > 32 else "")
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)

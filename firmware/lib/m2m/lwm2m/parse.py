# What the server sends in, parsed against the object model: the values of a Write / Create
# (TLV, SenML JSON / CBOR, text, opaque; OMA core 7.4), applying them, and Discover's link format (OMA core 6.3.5 /
# 5.2.7.3). Loaded by m2m.lwm2m.model for the operation and dropped after it (heap). `self` is the
# Model.
import struct

from m2m import coap
from m2m.lwm2m import OPAQUE, SENML_CBOR, SENML_JSON, TEXT, TLV
from m2m.lwm2m.model import Err, parse_path


def from_bytes(t, b):
    n = len(b)
    if t == "s":
        return str(b, "utf-8")
    if t in "itu":
        if n not in (1, 2, 4, 8):
            raise Err(coap.BAD_REQUEST, "integer of %d bytes" % n)
        f = "bhxixxxq"[n - 1]
        return struct.unpack(">" + (f.upper() if t == "u" else f), b)[0]
    if t == "f":
        if n == 4:
            return struct.unpack(">f", b)[0]
        if n == 8:
            return struct.unpack(">d", b)[0]
        raise Err(coap.BAD_REQUEST, "float of %d bytes" % n)
    if t == "b":
        if n != 1 or b[0] > 1:
            raise Err(coap.BAD_REQUEST, "boolean")
        return b[0] == 1
    if t == "l":
        if n != 4:
            raise Err(coap.BAD_REQUEST, "objlnk")
        o, i = struct.unpack(">HH", b)
        return "%d:%d" % (o, i)
    return bytes(b)


def from_text(t, s):
    try:
        if t in "itu":
            return int(s)
        if t == "f":
            return float(s)
        if t == "b":
            if s not in ("0", "1"):
                raise ValueError
            return s == "1"
        if t == "l":
            o, i = s.split(":")
            return "%d:%d" % (int(o), int(i))
    except ValueError:
        raise Err(coap.BAD_REQUEST, "value %r" % s)
    return s


def check(t, v):
    # a value decoded from SenML, checked against the resource type
    ok = {"s": (str,), "i": (int,), "u": (int,), "t": (int,), "f": (int, float), "b": (bool,),
          "o": (bytes,), "l": (str,)}.get(t, ())
    if type(v) not in ok:
        raise Err(coap.BAD_REQUEST, "value type")
    return float(v) if t == "f" else v


def values_in(self, path, fmt, payload):
    # payload -> [(oid, iid, rid, riid or None, value)] (absolute), checked against the specs
    out = []
    if fmt == TLV:
        from m2m.lwm2m import tlv as _tlv

        try:
            items = _tlv.decode(payload)
        except ValueError:
            raise Err(coap.BAD_REQUEST, "TLV")
        _from_tlv(self, path, items, out)
    elif fmt in (SENML_JSON, SENML_CBOR):
        from m2m.lwm2m import senml

        try:
            recs = senml.decode(payload, fmt == SENML_CBOR)
        except (ValueError, TypeError, KeyError):
            raise Err(coap.BAD_REQUEST, "SenML")
        for name, v, _ in recs:
            p = parse_path(name)
            if len(p) < 3 or p[:len(path)] != path or v is None:
                raise Err(coap.BAD_REQUEST, "SenML name %s" % name)
            o = self.obj(p[0])
            t, _, _, _, m = o.spec(p[2])
            if m != (len(p) == 4):
                raise Err(coap.BAD_REQUEST, "SenML name %s" % name)
            out.append((p[0], p[1], p[2], p[3] if len(p) == 4 else None, check(t, v)))
    elif fmt in (TEXT, OPAQUE):
        if len(path) != 3:
            raise Err(coap.BAD_REQUEST, "text and opaque write one resource")
        t = self.obj(path[0]).spec(path[2])[0]
        if fmt == OPAQUE:
            if t != "o":
                raise Err(coap.UNSUPPORTED_CF)
            v = bytes(payload)
        else:
            if t == "o":
                raise Err(coap.UNSUPPORTED_CF)
            try:
                v = from_text(t, str(payload, "utf-8"))
            except UnicodeError:
                raise Err(coap.BAD_REQUEST)
        out.append((path[0], path[1], path[2], None, v))
    else:
        raise Err(coap.UNSUPPORTED_CF)
    if not out:
        raise Err(coap.BAD_REQUEST, "no values")
    return out


def _from_tlv(self, path, items, out):
    from m2m.lwm2m import tlv as _tlv

    o = self.obj(path[0])
    for kind, ident, val in items:
        if kind == _tlv.INSTANCE:
            if len(path) != 1:
                raise Err(coap.BAD_REQUEST, "TLV instance below an instance")
            _from_tlv(self, (path[0], ident), val, out)
            continue
        if len(path) == 1:  # resources straight under an object: instance 0 (Leshan reads it so)
            path = (path[0], 0)
        if len(path) == 3 and ident != path[2]:
            raise Err(coap.BAD_REQUEST, "TLV resource id")
        if kind == _tlv.RES_INSTANCE and len(path) != 3:
            raise Err(coap.BAD_REQUEST, "TLV resource instance")
        t, _, _, _, m = o.spec(ident if kind != _tlv.RES_INSTANCE else path[2])
        if kind == _tlv.RESOURCE:
            if m:
                raise Err(coap.BAD_REQUEST, "multiple resource as single")
            out.append((path[0], path[1], ident, None, from_bytes(t, val)))
        elif kind == _tlv.MULTIPLE:
            if not m:
                raise Err(coap.BAD_REQUEST, "single resource as multiple")
            if not val:
                out.append((path[0], path[1], ident, -1, None))  # an empty set
            for _, ri, b in val:
                out.append((path[0], path[1], ident, ri, from_bytes(t, b)))
        else:  # resource instances of path's resource
            if len(path) != 3 or not m:
                raise Err(coap.BAD_REQUEST, "TLV resource instance")
            out.append((path[0], path[1], path[2], ident, from_bytes(t, val)))


def write(self, path, vals, replace, bootstrap=False):
    # apply checked values; replace: the target's values not given are removed (OMA core
    # 6.3.3: Replace on an instance / multiple resource); partial update keeps them
    touched = []
    for oid, iid, rid, ri, v in vals:
        o = self.obj(oid)
        t, r, w, e, m = o.spec(rid)
        if not w and not bootstrap:
            raise Err(coap.NOT_ALLOWED, "/%d/%d/%d is not writable" % (oid, iid, rid))
        if iid not in o.inst:
            if not bootstrap and len(path) > 1:
                raise Err(coap.NOT_FOUND)
            o.inst[iid] = {}
    # checked all: now apply
    if replace and len(path) == 2 and path[1] in self.obj(path[0]).inst:
        o = self.obj(path[0])
        ins = o.inst[path[1]]
        for rid in list(ins):
            w = o.spec(rid)[2]
            if (w or bootstrap) and not callable(ins[rid]):
                del ins[rid]
    for oid, iid, rid, ri, v in vals:
        o = self.objs[oid]
        ins = o.inst[iid]
        if ri is None:
            ins[rid] = v
        else:
            cur = ins.get(rid)
            if not isinstance(cur, dict) or (replace and (oid, iid, rid) not in touched):
                cur = ins[rid] = {}
            if ri >= 0:
                cur[ri] = v
        if (oid, iid, rid) not in touched:
            touched.append((oid, iid, rid))
    for oid, iid, rid in touched:
        cb = self.objs[oid].on_write
        if cb:
            cb(iid, rid)
    return touched


# Discover (OMA core 6.3.5 / 5.2.7.3): link format with attributes
def discover(self, path, attrs):
    # attrs: the client's Write-Attributes store (m2m.lwm2m.notify.Attrs), None when none written
    if attrs is None:
        attrs = _NoAttrs
    o = self.obj(path[0])
    parts = []
    iids = sorted(o.inst) if len(path) < 2 else [path[1]]
    for iid in iids:
        ins = o.inst.get(iid)
        if ins is None:
            raise Err(coap.NOT_FOUND)
        if len(path) < 3:
            parts.append("</%d/%d>%s" % (o.oid, iid, attrs.link((o.oid, iid))))
        for rid in sorted(ins) if len(path) < 3 else [path[2]]:
            if rid not in ins:
                raise Err(coap.NOT_FOUND)
            v = ins[rid]
            dim = ""
            if o.spec(rid)[4]:
                v = v() if callable(v) else v
                dim = ";dim=%d" % len(v or ())
            parts.append("</%d/%d/%d>%s%s" % (o.oid, iid, rid, dim, attrs.link((o.oid, iid, rid))))
    if len(path) == 1:
        parts.insert(0, "</%d>%s" % (o.oid, attrs.link((o.oid,))))
    return ",".join(parts).encode()


class _NoAttrs:
    @staticmethod
    def link(path):
        return ""

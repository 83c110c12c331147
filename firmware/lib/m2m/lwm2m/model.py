# The object model: objects with a resource table, instances holding values (or callables that
# read them), and the conversions of a value to and from each content format.
# A resource spec is a short string: its type (s string, i integer, u unsigned, f float, b boolean,
# o opaque, t time, l objlnk "oid:iid"), its operations (R, W, E) and "*" when multiple-instance:
# "sR", "iRW", "iR*", "E". OMA core 7.4.3 / appendix C give the TLV forms of each type.
import struct

from m2m import coap
from m2m.loop import drop
from m2m.lwm2m import OPAQUE, SENML_CBOR, SENML_JSON, TEXT, TLV


class Err(Exception):
    # an operation's CoAP error code and a short reason
    def __init__(self, code, why=""):
        super().__init__(why)
        self.code = code


def _int_bytes(v, signed):
    for n, f in ((1, "b"), (2, "h"), (4, "i"), (8, "q")):
        lo = -(1 << (8 * n - 1)) if signed else 0
        hi = (1 << (8 * n - 1)) - 1 if signed else (1 << (8 * n)) - 1
        if lo <= v <= hi:
            return struct.pack(">" + (f if signed else f.upper()), v)
    raise Err(coap.BAD_REQUEST, "integer out of range")


def to_bytes(t, v):
    # a value as a TLV value (OMA core appendix C)
    if t == "s":
        return v.encode()
    if t in "it":
        return _int_bytes(int(v), True)
    if t == "u":
        return _int_bytes(int(v), False)
    if t == "f":
        f = struct.pack(">f", v)
        return f if struct.unpack(">f", f)[0] == v else struct.pack(">d", v)
    if t == "b":
        return b"\x01" if v else b"\x00"
    if t == "l":
        o, i = v.split(":")
        return struct.pack(">HH", int(o), int(i))
    return bytes(v)


def to_text(t, v):
    if t == "b":
        return "1" if v else "0"
    if t == "o":
        raise Err(coap.NOT_ACCEPTABLE, "opaque: ask for 42")
    return str(v)


def _senml_rec(t, v):
    k = "vs" if t == "s" else "vb" if t == "b" else "vd" if t == "o" else "vlo" if t == "l" else "v"
    return k, v


def parse_spec(s):
    # -> (type or None, readable, writable, executable, multiple)
    return (s[0] if s[0].islower() else None, "R" in s, "W" in s, "E" in s, "*" in s)


class Obj:
    def __init__(self, oid, res, multi=False, creatable=False):
        self.oid = oid
        self.res = res  # rid -> spec
        self.multi = multi
        self.creatable = creatable
        self.inst = {}  # iid -> {rid: value, or callable; multiple: {riid: value}}
        self.on_write = None  # on_write(iid, rid): after a server wrote it

    def add(self, iid, values):
        self.inst[iid] = values
        return values

    def spec(self, rid):
        s = self.res.get(rid)
        if s is None:
            raise Err(coap.NOT_FOUND)
        return parse_spec(s)

    def value(self, iid, rid):
        v = self.inst[iid].get(rid)
        if callable(v):
            v = v()
        return v


class Model:
    def __init__(self):
        self.objs = {}

    def obj(self, oid):
        o = self.objs.get(oid)
        if o is None:
            raise Err(coap.NOT_FOUND)
        return o

    # ---- read ----
    def leaves(self, path, server=False):
        # [(oid, iid, rid, riid or None, type, value)] of readable resources under path
        o = self.obj(path[0])
        iids = sorted(o.inst) if len(path) < 2 else [path[1]]
        out = []
        for iid in iids:
            ins = o.inst.get(iid)
            if ins is None:
                raise Err(coap.NOT_FOUND)
            rids = sorted(ins) if len(path) < 3 else [path[2]]
            for rid in rids:
                if rid not in ins:
                    raise Err(coap.NOT_FOUND)
                t, r, w, e, m = o.spec(rid)
                if not r:
                    if len(path) >= 3:
                        raise Err(coap.NOT_ALLOWED)
                    continue
                v = o.value(iid, rid)
                if v is None:
                    if len(path) >= 3:
                        raise Err(coap.NOT_FOUND)
                    continue
                if m:
                    riids = sorted(v) if len(path) < 4 else [path[3]]
                    for ri in riids:
                        if ri not in v:
                            raise Err(coap.NOT_FOUND)
                        out.append((o.oid, iid, rid, ri, t, v[ri]))
                else:
                    if len(path) == 4:
                        raise Err(coap.NOT_FOUND)
                    out.append((o.oid, iid, rid, None, t, v))
        return out

    def read(self, path, fmt):
        lv = self.leaves(path)
        if fmt == TLV:
            return _tlv_of(path, lv)
        if fmt in (SENML_JSON, SENML_CBOR):
            return senml_of(path, lv, fmt == SENML_CBOR)
        if len(path) < 3 or len(lv) != 1 or (len(path) == 3 and lv[0][3] is not None):
            raise Err(coap.NOT_ACCEPTABLE, "text and opaque carry one value")
        t, v = lv[0][4], lv[0][5]
        if fmt == OPAQUE:
            if t != "o":
                raise Err(coap.NOT_ACCEPTABLE)
            return bytes(v)
        if fmt == TEXT:
            return to_text(t, v).encode()
        raise Err(coap.NOT_ACCEPTABLE)

    # ---- write and discover: m2m.lwm2m.parse, loaded for the operation and dropped after ----
    def values_in(self, path, fmt, payload):
        # payload -> [(oid, iid, rid, riid or None, value)] (absolute), checked against the specs
        return _parse("values_in", self, path, fmt, payload)

    def discover(self, path, attrs):
        return _parse("discover", self, path, attrs)

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

def _parse(fn, *a):
    from m2m.lwm2m import parse

    try:
        return getattr(parse, fn)(*a)
    finally:
        drop("m2m.lwm2m.parse")


def parse_path(s):
    # "/3/0/1" -> (3, 0, 1); ValueError unless 0-4 numeric levels below 65535
    p = tuple(int(x) for x in s.strip("/").split("/") if x != "") if s.strip("/") else ()
    if len(p) > 4 or any(x < 0 or x >= 65535 for x in p):
        raise ValueError("path")
    return p


def _tlv_of(path, lv):
    from m2m.lwm2m import tlv as _tlv  # loaded at the first TLV read

    enc = _tlv.enc
    # group leaves: instance -> resource -> [riid, value bytes]
    inst = []
    for oid, iid, rid, ri, t, v in lv:
        b = to_bytes(t, v)
        if not inst or inst[-1][0] != iid:
            inst.append((iid, []))
        rs = inst[-1][1]
        if ri is None:
            rs.append((rid, None, b))
        else:
            if not rs or rs[-1][0] != rid or rs[-1][1] is None:
                rs.append((rid, [], None))
            rs[-1][1].append(enc(_tlv.RES_INSTANCE, ri, b))
    out = bytearray()
    for iid, rs in inst:
        body = bytearray()
        for rid, multi, b in rs:
            if len(path) == 4:
                body += b"".join(multi)
            elif multi is not None:
                body += enc(_tlv.MULTIPLE, rid, b"".join(multi))
            else:
                body += enc(_tlv.RESOURCE, rid, b)
        if len(path) == 1:
            out += enc(_tlv.INSTANCE, iid, body)
        else:
            out += body
    return bytes(out)


def senml_of(path, lv, as_cbor, t_base=None):
    from m2m.lwm2m import senml

    recs = []
    bn = "/" + "/".join(str(x) for x in path) + ("/" if len(path) < 3 else "")
    for oid, iid, rid, ri, t, v in lv:
        full = (oid, iid, rid) if ri is None else (oid, iid, rid, ri)
        name = "/".join(str(x) for x in full[len(path):])
        if len(path) == 3 and ri is not None:
            name = "/" + name
        k, v = _senml_rec(t, v)
        r = {}
        if not recs:
            r["bn"] = bn
            if t_base is not None:
                r["bt"] = t_base
        if name:
            r["n"] = name
        r[k] = v
        recs.append(r)
    return senml.encode(recs, as_cbor)

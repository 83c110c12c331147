# The object model: objects with a resource table, instances holding values (or callables that
# read them), and Read. A value's forms in each content format are in tlv, senml and parse (Write,
# Discover), loaded when a read or write uses them (heap).
# A resource spec is a short string: its type (s string, i integer, u unsigned, f float, b boolean,
# o opaque, t time, l objlnk "oid:iid"), its operations (R, W, E) and "*" when multiple-instance:
# "sR", "iRW", "iR*", "E". OMA core 7.4.3 / appendix C give the TLV forms of each type.
from m2m import coap
from m2m.loop import drop
from m2m.lwm2m import OPAQUE, SENML_CBOR, SENML_JSON, TEXT, TLV


class Err(Exception):
    # an operation's CoAP error code and a short reason
    def __init__(self, code, why=""):
        super().__init__(why)
        self.code = code


def to_text(t, v):
    if t == "b":
        return "1" if v else "0"
    if t == "o":
        raise Err(coap.NOT_ACCEPTABLE, "opaque: ask for 42")
    return str(v)


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
            from m2m.lwm2m import tlv  # loaded at the first TLV read

            return tlv.of(path, lv)
        if fmt in (SENML_JSON, SENML_CBOR):
            from m2m.lwm2m import senml

            return senml.of(path, lv, fmt == SENML_CBOR)
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
        # apply checked values (OMA core 6.3.3: replace, or partial update)
        return _parse("write", self, path, vals, replace, bootstrap)


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

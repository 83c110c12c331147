# OMA TLV (OMA-TS-LightweightM2M_Core-V1_1 7.4.3): type byte (bits 7-6: 00 Object Instance,
# 01 Resource Instance, 10 Multiple Resource, 11 Resource with value; bit 5: 16-bit identifier;
# bits 4-3: length in 0 / 1 / 2 / 3 following bytes, else in bits 2-0), identifier, length, value.
# Loaded at the first TLV read or write (m2m.lwm2m.model, parse), with the values' TLV forms.
import struct

from micropython import const

from m2m import coap
from m2m.lwm2m.model import Err

INSTANCE = const(0)
RES_INSTANCE = const(1)
MULTIPLE = const(2)
RESOURCE = const(3)
_DEPTH = const(3)


def enc(kind, ident, value):
    n = len(value)
    t = kind << 6
    out = bytearray(1)
    if ident > 255:
        t |= 0x20
        out.append(ident >> 8)
    out.append(ident & 0xFF)
    if n < 8:
        t |= n
    elif n < 0x100:
        t |= 0x08
        out.append(n)
    elif n < 0x10000:
        t |= 0x10
        out += bytes((n >> 8, n & 0xFF))
    else:
        t |= 0x18
        out += bytes((n >> 16, (n >> 8) & 0xFF, n & 0xFF))
    out[0] = t
    out += value
    return bytes(out)


def decode(b, depth=0):
    # bytes -> [(kind, id, value)], value: bytes for 1 / 3, the nested list for 0 / 2; ValueError
    out = []
    i = 0
    n = len(b)
    while i < n:
        t = b[i]
        kind = t >> 6
        i += 1
        if t & 0x20:
            if i + 2 > n:
                raise ValueError("tlv id")
            ident = (b[i] << 8) | b[i + 1]
            i += 2
        else:
            if i >= n:
                raise ValueError("tlv id")
            ident = b[i]
            i += 1
        lt = (t >> 3) & 3
        if lt == 0:
            ln = t & 7
        else:
            if i + lt > n:
                raise ValueError("tlv length")
            ln = 0
            for _ in range(lt):
                ln = (ln << 8) | b[i]
                i += 1
        if i + ln > n:
            raise ValueError("tlv value")
        v = b[i:i + ln]
        i += ln
        if kind == INSTANCE or kind == MULTIPLE:
            if depth >= _DEPTH:
                raise ValueError("tlv nesting")
            v = decode(v, depth + 1)
            if kind == MULTIPLE:
                for c in v:
                    if c[0] != RES_INSTANCE:
                        raise ValueError("tlv: a multiple resource holds resource instances only")
        out.append((kind, ident, bytes(v) if not isinstance(v, list) else v))
    return out


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


def of(path, lv):
    # a read's leaves (m2m.lwm2m.model.Model.leaves) as TLV
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
            rs[-1][1].append(enc(RES_INSTANCE, ri, b))
    out = bytearray()
    for iid, rs in inst:
        body = bytearray()
        for rid, multi, b in rs:
            if len(path) == 4:
                body += b"".join(multi)
            elif multi is not None:
                body += enc(MULTIPLE, rid, b"".join(multi))
            else:
                body += enc(RESOURCE, rid, b)
        if len(path) == 1:
            out += enc(INSTANCE, iid, body)
        else:
            out += body
    return bytes(out)

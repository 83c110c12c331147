# A small CBOR encoder (RFC 8949) for SenML CBOR: unsigned / negative integers, byte and text
# strings, arrays, maps, floats (written in the shortest of half / single / double that keeps the
# value), false / true / null. The decoder is m2m.lwm2m.cbordec (a Send needs only this half).
import struct


def _head(out, major, n):
    m = major << 5
    if n < 24:
        out.append(m | n)
    elif n < 0x100:
        out.append(m | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(m | 25)
        out += struct.pack(">H", n)
    elif n < 0x100000000:
        out.append(m | 26)
        out += struct.pack(">I", n)
    else:
        out.append(m | 27)
        out += struct.pack(">Q", n)


def dumps(v, out=None):
    if out is None:
        out = bytearray()
    t = type(v)
    if v is None:
        out.append(0xF6)
    elif t is bool:
        out.append(0xF5 if v else 0xF4)
    elif t is int:
        if v >= 0:
            _head(out, 0, v)
        else:
            _head(out, 1, -1 - v)
    elif t is float:
        # the shortest form that keeps the value (RFC 8949 4.2.2): half, single, else double
        f = struct.pack(">f", v)
        if struct.unpack(">f", f)[0] == v or v != v:
            h = _to_half(struct.unpack(">I", f)[0])
            if h is None:
                out.append(0xFA)
                out += f
            else:
                out.append(0xF9)
                out += struct.pack(">H", h)
        else:
            out.append(0xFB)
            out += struct.pack(">d", v)
    elif t is str:
        b = v.encode()
        _head(out, 3, len(b))
        out += b
    elif t is bytes or t is bytearray or t is memoryview:
        _head(out, 2, len(v))
        out += v
    elif t is list or t is tuple:
        _head(out, 4, len(v))
        for x in v:
            dumps(x, out)
    elif t is dict:
        _head(out, 5, len(v))
        for k in v:
            dumps(k, out)
            dumps(v[k], out)
    else:
        raise TypeError("cbor: cannot encode %s" % t)
    return out


def _to_half(b):
    # float32 bits -> float16 bits when the value is exactly a half (zero, normal, inf, NaN)
    sign = (b >> 16) & 0x8000
    e = (b >> 23) & 0xFF
    m = b & 0x7FFFFF
    if e == 0xFF:
        return sign | 0x7C00 | (0x200 if m else 0)
    if e == 0 and m == 0:
        return sign
    if m & 0x1FFF or not 113 <= e <= 142:
        return None
    return sign | ((e - 112) << 10) | (m >> 13)

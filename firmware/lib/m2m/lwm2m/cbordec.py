# A small CBOR decoder (RFC 8949) for SenML CBOR and the kept bootstrap: unsigned / negative
# integers, byte and text strings, arrays, maps, half / single / double floats, false / true / null;
# tags are read and dropped. Indefinite-length arrays and maps are read, indefinite strings refused.
# Bounded: ValueError on anything malformed, truncated or nested deeper than 8. The encoder is
# m2m.lwm2m.cbor.
import struct

from micropython import const

_DEPTH = const(8)
_BREAK = object()


def _half(h):
    e = (h >> 10) & 0x1F
    f = h & 0x3FF
    if e == 0:
        v = f * 2.0 ** -24
    elif e == 31:
        v = float("inf") if f == 0 else float("nan")
    else:
        v = (1024 + f) * 2.0 ** (e - 25)
    return -v if h & 0x8000 else v


class _R:
    def __init__(self, b):
        self.b = b
        self.i = 0

    def take(self, n):
        i = self.i
        if n < 0 or i + n > len(self.b):
            raise ValueError("cbor: truncated")
        self.i = i + n
        return self.b[i:i + n]

    def item(self, depth=0):
        if depth > _DEPTH:
            raise ValueError("cbor: nested too deep")
        ib = self.take(1)[0]
        major = ib >> 5
        ai = ib & 31
        if major == 7:
            if ai == 20:
                return False
            if ai == 21:
                return True
            if ai == 22 or ai == 23:
                return None
            if ai == 25:
                return _half(struct.unpack(">H", self.take(2))[0])
            if ai == 26:
                return struct.unpack(">f", self.take(4))[0]
            if ai == 27:
                return struct.unpack(">d", self.take(8))[0]
            if ai == 31:
                return _BREAK
            raise ValueError("cbor: simple value %d" % ai)
        if ai < 24:
            n = ai
        elif ai < 28:
            n = 0
            for x in self.take(1 << (ai - 24)):
                n = (n << 8) | x
        elif ai == 31 and major in (4, 5):
            n = -1
        else:
            raise ValueError("cbor: additional info %d" % ai)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return bytes(self.take(n))
        if major == 3:
            try:
                return str(self.take(n), "utf-8")
            except UnicodeError:
                raise ValueError("cbor: text not utf-8")
        if major == 6:
            return self.item(depth + 1)
        if n > len(self.b) - self.i:
            raise ValueError("cbor: truncated")  # each element takes at least one byte
        if major == 4:
            out = []
            while n != 0:
                x = self.item(depth + 1)
                if x is _BREAK:
                    if n > 0:
                        raise ValueError("cbor: break")
                    break
                out.append(x)
                n -= 1
            return out
        d = {}
        while n != 0:
            k = self.item(depth + 1)
            if k is _BREAK:
                if n > 0:
                    raise ValueError("cbor: break")
                break
            if type(k) not in (int, str):
                raise ValueError("cbor: map key")
            v = self.item(depth + 1)
            if v is _BREAK:
                raise ValueError("cbor: break")
            d[k] = v
            n -= 1
        return d


def loads(b):
    r = _R(b)
    v = r.item()
    if v is _BREAK or r.i != len(b):
        raise ValueError("cbor: trailing bytes")
    return v

# BER-TLV (ISO/IEC 7816-4 5.2, ITU-T X.690 8.1) as GSMA SGP.22 uses it for the ES10 functions of an
# eUICC (issue #13): tags of 1 to 3 bytes (low tag number 0x1F in the first byte, then bytes with b8
# set while more follow), definite lengths only (short form < 0x80; long form 0x81-0x83). Strict:
# a truncated tag, length or value, the indefinite length 0x80, a length of more than 3 bytes, or a
# value that runs past its parent raises ValueError, so a malformed card answer is reported and
# never read as something else. Tags are ints (0xBF2D, 0x5A, 0x9F70).
#
#   enc(tag, value) -> bytes               one TLV
#   head(buf, off, end) -> (tag, vstart, vend)   the TLV at off (vend = where the next one starts)
#   each(buf, off, end) -> [(tag, vstart, vend)]  the TLVs one after another from off to end
#   find(buf, off, end, tag) -> (vstart, vend) or None
#   value(buf, tag) -> bytes or None       the value of the first top-level TLV with tag (whole buf)
#   constructed(tag) -> bool               b6 of the tag's first byte
from micropython import const

_MAXLEN = const(0xFFFFFF)


def _tag_bytes(tag):
    if tag < 0 or tag > 0xFFFFFF:
        raise ValueError("tag %X out of range" % tag)
    if tag > 0xFFFF:
        return bytes((tag >> 16, (tag >> 8) & 0xFF, tag & 0xFF))
    if tag > 0xFF:
        return bytes((tag >> 8, tag & 0xFF))
    return bytes((tag,))


def _len_bytes(n):
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    if n <= _MAXLEN:
        return bytes((0x83, n >> 16, (n >> 8) & 0xFF, n & 0xFF))
    raise ValueError("value of %d bytes too long" % n)


def enc(tag, value=b""):
    return _tag_bytes(tag) + _len_bytes(len(value)) + value


def constructed(tag):
    while tag > 0xFF:
        tag >>= 8
    return bool(tag & 0x20)


def head(buf, off=0, end=None):
    if end is None:
        end = len(buf)
    if off >= end:
        raise ValueError("TLV missing at %d" % off)
    b = buf[off]
    tag = b
    i = off + 1
    if b & 0x1F == 0x1F:  # subsequent tag bytes: b8 set while more follow (X.690 8.1.2.4)
        n = 0
        while True:
            if i >= end:
                raise ValueError("tag cut short at %d" % i)
            b = buf[i]
            tag = (tag << 8) | b
            i += 1
            n += 1
            if not b & 0x80:
                break
            if n >= 2:
                raise ValueError("tag longer than 3 bytes at %d" % off)
    if i >= end:
        raise ValueError("length missing at %d" % i)
    b = buf[i]
    i += 1
    if b < 0x80:
        n = b
    elif b == 0x80:
        raise ValueError("indefinite length at %d" % (i - 1))
    else:
        k = b & 0x7F
        if k > 3:
            raise ValueError("length of %d bytes at %d" % (k, i - 1))
        if i + k > end:
            raise ValueError("length cut short at %d" % i)
        n = 0
        for j in range(k):
            n = (n << 8) | buf[i + j]
        i += k
    if i + n > end:
        raise ValueError("value of tag %X needs %d bytes, %d left" % (tag, n, end - i))
    return tag, i, i + n


def each(buf, off=0, end=None):
    if end is None:
        end = len(buf)
    out = []
    while off < end:
        t = head(buf, off, end)
        out.append(t)
        off = t[2]
    return out


def find(buf, off, end, tag):
    while off < end:
        t, vs, ve = head(buf, off, end)
        if t == tag:
            return vs, ve
        off = ve
    return None


def value(buf, tag):
    r = find(buf, 0, len(buf), tag)
    return None if r is None else bytes(buf[r[0]:r[1]])

# Block-wise transfers (RFC 7959) for m2m.coap.Endpoint, loaded when an exchange uses them: the
# next piece of our request (Block1, after a 2.31 Continue) or of a response we pull (Block2), an
# upload the peer sends us in Block1 pieces, and an answer too large for one datagram cut into
# Block2 pieces (with Size2 on the first).
from m2m import hal
from m2m.coap import (BAD_OPTION, BLOCK1, BLOCK2, CONTINUE, INCOMPLETE, SIZE1, SIZE2, TOO_LARGE, Msg, block,
                      block_val, encode)


def _replace(m, num, value):
    m.opts = [o for o in m.opts if o[0] != num]
    m.add(num, value)


def _next(ep, o):
    # a follow-up request (next Block1 / Block2 piece) of the same exchange: new mid, same token
    o.msg.mid = ep.next_mid()
    o.data = encode(o.msg)
    o.tries = 0
    o.acked = False
    o.due = hal.ticks_add(hal.ticks_ms(), o.wait)
    ep._send(o.data)


def follow(ep, o, m):
    # a response m to our request o: True when the exchange goes on with the next piece
    if m.code == CONTINUE and o.body is not None:
        v = m.uint(BLOCK1)
        num = (v >> 4) if v is not None else 0
        size = min(o.bsize, 16 << (v & 7)) if v is not None else o.bsize
        num += 1
        start = num * size
        if start < len(o.body):
            more = start + size < len(o.body)
            _replace(o.msg, BLOCK1, block_val(num, more, size))
            o.msg.payload = o.body[start:start + size]
            _next(ep, o)
            return True
    v = m.uint(BLOCK2)
    if v is not None and o.on_block is not None and m.code < 0x60:
        try:
            num, more, size = block(v)
        except ValueError:
            more = False
        go = o.on_block(m)
        if more and go is not False:
            _replace(o.msg, BLOCK2, block_val(num + 1, False, size))
            o.msg.payload = b""
            _next(ep, o)
            return True
    return False


def upload(ep, m, b1, b2):
    # a request with Block1 / Block2: the answer to give before the handler (4.08, 4.13, 2.31), or
    # None to hand it m with the whole upload as its payload; ValueError (4.00) for a bad SZX
    if b2 is not None:
        block(b2)
    if b1 is None:
        return None
    num, more, size = block(b1)
    key = tuple(m.path())
    if num == 0:
        ep.b1 = (key, bytearray())
    if ep.b1 is None or ep.b1[0] != key or len(ep.b1[1]) != num * size:
        return Msg(0, INCOMPLETE)
    buf = ep.b1[1]
    if len(buf) + len(m.payload) > ep.max_body:
        ep.b1 = None
        return Msg(0, TOO_LARGE).add(SIZE1, ep.max_body)
    buf += m.payload
    if more:
        return Msg(0, CONTINUE).add(BLOCK1, block_val(num, True, size))
    m.payload = bytes(buf)
    ep.b1 = None
    return None


def answer(ep, a, b1, b2):
    # the answer a to a request that carried Block1 / Block2, or too large for one datagram: the
    # upload's last Block1 acknowledged, the piece of the body Block2 asks for (the first unless it
    # asked), Size2 with the first piece
    num = 0
    size = ep.bsize
    if b2 is not None:
        num, _, s = block(b2)
        size = min(size, s)
    if b1 is not None:
        a.add(BLOCK1, b1 & ~8)
    p = a.payload
    if len(p) > size or num:
        start = num * size
        if start >= len(p) and p:
            return Msg(0, BAD_OPTION)
        a.payload = p[start:start + size]
        a.add(BLOCK2, block_val(num, start + size < len(p), size))
        if num == 0:
            a.add(SIZE2, len(p))
    return a

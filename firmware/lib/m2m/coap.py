# CoAP (RFC 7252) for the LwM2M client: the message codec, one endpoint per peer with confirmable
# retransmission, deduplication, tokens, piggybacked and separate responses, block-wise transfer
# (RFC 7959) and Observe notifications (RFC 7641). Sans-IO below Endpoint; Endpoint.step() is
# non-blocking (docs/CONTRACTS.md "Concurrency model") and times on the scaled m2m.hal clock.
#
#   ep = Endpoint(sock, handler)   sock: send(bytes), recv() -> bytes or None (non-blocking)
#   handler(msg) -> (code, payload, content_format, extra_opts) or None (ignored: no answer)
#   ep.request(code, path, query=(), payload=b"", cf=None, on_done=fn(msg_or_None), ...)
import os
import random

from micropython import const

from m2m import hal

# types (RFC 7252 3)
CON = const(0)
NON = const(1)
ACK = const(2)
RST = const(3)
# method and response codes, class << 5 | detail (RFC 7252 12.1)
GET = const(1)
POST = const(2)
PUT = const(3)
DELETE = const(4)
CREATED = const(0x41)
DELETED = const(0x42)
CHANGED = const(0x44)
CONTENT = const(0x45)
CONTINUE = const(0x5F)  # 2.31 (RFC 7959 2.9.1)
BAD_REQUEST = const(0x80)
UNAUTHORIZED = const(0x81)
BAD_OPTION = const(0x82)
NOT_FOUND = const(0x84)
NOT_ALLOWED = const(0x85)
NOT_ACCEPTABLE = const(0x86)
INCOMPLETE = const(0x88)  # 4.08 Request Entity Incomplete (RFC 7959 2.9.2)
TOO_LARGE = const(0x8D)
UNSUPPORTED_CF = const(0x8F)
SERVER_ERROR = const(0xA0)
# options (RFC 7252 5.10, RFC 7641 2, RFC 7959 2.1)
OBSERVE = const(6)
LOCATION_PATH = const(8)
URI_PATH = const(11)
CONTENT_FORMAT = const(12)
URI_QUERY = const(15)
ACCEPT = const(17)
BLOCK2 = const(23)
BLOCK1 = const(27)
SIZE2 = const(28)
SIZE1 = const(60)
# options this endpoint understands; an unknown critical (odd) one gets 4.02 (RFC 7252 5.4.1)
_KNOWN = (1, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 17, 20, 23, 27, 28, 35, 39, 60)

# transmission parameters (RFC 7252 4.8): ACK_TIMEOUT 2 s, ACK_RANDOM_FACTOR 1.5, MAX_RETRANSMIT 4
ACK_TIMEOUT_MS = const(2000)
MAX_RETRANSMIT = const(4)
MAX_MSG = const(1152)  # RFC 7252 4.6: a message fits 1152 bytes with a 1024-byte payload
_DEDUP = const(8)  # answers kept for duplicate requests (RFC 7252 4.5)
_EXCHANGE_MS = const(247000)  # EXCHANGE_LIFETIME (RFC 7252 4.8.2): how long a mid stays known


def code_str(c):
    return "%d.%02d" % (c >> 5, c & 31)


class Msg:
    def __init__(self, mtype=CON, code=0, mid=0, token=b"", opts=None, payload=b""):
        self.type = mtype
        self.code = code
        self.mid = mid
        self.token = token
        self.opts = opts or []  # [(number, bytes)], in order
        self.payload = payload

    def opt(self, num, default=None):
        for n, v in self.opts:
            if n == num:
                return v
        return default

    def uint(self, num, default=None):
        v = self.opt(num)
        return default if v is None else uint(v)

    def path(self):
        return [v.decode() for n, v in self.opts if n == URI_PATH]

    def query(self):
        return [v.decode() for n, v in self.opts if n == URI_QUERY]

    def add(self, num, value):
        # value: bytes, str or a non-negative int (uint option)
        if isinstance(value, int):
            value = ubytes(value)
        elif isinstance(value, str):
            value = value.encode()
        self.opts.append((num, value))
        return self


def uint(b):
    n = 0
    for x in b:
        n = (n << 8) | x
    return n


def ubytes(n):
    # shortest big-endian form; 0 is the empty string (RFC 7252 3.2)
    k = 0
    while n >> (8 * k):
        k += 1
    return bytes((n >> (8 * (k - 1 - i))) & 0xFF for i in range(k))


def _ext(n):
    # option delta / length nibble and its extension bytes (RFC 7252 3.1)
    if n < 13:
        return n, b""
    if n < 269:
        return 13, bytes((n - 13,))
    n -= 269
    return 14, bytes((n >> 8, n & 0xFF))


def encode(m):
    tk = m.token
    out = bytearray((0x40 | (m.type << 4) | len(tk), m.code, m.mid >> 8, m.mid & 0xFF))
    out += tk
    last = 0
    opts = m.opts
    # by number, repeated options in their order (MicroPython's sort is not stable)
    for k in sorted(range(len(opts)), key=lambda i: opts[i][0] * 256 + i):
        num, val = opts[k]
        d, dx = _ext(num - last)
        ln, lx = _ext(len(val))
        out.append((d << 4) | ln)
        out += dx
        out += lx
        out += val
        last = num
    if m.payload:
        out.append(0xFF)
        out += m.payload
    return bytes(out)


def decode(b):
    # bytes -> Msg; ValueError for a message format error (RFC 7252 3, 4.1)
    n = len(b)
    if n < 4:
        raise ValueError("short")
    h = b[0]
    if h >> 6 != 1:
        raise ValueError("version")
    tkl = h & 15
    if tkl > 8:
        raise ValueError("token length")
    code = b[1]
    m = Msg((h >> 4) & 3, code, (b[2] << 8) | b[3], bytes(b[4:4 + tkl]))
    i = 4 + tkl
    if i > n:
        raise ValueError("token")
    if code == 0 and (n > 4 or tkl):
        raise ValueError("empty message with content")
    num = 0
    while i < n:
        x = b[i]
        i += 1
        if x == 0xFF:
            if i >= n:
                raise ValueError("payload marker without payload")
            m.payload = bytes(b[i:])
            break
        d = x >> 4
        ln = x & 15
        if d == 15 or ln == 15:
            raise ValueError("reserved nibble")
        for which in (0, 1):
            v = d if which == 0 else ln
            if v == 13:
                if i >= n:
                    raise ValueError("option")
                v = b[i] + 13
                i += 1
            elif v == 14:
                if i + 1 >= n:
                    raise ValueError("option")
                v = ((b[i] << 8) | b[i + 1]) + 269
                i += 2
            if which == 0:
                d = v
            else:
                ln = v
        num += d
        if i + ln > n:
            raise ValueError("option length")
        m.opts.append((num, bytes(b[i:i + ln])))
        i += ln
    return m


def block(v):
    # Block1/Block2 value -> (num, more, size) (RFC 7959 2.2); SZX 7 is reserved
    szx = v & 7
    if szx == 7:
        raise ValueError("szx")
    return v >> 4, bool(v & 8), 16 << szx


def block_val(num, more, size):
    szx = 0
    while (16 << szx) < size:
        szx += 1
    return (num << 4) | (8 if more else 0) | szx


def token():
    # RFC 7252 5.3.1: "A client sending a request without using Transport Layer Security (Section 9)
    # SHOULD use a nontrivial, randomized token to guard against spoofing of responses (Section
    # 11.4). [...] A client that is connected to the general Internet SHOULD use at least 32 bits of
    # randomness, keeping in mind that not being directly connected to the Internet is not
    # necessarily sufficient protection against spoofing." 11.4: "Response spoofing by off-path
    # attackers can be detected and mitigated even without transport layer security by choosing a
    # nontrivial, randomized token in the request". Without DTLS (NoSec) a cellular device is on the
    # general Internet (a public APN) or behind an operator's network, which the RFC says is not
    # sufficient protection (a private APN); a spoofed 2.04 to a Send would lose its readings (the
    # outbox acknowledged). Nothing in our case allows less: 4 random bytes, the SHOULD kept.
    return os.urandom(4)


class _Out:
    # a confirmable message waiting for its ACK (or a request waiting for its response)
    def __init__(self, msg, data, on_done, on_block):
        self.msg = msg
        self.data = data
        self.on_done = on_done
        self.on_block = on_block  # on_block(msg) for each Block2 piece of a response; False stops
        self.tries = 0
        self.wait = ACK_TIMEOUT_MS + random.getrandbits(10) * ACK_TIMEOUT_MS // 2048  # 2-3 s
        self.due = hal.ticks_add(hal.ticks_ms(), self.wait)
        self.acked = False  # an empty ACK came: a separate response follows (RFC 7252 5.2.2)
        self.body = None  # request payload sent block-wise (Block1)
        self.bsize = 0


class Endpoint:
    def __init__(self, sock, handler=None, block_size=512, max_body=4096, secure=False):
        self.sock = sock
        # over DTLS a spoofed response cannot get in (the SHOULD above is for requests "without
        # using Transport Layer Security"), and 5.3.1 asks only: "The client SHOULD generate tokens
        # in such a way that tokens currently in use for a given source/destination endpoint pair are
        # unique." One byte of a rolling counter does (a Send and an Update can be in flight together,
        # and a separate response comes later: not the empty token 5.3.1 allows "when requests are
        # made serially per destination and receive piggybacked responses"): 3 bytes less a request
        self.tok = random.getrandbits(8) if secure else None
        self.handler = handler
        self.bsize = block_size
        self.max_body = max_body  # bytes a Block1 upload may collect before 4.13
        self.mid = random.getrandbits(16)
        self.out = []  # [_Out]: requests, notifications
        self.seen = []  # [(mid, ticks, answer bytes or None)] of requests answered (dedup)
        self.b1 = None  # (token-less key: path tuple, bytearray) of an incoming Block1 upload
        self.on_reset = None  # on_reset(token): the peer refused a notification (RFC 7641 3.6)
        self.failed = None  # the socket's last OSError (send or receive), for the owner to act on
        self.tx = self.rx = self.retransmits = self.dups = self.bad = 0

    def next_mid(self):
        self.mid = (self.mid + 1) & 0xFFFF
        return self.mid

    def _send(self, data):
        self.tx += 1
        try:
            self.sock.send(data)
        except OSError as e:
            self.failed = e  # the owner decides (a new socket); retransmission covers the datagram

    # ---- requests out ----
    def request(self, code, path=(), query=(), payload=b"", cf=None, accept=None, on_done=None,
                on_block=None, confirmable=True, opts=None, tok=None):
        if tok is None and self.tok is not None:
            self.tok = (self.tok + 1) & 0xFF
            tok = bytes((self.tok,))
        m = Msg(CON if confirmable else NON, code, self.next_mid(), tok or token())
        for p in path:
            m.add(URI_PATH, p)
        if cf is not None:
            m.add(CONTENT_FORMAT, cf)
        for q in query:
            m.add(URI_QUERY, q)
        if accept is not None:
            m.add(ACCEPT, accept)
        for o in opts or ():
            m.add(o[0], o[1])
        o = _Out(m, None, on_done, on_block)
        if len(payload) > self.bsize:
            o.body = payload
            o.bsize = self.bsize
            m.add(BLOCK1, block_val(0, True, self.bsize))
            m.payload = payload[:self.bsize]
        else:
            m.payload = payload
        o.data = encode(m)
        self.out.append(o)
        self._send(o.data)
        return o

    def cancel(self, o):
        if o in self.out:
            self.out.remove(o)

    def notify(self, tok, seq, code, payload, cf, confirmable=False):
        # an Observe notification (RFC 7641 4.2): the observation's token, a rising sequence
        m = Msg(CON if confirmable else NON, code, self.next_mid(), tok, [], payload)
        m.add(OBSERVE, seq & 0xFFFFFF)
        if cf is not None:
            m.add(CONTENT_FORMAT, cf)
        data = encode(m)
        if confirmable:
            o = _Out(m, data, None, None)
            self.out.append(o)
        self._send(data)

    def busy(self):
        return bool(self.out)

    def next_ms(self):
        # ms until the next retransmission is due
        now = hal.ticks_ms()
        w = 60000
        for o in self.out:
            if not o.acked:
                w = min(w, max(0, hal.ticks_diff(o.due, now)))
        return w

    # ---- the loop ----
    def step(self):
        # read what is waiting, retransmit what is due; ms until the next timer
        for _ in range(8):
            try:
                d = self.sock.recv()  # None when nothing waits; OSError: the socket is gone
            except OSError as e:
                self.failed = e
                break
            if not d:
                break
            self.rx += 1
            self.datagram(d)
        now = hal.ticks_ms()
        wait = 60000
        for o in self.out[:]:
            if o.acked:
                continue
            left = hal.ticks_diff(o.due, now)
            if left <= 0:
                if o.tries >= MAX_RETRANSMIT or o.msg.type != CON:
                    self.out.remove(o)
                    if o.on_done:
                        o.on_done(None)  # timed out
                    continue
                o.tries += 1
                o.wait *= 2
                o.due = hal.ticks_add(now, o.wait)
                self.retransmits += 1
                self._send(o.data)
                left = o.wait
            if left < wait:
                wait = left
        return wait

    def datagram(self, d):
        try:
            m = decode(d)
        except ValueError:
            self.bad += 1
            # a CON with a format error gets a Reset when its mid can be read (RFC 7252 4.2)
            if len(d) >= 4 and d[0] >> 4 == 4:
                self._send(encode(Msg(RST, 0, (d[2] << 8) | d[3])))
            return
        c = m.code
        if c == 0:
            if m.type == CON:  # a CoAP ping (RFC 7252 4.3)
                self._send(encode(Msg(RST, 0, m.mid)))
            elif m.type in (ACK, RST):
                self._acked(m)
        elif c < 32:
            self._request(m)
        elif 64 <= c < 192:
            self._response(m)
        elif m.type == CON:
            self._send(encode(Msg(RST, 0, m.mid)))

    def _acked(self, m):
        for o in self.out:
            if o.msg.mid == m.mid:
                if m.type == RST:
                    self.out.remove(o)
                    if o.msg.code == 0 or o.msg.code >= 64:  # a refused notification
                        if self.on_reset:
                            self.on_reset(o.msg.token)
                    elif o.on_done:
                        o.on_done(None)
                elif o.msg.code >= 64:  # our CON notification arrived
                    self.out.remove(o)
                else:
                    o.acked = True  # response comes separately
                return

    def _response(self, m):
        if m.type == CON:  # a separate response: acknowledge it (RFC 7252 5.2.2)
            self._send(encode(Msg(ACK, 0, m.mid)))
        elif m.type == RST:
            return
        o = None
        for x in self.out:
            if x.msg.token == m.token and x.msg.code < 32 and (m.type != ACK or x.msg.mid == m.mid):
                o = x
                break
        if o is None:
            if m.type == NON or m.type == CON:
                pass  # late duplicate of a finished exchange: acknowledged above, else ignored
            return
        if (m.code == CONTINUE and o.body is not None) or (o.on_block is not None and m.code < 0x60
                                                           and m.opt(BLOCK2) is not None):
            from m2m import coapblk  # block-wise (RFC 7959): loaded when an exchange uses it

            if coapblk.follow(self, o, m):
                return
        self.out.remove(o)
        if o.on_done:
            o.on_done(m)

    # ---- requests in ----
    def _request(self, m):
        now = hal.ticks_ms()
        seen = self.seen
        for i in range(len(seen) - 1, -1, -1):
            mid, t, ans = seen[i]
            if hal.ticks_diff(now, t) > _EXCHANGE_MS:
                seen.pop(i)
            elif mid == m.mid:
                self.dups += 1
                if ans is not None and m.type == CON:
                    self._send(ans)  # the same answer again; the request is not run twice
                return
        r = self._answer(m)
        ans = None
        if r is not None and m.type == CON:
            ans = encode(Msg(ACK, r.code, m.mid, m.token, r.opts, r.payload))
            self._send(ans)
        elif r is not None and r.code < 0x80:
            ans = encode(Msg(NON, r.code, self.next_mid(), m.token, r.opts, r.payload))
            self._send(ans)
            ans = None
        if len(seen) >= _DEDUP:
            seen.pop(0)
        seen.append((m.mid, now, ans))

    def _answer(self, m):
        for n, v in m.opts:
            if n & 1 and n not in _KNOWN:
                return Msg(0, BAD_OPTION, payload=b"option %d not supported" % n)
        b1 = b2 = None
        try:
            b1 = m.uint(BLOCK1)
            b2 = m.uint(BLOCK2)
            if b1 is not None or b2 is not None:
                from m2m import coapblk  # block-wise (RFC 7959): loaded when a request uses it

                early = coapblk.upload(self, m, b1, b2)
                if early is not None:
                    return early
            r = self.handler(m) if self.handler else None
        except ValueError:
            return Msg(0, BAD_REQUEST)
        except Exception as e:  # MemoryError, a handler's bug: 5.00, and the endpoint lives on
            print("coap: %s: %r" % (code_str(m.code), e))
            return Msg(0, SERVER_ERROR)
        if r is None:
            return None
        code, payload, cf, extra = r
        a = Msg(0, code, payload=payload or b"")
        if cf is not None and payload is not None:
            a.add(CONTENT_FORMAT, cf)
        for o in extra or ():
            a.add(o[0], o[1])
        if b1 is not None or b2 is not None or len(a.payload) > self.bsize:
            from m2m import coapblk

            return coapblk.answer(self, a, b1, b2)
        return a

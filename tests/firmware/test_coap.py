# m2m.coap: the RFC 7252 codec (header, token, option delta / length with their 13 / 14 extensions,
# payload marker), format errors, Block values (RFC 7959 2.2), and an Endpoint over a fake datagram
# socket: retransmission on the RFC 7252 4.8 schedule, deduplication, separate responses, Block2.
# m2m: timeout=120
from m2m import coap, hal


class Sock:
    # a datagram socket: what the endpoint sent, and what the test queues for it
    def __init__(self):
        self.sent = []
        self.inbox = []

    def send(self, b):
        self.sent.append(bytes(b))

    def recv(self):
        return self.inbox.pop(0) if self.inbox else None


def test_header_token_options_payload():
    # RFC 7252 3: Ver 1, T CON, TKL 2, Code 0.01 GET, MID 0x1234; Uri-Path "3" (option 11: delta 11),
    # "0" (delta 0), Accept 11542 (option 17: delta 6, 2 bytes), then Block2 (23: delta 6) and
    # Size1 (60: delta 37 -> nibble 13 and one extension byte 37 - 13 = 24)
    m = coap.Msg(coap.CON, coap.GET, 0x1234, b"\xab\xcd")
    m.add(coap.URI_PATH, "3").add(coap.URI_PATH, "0").add(coap.ACCEPT, 11542)
    m.add(coap.BLOCK2, 2).add(coap.SIZE1, 500)
    b = coap.encode(m)
    assert b == bytes((0x42, 0x01, 0x12, 0x34, 0xAB, 0xCD, 0xB1, 0x33, 0x01, 0x30, 0x62, 0x2D, 0x16,
                       0x61, 0x02, 0xD2, 24, 0x01, 0xF4)), b
    d = coap.decode(b)
    assert (d.type, d.code, d.mid, d.token) == (coap.CON, coap.GET, 0x1234, b"\xab\xcd")
    assert d.path() == ["3", "0"] and d.uint(coap.ACCEPT) == 11542 and d.uint(coap.SIZE1) == 500


def test_long_option_and_payload_marker():
    # an option of 300 bytes: length nibble 14, two extension bytes 300 - 269 = 31
    m = coap.Msg(coap.NON, coap.CONTENT, 1, b"", payload=b"hi")
    m.add(coap.LOCATION_PATH, b"x" * 300)
    b = coap.encode(m)
    assert b[4] == 0x8E and b[5:7] == bytes((0, 31)) and b[-3:] == b"\xffhi"
    d = coap.decode(b)
    assert d.opt(coap.LOCATION_PATH) == b"x" * 300 and d.payload == b"hi"


def test_repeated_options_keep_their_order():
    m = coap.Msg(coap.CON, coap.POST, 7)
    for q in ("ep=a", "lt=60", "b=U", "Q"):
        m.add(coap.URI_QUERY, q)
    m.add(coap.URI_PATH, "rd")
    assert coap.decode(coap.encode(m)).query() == ["ep=a", "lt=60", "b=U", "Q"]


def test_format_errors():
    for bad in (b"\x40\x01\x00", b"\x80\x01\x00\x01", b"\x49\x01\x00\x01" + b"x" * 9,
                b"\x40\x01\x00\x01\xff", b"\x40\x01\x00\x01\xf0", b"\x40\x01\x00\x01\x0f",
                b"\x40\x00\x00\x01\xffx", b"\x40\x01\x00\x01\x03ab", b"\x40\x01\x00\x01\xd1"):
        try:
            coap.decode(bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % bad)


def test_block_values():
    # RFC 7959 2.2: NUM << 4 | M << 3 | SZX, size 2 ** (SZX + 4)
    assert coap.block_val(3, True, 512) == (3 << 4) | 8 | 5
    assert coap.block(coap.block_val(3, True, 512)) == (3, True, 512)
    assert coap.block(0x06) == (0, False, 1024)
    try:
        coap.block(0x07)
        raise AssertionError("SZX 7 accepted")
    except ValueError:
        pass


def test_retransmission_schedule_and_give_up():
    # on a stepped clock (the endpoint reads m2m.hal.ticks_ms)
    now = [1000]
    real = hal.ticks_ms
    hal.ticks_ms = lambda: now[0]
    try:
        s = Sock()
        ep = coap.Endpoint(s)
        done = []
        ep.request(coap.POST, ("rd",), on_done=done.append)
        times = [0]
        while not done and now[0] < 200000:
            n = len(s.sent)
            ep.step()
            if len(s.sent) > n:
                times.append(now[0] - 1000)
            now[0] += 10
    finally:
        hal.ticks_ms = real
    # 1 + MAX_RETRANSMIT (4) sends, gaps doubling from 2-3 s (ACK_TIMEOUT x ACK_RANDOM_FACTOR),
    # given up one more doubled wait after the last
    assert len(s.sent) == 5 and done == [None], (len(s.sent), done)
    gaps = [times[i + 1] - times[i] for i in range(4)]
    assert 2000 <= gaps[0] <= 3010, gaps
    for i in range(3):
        assert abs(gaps[i + 1] - 2 * gaps[i]) <= 20, gaps
    assert len(set(s.sent)) == 1  # the same message, the same MID


def test_duplicate_request_answered_again_not_run_twice():
    runs = []

    def handler(m):
        runs.append(m.path())
        return coap.CHANGED, None, None, None

    s = Sock()
    ep = coap.Endpoint(s, handler)
    req = coap.encode(coap.Msg(coap.CON, coap.POST, 0x4242, b"t", [(coap.URI_PATH, b"3"), (coap.URI_PATH, b"0"),
                                                                 (coap.URI_PATH, b"4")]))
    ep.datagram(req)
    ep.datagram(req)
    assert runs == [["3", "0", "4"]]
    assert len(s.sent) == 2 and s.sent[0] == s.sent[1]
    a = coap.decode(s.sent[0])
    assert (a.type, a.code, a.mid, a.token) == (coap.ACK, coap.CHANGED, 0x4242, b"t")


def test_separate_response_and_unknown_critical_option():
    s = Sock()
    ep = coap.Endpoint(s, lambda m: (coap.CONTENT, b"x", 0, None))
    got = []
    o = ep.request(coap.GET, ("fw",), on_done=got.append)
    mid = o.msg.mid
    ep.datagram(coap.encode(coap.Msg(coap.ACK, 0, mid)))  # empty ACK: the answer comes later
    assert not got and ep.next_ms() == 60000  # no retransmission once acknowledged
    ep.datagram(coap.encode(coap.Msg(coap.CON, coap.CONTENT, 999, o.msg.token, payload=b"late")))
    assert got and got[0].payload == b"late"
    ack = coap.decode(s.sent[-1])
    assert ack.type == coap.ACK and ack.mid == 999 and ack.code == 0
    # a request with an unknown critical option (odd number 2049) gets 4.02
    ep.datagram(coap.encode(coap.Msg(coap.CON, coap.GET, 5, b"", [(2049, b"")])))
    assert coap.decode(s.sent[-1]).code == coap.BAD_OPTION


def test_block2_response_and_client_download():
    body = bytes(range(256)) * 5  # 1280 bytes: three 512-byte blocks
    s = Sock()
    ep = coap.Endpoint(s, lambda m: (coap.CONTENT, body, 42, None))
    ep.datagram(coap.encode(coap.Msg(coap.CON, coap.GET, 1, b"a", [(coap.URI_PATH, b"x")])))
    a = coap.decode(s.sent[-1])
    assert a.payload == body[:512] and coap.block(a.uint(coap.BLOCK2)) == (0, True, 512)
    assert a.uint(coap.SIZE2) == 1280
    ep.datagram(coap.encode(coap.Msg(coap.CON, coap.GET, 2, b"a", [(coap.URI_PATH, b"x"),
                                                                   (coap.BLOCK2, coap.ubytes(coap.block_val(2, False, 512)))])))
    a = coap.decode(s.sent[-1])
    assert a.payload == body[1024:] and coap.block(a.uint(coap.BLOCK2)) == (2, False, 512)
    # the client side: two endpoints wired back to back
    s2 = Sock()
    cl = coap.Endpoint(s2)
    got = bytearray()
    fin = []
    cl.request(coap.GET, ("x",), on_block=lambda m: got.extend(m.payload), on_done=fin.append)
    for _ in range(10):
        while s2.sent:
            ep.datagram(s2.sent.pop(0))
        while s.sent:
            cl.datagram(s.sent.pop(0))
    assert bytes(got) == body and fin and fin[0].code == coap.CONTENT


def test_block1_upload_collected():
    seen = []
    s = Sock()
    ep = coap.Endpoint(s, lambda m: seen.append(m.payload) or (coap.CHANGED, None, None, None))
    cl_s = Sock()
    cl = coap.Endpoint(cl_s, block_size=64)
    fin = []
    cl.request(coap.POST, ("dp",), payload=b"y" * 200, on_done=fin.append)
    for _ in range(10):
        while cl_s.sent:
            ep.datagram(cl_s.sent.pop(0))
        while s.sent:
            cl.datagram(s.sent.pop(0))
    assert seen == [b"y" * 200] and fin[0].code == coap.CHANGED
    # the last piece's answer acknowledges it (Block1 3:0/64, RFC 7959 2.3) and carries no Block2:
    # its empty body has no pieces
    assert coap.block(fin[0].uint(coap.BLOCK1)) == (3, False, 64)
    assert fin[0].opt(coap.BLOCK2) is None, fin[0].opts


def test_observe_notifications_rise_and_reset_cancels():
    s = Sock()
    ep = coap.Endpoint(s)
    reset = []
    ep.on_reset = reset.append
    for seq in (1, 2, 3):
        ep.notify(b"ob", seq, coap.CONTENT, b"%d" % seq, 0, confirmable=True)
    seqs = [coap.decode(b).uint(coap.OBSERVE) for b in s.sent]
    assert seqs == [1, 2, 3]
    last = coap.decode(s.sent[-1])
    ep.datagram(coap.encode(coap.Msg(coap.RST, 0, last.mid)))
    assert reset == [b"ob"]


def test_request_tokens_random_without_dtls_short_over_dtls():
    # RFC 7252 5.3.1: without (D)TLS a request carries a random token of at least 32 bits; over DTLS
    # one byte of a rolling counter (unique among the requests in use), and its answer still matches
    s = Sock()
    ep = coap.Endpoint(s)
    ep.request(coap.POST, ("dp",))
    ep.request(coap.POST, ("dp",))
    a, b = coap.decode(s.sent[0]), coap.decode(s.sent[1])
    assert len(a.token) == 4 and len(b.token) == 4 and a.token != b.token
    s = Sock()
    ep = coap.Endpoint(s, secure=True)
    toks = []
    for _ in range(256):
        ep.cancel(ep.request(coap.POST, ("dp",)))
        toks.append(coap.decode(s.sent.pop()).token)
    assert all(len(t) == 1 for t in toks)
    assert len(set(toks)) == 256  # 256 requests in a row: all distinct
    done = []
    ep.request(coap.POST, ("dp",), on_done=done.append)
    m = coap.decode(s.sent[-1])
    s.inbox.append(coap.encode(coap.Msg(coap.ACK, coap.CHANGED, m.mid, m.token)))
    ep.step()
    assert len(done) == 1 and done[0].code == coap.CHANGED
    assert coap.encode(m)[0] & 15 == 1  # TKL 1: the datagram is 3 bytes shorter than with 4

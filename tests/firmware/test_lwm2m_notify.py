# The LwM2M notifier on a stepped clock: Write-Attributes pmin / pmax / gt / lt / st (OMA core
# 5.1.2) decide when an observed IPSO temperature is notified; notifications are confirmable,
# rise in sequence (RFC 7641 4.4) and wait for the last one's ACK; attributes at resource level
# win over instance level; a Reset cancels the observation.
from m2m import coap, hal
from m2m.lwm2m import TEXT

NOW = [100000]


class Sock:
    def __init__(self):
        self.sent = []

    def send(self, b):
        self.sent.append(coap.decode(bytes(b)))

    def recv(self):
        return None


class Sampler:  # stands in for the sensors
    v = 21.0

    def names(self):
        return ["temperature"]

    def latest(self, name):
        return (Sampler.v, "Cel", 0)


def _client():
    from m2m.lwm2m.client import Client

    c = Client({"device": {"id": "n"}, "lwm2m": {"server": "coap://127.0.0.1:9"}}, sampler=Sampler())
    c.ep = coap.Endpoint(Sock(), c._handle)
    c.ep.on_reset = c._reset  # as Client._open wires it
    c.state = 4  # registered
    c.loc = ["rd", "x"]
    c.due = NOW[0] + 10 ** 9
    return c


def _req(c, code, path, query=(), observe=None, tok=b"ob"):
    m = coap.Msg(coap.CON, code, c.ep.next_mid() ^ 0x5555, tok)
    for p in path.strip("/").split("/"):
        m.add(coap.URI_PATH, p)
    if observe is not None:
        m.add(coap.OBSERVE, observe)
    for q in query:
        m.add(coap.URI_QUERY, q)
    if code == coap.GET:
        m.add(coap.ACCEPT, TEXT)
    c.ep.datagram(coap.encode(m))
    return c.ep.sock.sent[-1]


def _run(c, seconds, value=None):
    # step the clock in 100 ms; the notifications sent, each acknowledged at once
    notes = []
    if value is not None:
        Sampler.v = value
    for _ in range(int(seconds * 10)):
        NOW[0] += 100
        n = len(c.ep.sock.sent)
        c._notify(NOW[0])
        for m in c.ep.sock.sent[n:]:
            notes.append((NOW[0], float(m.payload), m.uint(coap.OBSERVE)))
            c.ep.datagram(coap.encode(coap.Msg(coap.ACK, 0, m.mid)))
    return notes


def test_pmin_pmax_gt_lt_st():
    real = hal.ticks_ms
    hal.ticks_ms = lambda: NOW[0]
    try:
        c = _client()
        assert _req(c, coap.PUT, "/3303/0", ("pmin=2", "pmax=10")).code == coap.CHANGED
        r = _req(c, coap.GET, "/3303/0/5700", observe=0)
        assert r.code == coap.CONTENT and r.uint(coap.OBSERVE) == 0 and float(r.payload) == 21.0
        t0 = NOW[0]
        # nothing changes: the first notification at pmax (10 s), not before
        notes = _run(c, 9.9)
        assert notes == []
        notes = _run(c, 0.1)
        assert len(notes) == 1 and notes[0][0] - t0 == 10000, notes
        # a change 0.5 s after a notification waits for pmin (2 s)
        t1 = notes[0][0]
        notes = _run(c, 0.5, 22.0) + _run(c, 3)
        assert len(notes) == 1 and notes[0][0] - t1 == 2000 and notes[0][1] == 22.0, notes
        # gt=25 at resource level: 22 -> 24 is no crossing, 24 -> 26 is
        assert _req(c, coap.PUT, "/3303/0/5700", ("gt=25",)).code == coap.CHANGED
        assert _run(c, 3, 24.0) == []
        notes = _run(c, 3, 26.0)
        assert [n[1] for n in notes] == [26.0], notes
        # lt=10: 26 -> 9 crosses it
        assert _req(c, coap.PUT, "/3303/0/5700", ("lt=10", "gt")).code == coap.CHANGED
        assert _run(c, 3, 12.0) == []
        assert [n[1] for n in _run(c, 3, 9.0)] == [9.0]
        # st=1 instead: 9 -> 9.5 is too small a step, 9 -> 10.2 is enough
        assert _req(c, coap.PUT, "/3303/0/5700", ("lt", "st=1")).code == coap.CHANGED
        assert _run(c, 3, 9.5) == []
        notes = _run(c, 3, 10.25)
        assert [n[1] for n in notes] == [10.25]
        seqs = [n[2] for n in notes]
        assert seqs[0] >= 5  # the sequence went on rising across all of the above
        # a Reset to the next notification ends the observation
        Sampler.v = 30.0
        NOW[0] += 3000
        c._notify(NOW[0])
        last = c.ep.sock.sent[-1]
        assert float(last.payload) == 30.0
        c.ep.datagram(coap.encode(coap.Msg(coap.RST, 0, last.mid)))
        assert c.obs == []
        assert _run(c, 12, 35.0) == []
    finally:
        hal.ticks_ms = real


def test_unacknowledged_notification_holds_the_next():
    real = hal.ticks_ms
    hal.ticks_ms = lambda: NOW[0]
    try:
        c = _client()
        Sampler.v = 20.0
        _req(c, coap.PUT, "/3303/0/5700", ("pmax=1",))
        _req(c, coap.GET, "/3303/0/5700", observe=0, tok=b"k2")
        sock = c.ep.sock
        n = len(sock.sent)
        for _ in range(25):  # 2.5 s, pmax 1 s, but the first notification is never acknowledged
            NOW[0] += 100
            c._notify(NOW[0])
            c.ep.step()
        mine = [m for m in sock.sent[n:] if m.code == coap.CONTENT]
        assert len({m.mid for m in mine}) == 1, [(m.mid, m.uint(coap.OBSERVE)) for m in mine]  # retransmits only
    finally:
        hal.ticks_ms = real

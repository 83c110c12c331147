# m2m.lwm2m content formats against the specifications' own examples: OMA TLV (the Device, Server
# and Access Control examples of the LwM2M TS, as Leshan's LwM2mNodeDecoderTest reproduces them),
# CBOR (RFC 8949 appendix A values), SenML CBOR labels (RFC 8428 6: bn -2, bt -3, n 0, v 2, vs 3,
# vb 4, t 6); then 10,000 malformed CoAP datagrams, TLV and SenML payloads at a registered client:
# each gets a 4.xx answer or is ignored, never a crash.
# m2m: timeout=240
# m2m: heapsize=1M
import random
import binascii

from m2m import coap
from m2m.lwm2m import SENML_CBOR, SENML_JSON, TEXT, TLV, cbor, cbordec, model, parse, senml, tlv

H = binascii.unhexlify
DEVICE = H("C800144F70656E204D6F62696C6520416C6C69616E6365C801164c69676874776569676874204d324d20436c69656e74"
           "C80209333435303030313233C303312E30860641000141010588070842000ED842011388870841007D42010384C10964"
           "C10A0F830B410000C40D5182428FC60E2B30323A3030C11055")
SERVER = H("08000FC10001C40100015180C10601C10755")
ACL = H("08000EC10001C101008302417F07C1037F080212C10003C101008702417F0761013601C1037F")
DEV_SPEC = {0: "sR", 1: "sR", 2: "sR", 3: "sR", 6: "iR*", 7: "iR*", 8: "iR*", 9: "iR", 10: "iR", 11: "iR*",
            13: "tRW", 14: "sRW", 16: "sR"}


def _device_model():
    m = model.Model()
    o = m.objs[3] = model.Obj(3, DEV_SPEC)
    o.add(0, {0: "Open Mobile Alliance", 1: "Lightweight M2M Client", 2: "345000123", 3: "1.0",
              6: {0: 1, 1: 5}, 7: {0: 3800, 1: 5000}, 8: {0: 125, 1: 900}, 9: 100, 10: 15, 11: {0: 0},
              13: 1367491215, 14: "+02:00", 16: "U"})
    return m


def test_tlv_device_example_encoded_byte_for_byte():
    assert _device_model().read((3, 0), TLV) == DEVICE


def test_tlv_device_example_decoded():
    m = _device_model()
    vals = m.values_in((3, 0), TLV, DEVICE)
    d = {(v[2], v[3]): v[4] for v in vals}
    assert d[(0, None)] == "Open Mobile Alliance" and d[(7, 1)] == 5000 and d[(13, None)] == 1367491215
    assert d[(16, None)] == "U" and d[(11, 0)] == 0 and len(vals) == 16


def test_tlv_server_and_acl_examples():
    items = tlv.decode(SERVER)
    assert items[0][0] == tlv.INSTANCE and items[0][1] == 0
    res = {i: v for _, i, v in items[0][2]}
    assert res[0] == b"\x01" and res[1] == b"\x00\x01\x51\x80" and res[6] == b"\x01" and res[7] == b"U"
    assert parse.from_bytes("i", res[1]) == 86400 and parse.from_bytes("b", res[6]) is True
    acl = tlv.decode(ACL)
    assert [x[1] for x in acl] == [0, 2]
    multi = [r for r in acl[1][2] if r[0] == tlv.MULTIPLE][0]
    assert [(ri, parse.from_bytes("i", b)) for _, ri, b in multi[2]] == [(127, 7), (310, 1)]  # 16-bit id
    # the encoder gives the same bytes back
    out = b"".join(tlv.enc(tlv.INSTANCE, i, b"".join(
        tlv.enc(k, rid, v if not isinstance(v, list) else b"".join(tlv.enc(tlv.RES_INSTANCE, a, c) for _, a, c in v))
        for k, rid, v in body)) for _, i, body in acl)
    assert out == ACL


def test_cbor_rfc8949_values():
    for hexs, v in (("00", 0), ("17", 23), ("1818", 24), ("1864", 100), ("1903e8", 1000),
                    ("1a000f4240", 1000000), ("20", -1), ("3863", -100), ("3903e7", -1000),
                    ("f4", False), ("f5", True), ("f6", None), ("6161", "a"), ("4401020304", b"\x01\x02\x03\x04"),
                    ("83010203", [1, 2, 3]), ("a201020304", {1: 2, 3: 4})):
        b = H(hexs)
        assert cbordec.loads(b) == v, hexs
        if type(v) is not dict:  # (a MicroPython dict keeps no insertion order)
            assert bytes(cbor.dumps(v)) == b, hexs
    # floats in their shortest exact form (RFC 8949 4.2.2; appendix A's encodings)
    for hexs, v in (("f90000", 0.0), ("f93e00", 1.5), ("f97bff", 65504.0), ("fa47c35000", 100000.0),
                    ("fb3ff199999999999a", 1.1), ("f9c400", -4.0), ("f97c00", float("inf"))):
        assert bytes(cbor.dumps(v)) == H(hexs), (hexs, bytes(cbor.dumps(v)))
        assert cbordec.loads(H(hexs)) == v
    assert cbordec.loads(H("f93c00")) == 1.0 and cbordec.loads(H("f97bff")) == 65504.0
    assert cbordec.loads(H("fb3ff199999999999a")) == 1.1 and cbordec.loads(H("fa47c35000")) == 100000.0
    assert cbordec.loads(H("9f018202039f0405ffff")) == [1, [2, 3], [4, 5]]
    assert cbordec.loads(H("c11a514b67b0")) == 1363896240  # tag 1 dropped


def test_senml_cbor_labels_and_json():
    b = senml.encode([{"bn": "/3303/0/", "bt": 1767225600, "n": "5700", "v": 21.5},
                      {"n": "5701", "vs": "Cel", "t": 2}, {"n": "x", "vb": True}], True)
    recs = cbordec.loads(b)
    assert recs[0] == {-2: "/3303/0/", -3: 1767225600, 0: "5700", 2: 21.5}
    assert recs[1] == {0: "5701", 3: "Cel", 6: 2} and recs[2] == {0: "x", 4: True}
    got = senml.decode(b, True)
    assert got[0] == ("/3303/0/5700", 21.5, 1767225600) and got[1] == ("/3303/0/5701", "Cel", 1767225602)
    j = senml.decode(b'[{"bn":"/3/0/","n":"14","vs":"+01:00"},{"n":"13","v":5}]', False)
    assert j == [("/3/0/14", "+01:00", 0), ("/3/0/13", 5, 0)]
    m = _device_model()
    assert m.values_in((3, 0), SENML_JSON, b'[{"bn":"/3/0/","n":"14","vs":"+01:00"}]') == [(3, 0, 14, None, "+01:00")]


def test_send_payload_byte_for_byte():
    # the Send of the bench's three readings (m2m.lwm2m.send.encode), every byte: RFC 8428 6 integer
    # labels, names after a common base name (4.5.1), an integer base time once, values in the
    # shortest exact CBOR form (RFC 8949 4.2.2: 21.5 a half float, 40 an integer, 3.71 a single: the
    # ESP32's float) -> 61 bytes; the server's decoder reads them back (bn + n, bt + t)
    from m2m.lwm2m import send

    t = 1767225600
    b = send.encode([(3303, 0, 5700, send._f32(21.5), t), (3304, 0, 5700, 40, t),
                     (3316, 0, 5700, send._f32(3.71), t)])
    want = (H("83")  # array of 3 records
            + H("a4") + H("21") + H("63") + b"/33"  # map(4); bn (-2): text(3)
            + H("22") + H("1a") + t.to_bytes(4, "big")  # bt (-3): uint32
            + H("00") + H("69") + b"03/0/5700"  # n (0): text(9)
            + H("02") + H("f94d60")  # v (2): half 21.5
            + H("a2") + H("00") + H("69") + b"04/0/5700" + H("02") + H("1828")  # n, v: uint8 40
            + H("a2") + H("00") + H("69") + b"16/0/5700" + H("02") + H("fa406d70a4"))  # n, v: single 3.71
    assert b == want, binascii.hexlify(b)
    assert len(b) == 61
    got = senml.decode(b, True)
    assert [(n, v) for n, v, _ in got] == [("/3303/0/5700", 21.5), ("/3304/0/5700", 40), ("/3316/0/5700", send._f32(3.71))]
    assert all(x[2] == t for x in got)


def test_fresh_send_payload_without_time_byte_for_byte():
    # readings younger than lwm2m.send_time_after_s go without bt (RFC 8428 4.5.3: no time is
    # "roughly now" at the receiver): the 61 bytes above less bt's 6 -> 55
    from m2m.lwm2m import send

    t = 1767225600
    b = send.encode([(3303, 0, 5700, send._f32(21.5), t), (3304, 0, 5700, 40, t + 1),
                     (3316, 0, 5700, send._f32(3.71), t)], False)
    want = (H("83")
            + H("a3") + H("21") + H("63") + b"/33" + H("00") + H("69") + b"03/0/5700" + H("02") + H("f94d60")
            + H("a2") + H("00") + H("69") + b"04/0/5700" + H("02") + H("1828")  # no t either
            + H("a2") + H("00") + H("69") + b"16/0/5700" + H("02") + H("fa406d70a4"))
    assert b == want, binascii.hexlify(b)
    assert len(b) == 55
    assert [x[2] for x in senml.decode(b, True)] == [0, 0, 0]


class _Outbox:
    def __init__(self, recs):
        self.recs = recs
        self.acked = None

    def peek(self, n, kinds=None):
        return self.recs[:n]

    def ack(self, seq):
        self.acked = seq


class _Ep:
    def __init__(self):
        self.bodies = []

    def busy(self):
        return False

    def request(self, code, path, query, body, cf=None, on_done=None):
        self.bodies.append(bytes(body))
        self.on_done = on_done


class _Sender:
    # what m2m.lwm2m.send.step reads of the Client
    def __init__(self, after, ages):
        from m2m import hal
        from m2m.report.contract import pack_readings

        now = int(hal.epoch())
        self.times = [now - a for a in ages]
        recs = [(i + 1, 1, pack_readings([("temperature", 20.5 + i, "Cel", t)])) for i, t in enumerate(self.times)]
        lw = {"send": True} if after is None else {"send": True, "send_time_after_s": after}
        self.cfg = {"lwm2m": lw}
        self.send_telemetry = True
        self.outbox = _Outbox(recs)
        self.sending = None
        self.ep = _Ep()
        self.names = {"temperature": (3303, 0)}
        self.sent = 0


def _send_step(after, ages):
    from m2m.lwm2m import send

    c = _Sender(after, ages)
    send.step(c, c.outbox.peek(8))
    assert len(c.ep.bodies) == 1 and c.sending == len(ages)
    return c, cbordec.loads(c.ep.bodies[0])


def test_send_carries_the_time_only_for_readings_that_waited():
    # default 5 s: readings of this second go without a time; one that waited 60 s in the outbox
    # carries its own, and so does every other reading of that Send (bt the oldest, t the offsets)
    c, recs = _send_step(None, (0, 0))
    assert all(-3 not in r and 6 not in r for r in recs), recs
    c, recs = _send_step(None, (60, 0))
    assert recs[0][-3] == c.times[0] and recs[1][6] == 60, recs
    got = senml.decode(c.ep.bodies[0], True)
    assert [x[2] for x in got] == c.times
    # the threshold is the config's: 120 s keeps a 60 s old reading time-less; 0 always sends it
    c, recs = _send_step(120, (60, 0))
    assert all(-3 not in r and 6 not in r for r in recs), recs
    c, recs = _send_step(0, (0,))
    assert recs[0][-3] == c.times[0], recs


def test_a_pulse_count_is_sent_as_the_digital_inputs_counter():
    # 3200 has no Sensor Value (5700): a count goes as its Digital Input Counter 5501 (3200.xml)
    from m2m import hal
    from m2m.lwm2m import send
    from m2m.report.contract import pack_readings

    c = _Sender(None, ())
    t = int(hal.epoch())
    c.names = {"pulses": (3200, 0), "temperature": (3303, 0)}
    send.step(c, [(1, 1, pack_readings([("pulses", 44, "", t), ("temperature", 20.5, "Cel", t)]))])
    got = senml.decode(c.ep.bodies[0], True)
    assert [(n, v) for n, v, _ in got] == [("/3200/0/5501", 44), ("/3303/0/5700", 20.5)], got


def test_read_formats_agree():
    m = _device_model()
    j = senml.decode(m.read((3, 0), SENML_JSON), False)
    c = senml.decode(m.read((3, 0), SENML_CBOR), True)
    assert j == c and ("/3/0/7/1", 5000, 0) in j
    assert m.read((3, 0, 9), TEXT) == b"100"
    try:
        m.read((3, 0), TEXT)
        raise AssertionError("text for an instance")
    except model.Err as e:
        assert e.code == coap.NOT_ACCEPTABLE


class Sock:
    def __init__(self):
        self.sent = []

    def send(self, b):
        self.sent.append(bytes(b))

    def recv(self):
        return None


def _client():
    from m2m.lwm2m.client import NAMES, Client

    c = Client({"device": {"id": "fz"}, "lwm2m": {"server": "coap://127.0.0.1:9"}})
    c.ep = coap.Endpoint(Sock(), c._handle)
    c.state = NAMES.index("registered")
    return c


def _mutate(rnd, b):
    b = bytearray(b)
    k = rnd.getrandbits(3)
    if k < 3 and b:
        for _ in range(1 + rnd.getrandbits(2)):
            b[rnd.getrandbits(16) % len(b)] = rnd.getrandbits(8)
    elif k < 5:
        b = b[:rnd.getrandbits(16) % (len(b) + 1)]
    elif k < 6:
        b = bytearray(rnd.getrandbits(8) for _ in range(rnd.getrandbits(6)))
    else:
        i = rnd.getrandbits(16) % (len(b) + 1)
        b[i:i] = bytes(rnd.getrandbits(8) for _ in range(1 + rnd.getrandbits(3)))
    return bytes(b)


def test_10000_malformed_datagrams_and_payloads():
    import gc

    random.seed(10)
    c = _client()
    s = c.ep.sock
    seeds = []
    mid = [0]

    def req(code, path, payload=b"", cf=None, accept=None, query=()):
        mid[0] += 1
        m = coap.Msg(coap.CON, code, mid[0] & 0xFFFF, b"tk")
        for p in path.strip("/").split("/"):
            m.add(coap.URI_PATH, p)
        if cf is not None:
            m.add(coap.CONTENT_FORMAT, cf)
        for q in query:
            m.add(coap.URI_QUERY, q)
        if accept is not None:
            m.add(coap.ACCEPT, accept)
        m.payload = payload
        return coap.encode(m)

    tl = tlv.enc(tlv.RESOURCE, 14, b"+01:00") + tlv.enc(tlv.MULTIPLE, 11, tlv.enc(tlv.RES_INSTANCE, 0, b"\x00"))
    sj = b'[{"bn":"/3/0/","n":"14","vs":"+02:00"},{"n":"13","v":1}]'
    sc = senml.encode([{"bn": "/3/0/", "n": "14", "vs": "+03:00"}, {"n": "13", "v": 2}], True)
    seeds = [req(coap.GET, "/3/0", accept=TLV), req(coap.GET, "/3/0/0"), req(coap.PUT, "/3/0", tl, TLV),
             req(coap.POST, "/3/0", sj, SENML_JSON), req(coap.POST, "/3/0", sc, SENML_CBOR),
             req(coap.PUT, "/3/0/14", b"+04:00", TEXT), req(coap.PUT, "/3/0/13?pmin=1", query=("pmin=1", "pmax=9")),
             req(coap.GET, "/3/0", accept=40), req(coap.POST, "/1/0/8"), req(coap.DELETE, "/3303/0")]
    answers = {}
    for i in range(10000):
        seed = seeds[i % len(seeds)]
        d = _mutate(random, seed) if i % 10 else seed
        n = len(s.sent)
        c.ep.datagram(d)  # must not raise
        for a in s.sent[n:]:
            m = coap.decode(a)
            assert m.type in (coap.ACK, coap.RST, coap.NON), m.type
            cls = m.code >> 5
            assert m.code == 0 or cls in (2, 4, 5), coap.code_str(m.code)
            answers[cls] = answers.get(cls, 0) + 1
            if cls == 5:
                raise AssertionError("5.xx for %s" % binascii.hexlify(d))
        del s.sent[:]
        if i % 1000 == 0:
            gc.collect()
    # the client still serves (a writable resource may have been replaced away, a read-only one not)
    c.ep.datagram(req(coap.GET, "/3/0/0", accept=TEXT))
    a = coap.decode(s.sent[-1])
    assert a.code == coap.CONTENT and a.payload == b"m2mkit"
    assert answers.get(4, 0) > 1000 and answers.get(2, 0) > 1000, answers
    c.ep.datagram(req(coap.GET, "/3/0", accept=TLV))
    assert coap.decode(s.sent[-1]).code == coap.CONTENT


def test_malformed_tlv_senml_cbor_payloads_refused():
    random.seed(3)
    bad = 0
    for i in range(3000):
        d = _mutate(random, DEVICE if i % 3 == 0 else SERVER if i % 3 == 1 else
                    senml.encode([{"bn": "/3/0/", "n": "0", "vs": "x"}, {"n": "13", "v": 1.5}], True))
        for f in (tlv.decode, cbordec.loads, lambda b: senml.decode(b, True), lambda b: senml.decode(b, False)):
            try:
                f(d)
            except ValueError:
                bad += 1
    assert bad > 3000

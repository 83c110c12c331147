# Usage records: HMAC-SHA256 against RFC 4231's test vectors (section 4.2-4.8), the record format,
# and the chain's write order around a power cut (the state's pending record, the outbox append).
import binascii
import json
import os

from m2m.outbox import USAGE, Outbox
from m2m.usagerec import Chain, Signer, message, payload

# this file's own folder (pytest's tmp_path for it, m2mkit.testing.run_file): never a shared path
TMP = os.getenv("M2M_TEST_TMP")
_n = [0]


def _dir():
    _n[0] += 1
    d = TMP + "/usagerec-%d" % _n[0]
    os.mkdir(d)
    return d


def _h(s):
    return binascii.unhexlify(s)


# RFC 4231 section 4: (key, data, HMAC-SHA-256); case 5 is truncated to 128 bits
RFC4231 = (
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\x0c" * 20, b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data. "
     b"The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
)


def test_hmac_sha256_rfc4231_vectors():
    for i, (key, data, want) in enumerate(RFC4231):
        got = binascii.hexlify(Signer(key).mac(data)).decode()
        assert got[:len(want)] == want, "RFC 4231 case %d: %s" % (i + 1, got)
    # the record's tag is the first 16 bytes, hex (case 5 is exactly that truncation)
    assert Signer(b"\x0c" * 20).tag(b"Test With Truncation") == "a3b6167473100ee06e0c796c2955552b"


def test_payload_is_compact_json_in_contract_order():
    p = payload("water", 3, 10, 16, "0.5", "L", 100, 200, "ab" * 16, "cd" * 16)
    assert p == (b'{"m":"water","n":3,"a":10,"b":16,"k":"0.5","u":"L","t0":100,"t1":200,"p":"'
                 + b"ab" * 16 + b'","s":"' + b"cd" * 16 + b'"}')
    assert json.loads(p)["b"] == 16
    assert message("dev-1", "water", 3, 10, 16, "0.5", "L", 100, 200, "") == b"dev-1|water|3|10|16|0.5|L|100|200|"


def _records(ob):
    return [json.loads(r[2]) for r in ob.peek(1000, (USAGE,))]


def test_chain_links_and_signs_each_record():
    d = _dir()
    ob = Outbox(d + "/ob")
    key = b"k" * 32
    c = Chain("dev-1", key, ob, d + "/st.json")
    c.begin("water", 5, 1000)
    assert c.record("water", 9, "0.5", "L", 2000) == 1
    assert c.record("water", 12, "0.5", "L", 3000) == 2
    r1, r2 = _records(ob)
    assert (r1["a"], r1["b"], r1["t0"], r1["t1"], r1["p"]) == (5, 9, 1000, 2000, "")
    assert (r2["a"], r2["b"], r2["t0"], r2["t1"], r2["p"]) == (9, 12, 2000, 3000, r1["s"])
    s = Signer(key)
    for r in (r1, r2):
        m = message("dev-1", r["m"], r["n"], r["a"], r["b"], r["k"], r["u"], r["t0"], r["t1"], r["p"])
        assert r["s"] == s.tag(m)
    # a restart goes on from the saved head
    c2 = Chain("dev-1", key, Outbox(d + "/ob"), d + "/st.json")
    assert (c2.n, c2.s, c2.meters["water"]) == (2, r2["s"], [12, 3000])


def test_cut_before_the_append_finishes_the_pending_record_once():
    d = _dir()
    ob = Outbox(d + "/ob")
    c = Chain("dev-1", b"x" * 32, ob, d + "/st.json")
    c.begin("pump", 0, 0)
    c.record("pump", 60, "1/3600", "h", 60)
    # the power goes after the pending state was written, before the outbox append
    c._finish = lambda rec, stored: None
    c.record("pump", 90, "1/3600", "h", 120)
    assert len(_records(ob)) == 1
    c2 = Chain("dev-1", b"x" * 32, Outbox(d + "/ob"), d + "/st.json")
    recs = _records(Outbox(d + "/ob"))
    assert [r["n"] for r in recs] == [1, 2] and recs[1]["b"] == 90 and c2.n == 2
    # and again: the finished record is not appended a second time
    Chain("dev-1", b"x" * 32, Outbox(d + "/ob"), d + "/st.json")
    assert [r["n"] for r in _records(Outbox(d + "/ob"))] == [1, 2]


def test_cut_after_the_append_does_not_sign_a_second_record_with_its_number():
    d = _dir()
    ob = Outbox(d + "/ob")
    c = Chain("dev-1", b"x" * 32, ob, d + "/st.json")
    c.begin("pump", 0, 0)
    saves = []
    real = c._save

    def save(pending):
        saves.append(pending)
        if len(saves) == 2:  # the power goes after the append, before the state is final
            raise KeyboardInterrupt
        real(pending)

    c._save = save
    try:
        c.record("pump", 30, "1", "s", 30)
    except KeyboardInterrupt:
        pass
    ob2 = Outbox(d + "/ob")
    c2 = Chain("dev-1", b"x" * 32, ob2, d + "/st.json")
    assert c2.n == 1 and len(_records(ob2)) == 1
    c2.record("pump", 40, "1", "s", 40)
    recs = _records(ob2)
    assert [r["n"] for r in recs] == [1, 2] and recs[1]["p"] == recs[0]["s"] and recs[1]["a"] == 30

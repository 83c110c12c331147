# BER-TLV (m2m.bertlv) and the ES10 answer parsers of m2m.net.esim (issue #13), in MicroPython.
# The encodings below follow GSMA SGP.22's ASN.1 (RSPDefinitions, as lpac ships it in
# docs/asn1/rsp.asn): GetEuiccDataRequest BF3E {5C '5A'}, GetEuiccDataResponse BF3E {5A <16-byte
# EID>}, ProfileInfoListResponse BF2D {A0 {E3 {...}}} / BF2D {81 <error>}, EnableProfileRequest
# BF31 {A0 {5A <ICCID>}, 81 <refreshFlag>}, EnableProfileResponse BF31 {80 <result>}; ICCIDs as in
# EF_ICCID (ETSI TS 102 221 13.2: BCD, nibbles swapped, F-padded). Malformed card answers raise
# ValueError (EsimError is one) and nothing else, over a few thousand mutations.
import random

from m2m import bertlv
from m2m.net import esim


def h(s):
    return bytes(int(s[i:i + 2], 16) for i in range(0, len(s), 2))


def x(b):
    return "".join("%02X" % c for c in b)


def raises(fn, *a):
    try:
        fn(*a)
    except ValueError:
        return True
    return False


EID = "89049032123451234512345678901235"
ICCID_A = "8944000000000000012"
ICCID_B = "89440000000000000020"


def profile(iccid, state, nick, sp, cls):
    return bertlv.enc(0xE3, bertlv.enc(0x5A, esim.iccid_bcd(iccid)) + bertlv.enc(0x9F70, bytes((state,)))
                      + bertlv.enc(0x90, nick.encode()) + bertlv.enc(0x91, sp.encode())
                      + bertlv.enc(0x95, bytes((cls,))))


LIST = bertlv.enc(0xBF2D, bertlv.enc(0xA0, profile(ICCID_A, 1, "home", "Operator A", 2)
                                     + profile(ICCID_B, 0, "travel", "Operator B", 2)))


def test_get_eid_request_and_answer():
    # the request SGP.22 defines (tagList '5A'), the whole STORE DATA APDU as lpac sends it
    assert x(bertlv.enc(0xBF3E, bertlv.enc(0x5C, b"\x5a"))) == "BF3E035C015A"
    resp = h("BF3E125A10" + EID)
    assert esim.parse_eid(resp) == EID
    assert raises(esim.parse_eid, h("BF3E115A0F" + EID[:30]))  # a 15-byte EID
    assert raises(esim.parse_eid, h("BF2D00"))


def test_multi_byte_tags_and_long_lengths():
    assert x(bertlv.enc(0x9F70, b"\x01")) == "9F700101"
    assert x(bertlv.enc(0x5A, b"")) == "5A00"
    v = bytes(200)
    t = bertlv.enc(0xBF2D, v)
    assert x(t[:4]) == "BF2D81C8" and len(t) == 204
    t = bertlv.enc(0xE3, bytes(300))
    assert x(t[:4]) == "E382012C"
    assert bertlv.head(t) == (0xE3, 4, 304)
    t3 = bertlv.enc(0x9F8170, b"\xaa")  # a three-byte tag
    assert x(t3) == "9F817001AA" and bertlv.head(t3) == (0x9F8170, 4, 5)
    assert bertlv.constructed(0xBF2D) and bertlv.constructed(0xE3) and not bertlv.constructed(0x9F70)
    _, vs, ve = bertlv.head(LIST)
    assert vs == 3 and ve == len(LIST) and [e[0] for e in bertlv.each(LIST, vs, ve)] == [0xA0]


def test_malformed_tlvs_are_refused():
    for bad in ("BF", "BF2D", "5A05010203", "5A80", "5A8401000000", "9F818101", "5A82FF"):
        assert raises(bertlv.head, h(bad)), bad
    # a child running past its parent
    assert raises(bertlv.each, h("E3045A0501020304"), 2, 6)
    assert raises(bertlv.each, h("E3035A0201"), 2, 5)


def test_iccid_coding():
    assert x(esim.iccid_bcd("89440000000000000020")) == "98440000000000000002"
    assert x(esim.iccid_bcd(ICCID_A)) == "984400000000000010F2"
    assert esim.iccid_str(esim.iccid_bcd(ICCID_A)) == ICCID_A
    assert raises(esim.iccid_bcd, "89x4")
    assert raises(esim.iccid_str, h("9A"))


def test_profile_list():
    ps = esim.parse_profiles(LIST)
    assert ps == [{"iccid": ICCID_A, "state": "enabled", "nickname": "home", "provider": "Operator A",
                   "class": "operational"},
                  {"iccid": ICCID_B, "state": "disabled", "nickname": "travel", "provider": "Operator B",
                   "class": "operational"}]
    # an unknown element inside a profile and an unknown one beside them are skipped
    extra = bertlv.enc(0xBF2D, bertlv.enc(0xA0, bertlv.enc(0xE3, bertlv.enc(0x5A, esim.iccid_bcd(ICCID_B))
                                                             + bertlv.enc(0xB7, b"\x01\x02"))
                                          + bertlv.enc(0xE4, b"")))
    assert [p["iccid"] for p in esim.parse_profiles(extra)] == [ICCID_B]
    assert esim.parse_profiles(h("BF2D02A000")) == []
    try:
        esim.parse_profiles(h("BF2D0381017F"))
        assert False
    except esim.EsimError as e:
        assert "error 127" in str(e)


def test_enable_request_and_result():
    req = esim.enable_request(ICCID_B)
    assert x(req) == "BF3111A00C5A0A" + "98440000000000000002" + "8101FF"
    assert esim.parse_enable(h("BF3103800100")) == 0
    assert esim.parse_enable(h("BF3103800102")) == 2
    assert raises(esim.parse_enable, h("BF3100"))


def test_cgla_answers():
    assert esim.parse_cgla(b'+CGLA: 8,"BF009000"') == (b"\xbf\x00", 0x9000)
    assert esim.parse_cgla(b'+CGLA: 4,"6A88"') == (b"", 0x6A88)
    for bad in (b'+CGLA: 6,"BF009000"', b'+CGLA: 8,"BF0090ZZ"', b"+CGLA: 2,\"90\"", b"+CGLA: x",
                b'+CGLA: 3,"900"', b"+CGLA:"):
        assert raises(esim.parse_cgla, bad), bad


def test_fuzzed_card_answers_never_crash():
    random.seed(13)
    good = (h("BF3E125A10" + EID), LIST, h("BF3103800100"))
    parsers = (esim.parse_eid, esim.parse_profiles, esim.parse_enable)
    n = refused = 0
    for i in range(3000):
        k = i % 3
        b = bytearray(good[k])
        for _ in range(1 + random.getrandbits(2)):
            op = random.getrandbits(2)
            j = random.getrandbits(8) % len(b) if b else 0
            if op == 0 and b:
                b[j] = random.getrandbits(8)  # a changed byte (tag, length or value)
            elif op == 1:
                b = b[:j]  # truncated
            elif op == 2:
                b[j:j] = bytes((random.getrandbits(8),))  # an inserted byte
            elif b:
                b[j] = b[j] ^ 0x80  # a length's long-form bit
        try:
            parsers[k](bytes(b))
            n += 1
        except ValueError:
            refused += 1
        line = b'+CGLA: %d,"%s"' % (len(b) * 2 + random.getrandbits(1) * 2, x(b).encode())
        try:
            esim.parse_cgla(line)
        except ValueError:
            pass
    assert n + refused == 3000 and refused > 1000

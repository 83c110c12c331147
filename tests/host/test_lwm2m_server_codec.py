"""The server's payload decoders against the specifications' own examples, and bad input."""

import json
import random

import cbor2
import pytest

from m2mkit.lwm2m import codec

# OMA-TS-LightweightM2M_Core-V1_1 §7.4.3 (TLV), its example of a Read of the Device object
# instance /3/0 (the same bytes are the TLV example of TS 1.0 §6.4.3; wakaama checks its coder
# against them too: eclipse-wakaama/wakaama f91cfe0 tests/data_tlv_json_lwm2m_data_test.c test_2)
DEVICE_TLV = bytes.fromhex(
    "c800144f70656e204d6f62696c6520416c6c69616e6365"  # 0 Manufacturer
    "c801164c69676874776569676874204d324d20436c69656e74"  # 1 Model Number
    "c80209333435303030313233"  # 2 Serial Number
    "c303312e30"  # 3 Firmware Version
    "8606410001410105"  # 6 Available Power Sources [1, 5]
    "88070842000ed842011388"  # 7 Power Source Voltage [3800, 5000]
    "870841007d42010384"  # 8 Power Source Current [125, 900]
    "c10964"  # 9 Battery Level
    "c10a0f"  # 10 Memory Free
    "830b410000"  # 11 Error Code [0]
    "c40d5182428f"  # 13 Current Time
    "c60e2b30323a3030"  # 14 UTC Offset
    "c10f55"  # 15 Timezone
)
DEVICE = {"/3/0/0": "Open Mobile Alliance", "/3/0/1": "Lightweight M2M Client", "/3/0/2": "345000123",
          "/3/0/3": "1.0", "/3/0/6/0": 1, "/3/0/6/1": 5, "/3/0/7/0": 3800, "/3/0/7/1": 5000,
          "/3/0/8/0": 125, "/3/0/8/1": 900, "/3/0/9": 100, "/3/0/10": 15, "/3/0/11/0": 0,
          "/3/0/13": 1367491215, "/3/0/14": "+02:00", "/3/0/15": "U"}


def test_tlv_device_object_example_of_the_ts():
    assert codec.decode(codec.TLV, DEVICE_TLV, (3, 0)) == DEVICE


def test_tlv_same_example_read_on_the_object_and_one_resource():
    wrapped = bytes([0x08, 0x00, len(DEVICE_TLV)]) + DEVICE_TLV  # object instance 0, 8-bit length
    assert codec.decode(codec.TLV, wrapped, (3,)) == DEVICE
    assert codec.decode(codec.TLV, bytes.fromhex("c10964"), (3, 0, 9)) == {"/3/0/9": 100}
    assert codec.decode(codec.TLV, bytes.fromhex("410105"), (3, 0, 6, 1)) == {"/3/0/6/1": 5}


def test_tlv_encoder_gives_back_the_example_bytes():
    # the encoder writes the shortest forms the TS example uses
    values = {k: v for k, v in DEVICE.items()}
    assert codec.tlv_encode(values, (3, 0)) == DEVICE_TLV


def test_tlv_lengths_and_16_bit_identifiers():
    big = b"x" * 300
    enc = codec.tlv_one(codec.RES, 5700, big)
    assert enc[:5] == bytes([0xF0, 0x16, 0x44, 0x01, 0x2C])  # 16-bit id, 16-bit length
    assert enc[5:] == big
    assert codec.decode(codec.TLV, enc, (32769, 0)) == {"/32769/0/5700": big.decode()}  # untyped: text
    assert codec.decode(codec.TLV, bytes.fromhex("e4164440ac0000"), (3303, 0)) == {"/3303/0/5700": 5.375}


def test_tlv_types_from_the_registry():
    assert codec.value_of(bytes.fromhex("3ff0000000000000"), codec.F) == 1.0
    assert codec.value_of(b"\x01", codec.B) is True
    assert codec.value_of(bytes.fromhex("ff"), codec.I) == -1
    assert codec.value_of(bytes.fromhex("00030001"), codec.L) == "3:1"
    with pytest.raises(codec.CodecError, match="integer of 3 bytes"):
        codec.value_of(b"abc", codec.I)
    with pytest.raises(codec.CodecError, match="boolean"):
        codec.value_of(b"\x02", codec.B)


# RFC 8428 §5.1.2 / §6: the multiple-datapoint example, JSON and its CBOR form (integer labels of
# §6 Table 6, written from the RFC's diagnostic notation)
RFC_PACK = [{"bn": "urn:dev:ow:10e2073a0108006:", "bt": 1.276020076001e+09, "bu": "A", "bver": 5,
             "n": "voltage", "u": "V", "v": 120.1}] + [
            {"n": "current", "t": t, "v": v} for t, v in ((-5, 1.2), (-4, 1.3), (-3, 1.4), (-2, 1.5), (-1, 1.6))] + [
            {"n": "current", "v": 1.7}]
RFC_CBOR_DIAG = [{-2: "urn:dev:ow:10e2073a0108006:", -3: 1276020076.001, -4: "A", -1: 5, 0: "voltage", 1: "V",
                  2: 120.1}] + [{0: "current", 6: t, 2: v} for t, v in ((-5, 1.2), (-4, 1.3), (-3, 1.4),
                                                                      (-2, 1.5), (-1, 1.6))] + [
                 {0: "current", 6: 0, 2: 1.7}]
RFC_RESOLVED = [("urn:dev:ow:10e2073a0108006:voltage", 120.1, 1276020076.001)] + [
    ("urn:dev:ow:10e2073a0108006:current", v, 1276020076.001 + t)
    for t, v in ((-5, 1.2), (-4, 1.3), (-3, 1.4), (-2, 1.5), (-1, 1.6), (0, 1.7))]


def test_senml_json_rfc_example_resolves():
    assert codec.senml_json_records(json.dumps(RFC_PACK).encode()) == RFC_RESOLVED


def test_senml_cbor_rfc_example_resolves():
    data = cbor2.dumps(RFC_CBOR_DIAG)
    assert data[:3] == bytes([0x87, 0xA7, 0x21])  # array(7), map(7), -2 (bn): RFC 8428 §6's opening
    assert codec.senml_cbor_records(data) == RFC_RESOLVED


def test_senml_lwm2m_device_read_example():
    # TS 1.1 §7.4.4's SenML JSON form of a Read of /3/0 (first records)
    pack = [{"bn": "/3/0/", "n": "0", "vs": "Open Mobile Alliance"}, {"n": "1", "vs": "Lightweight M2M Client"},
            {"n": "6/0", "v": 1}, {"n": "6/1", "v": 5}, {"n": "13", "v": 1367491215}]
    want = {"/3/0/0": "Open Mobile Alliance", "/3/0/1": "Lightweight M2M Client", "/3/0/6/0": 1,
            "/3/0/6/1": 5, "/3/0/13": 1367491215}
    assert codec.decode(codec.SENML_JSON, json.dumps(pack).encode()) == want
    as_cbor = cbor2.dumps([{{"bn": -2, "n": 0, "v": 2, "vs": 3}[k]: v for k, v in r.items()} for r in pack])
    assert codec.decode(codec.SENML_CBOR, as_cbor) == want


def test_senml_opaque_bool_and_objlnk():
    pack = [{"n": "/5/0/0", "vd": "AAEC"}, {"n": "/1/0/6", "vb": True}, {"n": "/2/0/0", "vlo": "3:0"}]
    assert codec.decode(codec.SENML_JSON, json.dumps(pack).encode()) == {
        "/5/0/0": b"\x00\x01\x02", "/1/0/6": True, "/2/0/0": "3:0"}
    cb = cbor2.dumps([{0: "/5/0/0", 8: b"\x00\x01\x02"}, {0: "/1/0/6", 4: False}])
    assert codec.decode(codec.SENML_CBOR, cb) == {"/5/0/0": b"\x00\x01\x02", "/1/0/6": False}


def test_senml_encoder_round_trip():
    values = {"/3303/0/5700": 21.5, "/3303/0/5701": "Cel", "/1/0/6": True, "/5/0/0": b"\x01\x02"}
    for fmt in (codec.SENML_JSON, codec.SENML_CBOR):
        assert codec.decode(fmt, codec.encode(fmt, values, (3303,))) == values


@pytest.mark.parametrize("payload, why", [
    (b"[{\"n\": \"/3/0/0\", \"v\": 1, \"vs\": \"x\"}]", "more than one value"),
    (b"{\"n\": 1}", "array of records"),
    (b"[{\"n\": 5, \"v\": 1}]", "n has the wrong type"),
    (b"[{\"n\": \"a\", \"v\": true}]", "v has the wrong type"),
    (b"[{\"n\": \"a\", \"vd\": \"***\"}]", "base64url"),
    (b"[{\"n\": \"a\", \"v\": 1, \"xx_\": 1}]", "must-understand"),
    (b"[", "not JSON"),
])
def test_senml_json_bad_input_says_what(payload, why):
    with pytest.raises(codec.CodecError, match=why):
        codec.senml_json_records(payload)


def test_link_format():
    links = codec.parse_links('</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>;ver=1.1,</3303/0>,</5>')
    assert links == [("/", {"rt": "oma.lwm2m", "ct": "11543"}), ("/1/0", {}), ("/3/0", {"ver": "1.1"}),
                     ("/3303/0", {}), ("/5", {})]
    assert codec.parse_links('</a>;title="x,y";obs') == [("/a", {"title": "x,y", "obs": None})]
    with pytest.raises(codec.CodecError, match="<uri>"):
        codec.parse_links("/3/0")


def test_paths():
    assert codec.parse_path("/3303/0/5700") == (3303, 0, 5700)
    assert codec.parse_path("/") == ()
    for bad in ("3/0", "/3/x", "/70000", "/1/2/3/4/5", None):
        with pytest.raises(codec.CodecError, match="path"):
            codec.parse_path(bad)


def test_random_bytes_give_codec_errors_only():
    rnd = random.Random(10)
    seeds = [DEVICE_TLV, cbor2.dumps(RFC_CBOR_DIAG), json.dumps(RFC_PACK).encode()]
    for i in range(3000):
        if i % 2:
            data = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 40)))
        else:  # a valid payload with a few bytes changed or cut
            data = bytearray(rnd.choice(seeds))
            for _ in range(rnd.randrange(1, 4)):
                data[rnd.randrange(len(data))] = rnd.getrandbits(8)
            data = bytes(data[:rnd.randrange(1, len(data) + 1)])
        for fmt, base in ((codec.TLV, (3, 0)), (codec.SENML_JSON, ()), (codec.SENML_CBOR, ()), (codec.TEXT, ()),
                          (codec.LINK, ())):
            try:
                codec.decode(fmt, data, base)
            except codec.CodecError:
                pass

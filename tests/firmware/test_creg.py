# +CEREG / +CGREG / +CREG parsing (m2m.creg), 3GPP TS 27.007 forms n = 0..5, and the GPRS timers.
from m2m import creg


def test_cereg_solicited_n0_n1():
    r = creg.parse(b"+CEREG: 0,1", solicited=True)
    assert r.kind == "CEREG" and r.solicited and r.n == 0 and r.stat == 1 and r.registered
    assert r.tac is None and r.ci is None and r.act is None
    r = creg.parse("+CEREG: 1,5", True)
    assert r.n == 1 and r.stat == 5 and r.roaming and r.registered


def test_cereg_solicited_n2_monarch_transcript():
    # monarch_cereg-n3-raw_1.txt: n=3 without cause fields, then searching without location
    r = creg.parse(b'+CEREG: 3,1,"9FC5","011FCC67",9', solicited=True)
    assert (r.n, r.stat, r.tac, r.ci, r.act) == (3, 1, 0x9FC5, 0x011FCC67, 9)
    assert r.cause_type is None and r.reject_cause is None
    r = creg.parse(b"+CEREG: 3,2", solicited=True)
    assert r.stat == creg.SEARCHING and not r.registered and r.tac is None


def test_cereg_solicited_n3_reject_cause():
    r = creg.parse(b'+CEREG: 3,3,"1A2B","01A2B3C4",7,0,15', solicited=True)
    assert r.stat == creg.DENIED and r.act == 7 and r.cause_type == 0 and r.reject_cause == 15


def test_cereg_solicited_n4_psm_timers():
    r = creg.parse(b'+CEREG: 4,1,"1A2B","01A2B3C4",7,,,"00100100","01000111"', solicited=True)
    assert r.n == 4 and r.cause_type is None and r.reject_cause is None
    assert r.active_time == "00100100" and r.periodic_tau == "01000111"
    assert r.active_time_s == 4 * 60  # 001 = 1 min units, value 4
    assert r.periodic_tau_s == 7 * 36000  # 010 = 10 h units, value 7 (70 hours)


def test_cereg_solicited_n5_everything():
    r = creg.parse(b'+CEREG: 5,5,"00C3","0000ABCD",9,1,11,"00000101","10100001"', True)
    assert (r.n, r.stat, r.tac, r.ci, r.act) == (5, 5, 195, 0xABCD, 9)
    assert (r.cause_type, r.reject_cause) == (1, 11)
    assert r.active_time_s == 10 and r.periodic_tau_s == 60


def test_cereg_urc_forms():
    r = creg.parse(b"+CEREG: 2", solicited=False)
    assert not r.solicited and r.n is None and r.stat == 2
    r = creg.parse(b'+CEREG: 1,"9FC5","011FCC67",9', solicited=False)
    assert (r.stat, r.tac, r.ci, r.act) == (1, 0x9FC5, 0x011FCC67, 9)
    r = creg.parse(b'+CEREG: 3,"9FC5","011FCC67",9,0,15', solicited=False)
    assert r.reject_cause == 15
    r = creg.parse(b'+CEREG: 1,"9FC5","011FCC67",9,,,"11100000","00011110"', solicited=False)
    assert r.active_time_s is None  # deactivated
    assert r.periodic_tau_s == 30 * 600


def test_cereg_empty_location_fields():
    r = creg.parse(b"+CEREG: 1,,,7", solicited=False)
    assert r.stat == 1 and r.tac is None and r.ci is None and r.act == 7


def test_auto_mode():
    cases = [
        (b"+CEREG: 2", False, 2),
        (b"+CEREG: 0,1", True, 1),
        (b"+CEREG: 2,2", True, 2),
        (b'+CEREG: 1,"9FC5","011FCC67",9', False, 1),
        (b'+CEREG: 3,1,"9FC5","011FCC67",9', True, 1),
        (b'+CEREG: 3,"1A2B","01A2B3C4",7,0,15', False, 3),
        (b'+CEREG: 4,1,"1A2B","01A2B3C4",7,,,"00100100","01000111"', True, 1),
        (b'+CEREG: 1,"1A2B","01A2B3C4",7,,,"00100100","01000111"', False, 1),
        (b"+CEREG: 1,,,7", False, 1),
        (b"+CEREG: 1,1234,5678,7", False, 1),  # unquoted tac (non-conforming): by field count
        (b'+CGREG: 0,1', True, 1),
        (b'+CGREG: 1,"00C3","0000ABCD",7,"01"', False, 1),
        (b'+CREG: 2,5,"00C3","0000ABCD",7', True, 5),
        (b"+CREG: 5", False, 5),
    ]
    for line, sol, stat in cases:
        r = creg.parse(line)
        assert r is not None, line
        assert r.solicited == sol and r.stat == stat, (line, r)


def test_cgreg_has_rac_and_three_timers():
    r = creg.parse(b'+CGREG: 4,1,"00C3","0000ABCD",7,"5A",,,"00100100","01000111","01000011"',
                   solicited=True)
    assert r.kind == "CGREG" and r.tac == 0xC3 and r.rac == 0x5A and r.act == 7
    assert r.active_time_s == 240 and r.periodic_tau_s == 70 * 3600
    assert r.ready_timer_s == 3 * 360  # 3 decihours
    # older firmware: no rac
    r = creg.parse(b'+CGREG: 2,1,"00C3","0000ABCD",7', solicited=True)
    assert r.act == 7 and r.rac is None


def test_creg_fields_and_transcript_lines():
    # sim7000e transcript: CREG says not registered while CGREG/CEREG say registered
    assert creg.parse(b"+CREG: 0,0", True).stat == 0
    assert creg.parse(b"+CGREG: 0,1", True).registered
    assert creg.parse(b"+CEREG: 0,1", True).registered
    # bg77 transcript: roaming with n=0
    assert creg.parse(b"+CREG: 0,5", True).roaming
    r = creg.parse(b'+CREG: 3,3,"00C3","0000ABCD",0,0,2', solicited=True)
    assert r.cause_type == 0 and r.reject_cause == 2


def test_malformed_and_foreign_lines():
    assert creg.parse(b"+CSQ: 20,99") is None
    assert creg.parse(b"+CEREG: x") is None
    assert creg.parse(b"+CEREG: 0", solicited=True) is None
    assert creg.parse(b'+CEREG: 1,"ZZZZ"', solicited=False) is None


def test_timer_codings():
    # GPRS Timer 2 (T3324): 000 2 s, 001 1 min, 010 6 min, 111 off; other units = 1 min
    assert creg.t3324_s("00000001") == 2
    assert creg.t3324_s("00111111") == 31 * 60
    assert creg.t3324_s("01000010") == 2 * 360
    assert creg.t3324_s("11100000") is None
    assert creg.t3324_s("10000011") == 3 * 60
    # GPRS Timer 3 (T3412 ext): 000 10 min, 001 1 h, 010 10 h, 011 2 s, 100 30 s, 101 1 min,
    # 110 320 h, 111 off
    assert creg.t3412_s("00000001") == 600
    assert creg.t3412_s("00100001") == 3600
    assert creg.t3412_s("01000001") == 36000
    assert creg.t3412_s("01100101") == 10
    assert creg.t3412_s("10000010") == 60
    assert creg.t3412_s("10100011") == 180
    assert creg.t3412_s("11000001") == 320 * 3600
    assert creg.t3412_s("11100000") is None
    assert creg.t3412_s(None) is None and creg.t3412_s("0101") is None
    assert creg.t3412_s(b'"00100001"') == 3600


def test_timer_encoders_round_trip():
    for s in (2, 10, 60, 62, 600, 1860, 3600, 11160):
        bits = creg.encode_t3324(s)
        assert len(bits) == 8 and creg.t3324_s(bits) >= s
    for s in (2, 60, 600, 3600, 86400, 1000000, 31 * 1152000):
        bits = creg.encode_t3412(s)
        assert creg.t3412_s(bits) >= s, (s, bits)
    assert creg.encode_t3412(3600) == "00000110"  # 6 x 10 min: the finest unit that fits
    assert creg.encode_t3324(60) == "00011110"  # 30 x 2 s
    assert creg.encode_t3324(None) == "11100000"

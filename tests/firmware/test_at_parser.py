# The sans-IO AT parser (m2m.atparse), fed bytes the way the modems send them.
from m2m.atparse import (
    ATParser, ATParseError, URC_DEFAULT, EV_FINAL, EV_LINE, EV_URC, EV_PROMPT, EV_DATA, EV_NOISE,
    EV_OVERFLOW, resp_prefix, resp_prefixes, is_safe, plain_final,
)

OK = (EV_FINAL, True, None, b"OK")


def run(wire, cmd=None, parser=None, payload=None, **kw):
    p = parser or ATParser()
    if cmd is not None:
        p.begin(cmd, **kw)
    if payload is not None:
        # wire is (before_prompt, after_payload)
        p.feed(wire[0])
        assert p.events and p.events[-1] == (EV_PROMPT,), p.events
        p.payload_sent(payload)
        p.feed(wire[1])
    else:
        p.feed(wire)
    ev = p.events[:]
    p.events.clear()
    return ev


def splits(wire, expected, cmd=None, payload=None, **kw):
    # the same events however the bytes are cut, and whatever buffer type carries them
    def pieces(b, cuts):
        out = []
        last = 0
        for c in cuts:
            out.append(b[last:c])
            last = c
        out.append(b[last:])
        return out

    parts = [wire] if payload is None else list(wire)
    for pi in range(len(parts)):
        b = parts[pi]
        cutsets = [[i] for i in range(1, len(b))] + [list(range(1, len(b)))]
        for cuts in cutsets:
            for conv in (bytes, bytearray, memoryview):
                p = ATParser()
                if cmd is not None:
                    p.begin(cmd, **kw)
                for pj in range(len(parts)):
                    chunks = pieces(parts[pj], cuts) if pj == pi else [parts[pj]]
                    for c in chunks:
                        p.feed(conv(bytearray(c)))
                    if payload is not None and pj == 0:
                        p.payload_sent(payload)
                assert p.events == expected, (cuts, conv, p.events, expected)


# ---- finals ----
def test_ok_echo_off():
    assert run(b"\r\nOK\r\n", b"AT") == [OK]


def test_echo_on_dropped():
    ev = run(b"AT+CGMM\r\r\nSIMCOM_SIM7080G\r\n\r\nOK\r\n", b"AT+CGMM")
    assert ev == [(EV_LINE, b"SIMCOM_SIM7080G"), OK]


def test_echo_of_command_only_once():
    # the first line equal to the command is its echo; a second one is a stale echo (noise),
    # never an answer line
    ev = run(b"AT\r\r\nAT\r\nOK\r\n", b"AT")
    assert ev == [(EV_NOISE, b"AT"), OK]


def test_error_finals():
    assert run(b"\r\nERROR\r\n", b"AT+X") == [(EV_FINAL, False, "ERROR", b"ERROR")]
    assert run(b"\r\n+CME ERROR: 10\r\n", b"AT+CPIN?") == [
        (EV_FINAL, False, ("CME", 10), b"+CME ERROR: 10")]
    assert run(b"\r\n+CME ERROR: SIM not inserted\r\n", b"AT+CPIN?") == [
        (EV_FINAL, False, ("CME", "SIM not inserted"), b"+CME ERROR: SIM not inserted")]
    assert run(b"\r\n+CMS ERROR: 500\r\n", b"AT+CMGS=5") == [
        (EV_FINAL, False, ("CMS", 500), b"+CMS ERROR: 500")]
    # SIMCom manuals print "+CME ERROR <err>" without the colon
    assert run(b"\r\n+CME ERROR 3\r\n", b"AT+X")[0][2] == ("CME", 3)


def test_declared_finals():
    ev = run(b"\r\nNO CARRIER\r\n", b"ATD*99#", fails=(b"NO CARRIER",), finals=(b"CONNECT",))
    assert ev == [(EV_FINAL, False, "NO CARRIER", b"NO CARRIER")]
    ev = run(b"\r\nCONNECT 150000000\r\n", b"ATD*99#", fails=(b"NO CARRIER",), finals=(b"CONNECT",))
    assert ev == [(EV_FINAL, True, None, b"CONNECT 150000000")]
    # SIM7000 multi-IP: "<n>, SEND OK" / "<n>, SEND FAIL"
    ev = run(b"\r\n0, SEND OK\r\n", b"AT+CIPSTATUS", finals=(b"SEND OK",), fails=(b"SEND FAIL",))
    assert ev == [(EV_FINAL, True, None, b"0, SEND OK")]
    # without the declaration, NO CARRIER is just a line of the command
    assert run(b"\r\nNO CARRIER\r\nOK\r\n", b"AT+X") == [(EV_LINE, b"NO CARRIER"), OK]


def test_trailing_spaces_and_line_ends():
    assert run(b"\rOK  \r", b"AT") == [OK]
    assert run(b"\nOK\n", b"AT") == [OK]
    assert run(b"\n\n\r\r\nBG95\n\r\nOK\n", b"AT+CGMM") == [(EV_LINE, b"BG95"), OK]


# ---- URCs ----
def test_banners_are_urcs():
    data = (b"\r\nRDY\r\n\r\nAPP RDY\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n\r\n^SYSSTART\r\n"
            b"\r\n+CFUN: 1\r\n\r\nPB DONE\r\n\r\nNORMAL POWER DOWN\r\n\r\n+SYSSTART\r\n"
            b"\r\nPOWERED DOWN\r\n")
    ev = run(data)
    assert [e[0] for e in ev] == [EV_URC] * 10
    assert ev[0][1] == b"RDY" and ev[-1][1] == b"POWERED DOWN"
    # and while a command runs, a banner is still a URC, not its answer
    assert run(b"\r\nRDY\r\n\r\nOK\r\n", b"AT") == [(EV_URC, b"RDY"), OK]


def test_urc_inside_cimi_is_not_the_imsi():
    data = (b"\r\nDST: 1\r\n\r\n*PSUTTZ: 24/05/01,10:00:00\",\"+08\",1\r\n"
            b"\r\n310410123456789\r\n\r\nOK\r\n")
    ev = run(data, b"AT+CIMI")
    assert ev == [(EV_URC, b"DST: 1"), (EV_URC, b'*PSUTTZ: 24/05/01,10:00:00","+08",1'),
                  (EV_LINE, b"310410123456789"), OK]


def test_response_prefix_beats_urc_prefix():
    ev = run(b"\r\n+CEREG: 2,1,\"9FC5\",\"011FCC67\",9\r\n\r\nOK\r\n", b"AT+CEREG?")
    assert ev == [(EV_LINE, b'+CEREG: 2,1,"9FC5","011FCC67",9'), OK]
    # the same prefix during another command is a URC
    ev = run(b"\r\n+CEREG: 5\r\n\r\nBG95\r\n\r\nOK\r\n", b"AT+CGMM")
    assert ev == [(EV_URC, b"+CEREG: 5"), (EV_LINE, b"BG95"), OK]
    # explicit resp, and resp=() turning the derivation off
    ev = run(b"\r\n+CPIN: READY\r\n\r\nOK\r\n", b"AT+CPIN?", resp=())
    assert ev == [(EV_URC, b"+CPIN: READY"), OK]
    ev = run(b"\r\n+CEREG: 1\r\n\r\nOK\r\n", b"AT+X", resp=b"+CEREG:")
    assert ev == [(EV_LINE, b"+CEREG: 1"), OK]


def test_lines_without_command_are_urcs_and_stray_finals_noise():
    ev = run(b"\r\n+QIURC: \"recv\",0\r\n\r\nOK\r\n\r\nHello\r\n")
    assert ev == [(EV_URC, b'+QIURC: "recv",0'), (EV_NOISE, b"OK"), (EV_URC, b"Hello")]


def test_added_urc_prefix():
    p = ATParser()
    p.add_urc(b"+QIURC:")
    ev = run(b"\r\n+QIURC: \"closed\",1\r\n\r\n+QISTATE: 0,\"TCP\"\r\n\r\nOK\r\n", b"AT+QISTATE=1,0",
             parser=p)
    assert ev == [(EV_URC, b'+QIURC: "closed",1'), (EV_LINE, b'+QISTATE: 0,"TCP"'), OK]
    p.remove_urc(b"+QIURC:")
    assert not p.is_urc(b'+QIURC: "closed",1')
    assert p.is_urc(b"RDY")


# ---- prompt and payload ----
def test_prompt_quectel_with_space_and_send_ok():
    kw = dict(finals=(b"SEND OK",), fails=(b"SEND FAIL",), prompt=True)
    ev = run((b"\r\n> ", b"\r\nSEND OK\r\n"), b"AT+QISEND=0,5", payload=b"hello", **kw)
    assert ev == [(EV_PROMPT,), (EV_FINAL, True, None, b"SEND OK")]
    ev = run((b"> ", b"\r\nSEND FAIL\r\n"), b"AT+QISEND=0,5", payload=b"hello", **kw)
    assert ev == [(EV_PROMPT,), (EV_FINAL, False, "SEND FAIL", b"SEND FAIL")]


def test_prompt_simcom_bare_gt_then_ok():
    # SIM7080G AT+CASEND answers ">" and, after the payload, OK
    ev = run((b"\r\n>", b"\r\nOK\r\n"), b"AT+CASEND=0,4", payload=b"\x00\x01\x02\x03", prompt=True)
    assert ev == [(EV_PROMPT,), OK]


def test_error_instead_of_prompt():
    ev = run(b"\r\nERROR\r\n", b"AT+QISEND=0,5", prompt=True)
    assert ev == [(EV_FINAL, False, "ERROR", b"ERROR")]


def test_urc_while_waiting_for_prompt():
    p = ATParser()
    p.add_urc(b"+QIURC:")
    ev = run((b"\r\n+QIURC: \"recv\",1\r\n\r\n+CEREG: 5\r\n\r\n> ", b"\r\nSEND OK\r\n"),
             b"AT+QISEND=0,2", parser=p, payload=b"hi", prompt=True, finals=(b"SEND OK",))
    assert ev == [(EV_URC, b'+QIURC: "recv",1'), (EV_URC, b"+CEREG: 5"), (EV_PROMPT,),
                  (EV_FINAL, True, None, b"SEND OK")]


def test_gt_not_a_prompt_unless_declared():
    ev = run(b"\r\n> \r\nOK\r\n", b"AT+X")
    assert ev == [(EV_NOISE, b">"), OK]


def test_payload_echo_skipped_even_with_ok_inside():
    # BG77 with echo on: "> ", then the payload comes back, then "\r\nSEND OK" (bg77 transcript)
    payload = b"ab\r\nOK\r\n\x00\xff"
    ev = run((b"AT+QISEND=0,10\r\r\n> ", payload + b"\r\nSEND OK\r\n"), b"AT+QISEND=0,10",
             payload=payload, prompt=True, finals=(b"SEND OK",))
    assert ev == [(EV_PROMPT,), (EV_FINAL, True, None, b"SEND OK")]
    splits((b"AT+QISEND=0,10\r\r\n> ", payload + b"\r\nSEND OK\r\n"),
           [(EV_PROMPT,), (EV_FINAL, True, None, b"SEND OK")], b"AT+QISEND=0,10",
           payload=payload, prompt=True, finals=(b"SEND OK",))


def test_prompt_space_arriving_after_payload_written():
    # "> " split across reads, the driver writes the payload as soon as it sees ">"
    p = ATParser()
    p.begin(b"AT+QISEND=0,4", prompt=True, finals=(b"SEND OK",))
    p.feed(b"AT+QISEND=0,4\r\r\n>")
    assert p.events == [(EV_PROMPT,)]
    p.payload_sent(b"\r\nOK")
    p.feed(b" ")
    p.feed(b"\r\nOK\r\nSEND OK\r\n")
    assert p.events == [(EV_PROMPT,), (EV_FINAL, True, None, b"SEND OK")], p.events


def test_payload_not_echoed_when_echo_off():
    payload = b"\r\nOK\r\n"
    ev = run((b"\r\n> ", b"\r\nOK\r\n"), b"AT+SQNSSENDEXT=1,6", payload=payload, prompt=True)
    assert ev == [(EV_PROMPT,), OK]


# ---- raw payloads of an announced length ----
BIN = b"\x10\x0c\x00\x04MQTT\r\nOK\r\n\x00\xff>"


def test_data_quectel_qird():
    data = b"\r\n+QIRD: %d\r\n" % len(BIN) + BIN + b"\r\n\r\nOK\r\n"
    exp = [(EV_LINE, b"+QIRD: %d" % len(BIN)), (EV_DATA, BIN), OK]
    assert run(data, b"AT+QIRD=0,1500", data=(b"+QIRD:", 0, False)) == exp
    splits(data, exp, b"AT+QIRD=0,1500", data=(b"+QIRD:", 0, False))


def test_data_quectel_qird_zero_and_udp_service_form():
    ev = run(b"\r\n+QIRD: 0\r\n\r\nOK\r\n", b"AT+QIRD=0", data=(b"+QIRD:", 0, False))
    assert ev == [(EV_LINE, b"+QIRD: 0"), (EV_DATA, b""), OK]
    ev = run(b"\r\n+QIRD: 4,\"10.0.0.1\",5683\r\n\x40\x01\r\n\r\nOK\r\n", b"AT+QIRD=11",
             data=(b"+QIRD:", 0, False))
    assert ev == [(EV_LINE, b'+QIRD: 4,"10.0.0.1",5683'), (EV_DATA, b"\x40\x01\r\n"), OK]


def test_data_sequans_sqnsrecv():
    data = b"\r\n+SQNSRECV: 1,%d\r\n" % len(BIN) + BIN + b"\r\nOK\r\n"
    exp = [(EV_LINE, b"+SQNSRECV: 1,%d" % len(BIN)), (EV_DATA, BIN), OK]
    assert run(data, b"AT+SQNSRECV=1,1500", data=(b"+SQNSRECV:", 1, False)) == exp
    splits(data, exp, b"AT+SQNSRECV=1,1500", data=(b"+SQNSRECV:", 1, False))


def test_data_sim7000_ciprxget():
    data = b"\r\n+CIPRXGET: 2,%d,0\r\n" % len(BIN) + BIN + b"\r\nOK\r\n"
    exp = [(EV_LINE, b"+CIPRXGET: 2,%d,0" % len(BIN)), (EV_DATA, BIN), OK]
    assert run(data, b"AT+CIPRXGET=2,1460", data=(b"+CIPRXGET: 2,", 0, False)) == exp
    # multi-IP form +CIPRXGET: 2,<id>,<len>,<left>
    data = b"\r\n+CIPRXGET: 2,1,%d,0\r\n" % len(BIN) + BIN + b"\r\nOK\r\n"
    ev = run(data, b"AT+CIPRXGET=2,1,1460", data=(b"+CIPRXGET:", 2, False))
    assert ev[1] == (EV_DATA, BIN) and ev[2] == OK


def test_data_sim7080_carecv_inline():
    data = b"\r\n+CARECV: %d," % len(BIN) + BIN + b"\r\n\r\nOK\r\n"
    exp = [(EV_LINE, b"+CARECV: %d" % len(BIN)), (EV_DATA, BIN), OK]
    assert run(data, b"AT+CARECV=0,1460", data=(b"+CARECV:", 0, True)) == exp
    splits(data, exp, b"AT+CARECV=0,1460", data=(b"+CARECV:", 0, True))
    # nothing waiting: "+CARECV: 0"
    ev = run(b"\r\n+CARECV: 0\r\n\r\nOK\r\n", b"AT+CARECV=0,1460", data=(b"+CARECV:", 0, True))
    assert ev == [(EV_LINE, b"+CARECV: 0"), (EV_DATA, b""), OK]
    # AT+CASRIP=1: +CARECV: <ip>,<port>,<len>,<data>
    ev = run(b"\r\n+CARECV: \"10.0.0.1\",5683,3,a,b\r\nOK\r\n", b"AT+CARECV=0,100",
             data=(b"+CARECV:", 2, True))
    assert ev == [(EV_LINE, b'+CARECV: "10.0.0.1",5683,3'), (EV_DATA, b"a,b"), OK]


def test_data_with_echo_on():
    data = b"AT+QIRD=0\r\r\n+QIRD: 4\r\n\x20\x02\x00\x00\r\n\r\nOK\r\n"
    ev = run(data, b"AT+QIRD=0", data=(b"+QIRD:", 0, False))
    assert ev == [(EV_LINE, b"+QIRD: 4"), (EV_DATA, b"\x20\x02\x00\x00"), OK]


def test_data_bare_lf_header():
    ev = run(b"\n+QIRD: 3\nA\rB\n\nOK\n", b"AT+QIRD=0", data=(b"+QIRD:", 0, False))
    assert ev == [(EV_LINE, b"+QIRD: 3"), (EV_DATA, b"A\rB"), OK]


def test_data_too_long_is_overflow_then_resync():
    p = ATParser(data_max=8)
    data = b"\r\n+QIRD: 20\r\n" + b"\r\nOK\r\n" * 3 + b"xx" + b"\r\nOK\r\n"
    ev = run(data, b"AT+QIRD=0", parser=p, data=(b"+QIRD:", 0, False))
    assert ev == [(EV_LINE, b"+QIRD: 20"), (EV_OVERFLOW, 20), OK]


def test_bad_data_rule():
    p = ATParser()
    try:
        p.begin(b"AT+QIRD=0", data=(b"+QIRD:", 0))
    except ATParseError:
        pass
    else:
        assert False


# ---- noise, overflow, resync ----
def test_garbage_before_line():
    ev = run(b"\x00\xff@\r\n\xff\xfe\r\nRDY\r\n\x00\xffRDY\r\n")
    assert ev == [(EV_NOISE, b"\x00\xff@"), (EV_NOISE, b"\xff\xfe"), (EV_URC, b"RDY"),
                  (EV_NOISE, b"\x00\xff"), (EV_URC, b"RDY")]


def test_stray_at_sign_sim7000():
    # sim7000g transcript: a lone "@" from the modem ("### Unhandled: @")
    ev = run(b"@\r\n\r\nOK\r\n", b"AT")
    assert ev == [(EV_NOISE, b"@"), OK]


def test_nul_inside_line_is_noise():
    ev = run(b"\r\n+CSQ: 2\x001,99\r\n+CSQ: 21,99\r\n\r\nOK\r\n", b"AT+CSQ")
    assert ev == [(EV_NOISE, b"+CSQ: 2\x001,99"), (EV_LINE, b"+CSQ: 21,99"), OK]


def test_overlong_line_overflow_then_resync():
    p = ATParser(line_max=16)
    data = b"\r\n" + b"X" * 40 + b"\r\n\r\n+CSQ: 21,99\r\n\r\nOK\r\n"
    exp = [(EV_OVERFLOW, 40), (EV_LINE, b"+CSQ: 21,99"), OK]
    assert run(data, b"AT+CSQ", parser=p) == exp
    for cut in range(1, len(data)):
        p = ATParser(line_max=16)
        p.begin(b"AT+CSQ")
        p.feed(data[:cut])
        p.feed(memoryview(data)[cut:])
        assert p.events == exp, (cut, p.events)


def test_abort_makes_late_answers_noise():
    p = ATParser()
    p.begin(b"AT+CGMM")
    p.abort()
    assert not p.busy
    p.feed(b"\r\nBG96\r\n\r\nOK\r\n")
    assert p.events == [(EV_URC, b"BG96"), (EV_NOISE, b"OK")]


def test_begin_while_busy_raises():
    p = ATParser()
    p.begin(b"AT")
    try:
        p.begin(b"AT")
    except ATParseError as e:
        assert isinstance(e, ValueError)
    else:
        assert False
    p.feed(b"\r\nOK\r\n")
    p.begin(b"AT")  # free again after the final


def test_partial_lines_split_everywhere():
    data = (b"AT+CPIN?\r\r\n+CPIN: READY\r\n\r\n+CEREG: 1\r\n\r\nOK\r\n")
    exp = [(EV_LINE, b"+CPIN: READY"), (EV_URC, b"+CEREG: 1"), OK]
    splits(data, exp, b"AT+CPIN?")


def test_reset_forgets_partial_state():
    p = ATParser()
    p.begin(b"AT+QIRD=0", data=(b"+QIRD:", 0, False))
    p.feed(b"\r\n+QIRD: 100\r\nabc")
    p.reset()
    p.events.clear()
    p.feed(b"\r\nRDY\r\n")
    assert p.events == [(EV_URC, b"RDY")]


# ---- helpers ----
def test_resp_prefix_and_safety():
    assert resp_prefix(b"AT+CEREG?") == b"+CEREG:"
    assert resp_prefix("AT+CEREG=?") == b"+CEREG:"
    assert resp_prefix(b"AT+QIRD=0,1500") == b"+QIRD:"
    assert resp_prefix(b"AT^SYSINFO") == b"^SYSINFO:"
    assert resp_prefix(b"AT*PSUTTZ?") == b"*PSUTTZ:"
    assert resp_prefix(b"ATI") is None and resp_prefix(b"AT") is None
    assert is_safe(b"AT+CEREG?") and is_safe("AT+CEREG=?") and is_safe(b"AT")
    assert not is_safe(b"AT+QISEND=0,5") and not is_safe(b"AT+CFUN=1,1")
    assert plain_final(b"OK") == (True, None) and plain_final(b"OKAY") is None


# ---- one exchange per dialect, each with a URC inside the response ----
def test_dialect_sim7080g():
    # echo off (ATE0), +CPSI? answer with a +CEREG URC between the line and OK, then a CASEND
    p = ATParser()
    p.add_urc(b"+CADATAIND:")
    ev = run(b"\r\n+CPSI: LTE CAT-M1,Online,310-410,0x9709,111159055,393,EUTRAN-BAND12,5110,3,3,"
             b"-16,-113,-83,10\r\n\r\n+CEREG: 1,\"9709\",\"06A01E0F\",7\r\n\r\nOK\r\n",
             b"AT+CPSI?", parser=p)
    assert [e[0] for e in ev] == [EV_LINE, EV_URC, EV_FINAL]
    ev = run((b"\r\n+CADATAIND: 0\r\n>", b"\r\nOK\r\n"), b"AT+CASEND=0,8", parser=p,
             payload=b"\r\nOK\r\n\r\n", prompt=True)
    assert ev == [(EV_URC, b"+CADATAIND: 0"), (EV_PROMPT,), OK]


def test_dialect_sim7000g():
    # echo on, +CIPRXGET URC (data waiting) between the answer line and OK
    p = ATParser()
    p.add_urc(b"+CIPRXGET: 1")
    ev = run(b"AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\n+CIPRXGET: 1,0\r\n\r\nOK\r\n", b"AT+CSQ", parser=p)
    assert ev == [(EV_LINE, b"+CSQ: 17,99"), (EV_URC, b"+CIPRXGET: 1,0"), OK]
    ev = run((b"AT+CIPSEND=0,4\r\r\n> ", b"\x01\r\n\x02\r\n0, SEND OK\r\n"), b"AT+CIPSEND=0,4",
             parser=p, payload=b"\x01\r\n\x02", prompt=True, finals=(b"SEND OK",),
             fails=(b"SEND FAIL",))
    assert ev == [(EV_PROMPT,), (EV_FINAL, True, None, b"0, SEND OK")]


def test_dialect_bg95():
    p = ATParser()
    p.add_urc(b"+QIURC:")
    data = (b"\r\n+QIRD: 9\r\n\r\nOK\r\n\x00\x01\x02\r\n+QIURC: \"closed\",0\r\n\r\nOK\r\n")
    ev = run(data, b"AT+QIRD=0,1500", parser=p, data=(b"+QIRD:", 0, False))
    assert ev == [(EV_LINE, b"+QIRD: 9"), (EV_DATA, b"\r\nOK\r\n\x00\x01\x02"),
                  (EV_URC, b'+QIURC: "closed",0'), OK]


def test_dialect_gm02s():
    # multi-line +SQNBANDSEL answer (gm02s transcript) with a +CEREG URC between two of its lines
    data = (b"\r\n+SQNBANDSEL: 0,standard,\"1,2,3,4,5,8,12,13\"\r\n\r\n+CEREG: 2\r\n"
            b"+SQNBANDSEL: 0,verizon,\"13,4,5,12,17,20\"\r\n\r\nOK\r\n")
    exp = [(EV_LINE, b'+SQNBANDSEL: 0,standard,"1,2,3,4,5,8,12,13"'), (EV_URC, b"+CEREG: 2"),
           (EV_LINE, b'+SQNBANDSEL: 0,verizon,"13,4,5,12,17,20"'), OK]
    assert run(data, b"AT+SQNBANDSEL?") == exp
    splits(data, exp, b"AT+SQNBANDSEL?")


def test_urc_default_table_has_banners():
    for b in (b"RDY", b"APP RDY", b"+CPIN:", b"SMS Ready", b"^SYSSTART", b"+CFUN:", b"PB DONE",
              b"NORMAL POWER DOWN", b"+SYSSTART", b"DST:", b"*PSUTTZ:"):
        assert b in URC_DEFAULT, b


# ---- transcripts: the dialect logs built from the manuals and the real logs from public threads ----
def _replay_all(sub):
    import transcript

    paths = transcript.list_atlogs(sub)
    assert paths, "no transcripts under tests/transcripts/" + sub
    for path in paths:
        header, chunks = transcript.load(path)
        want = header["expect"]
        got = transcript.replay(header, chunks)
        assert got == want, (path, [(i, got[i], want[i] if i < len(want) else None)
                                    for i in range(len(got)) if i >= len(want) or got[i] != want[i]][:3],
                             len(got), len(want))
        for split in (1, 2, 7):
            assert transcript.replay(header, chunks, split=split) == want, (path, split)
    return paths


def test_transcripts_per_dialect():
    paths = _replay_all("")
    for model in ("sim7080g_", "sim7000g_", "bg95_", "bg96_", "gm02s_"):
        assert [p for p in paths if p.split("/")[-1].startswith(model)], model


def test_transcripts_real():
    paths = _replay_all("real")
    assert len(paths) >= 8


# ---- real-log behaviours (issue 6) ----
QIRD = (b"+QIRD:", 0, False, b",0")  # the Quectel rule: AT+QIRD=<id>,0 is the query form


def test_qird_query_form_carries_no_payload():
    # Quectel TCP/IP AT manual: AT+QIRD=<connectID>,0 answers +QIRD: <total>,<read>,<unread>, OK
    wire = b"\r\n+QIRD: 5,5,0\r\n\r\nOK\r\n"
    exp = [(EV_LINE, b"+QIRD: 5,5,0"), OK]
    assert run(wire, b"AT+QIRD=0,0", data=QIRD) == exp
    splits(wire, exp, b"AT+QIRD=0,0", data=QIRD)
    # the read forms still carry data, connectID 10 and read length 10 included
    wire = b"\r\n+QIRD: 3\r\nabc\r\n\r\nOK\r\n"
    for cmd in (b"AT+QIRD=0,1500", b"AT+QIRD=10,10", b"AT+QIRD=10"):
        assert run(wire, cmd, data=QIRD) == [(EV_LINE, b"+QIRD: 3"), (EV_DATA, b"abc"), OK], cmd
    # a bad rule is still refused
    for bad in ((b"+QIRD:", 0), (b"+QIRD:", 0, False, b",0", 1)):
        try:
            ATParser().begin(b"AT+QIRD=0", data=bad)
        except ATParseError:
            pass
        else:
            assert False, bad


def test_joined_command_prefix_per_part():
    wire = (b"\r\n+CNMP: 38\r\n\r\n+CFUN: 1\r\n\r\n+CREG: 0,5\r\n\r\n+CEREG: 1\r\n\r\nOK\r\n")
    exp = [(EV_LINE, b"+CNMP: 38"), (EV_LINE, b"+CFUN: 1"), (EV_LINE, b"+CREG: 0,5"),
           (EV_URC, b"+CEREG: 1"), OK]
    assert run(wire, b"AT+CNMP?;+CFUN?;+CREG?") == exp
    splits(wire, exp, b"AT+CNMP?;+CFUN?;+CREG?")
    assert resp_prefixes(b"AT+CNMP?;+CFUN?;+CREG?") == (b"+CNMP:", b"+CFUN:", b"+CREG:")
    # basic commands in between have no prefix; a ';' inside quotes does not split
    assert resp_prefixes("ATE0;+CMEE=1;+CGDCONT?") == (b"+CMEE:", b"+CGDCONT:")
    assert resp_prefixes(b'AT+QICSGP=1,1,"a;+X?"') == (b"+QICSGP:",)
    assert resp_prefixes(b"AT") == () and resp_prefixes(b"ATI") == ()
    assert resp_prefix(b"AT+CNMP?;+CFUN?") == b"+CNMP:"
    # a joined command is safe to repeat only when every part is a query
    assert is_safe(b"AT+CNMP?;+CFUN?;+CREG?")
    assert not is_safe(b"AT+CFUN=1;+CREG?") and not is_safe(b"AT+CREG?;+CFUN=1,1")


def test_stale_echo_of_a_recent_command_is_never_an_answer():
    p = ATParser()
    run(b"\r\nOK\r\n", b"AT", parser=p)
    run(b"ATE0\r\r\nOK\r\n", b"ATE0", parser=p)
    # out of sync: echoes of AT and ATE0 arrive inside the IMEI read
    ev = run(b"\r\nAT\r\n\r\nATE0\r\n\r\n866349041749536\r\n\r\nOK\r\n", b"AT+CGSN", parser=p)
    assert ev == [(EV_NOISE, b"AT"), (EV_NOISE, b"ATE0"), (EV_LINE, b"866349041749536"), OK]
    # the command's own echo (echo on) is still dropped silently, once
    ev = run(b"AT+CCID\r\r\nAT+CGSN\r\n89883030000012345678\r\n\r\nOK\r\n", b"AT+CCID", parser=p)
    assert ev == [(EV_NOISE, b"AT+CGSN"), (EV_LINE, b"89883030000012345678"), OK]
    # with no command running, a stale echo is noise too, not a URC
    assert run(b"\r\nATE0\r\n", parser=p) == [(EV_NOISE, b"ATE0")]
    # only the last 4 commands count: AT left the ring after four newer ones
    for c in (b"AT+CSQ", b"AT+CREG?", b"AT+CPIN?"):
        run(b"\r\nOK\r\n", c, parser=p)
    assert run(b"\r\nAT\r\nOK\r\n", b"AT+CGMM", parser=p) == [(EV_LINE, b"AT"), OK]


def test_prompt_word_download():
    # SIMCom AT+CFSWFILE answers DOWNLOAD (not '>'), takes the file, then OK
    cmd = b'AT+CFSWFILE=3,"ca.crt",0,5,10000'
    ev = run((b"\r\nDOWNLOAD\r\n", b"\r\nOK\r\n"), cmd, payload=b"hello", prompt=b"DOWNLOAD")
    assert ev == [(EV_PROMPT,), OK]
    splits((b"\r\nDOWNLOAD\r\n", b"\r\nOK\r\n"), [(EV_PROMPT,), OK], cmd, payload=b"hello",
           prompt=b"DOWNLOAD")
    # a '>' is no prompt for a command that declared a word, and the word none for '>' commands
    assert run(b"\r\n> \r\nERROR\r\n", cmd, prompt="DOWNLOAD") == [
        (EV_NOISE, b">"), (EV_FINAL, False, "ERROR", b"ERROR")]
    assert run(b"\r\nDOWNLOAD\r\nOK\r\n", b"AT+CASEND=0,5", prompt=True) == [
        (EV_LINE, b"DOWNLOAD"), OK]


def test_payload_cut_by_timeout_is_reported():
    p = ATParser()
    p.begin(b"AT+QIRD=0,1500", data=QIRD)
    p.feed(b"\r\n+QIRD: 100\r\n" + b"x" * 37)
    p.abort()  # the driver's timeout
    assert p.events == [(EV_LINE, b"+QIRD: 100"), (EV_OVERFLOW, 37)], p.events
    p.events.clear()
    p.feed(b"\r\nRDY\r\n")
    assert p.events == [(EV_URC, b"RDY")]
    # byte by byte, then a reset (power cycle) instead of a timeout
    p = ATParser()
    p.begin(b"AT+CARECV=0,100", data=(b"+CARECV:", 0, True))
    for c in b"\r\n+CARECV: 50,abcdefgh":
        p.feed(bytes([c]))
    p.reset()
    assert p.events == [(EV_LINE, b"+CARECV: 50"), (EV_OVERFLOW, 8)], p.events
    # nothing of the payload had arrived yet: nothing lost, no event
    p = ATParser()
    p.begin(b"AT+QIRD=0,1500", data=QIRD)
    p.feed(b"\r\n+QIRD: 100\r")
    p.abort()
    assert p.events == [(EV_LINE, b"+QIRD: 100")]


def test_byte_wise_and_chunked_feeding_agree():
    # the same stream through the byte-by-byte path (small chunks) and the chunked path
    p = ATParser(line_max=40)
    p.add_urc(b"+QIURC:")
    wire = (b"AT+QIRD=0,1500\r\r\n+QIURC: \"recv\",0\r\n+QIRD: 12\r\n\r\nOK\r\n\x00\xff\r\n\r\n"
            + b"Y" * 50 + b"\r\n\x00junk\r\n@\r\nOK\r\n")
    exp = [(EV_URC, b'+QIURC: "recv",0'), (EV_LINE, b"+QIRD: 12"),
           (EV_DATA, b"\r\nOK\r\n\x00\xff\r\n\r\n"), (EV_OVERFLOW, 50), (EV_NOISE, b"\x00"),
           (EV_LINE, b"junk"), (EV_NOISE, b"@"), OK]
    for size in (1, 2, 3, 5, 8, 64, 65, 200):
        for conv in (bytes, bytearray, memoryview):
            p.begin(b"AT+QIRD=0,1500", data=QIRD)
            for i in range(0, len(wire), size):
                p.feed(conv(wire[i:i + size]))
            assert p.events == exp, (size, conv, p.events)
            p.events.clear()
    # a bytearray read buffer with a count, as the drivers pass it
    buf = bytearray(7)
    p.begin(b"AT+QIRD=0,1500", data=QIRD)
    for i in range(0, len(wire), 7):
        k = len(wire[i:i + 7])
        buf[0:k] = wire[i:i + k]
        p.feed(buf, k)
    assert p.events == exp, p.events

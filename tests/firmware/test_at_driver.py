# The AT drivers (m2m.at) against a scripted fake modem UART and a fake clock.
import asyncio

from m2m.at import AT, AsyncAT, ATTimeout, ATError, Response
from transcript import FakeHal, FakeModem


def make(script=(), chunk=0, **kw):
    m = FakeModem(script, chunk=chunk)
    return AT(m, hal=m.hal, **kw), m


# ---- sync driver ----
def test_cmd_returns_response():
    at, m = make([(b"AT+CGMM\r", b"AT+CGMM\r\r\nSIMCOM_SIM7080G\r\n\r\nOK\r\n")], chunk=3)
    r = at.cmd("AT+CGMM")
    assert isinstance(r, Response)
    assert r.ok and r.error is None and r.lines == [b"SIMCOM_SIM7080G"] and r.final == b"OK"
    assert r.first() == b"SIMCOM_SIM7080G" and r.data is None
    assert m.writes == [b"AT+CGMM\r"] and not m.mismatch


def test_error_response_and_check():
    at, m = make([(b"AT+CPIN?\r", b"\r\n+CME ERROR: 10\r\n")])
    r = at.cmd(b"AT+CPIN?")
    assert not r.ok and r.error == ("CME", 10)
    try:
        r.check()
    except ATError as e:
        assert e.response is r
    else:
        assert False


def test_first_with_prefix():
    at, m = make([(None, b"\r\n+CEREG: 0,1\r\n\r\nOK\r\n")])
    r = at.cmd("AT+CEREG?").check()
    assert r.first(b"+CEREG:") == b"0,1" and r.first("+CGREG:") is None


def test_timeout_raises_and_is_never_infinite():
    at, m = make([(b"AT+CGATT=1\r", None)], timeout_ms=1200)
    t0 = m.hal.t
    try:
        at.cmd("AT+CGATT=1")
    except ATTimeout as e:
        assert isinstance(e, OSError) and e.args[0] == 110
    else:
        assert False
    assert m.hal.t - t0 == 1200  # the driver's default timeout, on the device clock
    try:
        at.cmd("AT+COPS=?", timeout_ms=180000)
    except ATTimeout:
        pass
    else:
        assert False, "nothing answered AT+COPS=?"
    assert m.hal.t - t0 == 1200 + 180000
    assert not at.parser.busy


def test_retries_for_queries_only():
    script = [(b"AT+CSQ\r", None), (b"AT+CSQ\r", b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")]
    at, m = make(script, timeout_ms=300)
    try:
        at.cmd("AT+CSQ", retries=1)  # an execution command: not safe by its shape
    except ValueError:
        pass
    else:
        assert False, "retries allowed for a non-query"
    assert m.writes == []


def test_retries_safe_and_idempotent():
    script = [(b"AT+CEREG?\r", None), (b"AT+CEREG?\r", b"\r\n+CEREG: 0,5\r\n\r\nOK\r\n")]
    at, m = make(script, timeout_ms=300)
    r = at.cmd("AT+CEREG?", retries=2)
    assert r.ok and r.lines == [b"+CEREG: 0,5"] and len(m.writes) == 2
    assert at.timeouts == 0  # cleared by the answer
    script = [(b"AT+CSQ\r", None), (b"AT+CSQ\r", b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")]
    at, m = make(script, timeout_ms=300)
    assert at.cmd("AT+CSQ", retries=1, idempotent=True).ok
    # retries run out: ATTimeout after 1 + retries attempts
    at, m = make([(None, None)] * 3, timeout_ms=100)
    try:
        at.cmd("AT+CGDCONT?", retries=2)
    except ATTimeout:
        assert len(m.writes) == 3
    else:
        assert False


def test_no_retries_for_unsafe_or_sends():
    at, m = make()
    for kw in ({"retries": 1}, {"retries": 1, "payload": b"x", "idempotent": True}):
        try:
            at.cmd("AT+QISEND=0,1", **kw)
        except ValueError:
            pass
        else:
            assert False, kw
    try:
        at.cmd("AT+CFUN=1,1", retries=3)
    except ValueError:
        pass
    else:
        assert False
    assert m.writes == []


def test_consecutive_timeouts_raise_recovery_event():
    calls = []
    at, m = make([(None, None)] * 4 + [(None, b"\r\nOK\r\n")], timeout_ms=100, max_timeouts=3,
                 on_unresponsive=calls.append)
    for i in range(4):
        try:
            at.cmd("AT")
        except ATTimeout:
            pass
        assert at.timeouts == i + 1
        assert at.unresponsive == (i >= 2)
    assert calls == [at]  # once per streak
    assert at.cmd("AT").ok
    assert at.timeouts == 0 and not at.unresponsive
    at.reset()
    assert not at.parser.busy


def test_prompt_and_payload():
    payload = b"\x10\x0c\r\nOK\r\n"
    script = [(b"AT+QISEND=0,8\r", b"AT+QISEND=0,8\r\r\n> "),
              (payload, payload + b"\r\nSEND OK\r\n")]
    at, m = make(script, chunk=5)
    r = at.cmd("AT+QISEND=0,8", payload=payload, finals=(b"SEND OK",), fails=(b"SEND FAIL",))
    assert r.ok and r.final == b"SEND OK" and r.lines == []
    assert m.writes == [b"AT+QISEND=0,8\r", payload] and not m.mismatch


def test_no_payload_without_prompt():
    at, m = make([(b"AT+QISEND=0,2\r", b"\r\nERROR\r\n")])
    r = at.cmd("AT+QISEND=0,2", payload=b"hi", finals=(b"SEND OK",))
    assert not r.ok and r.error == "ERROR" and m.writes == [b"AT+QISEND=0,2\r"]


def test_prompt_timeout_does_not_send():
    at, m = make([(b"AT+CASEND=0,2\r", None)], timeout_ms=500)
    try:
        at.cmd("AT+CASEND=0,2", payload=b"hi")
    except ATTimeout:
        pass
    else:
        assert False, "no prompt came: the command must time out"
    assert m.writes == [b"AT+CASEND=0,2\r"]


def test_urc_during_prompt_wait_dispatched_after_command():
    seen = []
    script = [(b"AT+QISEND=0,2\r", b"\r\n+QIURC: \"recv\",0\r\n\r\n> "),
              (b"hi", b"\r\n+CEREG: 5\r\n\r\nSEND OK\r\n")]
    at, m = make(script, chunk=4)
    at.urc(b"+QIURC:", lambda line: seen.append((line, at.parser.busy, len(m.writes))))
    at.urc("+CEREG:", lambda line: seen.append((line, at.parser.busy, len(m.writes))))
    r = at.cmd("AT+QISEND=0,2", payload=b"hi", finals=(b"SEND OK",))
    assert r.ok and r.lines == []
    # both handlers ran after the command finished, in arrival order, never during the writes
    assert seen == [(b'+QIURC: "recv",0', False, 2), (b"+CEREG: 5", False, 2)]


def test_data_rule_through_driver():
    blob = b"\x30\x05\x00\x01a\r\nOK\r\n"
    script = [(b"AT+QIRD=0,1500\r", b"\r\n+QIRD: %d\r\n" % len(blob) + blob + b"\r\n\r\nOK\r\n")]
    at, m = make(script, chunk=7)
    r = at.cmd("AT+QIRD=0,1500", data=(b"+QIRD:", 0, False))
    assert r.ok and r.data == blob and r.lines == [b"+QIRD: %d" % len(blob)]


def test_poll_dispatches_urcs_between_commands():
    got = []
    at, m = make()
    at.urc(b"+CEREG:", lambda l: got.append(("cereg", l)))
    at.urc(b"+CEREG: 1", lambda l: got.append(("cereg1", l)))  # longest prefix wins
    at.urc(b"", lambda l: got.append(("any", l)))
    m.later(300, b"\r\n+CEREG: 2\r\n\r\n+CEREG: 1,\"1A2B\",\"01A2B3C4\",7\r\n\r\nRDY\r\n")
    assert at.poll(0) == 0 and got == []
    n = at.poll(1000)
    assert n == 3
    assert got == [("cereg", b"+CEREG: 2"), ("cereg1", b'+CEREG: 1,"1A2B","01A2B3C4",7'),
                   ("any", b"RDY")]
    at.urc(b"", None)
    m.push(b"\r\nSMS Ready\r\n")
    assert at.poll(0) == 0  # no catch-all any more: dropped


def test_urc_before_command_dispatched_after_it():
    got = []
    at, m = make([(b"AT+CIMI\r", b"\r\nDST: 1\r\n\r\n310410123456789\r\n\r\nOK\r\n")])
    at.urc(b"DST:", got.append)
    at.urc(b"*PSUTTZ:", got.append)
    m.push(b"\r\n*PSUTTZ: 24/05/01,10:00:00\r\n")
    r = at.cmd("AT+CIMI")
    assert r.lines == [b"310410123456789"]
    assert got == [b"*PSUTTZ: 24/05/01,10:00:00", b"DST: 1"]


def test_handler_must_not_send_commands():
    errs = []

    def bad(line):
        try:
            at.cmd("AT+CEREG?")
        except RuntimeError as e:
            errs.append(e)

    at, m = make()
    at.urc(b"+CEREG:", bad)
    m.push(b"\r\n+CEREG: 1\r\n")
    at.poll(0)
    assert len(errs) == 1 and m.writes == []


def test_handler_exception_does_not_break_driver():
    def boom(line):
        raise KeyError("bug in a handler")

    at, m = make([(None, b"\r\n+CEREG: 1\r\n\r\nOK\r\n")])
    at.urc(b"+CEREG:", boom)
    assert at.cmd("AT").ok


def test_late_answer_after_timeout_is_not_next_answer():
    at, m = make([(b"AT+COPS?\r", [(800, b"\r\n+COPS: 0,0,\"X\",7\r\n\r\nOK\r\n")]),
                  (b"AT+CGMM\r", [(10, b"\r\nBG95-M3\r\n\r\nOK\r\n")])], timeout_ms=500)
    try:
        at.cmd("AT+COPS?")
    except ATTimeout:
        pass
    else:
        assert False, "the answer came after the timeout"
    m.hal.t += 1000  # the late answer is waiting in the UART now
    r = at.cmd("AT+CGMM")
    assert r.ok and r.lines == [b"BG95-M3"]


def test_urc_queue_is_bounded():
    at, m = make([(None, b"\r\n+CEREG: 2\r\n" * 40 + b"\r\nOK\r\n")])
    got = []
    at.urc(b"+CEREG:", got.append)
    at.cmd("AT")
    assert len(got) == 16 and at.urc_dropped == 24


def test_with_real_hal_nothing_attached():
    # the unix hal with no simulator: writes vanish, nothing arrives, the command times out
    from m2m import hal

    at = AT(hal.UART(1), timeout_ms=60)
    try:
        at.cmd("AT")
    except ATTimeout:
        pass
    else:
        assert False


# ---- asyncio driver ----
def amake(script=(), **kw):
    m = FakeModem(script)
    return AsyncAT(m, hal=m.hal, **kw), m


async def test_async_cmd_and_urc():
    got = []
    aat, m = amake([(b"AT+CEREG?\r", b"\r\n+CGEV: ME PDN ACT 1\r\n\r\n+CEREG: 0,5\r\n\r\nOK\r\n")])
    aat.urc(b"+CGEV:", got.append)
    aat.urc(b"+CEREG:", got.append)
    aat.start()
    r = await aat.cmd("AT+CEREG?")
    assert r.ok and r.lines == [b"+CEREG: 0,5"]
    m.push(b"\r\n+CEREG: 1\r\n")
    for _ in range(20):
        if len(got) == 2:
            break
        await asyncio.sleep_ms(5)
    # the reader task dispatched the URC inside the response and the one between commands
    assert got == [b"+CGEV: ME PDN ACT 1", b"+CEREG: 1"], got
    aat.stop()


async def test_async_prompt_payload_and_timeout():
    calls = []
    payload = b"\x00\r\nOK\r\n\xff"
    script = [(b"AT+SQNSSENDEXT=1,7\r", b"\r\n+SQNSRING: 1,4\r\n\r\n> "),
              (payload, b"\r\nOK\r\n"), (None, None), (None, None)]
    aat, m = amake(script, timeout_ms=200, max_timeouts=2, on_unresponsive=calls.append)
    ring = []
    aat.urc(b"+SQNSRING:", ring.append)
    aat.start()
    r = await aat.cmd("AT+SQNSSENDEXT=1,7", payload=payload)
    assert r.ok and m.writes[1] == payload and ring == [b"+SQNSRING: 1,4"]
    for i in range(2):
        try:
            await aat.cmd("AT+CGATT=1")
        except ATTimeout:
            pass
        else:
            assert False
    assert calls == [aat] and aat.unresponsive
    aat.stop()


async def test_async_one_command_at_a_time():
    script = [(b"AT+CGMM\r", b"\r\nBG96\r\n\r\nOK\r\n"), (b"AT+CGMR\r", b"\r\nBG96MAR02A07M1G\r\n\r\nOK\r\n")]
    aat, m = amake(script)
    aat.start()
    r1, r2 = await asyncio.gather(aat.cmd("AT+CGMM"), aat.cmd("AT+CGMR"))
    assert r1.lines == [b"BG96"] and r2.lines == [b"BG96MAR02A07M1G"]
    assert not m.mismatch
    aat.stop()


async def test_async_data_rule():
    blob = b"\r\nOK\r\n\x01"
    aat, m = amake([(None, b"\r\n+CARECV: 7," + blob + b"\r\nOK\r\n")])
    aat.start()
    r = await aat.cmd("AT+CARECV=0,1460", data=(b"+CARECV:", 0, True))
    assert r.ok and r.data == blob
    aat.stop()


# ---- real-log behaviours through the driver (issue 6) ----
def test_qird_query_form_through_driver():
    # Quectel: AT+QIRD=<id>,0 answers +QIRD: <total>,<read>,<unread> and OK: no payload follows
    from m2m.modem.quectel import BG95

    at, m = make([(b"AT+QIRD=0,0\r", b"\r\n+QIRD: 120,100,20\r\n\r\nOK\r\n")], timeout_ms=300)
    cmd, rule = BG95(at).recv_cmd(0, "tcp", 0)
    assert cmd == "AT+QIRD=0,0"
    r = at.cmd(cmd, data=rule)
    assert r.ok and r.lines == [b"+QIRD: 120,100,20"] and r.data is None


def test_prompt_word_through_driver():
    cert = b"-----BEGIN CERTIFICATE-----\r\nOK\r\n"
    cmd = 'AT+CFSWFILE=3,"ca.crt",0,%d,10000' % len(cert)
    script = [(cmd.encode() + b"\r", b"\r\nDOWNLOAD\r\n"), (cert, b"\r\nOK\r\n")]
    at, m = make(script, chunk=3)
    r = at.cmd(cmd, payload=cert, prompt=b"DOWNLOAD")
    assert r.ok and r.lines == [] and m.writes == [cmd.encode() + b"\r", cert] and not m.mismatch
    # waiting for '>' instead, the DOWNLOAD line is an answer line and the payload never goes out
    at, m = make([(cmd.encode() + b"\r", b"\r\nDOWNLOAD\r\n")], timeout_ms=200)
    try:
        at.cmd(cmd, payload=cert)
    except ATTimeout:
        pass
    else:
        assert False
    assert m.writes == [cmd.encode() + b"\r"]


def test_timeout_mid_payload_is_counted():
    # the modem announces 100 bytes and stalls after 30: the timeout reports the 30 lost bytes
    at, m = make([(b"AT+QIRD=0,1500\r", b"\r\n+QIRD: 100\r\n" + b"z" * 30)], timeout_ms=300, chunk=1)
    try:
        at.cmd("AT+QIRD=0,1500", data=(b"+QIRD:", 0, False, b",0"))
    except ATTimeout:
        pass
    else:
        assert False
    assert at.overflows == 1 and at.lost == 30
    m.script.append((b"AT+CGMM\r", b"\r\nBG95-M3\r\n\r\nOK\r\n"))
    assert at.cmd("AT+CGMM").lines == [b"BG95-M3"]


def test_stale_echo_not_taken_as_answer_through_driver():
    # AT timed out; its echo arrives late, inside the answer of the IMEI read
    script = [(b"AT\r", None), (b"AT+CGSN\r", b"\r\nAT\r\n\r\n861234050123458\r\n\r\nOK\r\n")]
    at, m = make(script, timeout_ms=300)
    try:
        at.cmd("AT")
    except ATTimeout:
        pass
    else:
        assert False
    r = at.cmd("AT+CGSN")
    assert r.lines == [b"861234050123458"] and at.noise == 1


def test_joined_query_through_driver():
    at, m = make([(b"AT+CNMP?;+CFUN?;+CREG?\r",
                   b"\r\n+CNMP: 38\r\n\r\n+CFUN: 1\r\n\r\n+CREG: 0,1\r\n\r\nOK\r\n")])
    got = []
    at.urc(b"+CFUN:", got.append)
    at.urc(b"+CREG:", got.append)
    r = at.cmd("AT+CNMP?;+CFUN?;+CREG?", retries=1)
    assert r.lines == [b"+CNMP: 38", b"+CFUN: 1", b"+CREG: 0,1"] and got == []
    try:
        at.cmd("AT+CFUN=1;+CREG?", retries=1)  # not a pure query: never repeated
    except ValueError:
        pass
    else:
        assert False

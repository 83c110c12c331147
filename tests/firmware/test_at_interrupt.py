# The synchronous AT driver (m2m.at.AT) when a command is left by an exception other than its
# timeout: Ctrl-C's KeyboardInterrupt while it waits (the supervisor's stop then closes the MQTT
# socket with AT+CACLOSE, which must reach the modem for the broker to send the last will).
from m2m.at import AT
from transcript import FakeModem


class Interrupted(FakeModem):
    # the fake modem UART; the driver's next wait is interrupted (Ctrl-C)
    stop = False

    def wait(self, timeout_ms):
        if self.stop:
            self.stop = False
            raise KeyboardInterrupt
        return super().wait(timeout_ms)


def interrupted(at, m, command, **kw):
    m.stop = True
    try:
        at.cmd(command, **kw)
    except KeyboardInterrupt:
        return
    assert False, "the wait was not interrupted"


def test_the_next_command_goes_out_after_an_interrupted_one():
    m = Interrupted([(b"AT+CARECV=0,4\r", None), (b"AT+CACLOSE=0\r", b"\r\nOK\r\n")])
    at = AT(m, hal=m.hal)
    interrupted(at, m, "AT+CARECV=0,4")  # its answer has not come (the modem takes its time)
    r = at.cmd("AT+CACLOSE=0")
    assert m.writes == [b"AT+CARECV=0,4\r", b"AT+CACLOSE=0\r"] and not m.mismatch, m.writes
    assert r.ok and r.final == b"OK"


def test_a_payload_owed_is_sent_before_the_next_command():
    # interrupted while it waited for the prompt: the modem prompts and waits for the 3 bytes; the
    # next command first hands them over and takes the send's final, then goes out itself
    m = Interrupted([(b"AT+CASEND=0,3\r", None), (b"abc", b"\r\nOK\r\n"),
                     (b"AT+CACLOSE=0\r", b"\r\nOK\r\n")])
    at = AT(m, hal=m.hal)
    interrupted(at, m, "AT+CASEND=0,3", payload=b"abc")
    m.push(b"\r\n> ")
    assert at.poll() == 0  # the prompt is left for the owed payload
    r = at.cmd("AT+CACLOSE=0")
    assert m.writes == [b"AT+CASEND=0,3\r", b"abc", b"AT+CACLOSE=0\r"] and not m.mismatch, m.writes
    assert r.ok


def test_a_payload_owed_after_the_prompt_came():
    m = Interrupted([(b"AT+CASEND=0,3\r", b"\r\n> "), (b"abc", b"\r\nOK\r\n"), (b"AT+CACLOSE=0\r", b"\r\nOK\r\n")])
    at = AT(m, hal=m.hal)
    # the prompt is read, then the wait (before the payload goes) is interrupted: a UART whose
    # readinto hands the prompt over, then stops
    m.stop = False
    feed = at.parser.feed

    def feed_then_stop(buf, n):
        feed(buf, n)
        if at._prompt:
            raise KeyboardInterrupt

    at.parser.feed = feed_then_stop
    try:
        at.cmd("AT+CASEND=0,3", payload=b"abc")
    except KeyboardInterrupt:
        pass
    at.parser.feed = feed
    r = at.cmd("AT+CACLOSE=0")
    assert m.writes == [b"AT+CASEND=0,3\r", b"abc", b"AT+CACLOSE=0\r"] and not m.mismatch, m.writes
    assert r.ok


def test_the_next_command_waits_for_the_final_of_an_interrupted_send():
    # interrupted after the payload went, before the send's final: the modem answers the send first
    # (late), and that answer is the send's, not the next command's
    m = Interrupted([(b"AT+CASEND=0,3\r", b"\r\n> "), (b"abc", [(500, b"\r\nOK\r\n")]),
                     (b"AT+CACLOSE=0\r", [(1000, b"\r\n+CME ERROR: 3\r\n")])])
    at = AT(m, hal=m.hal)
    interrupted(at, m, "AT+CASEND=0,3", payload=b"abc")
    assert m.writes == [b"AT+CASEND=0,3\r", b"abc"], m.writes
    r = at.cmd("AT+CACLOSE=0")
    assert m.writes == [b"AT+CASEND=0,3\r", b"abc", b"AT+CACLOSE=0\r"] and not m.mismatch, m.writes
    assert not r.ok and r.error == ("CME", 3)  # its own answer


def test_a_modem_that_gave_up_waiting_gets_no_payload():
    # the modem ended its data entry itself (an error after its prompt): nothing is sent for it
    m = Interrupted([(b"AT+CASEND=0,3\r", None), (b"AT+CACLOSE=0\r", b"\r\nOK\r\n")])
    at = AT(m, hal=m.hal)
    interrupted(at, m, "AT+CASEND=0,3", payload=b"abc")
    m.push(b"\r\n> \r\n+CME ERROR: 100\r\n")
    r = at.cmd("AT+CACLOSE=0")
    assert m.writes == [b"AT+CASEND=0,3\r", b"AT+CACLOSE=0\r"] and not m.mismatch, m.writes
    assert r.ok


def test_a_reset_forgets_the_interrupted_command():
    # after a power cycle (reset()) the interrupted command's answer never comes: the next command
    # does not wait for it, nor count a timeout (here one would report the modem unresponsive)
    calls = []
    m = Interrupted([(b"AT+CGMR\r", None), (b"AT\r", b"\r\nOK\r\n")])
    at = AT(m, hal=m.hal, timeout_ms=2000, max_timeouts=1, on_unresponsive=calls.append)
    interrupted(at, m, "AT+CGMR")
    at.reset()
    t0 = m.hal.ticks_ms()
    r = at.cmd("AT")
    assert r.ok and calls == [] and not at.unresponsive and at.timeouts == 0, calls
    assert m.writes == [b"AT+CGMR\r", b"AT\r"] and not m.mismatch, m.writes
    assert m.hal.ticks_diff(m.hal.ticks_ms(), t0) < 2000  # the fake clock: no timeout waited out

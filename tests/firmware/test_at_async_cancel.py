# The asyncio AT driver (m2m.at_async.AsyncAT) when the task running a command is cancelled after
# the command went out, on the scripted fake modem (the simulator's run: tests/host/
# test_at_async_cancel.py): the next command finishes it first, as m2m.at.AT finishes one left by
# Ctrl-C (test_at_interrupt.py).
import asyncio

from m2m.at import AsyncAT
from transcript import FakeModem

IMEI = b"860016791963510"


def amake(script, **kw):
    m = FakeModem(script)
    return AsyncAT(m, hal=m.hal, **kw), m


async def cancelled(aat, command, **kw):
    t = asyncio.create_task(aat.cmd(command, **kw))
    await asyncio.sleep_ms(5)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        return
    assert False, "the command was not cancelled"


async def test_a_silent_modem_costs_the_cancelled_command_its_timeout_then_the_next_goes_out():
    # the cancelled command never gets its answer: the next one goes out once its timeout is over
    # (a timeout like any other), and gets its own answer
    aat, m = amake([(b"AT+CGMR\r", None), (b"AT+CGSN\r", b"\r\n" + IMEI + b"\r\n\r\nOK\r\n")],
                   timeout_ms=2000)
    aat.start()
    await cancelled(aat, "AT+CGMR")
    r = await aat.cmd("AT+CGSN")
    assert r.ok and r.lines == [IMEI], r
    assert m.writes == [b"AT+CGMR\r", b"AT+CGSN\r"] and not m.mismatch, m.writes
    assert aat.timeouts == 0  # the answer cleared the count the given-up command had made
    aat.stop()


async def test_the_payload_of_a_cancelled_send_goes_before_the_next_command():
    # cancelled before its prompt: the modem prompts and waits for the 3 bytes; the next command
    # hands them over, takes the send's final, then goes out itself
    aat, m = amake([(b"AT+CASEND=0,3\r", None), (b"abc", b"\r\nOK\r\n"),
                    (b"AT+CSQ\r", b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n")])
    aat.start()
    await cancelled(aat, "AT+CASEND=0,3", payload=b"abc")
    m.push(b"\r\n> ")
    r = await aat.cmd("AT+CSQ")
    assert m.writes == [b"AT+CASEND=0,3\r", b"abc", b"AT+CSQ\r"] and not m.mismatch, m.writes
    assert r.ok and r.lines == [b"+CSQ: 21,99"], r
    aat.stop()


async def test_a_modem_that_gave_up_waiting_gets_no_payload():
    # the modem ended its data entry itself (an error after its prompt): nothing is sent for it
    aat, m = amake([(b"AT+CASEND=0,3\r", None), (b"AT+CSQ\r", b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n")])
    aat.start()
    await cancelled(aat, "AT+CASEND=0,3", payload=b"abc")
    m.push(b"\r\n> \r\n+CME ERROR: 100\r\n")
    await asyncio.sleep_ms(20)  # the reader takes both in before the next command
    r = await aat.cmd("AT+CSQ")
    assert m.writes == [b"AT+CASEND=0,3\r", b"AT+CSQ\r"] and not m.mismatch, m.writes
    assert r.ok and r.lines == [b"+CSQ: 21,99"], r
    aat.stop()


async def test_a_reset_forgets_the_cancelled_command():
    # after a power cycle (reset()) the cancelled command's answer never comes: the next command
    # does not wait for it, nor count a timeout (here one would report the modem unresponsive)
    calls = []
    aat, m = amake([(b"AT+CGMR\r", None), (b"AT\r", b"\r\nOK\r\n")], timeout_ms=2000, max_timeouts=1,
                   on_unresponsive=calls.append)
    aat.start()
    await cancelled(aat, "AT+CGMR")
    aat.reset()
    r = await aat.cmd("AT")
    assert r.ok and calls == [] and not aat.unresponsive, calls
    assert m.writes == [b"AT+CGMR\r", b"AT\r"] and not m.mismatch, m.writes
    aat.stop()

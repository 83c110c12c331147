"""The asyncio AT driver (m2m.at_async.AsyncAT) in the real MicroPython against the modem simulator,
when the task running a command is cancelled after the command went out: by Task.cancel(), or by
asyncio.wait_for's timeout (which cancels it: micropython extmod/asyncio/funcs.py wait_for;
CancelledError is a BaseException there, extmod/asyncio/core.py). The exchange is finished by the
next command first, as the synchronous driver finishes one left by Ctrl-C (tests/firmware/
test_at_interrupt.py): the parser no longer stays stuck on the cancelled command ("begin() while a
command is running" for every later one), its late answer is not taken for the next command's, and a
payload the modem waits for after its prompt is handed over before the next command's bytes."""

import json

from m2mkit.sim.modem import ModemSim
from m2mkit.testing import run_micropython

SCALE = 10  # device / modem time 10x real time; asyncio's own sleeps (wait_for_ms) are real ms

CODE = """
import json, os, asyncio
from m2m import hal, modem
from m2m.at import AT, AsyncAT
from simctl import attach, control

uart = hal.UART(1, 115200)
at = AT(uart, timeout_ms=2000)
m = modem.create(at, {"model": "sim7080g"})
attach(m)                                  # bring-up on the synchronous pump ...
m.sock_open(0, "tcp", "127.0.0.1", int(os.getenv("ECHO_PORT")))
out = {}

def late(s):
    # the modem's next output (the answer to the command about to go) comes s modem seconds late
    assert control({"op": "fault", "kind": "delay", "seconds": s, "count": 1})["ok"]

async def main():
    aat = AsyncAT(uart, timeout_ms=3000)   # ... then the asyncio driver takes the UART over
    urcs = []
    # URCs as the SIMCom modem layer declares them: the echo's arrival, and the send's report that
    # may follow its OK (m2m.modem.simcom URCS)
    aat.urc(b"+CADATAIND:", urcs.append)
    aat.urc(b"+CASEND:", lambda ln: None)
    aat.start()
    await aat.cmd("AT")
    # 1. asyncio.wait_for gives up on AT+CGMR (its answer 5 modem s = 500 real ms late) after
    #    50 real ms; the next command gets its own answer, not the late one
    late(5)
    try:
        await asyncio.wait_for_ms(aat.cmd("AT+CGMR", timeout_ms=20000), 50)
        out["wait_for"] = "answered"
    except asyncio.TimeoutError:
        out["wait_for"] = "timeout"
    r = await aat.cmd("AT+CGSN")
    out["cgsn"] = [r.ok, [bytes(x).decode() for x in r.lines]]
    # 2. the task running AT+CIMI is cancelled while it waits
    late(5)
    t = asyncio.create_task(aat.cmd("AT+CIMI", timeout_ms=20000))
    await asyncio.sleep_ms(50)
    t.cancel()
    try:
        await t
        out["cancel"] = "answered"
    except asyncio.CancelledError:
        out["cancel"] = "cancelled"
    r = await aat.cmd("AT+CCID")
    out["ccid"] = [r.ok, [bytes(x).decode() for x in r.lines]]
    # 3. a send cancelled before its prompt came (2 modem s late, 200 real ms): the modem waits
    #    for the 3 bytes after its "> " (for its input time, a few seconds); the
    #    next command hands them over first, then goes out itself
    late(2)
    try:
        await asyncio.wait_for_ms(aat.cmd("AT+CASEND=0,3", payload=b"abc", timeout_ms=20000), 50)
        out["send"] = "answered"
    except asyncio.TimeoutError:
        out["send"] = "timeout"
    r = await aat.cmd("AT+CSQ")
    out["csq"] = [r.ok, [bytes(x).decode() for x in r.lines]]
    out["timeouts"] = aat.timeouts
    for i in range(50):
        if urcs:
            break
        await hal.asleep_ms(100)
    out["urcs"] = [bytes(x).decode() for x in urcs]
    aat.stop()

asyncio.run(main())
got = b""                                  # the echo of the bytes sent, on the synchronous pump
for i in range(50):
    got += m.sock_recv(0, 64)
    if len(got) >= 3:
        break
    hal.sleep_ms(100)
out["echo"] = got.decode()
print(json.dumps(out))
"""


def test_a_cancelled_command_is_finished_by_the_next(echo_port):
    with ModemSim(model="sim7080g", time_scale=SCALE) as sim:
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
               "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_CTRL": "%s:%d" % tuple(sim.control_address),
               "M2M_TIME_SCALE": str(SCALE), "ECHO_PORT": str(echo_port)}
        rc, out, err = run_micropython(CODE, env=env, timeout=60)
        assert rc == 0, out + err
        (r,) = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
        imei, iccid = sim.imei, sim.card.iccid
    assert r["wait_for"] == "timeout" and r["cancel"] == "cancelled" and r["send"] == "timeout", r
    # each next command's own answer (not the cancelled one's firmware version / IMSI / send OK)
    assert r["cgsn"] == [True, [imei]], r
    assert r["ccid"][0] and len(r["ccid"][1]) == 1 and iccid in r["ccid"][1][0], r
    assert r["csq"][0] and len(r["csq"][1]) == 1 and r["csq"][1][0].startswith("+CSQ: "), r
    # the cancelled exchanges were answered in time: none counted as a timeout
    assert r["timeouts"] == 0, r
    # the payload went to the modem (its bytes were not read as an AT command) and came back
    assert r["urcs"] == ["+CADATAIND: 0"] and r["echo"] == "abc", r

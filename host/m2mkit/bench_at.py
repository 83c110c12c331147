"""AT-layer figures, measured inside the unix-port MicroPython (the interpreter the virtual device runs).

parser_throughput(): lines per second through m2m.atparse.ATParser, fed in 64-byte bytearray chunks the
way the drivers read the UART (a mix of answer lines, URCs, finals and one binary payload per 50 lines).
command_round_trip(): microseconds for one AT.cmd() exchange against an in-process modem that answers at
once, i.e. the driver's own overhead per command.

The numbers are for the host CPU running the unix port; an ESP32 at 240 MHz is one to two orders slower.
"""

import json

from .testing import run_micropython

_PARSER = """
import time
from m2m.atparse import ATParser
lines = [b"+CEREG: 2,1,\\"9FC5\\",\\"011FCC67\\",9", b"+CSQ: 21,99", b"OK", b"+QIURC: \\"recv\\",0",
         b"SIMCOM_SIM7080", b"+CPSI: LTE CAT-M1,Online,310-410,0x9709,111159055,393,EUTRAN-BAND12,5110,3,3,-16,-113,-83,10",
         b"DST: 1", b"RDY"]
parts = []
n = 0
for i in range({n}):
    parts.append(b"\\r\\n" + lines[i % len(lines)] + b"\\r\\n")
    n += 1
    if i % 50 == 49:
        parts.append(b"\\r\\n+QIRD: 64\\r\\n" + bytes(range(64)) + b"\\r\\n")
        n += 1
wire = b"".join(parts)
count = [0]
def sink(ev):
    count[0] += 1
    if ev[0] == 1:  # a final result: the next command starts
        p.begin(b"AT+QIRD=0,1500", data=(b"+QIRD:", 0, False), resp=())
p = ATParser(sink)
p.begin(b"AT+QIRD=0,1500", data=(b"+QIRD:", 0, False), resp=())
buf = bytearray(64)
mv = memoryview(wire)
best = None
for rep in range(3):
    count[0] = 0
    t0 = time.ticks_us()
    for _ in range({passes}):
        for off in range(0, len(wire), 64):
            k = len(wire) - off
            if k > 64:
                k = 64
            buf[0:k] = mv[off:off + k]
            p.feed(buf, k)
    dt = time.ticks_diff(time.ticks_us(), t0)
    best = dt if best is None or dt < best else best
print(n * {passes}, best, count[0], len(wire) * {passes})
"""

_ROUND_TRIP = """
import time
from m2m.at import AT
from transcript import FakeModem
class Instant(FakeModem):
    def write(self, buf):
        self.rx += b"\\r\\n+CSQ: 21,99\\r\\n\\r\\nOK\\r\\n"
        return len(buf)
m = Instant()
at = AT(m, hal=m.hal)
for i in range(50):
    at.cmd("AT+CSQ")
n = {n}
t0 = time.ticks_us()
for i in range(n):
    r = at.cmd("AT+CSQ")
dt = time.ticks_diff(time.ticks_us(), t0)
assert r.ok and r.lines == [b"+CSQ: 21,99"]
print(n, dt)
"""


def _run(code, env=None, heapsize="512K", timeout=120):
    """Run a figure's script in MicroPython; returns the integers it printed."""
    rc, out, err = run_micropython(code, env=env, heapsize=heapsize, timeout=timeout)
    if rc != 0:
        raise RuntimeError("micropython failed:\n" + out + err)
    return [int(x) for x in out.split()]


def parser_throughput(lines=2000, passes=10):
    n, us, events, nbytes = _run(_PARSER.format(n=lines, passes=passes))
    return {"name": "at_parser_throughput", "value": round(n * 1e6 / us), "unit": "lines/s",
            "note": "unix port, 64-byte bytearray chunks, %d lines (%d bytes, %d events) in %.1f ms"
                    % (n, nbytes, events, us / 1000)}


def command_round_trip(commands=2000):
    n, us = _run(_ROUND_TRIP.format(n=commands))
    return {"name": "at_driver_overhead", "value": round(us / n, 1), "unit": "us",
            "note": "AT.cmd('AT+CSQ') against an in-process modem answering at once (driver overhead, unix port)"}


if __name__ == "__main__":
    print(json.dumps(parser_throughput()))
    print(json.dumps(command_round_trip()))


# ---- the modem layer's figure: command round trip through the unix hal's socket to the simulator ----
_SIM_ROUND_TRIP = """
import time
from m2m import hal
from m2m.at import AT
from m2m.modem import Modem
at = AT(hal.UART(1, 115200), timeout_ms=2000)
assert Modem(at).power_on()  # the simulator boots; wait until it answers AT
for i in range(20):
    at.cmd("AT")
n = {n}
total = 0
for i in range(n):
    t0 = time.ticks_us()
    r = at.cmd("AT")
    total += time.ticks_diff(time.ticks_us(), t0)
    assert r.ok
print(n, total)
"""


def sim_command_round_trip(commands=200):
    """Mean time of one `AT` -> `OK` exchange from the firmware's AT driver (sync pump) through
    the unix hal's UART (a loopback TCP socket) to the modem simulator (bg95, time scale 1) and
    back, with the simulator's modeled per-command latency set to zero."""
    from .sim.modem import ModemSim

    sim = ModemSim(model="bg95", time_scale=1.0).start()
    try:
        sim.modem.DEFAULT_LATENCY = 0.0  # bare AT has no modeled latency anyway; be explicit
        sim.modem.LATENCY = {}
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_TIME_SCALE": "1"}
        n, us = _run(_SIM_ROUND_TRIP.format(n=commands), env=env)
    finally:
        sim.stop()
    return {"name": "at_command_round_trip", "value": round(us / n, 1), "unit": "us",
            "note": "mean of %d AT->OK exchanges: the sync AT driver's write, the unix hal's loopback "
                    "TCP socket both ways, the simulator's asyncio line handling (modeled latency 0) and "
                    "the parser; unix port on the host CPU, not an ESP32 UART at 115200 baud "
                    "(which alone adds about 0.8 ms for the 9 bytes)" % n}

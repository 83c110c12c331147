"""The port stand-in's esp32.PCNT, checked against ports/esp32/esp32_pcnt.c (MicroPython v1.26+) and
docs/library/esp32.rst: the keyword checks and their errors, one object per unit, counting only while
started, value(0) returning the value before the reset, both edges or one, up or down, and the
counter going back to 0 at max with IRQ_MAX | IRQ_ZERO for its handler (flags() read and cleared)."""

import subprocess
import time

from m2mkit.sim.bus import BusSim
from m2mkit.testing import _prelude, micropython, mpy_env

ERRORS = """
import esp32, machine
P = esp32.PCNT
def err(f):
    try:
        f()
        return "none"
    except Exception as e:
        return "%s:%s" % (type(e).__name__, e)
u = P(0)
print(err(lambda: P()), err(lambda: P(8)), err(lambda: P(-1)), P(7) is P(7), P(0) is u, repr(u))
for kw in ({"filter": 1024}, {"filter": -1}, {"max": 32768}, {"max": -1}, {"min": 1}, {"min": -32769},
           {"threshold0": 32768}, {"threshold1": -32769}, {"value": 1}, {"channel": 2},
           {"rising": 3}, {"falling": -1}, {"mode_low": 3}, {"mode_pin": 4}, {"pin": 99}, {"filter": "x"}):
    print(err(lambda: u.init(**kw)))
print(err(lambda: u.value(1)), err(lambda: u.irq(lambda p: 0, 0)), err(lambda: u.irq(lambda p: 0, 128)))
print(u.IGNORE, u.INCREMENT, u.DECREMENT, u.NORMAL, u.REVERSE, u.HOLD,
      u.IRQ_THRESHOLD1, u.IRQ_THRESHOLD0, u.IRQ_MIN, u.IRQ_MAX, u.IRQ_ZERO)
"""


def mp(code, env):
    out = subprocess.run([micropython(), "-X", "heapsize=512K", "-c", _prelude() + code], capture_output=True,
                         text=True, timeout=60, env=mpy_env(env))
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.splitlines()


def test_arguments_and_errors_are_the_ports():
    out = mp(ERRORS, {})
    assert out[0] == "TypeError:id ValueError:invalid id ValueError:invalid id True True PCNT(0)"
    assert out[1:17] == ["ValueError:filter", "ValueError:filter", "ValueError:maximum", "ValueError:maximum",
                         "ValueError:minimum", "ValueError:minimum", "ValueError:threshold0",
                         "ValueError:threshold1", "ValueError:value", "ValueError:channel", "ValueError:rising",
                         "ValueError:falling", "ValueError:mode_low", "ValueError:pin", "ValueError:invalid pin",
                         "TypeError:can't convert str to int"]
    assert out[17] == "ValueError:value ValueError:trigger ValueError:trigger"
    assert out[18] == "0 1 2 0 1 2 4 8 16 32 64"


COUNT = """
import sys, time, esp32, machine
P = esp32.PCNT
log = []
u = P(1, pin=machine.Pin(13), falling=P.INCREMENT, rising=P.IGNORE, max=5)
u.irq(lambda p: log.append(p.irq().flags()), P.IRQ_MAX)
def step():
    print("ready")
    sys.stdin.readline()
    time.sleep_ms(5)
step()  # 3 pulses before start(): not counted
print("stopped", u.value())
u.start()
step()  # 12 pulses: back to 0 at 5, twice
print("started", u.value(), log)
print("reset", u.value(0), u.value())
u.init(rising=P.DECREMENT, falling=P.DECREMENT)
step()  # 2 pulses, both edges down
print("down", u.value())
u.stop()
step()
print("stopped", u.value())
"""


def test_counting_start_stop_value_reset_and_the_max_event():
    with BusSim() as bus:
        bus.set_pin(13, 1)
        p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + COUNT],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=mpy_env({"M2M_BUS": bus.address_str}))
        lines = []
        try:
            for n in (3, 12, 2, 4):
                assert p.stdout.readline().strip() == "ready"
                time.sleep(0.02)
                bus.set_pin(13, *(0, 1) * n, spacing_us=50)
                p.stdin.write("\n")
                p.stdin.flush()
                lines.append(p.stdout.readline().strip())
                if n == 12:
                    lines.append(p.stdout.readline().strip())
        finally:
            out = p.communicate(timeout=30)[0]
        assert p.returncode == 0, out
        # flags: only the events the trigger enabled (esp32_pcnt_irq_trigger disables the others; the
        # status register latches an event "when threshold event interrupt is valid")
        assert lines == ["stopped 0", "started 2 [32, 32]", "reset 2 0", "down -4", "stopped -4"], (lines, out)

"""Pin interrupts while the firmware waits in select.poll: the ESP32 port runs pending scheduled
handlers (Pin.irq) inside poll's wait (MicroPython v1.24.0 extmod/modselect.c
poll_set_poll_until_ready_or_timeout -> mp_event_wait_ms, py/scheduler.c; ports/esp32/mpconfigport.h
MICROPY_EVENT_POLL_HOOK -> mp_handle_pending), so the port stand-in's select.poll runs them as the
edges come (the bus wakes it through its pin_watch connection), and the wait goes on until the
registered object is ready or the timeout ends."""

import socket
import subprocess

import pytest

from m2mkit.sim.bus import BusSim
from m2mkit.sim.sensors import PulseSource
from m2mkit.testing import _prelude, micropython, mpy_env

HANDLER = """
n = [0]
def edge(pin):
    n[0] += 1
    u.write(b"edge %d\\n" % n[0])  # the handler speaks on the UART: the host sees it run
p = machine.Pin(13, machine.Pin.IN, machine.Pin.PULL_UP)
p.irq(edge, machine.Pin.IRQ_FALLING)
"""

# select.poll on a machine.UART, as the ESP32 hal waits (m2m/hal/esp32.py UART.wait)
SELECT = """
import machine, select
u = machine.UART(1, 115200)
""" + HANDLER + """
pl = select.poll()
pl.register(u, select.POLLIN)
print("waiting")
r = pl.poll(60000)
print("ready", [(o is u, ev) for o, ev in r], n[0])
# edges while no object gets ready: the wait lasts its timeout and returns nothing
r = pl.poll(int(u.read(1) == b"x") * 1500)
print("timeout", r, n[0])
"""

# the firmware's hal on the virtual device (m2m/hal/unix.py waits in the stand-in UART's _wait)
HAL = """
import machine
from m2m import hal
h = hal.UART(1, 115200)
u = h.stream
""" + HANDLER + """
print("waiting")
print("ready", [(True, int(h.wait(60000)))], n[0])
print("timeout", [] if h.wait(int(u.read(1) == b"x") * 1500) else [], n[0])
"""


def _line(p):
    line = p.stdout.readline()
    assert line, p.stdout.read()
    return line.split()


@pytest.mark.parametrize("code", [SELECT, HAL], ids=["select.poll", "hal.UART.wait"])
def test_pulses_are_counted_while_the_firmware_waits_in_poll(code):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    with BusSim() as bus:
        src = PulseSource(bus, 13)
        env = {"M2M_BUS": bus.address_str, "M2M_MODEM": "%s:%d" % srv.getsockname()}
        p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + code],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=mpy_env(env))
        try:
            uart, _ = srv.accept()
            uart.settimeout(10)
            assert _line(p) == ["waiting"]
            rx = b""
            for k in (1, 2, 3):
                src.pulse(1)
                # the handler ran inside the wait: its line arrives while poll still waits
                while f"edge {k}\n".encode() not in rx:
                    chunk = uart.recv(64)
                    assert chunk, rx
                    rx += chunk
            assert rx == b"edge 1\nedge 2\nedge 3\n"
            uart.sendall(b"x")  # now the UART is ready: poll returns it, and only it
            assert _line(p) == ["ready", "[(True,", "1)]", "3"]
            src.pulse(2)  # edges during the second wait are counted; the wait still ends by its timeout
            assert _line(p) == ["timeout", "[]", "5"]
            assert uart.recv(64).startswith(b"edge 4\nedge 5\n")
        finally:
            p.kill()
            p.wait()
            srv.close()

"""The port stand-in's additions for sensing: Pin.irq with machine_pin.c's signature (handler,
trigger, wake; no `hard` keyword on the esp32 port) fed by bus edges, and M2M_UART<id> giving a
second UART its own address."""

import socket
import threading

from m2mkit.sim.bus import BusSim
from m2mkit.testing import run_micropython


def run(code, env):
    rc, out, err = run_micropython(code, env=env)
    assert rc == 0, out + err
    return out.strip().split("\n")


def test_pin_irq_edges_triggers_and_removal():
    with BusSim() as bus:
        bus.set_pin(4, 1)
        for v in (0, 1, 0, 1):
            bus.set_pin(4, v)
        out = run("""
import machine, time
seen = []
p = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_UP)
irq = p.irq(lambda pin: seen.append(pin.value()), machine.Pin.IRQ_FALLING)
print(irq.trigger())
time.sleep_ms(1)
print(len(seen))
print(p.irq().trigger())  # no argument: a query, the handler stays
try:
    p.irq(lambda pin: 0, hard=True)
except TypeError:
    print('no hard')
p.irq(None)
print(p.irq().trigger())
""", {"M2M_BUS": bus.address_str})
        assert out == ["2", "2", "2", "no hard", "0"]
        assert bus.edges == []  # fetched by the device


def test_second_uart_has_its_own_address():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = []

    def serve():
        c, _ = srv.accept()
        got.append(c.recv(16))
        c.sendall(b"pong")
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    host, port = srv.getsockname()
    out = run("""
import machine, time
u = machine.UART(2, 9600, tx=17, rx=16, timeout=500)
u.write(b'ping')
print(u.read(4))
""", {"M2M_UART2": f"{host}:{port}", "M2M_MODEM": "127.0.0.1:1"})
    assert out == ["b'pong'"] and got == [b"ping"]
    srv.close()

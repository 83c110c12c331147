"""How the port stand-in runs Pin.irq handlers, as the ESP32 port runs scheduled ones (py/scheduler.c
mp_sched_run_pending, ports/esp32/machine_pin.c machine_pin_isr_handler -> mp_sched_schedule): one
handler's exception is printed and the other edges' handlers still run (mp_call_function_1_protected,
py/runtime_utils.c); a handler never runs inside another (the scheduler is locked while one runs) and
what came meanwhile runs as soon as it returns (mp_sched_unlock leaves it pending). And a Ctrl-C while
the stand-in waits for the bus's answer leaves no stale answer behind for the next request."""

import signal
import socket
import subprocess
import threading
import time

from m2mkit.sim.bus import Bus, BusSim
from m2mkit.sim.sensors import PulseSource
from m2mkit.testing import _prelude, micropython, mpy_env

PIN = """
import machine, time
log = []
p = machine.Pin(13, machine.Pin.IN, machine.Pin.PULL_UP)
"""


def start(bus, code):
    return subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + PIN + code],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=mpy_env({"M2M_BUS": bus.address_str}))


def finish(p):
    out = p.communicate(timeout=30)[0]
    assert p.returncode == 0, out
    return out


def test_a_failing_handler_loses_none_of_the_edges_fetched_with_it():
    with BusSim() as bus:
        PulseSource(bus, 13).pulse(1, bounce=2)  # three falling edges, fetched together
        out = finish(start(bus, """
def edge(pin):
    log.append(len(log))
    if len(log) == 1:
        raise ValueError("the first handler fails")
p.irq(edge, machine.Pin.IRQ_FALLING)
time.sleep_ms(20)
print("ran", log)
"""))
        assert "ValueError: the first handler fails" in out, out
        assert "ran [0, 1, 2]" in out, out


def test_a_ctrl_c_inside_a_handler_leaves_the_other_edges_queued():
    # the Ctrl-C stops the firmware (not swallowed), and the edges fetched with the interrupted one
    # are handled at the next poll, as they would wait in the scheduler's queue
    with BusSim() as bus:
        PulseSource(bus, 13).pulse(1, bounce=2)
        out = finish(start(bus, """
def edge(pin):
    log.append(len(log))
    if len(log) == 1:
        raise KeyboardInterrupt
p.irq(edge, machine.Pin.IRQ_FALLING)
try:
    time.sleep_ms(20)
except KeyboardInterrupt:
    print("stopped", log)
time.sleep_ms(20)
print("ran", log)
"""))
        assert "stopped [0]" in out and "ran [0, 1, 2]" in out, out


def test_a_handler_never_runs_inside_another_and_what_came_meanwhile_runs_after_it():
    with BusSim() as bus:
        src = PulseSource(bus, 13)
        p = start(bus, """
depth = [0]
def edge(pin):
    depth[0] += 1
    log.append(depth[0])
    if len(log) == 1:
        print("in the first"); sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
        t = time.ticks_ms()
        while len(log) < 2 and time.ticks_diff(time.ticks_ms(), t) < 1500:
            time.sleep_ms(2)  # a sleep polls the edges (the second one is queued meanwhile)
    depth[0] -= 1
p.irq(edge, machine.Pin.IRQ_FALLING)
print("ready")
while not log:
    time.sleep_ms(2)
print("after the first", log)
""")
        try:
            assert p.stdout.readline().strip() == "ready"
            src.pulse(1)
            assert p.stdout.readline().strip() == "in the first"
            src.pulse(1)
        finally:
            out = finish(p)
        # depth 1 both times: not nested; both ran before the sleep that fetched the first returned
        assert "after the first [1, 1]" in out, out


def test_the_handlers_of_edges_that_came_together_start_at_one_instant(tmp_path):
    # the firmware's pulse counter on a device at 10x: a bounced pulse's three falling edges come
    # together; each handler's host work here takes 5 ms (a state file written on a busy machine),
    # 50 ms of device time, past debounce_ms. On the port they run microseconds apart: one count.
    # (Queued before the counter's Pin.irq existed, the edges count as at its registration.)
    with BusSim() as bus:
        PulseSource(bus, 13).pulse(1, bounce=2)
        p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + """
import utime
from m2m import hal
from m2m.sense.pulse import Pulses
c = Pulses(13, debounce_ms=20, path=%r)
store = c._store_rtc
def slow():
    store()
    utime.sleep_ms(5)  # the host's own time (not the stand-in's sleep: no poll in a handler)
c._store_rtc = slow
hal.sleep_ms(200)
print("count", c.read()[0])
""" % str(tmp_path / "pulses.dat")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=mpy_env({"M2M_BUS": bus.address_str, "M2M_TIME_SCALE": "10", "M2M_STATE_DIR": str(tmp_path)}))
        out = finish(p)
        assert "count 1" in out, out


class _Answers(BusSim):
    """A bus that notes how many edges each pin_edges answer carried."""

    def __init__(self):
        super().__init__()
        self.answers = []

    def handle(self, req, writer=None):
        r = Bus.handle(self, req, writer)
        if req.get("op") == "pin_edges" and r.get("edges"):
            self.answers.append(len(r["edges"]))
        return r


def test_pulses_fetched_together_are_counted_at_their_own_instants(tmp_path):
    # The firmware's pulse counter (debounce 50 ms) on a device that does not poll while three bounced
    # pulses come 150 ms apart (blocked in a read here; a host too loaded to schedule the process did
    # the same to test_sense_vdev): their 18 edges come in one bus answer. On the ESP32 each edge's
    # interrupt comes at the edge (ports/esp32/machine_pin.c machine_pin_isr_handler), so a handler
    # reading the ticks sees its edge's time: three counts, one per pulse (each pulse's bounces at one
    # instant: one count each). Seen from the fetch's instant, they were one.
    with _Answers() as bus:
        src = PulseSource(bus, 13)
        p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + """
import sys
from m2m import hal
from m2m.sense.pulse import Pulses
c = Pulses(13, debounce_ms=50, path=%r)
print("ready")
sys.stdin.readline()  # the unix port's own read: no poll, the edges wait on the bus
hal.sleep_ms(20)
print("count", c.read()[0])
""" % str(tmp_path / "pulses.dat")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=mpy_env({"M2M_BUS": bus.address_str}))
        try:
            assert p.stdout.readline().strip() == "ready"
            for _ in range(3):
                src.pulse(1, bounce=2)
                time.sleep(0.15)
            p.stdin.write("go\n")
            p.stdin.flush()
        finally:
            out = finish(p)
        assert bus.answers[:1] == [18], bus.answers  # all fetched in one answer
        assert "count 3" in out, out


class Slow:
    """An I2C device that takes its time to answer a read (the bus answers late)."""

    def write(self, data):
        pass

    def read(self, n):
        time.sleep(1.0)
        return b"\x11" * n


def test_ctrl_c_while_the_bus_answers_leaves_no_stale_answer():
    with BusSim() as bus:
        bus.i2c[(0, 0x40)] = Slow()
        bus.adc[35] = 612000
        p = start(bus, """
i2c = machine.I2C(0)
try:
    print("reading"); sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
    i2c.readfrom(0x40, 2)
    print("read it")
except KeyboardInterrupt:
    print("interrupted")
print("adc", machine.ADC(machine.Pin(35)).read_uv(), i2c.scan())
""")
        try:
            assert p.stdout.readline().strip() == "reading"
            time.sleep(0.3)  # the interpreter waits in recv for the slow answer
            p.send_signal(signal.SIGINT)
        finally:
            out = finish(p)
        assert "interrupted" in out, out
        assert "adc 612000 [64]" in out, out


class _LateBus(BusSim):
    """A bus whose first answer with edges comes after the stand-in's 5 s request timeout (a host
    stalled under load): by then the bus has handed the edges over."""

    late = True
    answered = threading.Event()

    def handle(self, req, writer=None):
        r = Bus.handle(self, req, writer)
        if req.get("op") == "pin_edges" and r.get("edges") and self.late:
            self.late = False
            time.sleep(6)
            self.answered.set()
        return r


def test_edges_of_an_answer_that_came_too_late_are_not_lost(capfd):
    # On the ESP32 an edge's handler is scheduled in the pin's ISR (machine_pin_isr_handler ->
    # mp_sched_schedule): no edge is lost between the pin and the handler. The bus keeps what it
    # handed over until the next fetch acknowledges it, so a timed-out fetch loses none; and the
    # late answer written to the closed connection ends the bus's handler quietly.
    with _LateBus() as bus:
        PulseSource(bus, 13).pulse(1, bounce=2)  # three falling edges
        out = finish(start(bus, """
p.irq(lambda pin: log.append(len(log)), machine.Pin.IRQ_FALLING)
t0 = time.ticks_ms()
while len(log) < 3 and time.ticks_diff(time.ticks_ms(), t0) < 15000:
    time.sleep_ms(50)
print("ran", log)
"""))
        assert "ran [0, 1, 2]" in out, out
        assert bus.answered.wait(10)
        time.sleep(0.5)  # the late answer written to the closed connection, the handler ended
    assert "Traceback" not in capfd.readouterr().err


def test_a_device_that_ends_with_unread_wake_lines_ends_its_bus_connection_quietly(capfd):
    # a device killed (a reset) with the watch connection's wake lines unread: its kernel answers
    # with a reset (RST), which the bus's reader sees as ConnectionResetError
    with BusSim() as bus:
        s = socket.create_connection(tuple(bus.server.server_address))
        s.sendall(b'{"op": "pin_watch"}\n')
        deadline = time.monotonic() + 10
        while not bus.watchers:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        bus.set_pin(13, 1)
        bus.set_pin(13, 0, 1, 0)  # wake lines the device never reads
        time.sleep(0.2)
        s.close()
        while bus.watchers:  # the bus's handler has ended
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
    assert "Traceback" not in capfd.readouterr().err

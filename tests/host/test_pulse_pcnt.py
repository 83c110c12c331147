"""Pulses counted by the chip's pulse counter (m2m.sense.pulse with debounce_ms 0 on MicroPython v1.26+:
esp32.PCNT, ports/esp32/esp32_pcnt.c) on the port stand-in, fed by the simulated bus's stamped edges:
a burst faster than a Pin.irq handler can tell apart, counted whole even while the firmware is in a
long call (the counter needs no CPU), where the v1.25 fallback (Pin.irq) merges it; glitches under
the filter's 12.79 us ignored (1023 cycles of the 80 MHz APB clock); the 16-bit counter's wraps
extended (IRQ_MAX); the count in RTC memory for the next boot; a meter reading it."""

import subprocess
import time

from m2mkit.sim.bus import BusSim
from m2mkit.testing import _prelude, micropython, mpy_env

PIN = 13

COUNTER = """
import sys, time, utime
from m2m.sense.pulse import Pulses
Pulses.WRAP = %(wrap)d
c = Pulses(13, debounce_ms=0, path=%(path)r)
print("hw", c._pc is not None, "count", c.count)
while True:
    line = sys.stdin.readline().strip()
    if not line:
        break
    if line == "busy":
        utime.sleep_ms(200)  # the unix port's own sleep: no stand-in check runs (a long C call)
        print("idle")
        continue
    time.sleep_ms(5)
    print("count", c.read()[0])
c.close()
"""


class Device:
    def __init__(self, bus, tmp_path, version="1.26.0", wrap=32000, code=COUNTER):
        self.p = subprocess.Popen(
            [micropython(), "-X", "heapsize=512K", "-c",
             _prelude() + code % {"path": str(tmp_path / "pulses.dat"), "wrap": wrap, "dir": str(tmp_path)}],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=mpy_env({"M2M_BUS": bus.address_str, "M2M_STATE_DIR": str(tmp_path), "M2M_MICROPYTHON": version}))
        self.first = self.line()

    def line(self):
        out = self.p.stdout.readline()
        assert out, self.p.communicate(timeout=30)[0]
        return out.split()

    def ask(self, what="read"):
        self.p.stdin.write(what + "\n")
        self.p.stdin.flush()
        return self.line()

    def count(self):
        got = self.ask()
        assert got[0] == "count", got
        return int(got[1])

    def end(self):
        out = self.p.communicate("\n", timeout=30)[0]
        assert self.p.returncode == 0, out
        return out


def train(bus, n, width_us):
    # n low pulses, each width_us wide with width_us between them, in one call: its instants lie in
    # the past, so first let that much time pass (the counter ignores edges from before its start)
    time.sleep(2 * n * width_us / 1e6 + 0.01)
    bus.set_pin(PIN, *(0, 1) * n, spacing_us=width_us)


def test_a_fast_burst_is_counted_by_pcnt_and_merged_by_the_pin_irq_fallback(tmp_path):
    counts = {}
    for version in ("1.26.0", "1.25.0"):
        with BusSim() as bus:
            bus.set_pin(PIN, 1)
            (tmp_path / version).mkdir()
            dev = Device(bus, tmp_path / version, version)
            assert dev.first[:2] == ["hw", str(version == "1.26.0")], dev.first
            dev.p.stdin.write("busy\n")  # the burst comes while the firmware is in a long call
            dev.p.stdin.flush()
            time.sleep(0.05)
            train(bus, 40, 200)  # 40 pulses at 2.5 kHz
            assert dev.line() == ["idle"]
            time.sleep(0.05)
            counts[version] = dev.count()
            dev.end()
    assert counts["1.26.0"] == 40, counts
    # Pin.irq: the debounce reads ticks_ms, so the pulses of one millisecond count as one
    assert counts["1.25.0"] < 40, counts


def test_glitches_under_the_filter_are_ignored(tmp_path):
    with BusSim() as bus:
        bus.set_pin(PIN, 1)
        dev = Device(bus, tmp_path)
        assert dev.first == ["hw", "True", "count", "0"], dev.first
        train(bus, 30, 12)  # 12 us: 960 APB cycles, under the filter's 1023
        time.sleep(0.01)
        assert dev.count() == 0
        train(bus, 30, 13)  # 13 us: 1040 cycles, counted
        time.sleep(0.01)
        assert dev.count() == 30
        dev.end()


def test_the_16_bit_counter_wraps_are_extended_and_the_count_survives_a_restart(tmp_path):
    # the counter's max lowered to 100 (the firmware's is 32000): 250 pulses wrap it twice between
    # two reads, then once more
    with BusSim() as bus:
        bus.set_pin(PIN, 1)
        dev = Device(bus, tmp_path, wrap=100)
        train(bus, 250, 30)
        time.sleep(0.02)
        assert dev.count() == 250
        train(bus, 70, 30)
        time.sleep(0.02)
        assert dev.count() == 320
        dev.end()
        # a reset clears the chip's counter; the count comes back from RTC memory
        dev = Device(bus, tmp_path, wrap=100)
        assert dev.first == ["hw", "True", "count", "320"], dev.first
        train(bus, 5, 30)
        time.sleep(0.02)
        assert dev.count() == 325
        dev.end()


METER = """
import sys, time
from m2m.outbox import Outbox
from m2m.meter import Meters
D = %(dir)r
cfg = {"meters": [{"name": "water", "type": "pulses", "pin": 13, "unit": "L", "debounce_ms": 0}],
       "interval_s": 3600, "save_n": 1, "save_s": 60, "key_file": D + "/k", "state": D + "/meter.json"}
ms = Meters(cfg, Outbox(D + "/ob"), "m-1")
print("hw", ms.meters[0].src._pc is not None)
sys.stdin.readline()
time.sleep_ms(5)
print("count", ms.counters()["water"])
"""


def test_a_meter_reads_the_hardware_count(tmp_path):
    (tmp_path / "k").write_text("a7" * 32)
    with BusSim() as bus:
        bus.set_pin(PIN, 1)
        dev = Device(bus, tmp_path, code=METER)
        assert dev.first == ["hw", "True"], dev.first
        train(bus, 12, 50)
        time.sleep(0.02)
        assert dev.count() == 12
        dev.end()


LOOP = """
import sys, time
from m2m import loop
from m2m.sense.pulse import Pulses
c = Pulses(13, debounce_ms=0, path=%(path)r)
print("hw", c._pc is not None)
sys.stdin.readline()
loop.sleep(300)  # the supervisor's wait: its idle hook brings the hardware count in
print("count", c.count, c._rtc.memory()[2:6])
"""


def test_under_the_loop_the_count_reaches_rtc_memory_without_a_read(tmp_path):
    with BusSim() as bus:
        bus.set_pin(PIN, 1)
        dev = Device(bus, tmp_path, code=LOOP)
        assert dev.first == ["hw", "True"], dev.first
        train(bus, 9, 40)
        got = dev.ask()
        assert got[:2] == ["count", "9"], got
        assert got[2] == "b'\\t\\x00\\x00\\x00'", got  # u32 LE 9 in the slot's RTC record
        dev.end()

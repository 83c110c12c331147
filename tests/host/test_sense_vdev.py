"""Pulse counting on the virtual device, driven through mpremote as on a board: pulses counted before
machine.reset() are still there after it (RTC memory), and after a power cycle the count is the one
last saved to the flash image."""

import subprocess
import sys
import time
from pathlib import Path

from m2mkit.sim.bus import BusSim
from m2mkit.sim.sensors import PulseSource
from m2mkit.vdev.device import VirtualDevice

BIN = Path(sys.executable).parent


def mpremote(port, *args, timeout=60):
    p = subprocess.run([str(BIN / "mpremote"), "connect", port, *args], capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.replace("\r\n", "\n")


COUNT = """
from m2m import hal
from m2m.sense.pulse import Pulses
p = Pulses(13, debounce_ms=50)
want = p.read()[0] + {presses}
print('before', p.read()[0])
t = hal.ticks_ms()
while p.count < want and hal.ticks_diff(hal.ticks_ms(), t) < 10000:
    hal.sleep_ms(20)
hal.sleep_ms({ms})
print('after', p.read()[0])
{then}
"""


def count(dev, src, presses, then="", ms=300):
    # the presses start once the counter's Pin.irq is registered ('before' printed: on a loaded host
    # mpremote took up to 0.8 s to get there, and pulses that come before a board's interrupt is set up
    # are not counted); the device waits for them (10 s at most), then `ms` more for any extra count
    p = subprocess.Popen([str(BIN / "mpremote"), "connect", dev.port, "exec",
                          COUNT.format(presses=presses, ms=ms, then=then)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = p.stdout.readline()
        if first.startswith("before"):
            for _ in range(presses):
                src.pulse(1, bounce=2)
                time.sleep(0.15)
        out = first + p.communicate(timeout=60)[0]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, out
    return out.replace("\r\n", "\n").split()


def test_pulses_survive_reset_and_power_cycle_on_the_virtual_device(tmp_path):
    flash = tmp_path / "flash.img"
    with BusSim() as bus:
        src = PulseSource(bus, 13)
        with VirtualDevice(flash=flash, env={"M2M_BUS": bus.address_str}) as d:
            d.wait_boot()
            assert count(d, src, 3) == ["before", "0", "after", "3"]
            seen = len(d.events)
            mpremote(d.port, "reset")
            deadline = time.monotonic() + 10
            while ("reset", {"cause": "hard"}) not in d.events[seen:]:
                assert time.monotonic() < deadline, d.events[seen:]
                time.sleep(0.05)
            # kept through machine.reset() without a flash save; then saved, then 2 more unsaved
            assert count(d, src, 2, then="p.save()") == ["before", "3", "after", "5"]
            assert count(d, src, 2) == ["before", "5", "after", "7"]
        with VirtualDevice(flash=flash, env={"M2M_BUS": bus.address_str}) as d:
            d.wait_boot()
            # power-on: RTC memory is gone; the flash holds the last save
            assert count(d, src, 0, ms=10) == ["before", "5", "after", "5"]

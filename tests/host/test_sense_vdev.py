"""Pulse counting on the virtual device, driven through mpremote as on a board: pulses counted before
machine.reset() are still there after it (RTC memory), and after a power cycle the count is the one
last saved to the flash image."""

import subprocess
import sys
import threading
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
print('before', p.read()[0])
hal.sleep_ms({ms})
print('after', p.read()[0])
{then}
"""


def count(dev, src, presses, then="", ms=1500):
    def press():
        time.sleep(0.5)
        for _ in range(presses):
            src.pulse(1, bounce=2)
            time.sleep(0.15)

    t = threading.Thread(target=press)
    t.start()
    out = mpremote(dev.port, "exec", COUNT.format(ms=ms, then=then))
    t.join()
    return out.split()


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

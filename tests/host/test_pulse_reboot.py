"""An intentional restart keeps a hardware pulse counter's last pulses: m2m.loop.reset() runs the loop's
hooks once (the PCNT counter's sync into RTC memory) before hal.reset(). A counter with debounce_ms 0
on MicroPython v1.26+ counts in the chip's esp32.PCNT, which a reset clears (ports/esp32/main.c
esp32_pcnt_deinit_all); its count reaches RTC memory only at a sync. Checked on the virtual device
through mpremote (pulses that came while nothing synced them, then loop.reset()), and on the MQTT
/cmd "reboot" path (the Reporter under a real Mosquitto)."""

import json
import subprocess
import sys
import time
from pathlib import Path

from m2mkit.sim.bus import BusSim
from m2mkit.sim.modem import ModemSim
from m2mkit.testing import _prelude, micropython, mpy_env
from m2mkit.vdev.device import VirtualDevice
from m2mkit.vdev.port import _m2m_table as T

BIN = Path(sys.executable).parent
PIN = 13
N = 25

# m2m.loop imported first: the counter registers its sync as one of the loop's hooks. The device waits
# for the pulses with hal.sleep_ms (no idle(): nothing syncs them), shows where the count is, and
# restarts with loop.reset().
BEFORE = """
import struct
from m2m import hal, loop
from m2m.sense.pulse import Pulses
p = Pulses(%(pin)d, debounce_ms=0)
print('ready', p._pc is not None, p._hook is not None, p.count)
t = hal.ticks_ms()
while p._pc.value() < %(n)d and hal.ticks_diff(hal.ticks_ms(), t) < 10000:
    hal.sleep_ms(20)
hal.sleep_ms(100)
print('pcnt', p._pc.value(), 'count', p.count, 'rtc', struct.unpack_from('<I', hal.RTC().memory(), 2)[0])
loop.reset()
"""

AFTER = """
from m2m.sense.pulse import Pulses
print('count', Pulses(%(pin)d, debounce_ms=0).count)
"""


def test_loop_reset_keeps_the_pulses_only_the_pcnt_held(tmp_path):
    with BusSim() as bus:
        bus.set_pin(PIN, 1)
        with VirtualDevice(flash=tmp_path / "flash.img", micropython="1.26.0",
                           env={"M2M_BUS": bus.address_str}) as d:
            d.wait_boot()
            seen = len(d.events)
            p = subprocess.Popen([str(BIN / "mpremote"), "connect", d.port, "exec", BEFORE % {"pin": PIN, "n": N}],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                first = p.stdout.readline()
                assert first.split() == ["ready", "True", "True", "0"], first + p.communicate(timeout=30)[0]
                time.sleep(0.05)
                bus.set_pin(PIN, *(0, 1) * N, spacing_us=100)  # N pulses at 5 kHz
                line = p.stdout.readline()
                deadline = time.monotonic() + 20
                while ("reset", {"cause": "hard"}) not in d.events[seen:]:
                    assert time.monotonic() < deadline, (line, d.events[seen:])
                    time.sleep(0.05)
            finally:
                if p.poll() is None:
                    p.kill()
                p.communicate()
            # all N in the chip's counter, none yet in count or RTC memory: a plain reset loses them
            assert line.split() == ["pcnt", str(N), "count", "0", "rtc", "0"], line
            out = subprocess.run([str(BIN / "mpremote"), "connect", d.port, "exec", AFTER % {"pin": PIN}],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stdout + out.stderr
            assert out.stdout.split() == ["count", str(N)], out.stdout

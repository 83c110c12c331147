"""The virtual device's port stand-in offers esp32.PCNT as the MicroPython version it models does
(ports/esp32/esp32_pcnt.c came with v1.26: VirtualDevice(micropython=...), `m2mkit sim device
--micropython`), and its firmware's pulse counter (debounce_ms 0) then counts in hardware, through
mpremote as on a board."""

import subprocess
import sys
import time
from pathlib import Path

from m2mkit.sim.bus import BusSim
from m2mkit.vdev.device import VirtualDevice

BIN = Path(sys.executable).parent

CODE = """
import esp32
from m2m import hal
from m2m.sense.pulse import Pulses
p = Pulses(13, debounce_ms=0)
print('pcnt', hasattr(esp32, 'PCNT'), p._pc is not None)
t = hal.ticks_ms()
while not p.read()[0] and hal.ticks_diff(hal.ticks_ms(), t) < 10000:  # the burst's first count
    hal.sleep_ms(20)
hal.sleep_ms(200)
print('count', p.read()[0])
"""


def run(version, tmp_path):
    with BusSim() as bus:
        bus.set_pin(13, 1)
        with VirtualDevice(flash=tmp_path / version / "flash.img", micropython=version,
                           env={"M2M_BUS": bus.address_str}) as d:
            d.wait_boot()
            p = subprocess.Popen([str(BIN / "mpremote"), "connect", d.port, "exec", CODE],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                first = p.stdout.readline()
                time.sleep(0.05)
                bus.set_pin(13, *(0, 1) * 20, spacing_us=100)  # 20 pulses at 5 kHz
                out = first + p.communicate(timeout=60)[0]
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            assert p.returncode == 0, out
            return out.split()


def test_pcnt_is_offered_from_v1_26_and_counts_a_burst(tmp_path):
    (tmp_path / "1.26.0").mkdir()
    (tmp_path / "1.25.0").mkdir()
    assert run("1.26.0", tmp_path) == ["pcnt", "True", "True", "count", "20"]
    out = run("1.25.0", tmp_path)
    assert out[:3] == ["pcnt", "False", "False"], out
    assert int(out[4]) < 20, out  # Pin.irq, debounced in whole milliseconds: the burst merges

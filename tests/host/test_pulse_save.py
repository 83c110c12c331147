"""The pulse counter's flash save (m2m.sense.pulse Pulses.save) with a pulse counted while it runs: on
the ESP32 a scheduled Pin.irq handler runs wherever the VM checks for pending work (py/vm.c
pending_exception_check, at branches; mp_handle_pending in waits), so between the count being
written and `saved` being set. The count written is what is taken as saved: the pulse counted
meanwhile is written at the next save, and a power cut after it loses nothing saved."""

import subprocess

from m2mkit.sim.bus import BusSim
from m2mkit.sim.sensors import PulseSource
from m2mkit.testing import _prelude, micropython, mpy_env

CODE = """
import os, sys, time, utime
from m2m.sense.pulse import Pulses
c = Pulses(13, debounce_ms=20, path=%r)
time.sleep_ms(50)  # the first pulse's handler runs
print("counted", c.count)
sys.stdin.readline()  # the host has queued a second pulse
utime.sleep_ms(30)  # past debounce_ms (the unix port's own sleep: no handler runs here)
rename = os.rename
def slow_rename(a, b):
    rename(a, b)
    time.sleep_ms(5)  # a wait inside the save: the second pulse's handler runs
os.rename = slow_rename
c.save()
os.rename = rename
print("after the save", c.count, open(%r).read())
c.save()  # the next save writes the pulse counted during the first
print("flash", open(%r).read())
"""


def test_a_pulse_counted_during_a_save_is_saved_by_the_next(tmp_path):
    path = str(tmp_path / "pulses.dat")
    with BusSim() as bus:
        src = PulseSource(bus, 13)
        src.pulse(1)
        p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c",
                              _prelude() + CODE % (path, path + ".0", path + ".0")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=mpy_env({"M2M_BUS": bus.address_str, "M2M_STATE_DIR": str(tmp_path)}))
        try:
            assert p.stdout.readline().split() == ["counted", "1"]
            src.pulse(1)
            p.stdin.write("go\n")
            p.stdin.flush()
        finally:
            out = p.communicate(timeout=30)[0]
        assert p.returncode == 0, out
        assert "after the save 2 1" in out, out  # the count written was 1; 2 is not yet on flash
        assert "flash 2" in out, out

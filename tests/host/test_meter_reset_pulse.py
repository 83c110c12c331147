"""A pulse meter whose counter lost counts (its RTC memory and flash copy gone) goes on from its last
record's end (m2m.meter "meter.reset"); a pulse counted while it does so is kept on top of that end,
not overwritten. On the ESP32 the pulse's scheduled Pin.irq handler runs at the VM's next pending
check, which every conditional jump makes (py/vm.c MP_BC_POP_JUMP_IF_TRUE / _FALSE ->
pending_exception_check -> mp_handle_pending): between the counter's count being read and being set
there are several, and the reset's event post. Here a wait inside that post runs it (the stand-in runs
handlers in its waits)."""

import subprocess

from m2mkit.sim.bus import BusSim
from m2mkit.sim.sensors import PulseSource
from m2mkit.testing import _prelude, micropython, mpy_env

CODE = """
import os, time
from m2m.outbox import Outbox
from m2m.meter import Meters
D = %(dir)r
cfg = {"meters": [{"name": "water", "type": "pulses", "pin": 13, "unit": "L", "debounce_ms": 20}],
       "interval_s": 3600, "save_n": 1, "save_s": 60, "key_file": D + "/k", "state": D + "/meter.json"}
ob = Outbox(D + "/ob")
if %(first)r:
    ms = Meters(cfg, ob, "m-1")
    src = ms.meters[0].src
    for _ in range(3):
        src._edge(src.pin)
        time.sleep_ms(30)
    print("record", ms.record(), ms.counters())
else:
    from m2m import events
    post = events.post
    def slow_post(kind, **f):
        post(kind, **f)
        time.sleep_ms(5)  # a wait while the reset is reported: the pulse's handler runs
    events.post = slow_post
    ms = Meters(cfg, ob, "m-1")
    events.post = post
    print("after", ms.counters())
"""


def run(tmp_path, bus, first):
    out = subprocess.run([micropython(), "-X", "heapsize=512K", "-c",
                          _prelude() + CODE % {"dir": str(tmp_path), "first": first}],
                         capture_output=True, text=True, timeout=60,
                         env=mpy_env({"M2M_BUS": bus.address_str, "M2M_STATE_DIR": str(tmp_path)}))
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_a_pulse_counted_while_the_meter_resets_is_kept(tmp_path):
    (tmp_path / "k").write_text("a7" * 32)
    with BusSim() as bus:
        src = PulseSource(bus, 13)
        out = run(tmp_path, bus, True)
        assert "{'water': 3}" in out, out
        # the counter's RTC memory and flash copy are lost; a pulse comes as the meter starts again
        (tmp_path / "rtcmem").unlink()
        (tmp_path / "meter.pulses.0").unlink()
        src.pulse(1)
        out = run(tmp_path, bus, False)
        assert "after {'water': 4}" in out, out  # the record's end (3) and the pulse

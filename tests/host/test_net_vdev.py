"""The network on a virtual device: app.run() brings the board's modem from power-off to attached
from the device's own flash (board.json, /config.json absent: defaults plus the simulator's APN-less
attach), within the board's heap; on the T-SIM7080G-S3 the PMU's cold cycle means the modem is known
to be off, so it is pulsed without AT probes first."""

import subprocess
import sys
from pathlib import Path

import pytest

from m2mkit.vdev.device import VirtualDevice

MPREMOTE = str(Path(sys.executable).parent / "mpremote")
SCALE = 10

RUN = ("from m2m import app; n = app.run(until=lambda: n.attached() if 'n' in globals() else False, "
       "max_ms=120000)")


@pytest.mark.parametrize("board", ("lilygo-t-sim7080g-s3", "esp32-devkitc-bg95", "dptechnics-walter"))
def test_app_run_attaches(board):
    code = ("from m2m import app, loop, events\n"
            "from m2m.net import network\n"
            "st = {}\n"
            "def until():\n"
            "    import m2m.net as N\n"
            "    return N._active is not None and N._active.attached()\n"
            "n = app.run(until=until, max_ms=120000)\n"
            "print('STATUS', n.status()['state'], n.status()['rat'])\n")
    with VirtualDevice(board, modem=True, time_scale=SCALE) as dev:
        dev.wait_boot()
        p = subprocess.run([MPREMOTE, "connect", dev.port, "exec", code],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "STATUS attached lte-m" in p.stdout, p.stdout
        if board == "lilygo-t-sim7080g-s3":
            # cold boot: the PMU cut the supply, so no AT probe preceded the power-key pulse
            lines = p.stdout.splitlines()
            assert "event: net.power" in lines
        assert dev.modem.status()["boots"] == 1

"""Every supported board as a virtual device with its modem simulated: the firmware on the device's
own flash powers the modem by its PWRKEY (or RESET) line, detects it by AT+CGMM and runs its init
script, within the board's heap."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from m2mkit import boards
from m2mkit.vdev.device import VirtualDevice

MPREMOTE = str(Path(sys.executable).parent / "mpremote")
SCALE = 10


@pytest.mark.parametrize("board", boards.names())
def test_board_brings_up_its_modem(board):
    with VirtualDevice(board, modem=True, time_scale=SCALE) as dev:
        dev.wait_boot()
        powered_before = dev.modem.status()["power"]
        p = subprocess.run([MPREMOTE, "connect", dev.port, "exec",
                            "from m2m import app; m = app.modem_check()"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        ident = dict(re.findall(r"(\w+)=(\S+)", p.stdout.split("modem:", 1)[1]))
        assert ident["model"] == dev.board["modem"]["model"]
        assert ident["imei"] == dev.modem.imei
        assert ident["iccid"] == dev.modem.card.iccid
        assert "warning" not in p.stdout
        status = dev.modem.status()
        assert status["power"] == "on" and status["echo"] == 0
        if dev.board["modem"]["pwrkey"]:
            assert powered_before == "off"  # the firmware's PWRKEY pulse switched it on


def test_silent_modem_gives_a_clear_error():
    with VirtualDevice("lilygo-t-sim7000g", env={}, time_scale=SCALE) as dev:  # no simulator on the UART
        dev.wait_boot()
        p = subprocess.run([MPREMOTE, "connect", dev.port, "exec", "from m2m import app; app.modem_check()"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
        assert "ModemError: the modem did not answer AT after power-on" in p.stdout + p.stderr

"""Every supported board as a virtual device with its modem simulated: the firmware on the device's
own flash powers the modem by its PWRKEY (or RESET) line, detects it by AT+CGMM and runs its init
script, within the board's heap."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

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


# ---- the power and flow gates bite: the firmware's pieces driven by hand ------------------------------
def exec_on(dev, code, timeout=90):
    p = subprocess.run([MPREMOTE, "connect", dev.port, "exec", code], capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


AT_PROBE = """
def probe(u, tries=4):
    got = b''
    for _ in range(tries):
        u.write(b'AT\\r')
        hal.sleep_ms(1500)
        got += u.read() or b''
        if b'OK' in got:
            break
    print('got', got)
"""


def test_sim7080_modem_stays_silent_until_its_pmu_rails_are_on():
    """LilyGO T-SIM7080G-S3: PWRKEY alone does nothing; DC3 at 3000 mV and BLDO1 at 3300 mV on the
    AXP2101 (writes the way XPowersLib makes them), then PWRKEY, and it answers."""
    with VirtualDevice("lilygo-t-sim7080g-s3", modem=True, time_scale=SCALE) as dev:
        dev.wait_boot()
        pulse = ("k = machine.Pin(41, machine.Pin.OUT, value=0)\n"
                 "k.value(1); hal.sleep_ms(1200); k.value(0); hal.sleep_ms(6000)\n")
        out = exec_on(dev, "import machine\nfrom m2m import hal\n" + AT_PROBE + pulse +
                      "u = machine.UART(1, 115200, tx=5, rx=4)\nprobe(u, 2)\n")
        assert "got b''" in out
        assert dev.modem.status()["power"] == "off"
        out = exec_on(dev, "import machine\nfrom m2m import hal\n" + AT_PROBE + """
i2c = machine.I2C(0, scl=machine.Pin(7), sda=machine.Pin(15))
i2c.writeto_mem(0x34, 0x84, bytes([102]))  # DC3 3000 mV
i2c.writeto_mem(0x34, 0x96, bytes([28]))   # BLDO1 3300 mV
i2c.writeto_mem(0x34, 0x80, bytes([i2c.readfrom_mem(0x34, 0x80, 1)[0] | 0x04]))
i2c.writeto_mem(0x34, 0x90, bytes([i2c.readfrom_mem(0x34, 0x90, 1)[0] | 0x10]))
""" + pulse + "u = machine.UART(1, 115200, tx=5, rx=4)\nprobe(u)\n")
        assert "OK" in out.split("got", 1)[1], out
        assert dev.modem.status()["power"] == "on"


def test_walter_modem_stays_silent_until_flow_control_is_on():
    """Walter: a UART opened without RTS/CTS hears nothing from the GM02SP; with flow control it answers."""
    with VirtualDevice("dptechnics-walter", modem=True, time_scale=SCALE) as dev:
        dev.wait_boot()
        out = exec_on(dev, "import machine\nfrom m2m import hal\n" + AT_PROBE +
                      "hal.sleep_ms(6000)\nu = machine.UART(2, 115200, tx=48, rx=14)\nprobe(u, 2)\n")
        assert "got b''" in out
        assert dev.modem.status()["power"] == "on"  # powered, but holding its output
        out = exec_on(dev, "import machine\nfrom m2m import hal\n" + AT_PROBE +
                      "u = machine.UART(2, 115200, tx=48, rx=14, rts=21, cts=47, "
                      "flow=machine.UART.RTS | machine.UART.CTS)\nprobe(u)\n")
        assert "OK" in out.split("got", 1)[1], out


@pytest.mark.parametrize("hold", ["pad+deep-sleep", "pad", ""])
def test_walter_reset_line_through_deep_sleep(hold):
    """Walter's RESET (GPIO45, active low) driven high: held (hold=True, and, GPIO45 being a digital
    pad of the S3, esp32.gpio_deep_sleep_hold(True)) the modem keeps running through the ESP32's deep
    sleep; not held, or held without the deep-sleep hold, the line falls and resets the modem, and it
    stays in reset until the firmware drives the line again."""
    with VirtualDevice("dptechnics-walter", modem=True, time_scale=SCALE) as dev:
        dev.wait_boot()
        assert dev.modem.status()["boots"] == 1
        s = serial.Serial(dev.port, 115200, timeout=0.05)
        try:
            s.write(b"\r\x03")
            time.sleep(0.3)
            s.write(b"import machine, esp32; p = machine.Pin(45, machine.Pin.OUT, value=1%s); %smachine.deepsleep(100)\r"
                    % (b", hold=True" if hold else b"",
                       b"esp32.gpio_deep_sleep_hold(True); " if hold == "pad+deep-sleep" else b""))
            dev.wait_boot(2, timeout=20)
        finally:
            s.close()
        status = dev.modem.status()
        if hold == "pad+deep-sleep":
            assert (status["power"], status["boots"]) == ("on", 1)
        else:
            assert status["power"] == "off"  # held in reset by the floating line
            p = subprocess.run([MPREMOTE, "connect", dev.port, "exec", "from m2m import app; app.modem_check()"],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stdout + p.stderr
            assert dev.modem.status()["boots"] >= 2  # a fresh boot: whatever PSM state it had is gone

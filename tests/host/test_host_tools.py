"""Host tools against the virtual device through their reset / rtc / mount paths, as against a board:
mpremote (reset, rtc, rtc --set, mount), ampy (reset --hard), rshell, pytest-embedded's serial service."""

import datetime
import subprocess
import sys
import time

import pytest

from m2mkit.vdev.device import VirtualDevice
from test_vdev import BIN, Console, mpremote, tool


@pytest.fixture
def dev(tmp_path):
    d = VirtualDevice("lilygo-t-sim7080g-s3", flash=tmp_path / "flash.img", env={})
    d.start()
    d.wait_boot(1)
    yield d
    d.stop()


def rtc(port):
    return eval(mpremote(port, "rtc"))


def test_mpremote_reset_restarts_the_device_with_a_hard_reset_cause(dev):
    seen = len(dev.events)
    mpremote(dev.port, "reset")
    deadline = time.monotonic() + 10
    while ("reset", {"cause": "hard"}) not in dev.events[seen:]:
        assert time.monotonic() < deadline, dev.events[seen:]
        time.sleep(0.05)
    # `resume`: mpremote's first command soft-resets, after which a board reports SOFT_RESET
    out = mpremote(dev.port, "resume", "exec", "import machine; print(machine.reset_cause())")
    assert out == "2\n"  # HARD_RESET, as after esp_restart() on the port
    assert mpremote(dev.port, "exec", "import machine; print(machine.reset_cause())") == "5\n"


def test_mpremote_rtc_get_set_and_what_survives(dev, tmp_path):
    now = datetime.datetime.now()
    assert rtc(dev.port)[0] == now.year
    mpremote(dev.port, "exec", "import machine; machine.RTC().datetime((2030, 1, 2, 2, 3, 4, 5, 0))")
    assert rtc(dev.port)[:3] == (2030, 1, 2)
    assert mpremote(dev.port, "exec", "import time; print(time.localtime()[0])") == "2030\n"
    mpremote(dev.port, "soft-reset")
    mpremote(dev.port, "reset")
    assert rtc(dev.port)[:3] == (2030, 1, 2)  # the RTC keeps its setting through resets
    mpremote(dev.port, "rtc", "--set")
    got = datetime.datetime(*rtc(dev.port)[:3], *rtc(dev.port)[4:7])
    assert abs((got - datetime.datetime.now()).total_seconds()) < 120
    mpremote(dev.port, "exec", "import machine; machine.RTC().datetime((2030, 1, 2, 2, 3, 4, 5, 0))")
    dev.stop()
    with VirtualDevice("lilygo-t-sim7080g-s3", flash=tmp_path / "flash.img", env={}) as d:
        d.wait_boot()
        assert rtc(d.port)[0] == datetime.datetime.now().year  # power-on: the setting is gone


def test_mpremote_mount_runs_a_file_from_the_host_folder(dev, tmp_path):
    host = tmp_path / "work"
    host.mkdir()
    (host / "hello_mount.py").write_text("import os\nprint('from the mount', os.getcwd())\n")
    p = tool("mpremote", "connect", dev.port, "mount", str(host), "exec", "import hello_mount")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "from the mount /remote" in p.stdout
    assert "hello_mount.py" not in mpremote(dev.port, "fs", "ls", ":")  # nothing copied to the flash


def test_ampy_hard_reset_leaves_a_working_repl(dev):
    p = tool("ampy", "--port", dev.port, "reset", "--hard")
    assert p.returncode == 0, p.stdout + p.stderr
    c = Console(dev.port)
    try:
        c.friendly()
        c.write(b"import machine; print('cause', machine.reset_cause())\r")
        assert b"cause 2" in c.read_until(b">>> ")
    finally:
        c.close()
    assert mpremote(dev.port, "exec", "print(6 * 7)") == "42\n"


def test_rshell_connects_and_lists_files(dev):
    p = subprocess.run([str(BIN / "rshell"), "-p", dev.port, "--quiet", "ls", "/pyboard"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "boot.py" in p.stdout and "main.py" in p.stdout and "board.json" in p.stdout


def test_pytest_embedded_serial_service_sees_the_repl(dev, tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_dut.py").write_text(
        "def test_repl(dut):\n"
        "    dut.write('\\r')\n"
        "    dut.expect('>>> ', timeout=10)\n"
        "    dut.write('import os; print(os.uname().machine)')\n"
        "    dut.expect('LilyGO T-SIM7080G-S3 with ESP32S3', timeout=10)\n")
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
         str(tmp_path / "test_dut.py"), "-p", "pytest_embedded", "--embedded-services", "serial",
         "--port", dev.port, "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed" in p.stdout


def test_deepsleep_lightsleep_and_bootloader(dev):
    c = Console(dev.port)
    try:
        c.friendly()
        c.write(b"import machine; machine.lightsleep(50); print('woke', machine.wake_reason())\r")
        assert b"woke 4" in c.read_until(b">>> ")
        c.write(b"machine.deepsleep(100)\r")
        c.read_until(b"health:")
        c.read_until(b">>> ")
        c.write(b"import machine; print('after', machine.reset_cause(), machine.wake_reason())\r")
        assert b"after 4 4" in c.read_until(b">>> ")
        c.write(b"machine.bootloader()\r")
        c.read_until(b"waiting for download\r\n")
        c.write(b"\r")
        time.sleep(1)
        assert b">>> " not in c.s.read(4096)  # download mode: no REPL until a reset
    finally:
        c.close()


def test_soft_reset_uname_and_unique_id(tmp_path):
    with VirtualDevice("dptechnics-walter", flash=tmp_path / "w.img", env={"M2M_UID": "a1b2c3d4e5f6"}) as d:
        d.wait_boot()
        out = mpremote(d.port, "exec", "import os, machine; print(os.uname().machine, machine.unique_id().hex())")
        assert out == "DPTechnics Walter with ESP32S3 a1b2c3d4e5f6\n"
        c = Console(d.port)
        try:
            c.friendly()
            c.write(b"import machine; machine.soft_reset()\r")
            c.read_until(b"MPY: soft reboot")
            c.read_until(b">>> ")
            c.write(b"import machine; print('cause', machine.reset_cause())\r")
            assert b"cause 5" in c.read_until(b">>> ")
        finally:
            c.close()


def test_mpremote_romfs_query_reads_the_partition(tmp_path):
    # mpremote's romfs query reads the partition's first bytes through its buffer
    # (bytes(memoryview(dev)[:12])), as ports/esp32/esp32_partition.c gives the romfs partition one
    from mpremote.romfs import make_romfs

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hello.py").write_text("print('hello from rom')\n")
    image = make_romfs(str(tmp_path / "src"), mpy_cross=False)
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "f.img", env={}, romfs=image) as d:
        d.wait_boot()
        out = mpremote(d.port, "romfs", "query")
        assert "ROMFS0 partition has size 262144 bytes (64 blocks of 4096 bytes each)" in out, out
        i, n = 3, 0  # the header's size field: what follows it (a varint after the 3-byte magic)
        while True:
            n, i = (n << 7) | (image[i] & 0x7F), i + 1
            if not image[i - 1] & 0x80:
                break
        assert "Raw contents: d2:cd:31" in out and "ROMFS image size: %d\n" % n in out and n == len(image) - i, out
        assert mpremote(d.port, "exec", "import hello") == "hello from rom\n"
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "g.img", env={}, romfs=True) as d:
        d.wait_boot()  # an erased partition: its bytes read 0xff
        out = mpremote(d.port, "romfs", "query")
        assert "Raw contents: ff:ff:ff" in out and "Not a valid ROMFS" in out, out


def test_uname_reports_the_micropython_the_device_models(tmp_path):
    # a virtual device set to an older MicroPython (--micropython) says so, as that board's build would
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "f.img", micropython="1.25.0") as d:
        d.wait_boot()
        assert mpremote(d.port, "exec", "import os; print(os.uname().release)") == "1.25.0\n"

"""m2mkit deploy against the virtual device: compiled for the arch the device reports, only what
changed, stale firmware files removed (never the user's), soft reset; errors for bad ports."""

import os
import shutil

import pytest

from m2mkit import boards, deploy
from m2mkit.errors import UserError
from m2mkit.paths import FIRMWARE
from m2mkit.vdev.device import VirtualDevice
from test_vdev import mpremote


@pytest.fixture
def dev(tmp_path):
    d = VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", env={})
    d.start()
    d.wait_boot(1)
    yield d
    d.stop()


def test_first_deploy_compiles_second_copies_nothing(dev):
    first = deploy.deploy(dev.port, progress=False)
    assert first["arch"] == "x64"  # the unix port's native arch, from sys.implementation._mpy
    assert "/lib/m2m/atparse.mpy" in first["copied"] and "/lib/m2m/atparse.py" in first["removed"]
    assert "/main.py" not in first["copied"]  # kept as source and already there, unchanged
    again = deploy.deploy(dev.port, progress=False)
    assert again["copied"] == [] and again["removed"] == [] and again["unchanged"] == len(first["copied"]) + 2
    out = mpremote(dev.port, "exec", "import m2m.atparse, os; print(sorted(os.listdir('/lib/m2m'))[:3])")
    assert out == "['__init__.mpy', 'app.mpy', 'at.mpy']\n"


def test_only_changed_files_go_and_only_stale_firmware_files_are_removed(dev, tmp_path):
    fw = tmp_path / "fw"
    shutil.copytree(FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    deploy.deploy(dev.port, progress=False, firmware=fw)
    (fw / "lib/m2m/creg.py").write_text((fw / "lib/m2m/creg.py").read_text() + "\nEXTRA = 1\n")
    mpremote(dev.port, "exec", "open('/lib/user.py','w').write('U=1');open('/lib/m2m/old.mpy','w').write('x');"
                               "import os;os.mkdir('/lib/m2m/gone');open('/lib/m2m/gone/a.py','w').write('x')")
    r = deploy.deploy(dev.port, progress=False, firmware=fw, board=boards.load("esp32-devkitc-bg95"))
    assert sorted(r["copied"]) == ["/board.json", "/lib/m2m/creg.mpy"]
    assert r["removed"] == ["/lib/m2m/gone/a.py", "/lib/m2m/old.mpy"]
    out = mpremote(dev.port, "exec", "import os, m2m.creg; print(m2m.creg.EXTRA, os.listdir('/lib'), "
                                     "'gone' in os.listdir('/lib/m2m'))")
    assert out.split(" ", 1)[0] == "1" and "'user.py'" in out and out.endswith("False\n")


def test_a_board_gets_xtensawin_mpy_and_no_unix_hal():
    want = deploy.plan_files("xtensawin", "esp32")
    assert "/lib/m2m/hal/unix.mpy" not in want and "/lib/m2m/hal/esp32.mpy" in want
    assert "/boot.py" in want and "/main.py" in want
    mpy = want["/lib/m2m/atparse.mpy"]
    assert mpy[:2] == b"M\x06" and mpy[2] >> 2 == 10  # py/persistentcode.h: MP_NATIVE_ARCH_XTENSAWIN
    assert "/lib/m2m/hal/unix.mpy" in deploy.plan_files("x64", "linux")


def test_bad_ports_are_explained(tmp_path):
    with pytest.raises(UserError, match="no such port"):
        deploy.deploy(str(tmp_path / "ttyUSB9"), progress=False)
    (tmp_path / "file").write_text("x")
    for path, what in ((tmp_path, "a folder"), (tmp_path / "file", "a file")):
        with pytest.raises(UserError, match=rf"--port {path}: not a serial port \({what}\); give the board's port"):
            deploy.deploy(str(path), progress=False)
    with pytest.raises(UserError, match=r"--port /dev/null: cannot open it as a serial port \(.*\); give the board"):
        deploy.deploy("/dev/null", progress=False)  # a character device, but no terminal
    master, slave = os.openpty()  # a port where nothing answers
    try:
        with pytest.raises(UserError, match="no MicroPython REPL answers"):
            deploy.deploy(os.ttyname(slave), progress=False)
    finally:
        os.close(master)
        os.close(slave)


def test_a_busy_port_is_named(dev):
    import serial

    holder = serial.Serial(dev.port, exclusive=True)  # as a serial monitor left open
    try:
        with pytest.raises(UserError, match="busy; another program"):
            deploy.deploy(dev.port, progress=False)
    finally:
        holder.close()


def test_the_command_sums_up_replaced_sources_and_names_stale_files(dev, tmp_path, capsys):
    """What `m2mkit deploy` prints on a device holding the .py firmware (a fresh image, or after `mpremote
    fs cp -r lib`): one line for the sources its .mpy replace (it listed each of them), a stale file by
    name, and no progress bar when nothing is copied (it showed `1/1 bytes`)."""
    fw = tmp_path / "fw"  # a copy: other work may change firmware/ between two runs
    shutil.copytree(FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    first = deploy.deploy(dev.port, firmware=fw)
    n = sum(1 for p in deploy.plan_files("x64", "linux", firmware=fw) if p.startswith("/lib/m2m/"))
    assert deploy.removal_lines(first) == [f"removed {n} .py sources under /lib/m2m: replaced by their compiled .mpy"]
    assert "━" in capsys.readouterr().out  # the bar, while files are copied
    mpremote(dev.port, "exec", "open('/lib/m2m/old.mpy','w').write('x')")
    again = deploy.deploy(dev.port, firmware=fw)
    assert again["copied"] == [] and capsys.readouterr().out == ""
    assert deploy.removal_lines(again) == ["removed /lib/m2m/old.mpy (no longer in the firmware)"]
    src = deploy.deploy(dev.port, firmware=fw, source=True, progress=False)
    assert deploy.removal_lines(src) == [f"removed {n} .mpy files under /lib/m2m: replaced by their .py sources "
                                         f"(--source)"]


def test_a_romfs_deploy_says_the_littlefs_copy_went_in_one_line():
    r = {"removed": ["/lib/m2m/__init__.py", "/lib/m2m/app.py", "/lib/m2m/net/sock.py"], "replaced": [],
         "romfs": 176428}
    assert deploy.removal_lines(r) == ["removed the LittleFS copy under /lib/m2m (3 files): the firmware runs "
                                       "from /rom"]

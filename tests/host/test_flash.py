"""Download mode on the virtual device (vdev/download.py: the ROM loader's side of esptool's
protocol) and m2mkit flash through esptool's Python API: unmodified esptool detects, writes and
verifies over the pty; the device then boots what was written; wrong chip, bad checksum, a write past
the flash and a port not in download mode answered or explained."""

import os
import struct
import subprocess

import pytest

from m2mkit import boards, fleetimage, flash, provision
from m2mkit.errors import UserError
from m2mkit.vdev.device import VirtualDevice
from m2mkit.vdev.download import Flash, RomLoader, slip
from test_vdev import BIN, Console, mpremote

BOARD = boards.load("esp32-devkitc-bg95")


def esptool(port, *args):
    p = subprocess.run([str(BIN / "esptool"), "--port", port, "--before", "no-reset", "--after", "no-reset",
                        "--no-stub", *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_esptool_detects_writes_verifies_and_reads_in_download_mode(tmp_path):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(fleetimage.stand_in_firmware("esp32"))
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", env={}, download=True) as dev:
        rc, out = esptool(dev.port, "flash-id")
        assert rc == 0 and "Detecting chip type... ESP32" in out and "Detected flash size: 4MB" in out, out
        rc, out = esptool(dev.port, "--chip", "esp32s3", "flash-id")
        assert rc == 2 and "This chip is ESP32, not ESP32-S3" in out, out
        rc, out = esptool(dev.port, "write-flash", "0x1000", str(fw))
        assert rc == 0 and "Hash of data verified" in out, out
        rc, out = esptool(dev.port, "verify-flash", "0x1000", str(fw))
        assert rc == 0 and "Verification successful" in out, out
        rc, out = esptool(dev.port, "read-flash", "0x1000", str(len(fw.read_bytes())), str(tmp_path / "back.bin"))
        assert rc == 0 and (tmp_path / "back.bin").read_bytes() == fw.read_bytes(), out
    assert (tmp_path / "flash.img.state" / "flash-rest.bin").read_bytes()[0x1000:0x1000 + len(fw.read_bytes())] \
        == fw.read_bytes()


def test_m2mkit_flash_writes_a_fleet_image_and_the_device_boots_it(tmp_path):
    (tmp_path / "devices.csv").write_text("device_id,net.apn\nmeter-42,iot.example\n")
    m = fleetimage.build_fleet(BOARD, fleetimage.stand_in_firmware("esp32"),
                               provision.read_devices(tmp_path / "devices.csv"), tmp_path / "out", arch="x64")
    image = (tmp_path / "out" / "meter-42.bin").read_bytes()
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", env={}, download=True) as dev:
        p = subprocess.run([str(BIN / "m2mkit"), "flash", "--port", dev.port, "--board", "esp32-devkitc-bg95",
                            "--firmware", str(tmp_path / "out" / m["devices"][0]["file"])],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"flashed {len(image)} bytes at 0x0 on the ESP32 and verified them" in p.stdout
        dev.wait_boot(1, timeout=30)  # "run user code": the device left download mode and booted
        out = mpremote(dev.port, "exec", "from m2m import config; print(config.load()['device']['id'])")
        assert out == "meter-42\n"


def test_flash_refuses_the_wrong_chip_and_a_port_not_in_download_mode(tmp_path):
    fw = fleetimage.stand_in_firmware("esp32s3")
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", env={}, download=True) as dev:
        with pytest.raises(UserError, match="wrong chip: the board on .* is an ESP32, but board "
                                            "lilygo-t-sim7080g-s3 is an ESP32-S3"):
            flash.flash(dev.port, boards.load("lilygo-t-sim7080g-s3"), fw)
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash2.img", env={}) as dev:
        dev.wait_boot(1)
        with pytest.raises(UserError, match="not in bootloader .download. mode.*--download or run machine.bootloader"):
            flash.flash(dev.port, BOARD, fleetimage.stand_in_firmware("esp32"))
    with pytest.raises(UserError, match="built for esp32s3, but board esp32-devkitc-bg95 is an esp32"):
        flash.flash("/dev/null", BOARD, fw)


def test_machine_bootloader_then_the_reset_button(tmp_path):
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", env={}) as dev:
        dev.wait_boot(1)
        c = Console(dev.port)
        try:
            c.friendly()
            c.write(b"import machine; machine.bootloader()\r")
            c.read_until(b"waiting for download")
        finally:
            c.close()
        rc, out = esptool(dev.port, "flash-id")
        assert rc == 0 and "Detected flash size: 4MB" in out, out
        dev.bridge.press()  # EN: back to the firmware, as at power-on
        dev.wait_boot(2, timeout=30)
        assert mpremote(dev.port, "resume", "exec", "import machine; print(machine.reset_cause())") == "1\n"  # PWRON


def frame(op, data, chk=0):
    return slip(struct.pack("<BBHI", 0, op, len(data), chk) + data)


def replies(raw):
    out = []
    for f in raw.split(b"\xc0"):
        if f:
            f = f.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")
            _, op, n, val = struct.unpack_from("<BBHI", f)
            out.append((op, val, f[8:8 + n]))
    return out


def test_rom_answers_bad_checksum_and_past_the_flash_as_failures(tmp_path):
    vfs = tmp_path / "vfs.img"
    vfs.write_bytes(b"\xff" * 4096)
    rom = RomLoader("esp32", Flash(4 << 20, vfs, 0x200000, tmp_path / "rest.bin"))
    [(op, _, body)] = replies(rom.feed(frame(0x02, struct.pack("<IIII", 4096, 1, 0x400, 0x1000))))
    assert (op, body) == (0x02, b"\0\0\0\0")
    block = b"\x12" * 0x400
    good = 0xEF
    for b in block:
        good ^= b
    [(_, _, body)] = replies(rom.feed(frame(0x03, struct.pack("<IIII", len(block), 0, 0, 0) + block, good ^ 1)))
    assert body[:2] == b"\x01\x07"  # esptool util.py 0x107: checksum error
    [(_, _, body)] = replies(rom.feed(frame(0x03, struct.pack("<IIII", len(block), 0, 0, 0) + block, good)))
    assert body == b"\0\0\0\0" and rom.flash.read(0x1000, 4) == b"\x12" * 4
    [(_, _, body)] = replies(rom.feed(frame(0x02, struct.pack("<IIII", 0x2000, 8, 0x400, (4 << 20) - 0x1000))))
    assert body[:2] == b"\x01\x06"  # past the end of the 4 MB flash
    [(_, _, body)] = replies(rom.feed(frame(0x14, b"")))
    assert body[:2] == b"\x01\x05"  # GET_SECURITY_INFO: not in the ESP32's ROM
    assert len(replies(rom.feed(frame(0x08, b"\x07\x07\x12\x20" + 32 * b"\x55")))) == 8  # SYNC: eight answers
    assert os.path.getsize(vfs) == 4096


def test_over_rfc2217_esptools_own_resets_enter_download_mode_and_boot(tmp_path):
    fw = fleetimage.stand_in_firmware("esp32")
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", env={}) as dev:
        dev.wait_boot(1)
        url = dev.rfc2217()
        # esptool's default reset (DTR/RTS) takes the running device into download mode
        p = subprocess.run([str(BIN / "esptool"), "--port", url + "?ign_set_control", "--no-stub", "flash-id"],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0 and "Detected flash size: 4MB" in p.stdout, p.stdout + p.stderr
        assert ("reset", {"cause": "power-on", "button": "download"}) in dev.events
        # m2mkit flash over the same port (pyserial's RFC 2217 client sleeps 0.1 s per control change,
        # so a small image): esptool's hard reset (RTS) then boots the device
        boots = len(dev.boots)
        r = flash.flash(url, BOARD, fw)
        assert r["offset"] == 0x1000 and r["chip"] == "ESP32"
        dev.wait_boot(boots + 1, timeout=30)
        assert dev.events[-2][0] == "reset" and dev.events[-2][1]["button"] == "run"
    rest = (tmp_path / "flash.img.state" / "flash-rest.bin").read_bytes()
    assert rest[0x1000:0x1000 + len(fw)] == fw


def test_erase_wipes_the_filesystem_too(tmp_path):
    fw = fleetimage.stand_in_firmware("esp32")
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", env={}, download=True) as dev:
        r = flash.flash(dev.port, BOARD, fw, erase=True)
        assert r["erased"] and r["offset"] == 0x1000
        dev.wait_boot(1, timeout=30)
        assert ("formatted", {"flash": str(dev.flash)}) in dev.events  # a blank vfs, set up as a new board
        assert "main.py" not in mpremote(dev.port, "fs", "ls", ":")

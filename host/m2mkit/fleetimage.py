"""`m2mkit image fleet`: one flashable image per device of a CSV.

Each `DIR/<device_id>.bin` is MicroPython's release image (bootloader + partition table + app, as
micropython.org ships it for `write-flash <firmware_offset>`) and, at the vfs partition's offset
(boards.VFS_OFFSET, 0x200000 for every generic ESP32 / ESP32-S3 table), a LittleFS partition holding
the app compiled for the board (xtensawin .mpy, main.py / boot.py as source), /board.json and that
device's /config.json with its credentials. Merged with esptool's `merge_bin` starting at flash 0x0:
flash it with `esptool write-flash 0x0 <device_id>.bin`. The partition is left out past its last
written block (erased flash, 0xFF, that littlefs never reads before writing), which keeps images small.
`DIR/manifest.json` lists device id, file, sha256 and offsets; `DIR/credentials.csv` (mode 0600) holds
each device's MQTT password and PSK for the broker and LwM2M server, and is never printed.
"""

import csv
import hashlib
import json
import os
import struct
from pathlib import Path

from . import boards, image
from .errors import UserError

ESP_IMAGE_MAGIC = 0xE9  # esptool loader.py ESPLoader.ESP_IMAGE_MAGIC
# esptool bin_image.py ESP32FirmwareImage: 8-byte common header, then the extended header
# "<BBBBHBHH..." whose uint16 chip id sits at byte 12; targets/esp32.py IMAGE_CHIP_ID = 0,
# targets/esp32s3.py IMAGE_CHIP_ID = 9
CHIP_IDS = {"esp32": 0, "esp32s3": 9}


def chip_of_image(data):
    if len(data) < 24 or data[0] != ESP_IMAGE_MAGIC:
        return None
    cid = struct.unpack_from("<H", data, 12)[0]
    return next((c for c, i in CHIP_IDS.items() if i == cid), f"chip id {cid}")


def check_firmware(board, data, name="--firmware"):
    """Refuse a file that is not MicroPython's image for the board's chip, or that runs into vfs."""
    chip = chip_of_image(data)
    if chip is None:
        raise UserError(f"{name}: not an ESP32 firmware image (no 0xE9 image header at its start); give "
                        f"MicroPython's .bin for {board['micropython']['board']} from micropython.org/download")
    if chip != board["chip"]:
        raise UserError(f"{name}: built for {chip}, but board {board['name']} is an {board['chip']}; give the "
                        f"{board['micropython']['board']} build")
    room = boards.VFS_OFFSET - board["firmware_offset"]
    if len(data) > room:
        raise UserError(f"{name}: {len(data)} bytes do not fit below the vfs partition at {boards.VFS_OFFSET:#x} "
                        f"({room} bytes from {board['firmware_offset']:#x}); is it a whole-flash image?")


def stand_in_firmware(chip="esp32"):
    """A valid but tiny ESP32 / ESP32-S3 app image (one segment, esptool's own image classes) that
    stands in for micropython.bin in tests: it passes esptool's checks, it does not run."""
    from esptool.bin_image import ESP32FirmwareImage, ESP32S3FirmwareImage, ELFSection

    img = {"esp32": ESP32FirmwareImage, "esp32s3": ESP32S3FirmwareImage}[chip]()
    img.entrypoint = 0x40080000
    img.segments = [ELFSection(b".dram0.data", 0x3FFB0000, b"m2mkit stand-in for micropython.bin\0" + bytes(28), 0)]
    return img.save(None)


class Builder:
    """Compiles the app and builds its LittleFS once; each device then costs one copy of that
    filesystem, its own files, and a merge."""

    def __init__(self, board, firmware_bin, version=None, arch=None):
        from .deploy import CHIP_ARCH, plan_files

        self.board = board
        check_firmware(board, firmware_bin)
        self.firmware_bin = firmware_bin
        self.blocks = boards.vfs_blocks(board, version)
        from littlefs import LittleFS

        fs = LittleFS(block_count=self.blocks, **image.FS_OPTS)
        # arch: the board's (xtensawin); x64 for images a virtual device boots (the unix port cannot
        # load xtensawin .mpy files, and runs the unix hal)
        self.arch = arch or CHIP_ARCH[board["chip"]]
        platform = "linux" if self.arch == "x64" else board["chip"]
        for path, data in plan_files(self.arch, platform, board=board).items():
            _write(fs, path, data)
        self.base = bytes(fs.context.buffer)

    def vfs(self, files):
        from littlefs import LittleFS

        fs = LittleFS(block_count=self.blocks, mount=False, **image.FS_OPTS)
        fs.context.buffer = bytearray(self.base)
        fs.mount()
        for path, data in files.items():
            _write(fs, path, data)
        fs.unmount()
        return bytes(fs.context.buffer)

    def image(self, files):
        from esptool.cmds import merge_bin

        vfs = self.vfs(files)
        end = len(vfs.rstrip(b"\xff"))
        vfs = vfs[:-(-end // boards.BLOCK_SIZE) * boards.BLOCK_SIZE or boards.BLOCK_SIZE]
        return merge_bin([(self.board["firmware_offset"], self.firmware_bin), (boards.VFS_OFFSET, vfs)],
                         self.board["chip"], output=None, format="raw", target_offset=0)


def _write(fs, path, data):
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        try:
            fs.mkdir("/" + "/".join(parts[:i]))
        except FileExistsError:
            pass
    with fs.open(path, "wb") as f:
        f.write(data)


def vfs_of(board, data, version=None):
    """The vfs partition of a fleet image, padded back to its full size with erased flash."""
    size = boards.vfs_blocks(board, version) * boards.BLOCK_SIZE
    part = data[boards.VFS_OFFSET:boards.VFS_OFFSET + size]
    return part + b"\xff" * (size - len(part))


def build_fleet(board, firmware_bin, devices, out, version=None, inventory=None, arch=None):
    """Write DIR/<id>.bin, DIR/manifest.json, DIR/credentials.csv; returns the manifest dict."""
    from esptool.logger import log

    from .provision import device_files, new_credentials

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    b = Builder(board, firmware_bin, version, arch)
    log.set_verbosity("silent")
    try:
        entries, creds = [], []
        for dev_id, cfg in devices:
            cred = (inventory.credentials(dev_id) if inventory else None) or new_credentials(dev_id)
            if "usage_key" not in cred:  # kept from before usage records existed (as provision does)
                cred = dict(cred, usage_key=new_credentials(dev_id)["usage_key"])
            data = b.image(device_files(cfg, cred))
            (out / f"{dev_id}.bin").write_bytes(data)
            entries.append({"device_id": dev_id, "file": f"{dev_id}.bin", "sha256": hashlib.sha256(data).hexdigest(),
                            "bytes": len(data)})
            creds.append((dev_id, cred))
            if inventory:
                inventory.record(dev_id, board=board["name"], credentials=cred, config=cfg)
    finally:
        log.set_verbosity("auto")
    manifest = {"board": board["name"], "chip": board["chip"], "flash_at": 0,
                "firmware_offset": board["firmware_offset"], "vfs_offset": boards.VFS_OFFSET,
                "vfs_blocks": b.blocks, "micropython": version or "1.26 or newer", "arch": b.arch,
                "firmware_sha256": hashlib.sha256(firmware_bin).hexdigest(), "devices": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    path = out / "credentials.csv"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["device_id", "mqtt_user", "mqtt_password", "psk_identity", "psk_key", "usage_key"])
        for dev_id, c in creds:
            w.writerow([dev_id, c["mqtt_user"], c.get("mqtt_password", ""), c["psk_identity"], c["psk_key"],
                        c.get("usage_key", "")])  # m2mkit usage verify's key (/certs/usage.key on the device)
    return manifest


def _command():
    import click

    @click.command("fleet")
    @click.option("--board", required=True, help="board name (m2mkit boards)")
    @click.option("--firmware", "firmware", required=True, type=click.Path(dir_okay=False, path_type=Path),
                  help="MicroPython's .bin for the board (from micropython.org/download)")
    @click.option("--devices", required=True, type=click.Path(dir_okay=False, path_type=Path),
                  help="CSV: a device_id column and section.key config columns (e.g. net.apn, mqtt.broker)")
    @click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="folder for the images")
    @click.option("--micropython", "mp_version", default=None, metavar="VERSION",
                  help="MicroPython version of --firmware (sizes the vfs partition; default 1.26 or newer)")
    @click.option("--arch", type=click.Choice(["xtensawin", "x64"]), default=None,
                  help="compile the app for this arch (default: the board's; x64 for a virtual device)")
    @click.option("--db", default=None, help="inventory that keeps each device's credentials, so a rebuilt image "
                  "gets the same ones (default ~/.m2mkit/inventory.sqlite, or M2MKIT_INVENTORY)")
    def fleet(board, firmware, devices, out, mp_version, arch, db):
        """One flashable image per device: MicroPython plus its LittleFS with the app, config and credentials."""
        from .inventory import Inventory
        from .provision import read_devices

        b = boards.load(board)
        try:
            fw = firmware.read_bytes()
        except OSError as e:
            raise UserError(f"--firmware {firmware}: cannot read it ({e.strerror})") from None
        rows = read_devices(devices)
        with Inventory(db) as inv:
            m = build_fleet(b, fw, rows, out, version=mp_version, arch=arch, inventory=inv)
        click.echo(f"{len(m['devices'])} images in {out} (manifest.json; credentials.csv holds their secrets); "
                   f"flash each with `esptool --chip {b['chip']} write-flash 0x0 {out}/<device_id>.bin`")

    return fleet


command = _command()

"""Board definitions: one JSON file per board in boards/ (chip, flash, pins, modem, power timing)."""

import json
import re

from .errors import UserError
from .paths import BOARDS

BLOCK_SIZE = 4096
VFS_OFFSET = 0x200000  # every generic ESP32 / ESP32-S3 table ends its app partition here
# The vfs partition MicroPython's generic ESP32 builds mount, by version (micropython/micropython,
# ports/esp32). v1.24 and v1.25 fix it in the partition table whatever the flash size:
# ESP32_GENERIC (every variant) uses partitions-4MiB.csv (vfs 0x200000 + 0x200000) and
# ESP32_GENERIC_S3 (plain and SPIRAM_OCT) partitions-8MiB.csv (vfs 0x200000 + 0x600000), named in
# boards/sdkconfig.base and boards/ESP32_GENERIC_S3/sdkconfig.board. From v1.26 (commit 2a0e2b5782
# "esp32/main: Auto detect the size of flash and auto create vfs partition", with 6201e77999
# removing the vfs rows from partitions-*.csv) main.c creates vfs from the end of the last partition
# (0x200000, partitions-4MiBplus.csv) to the end of the detected flash.
FIXED_VFS = {"ESP32_GENERIC": 0x200000, "ESP32_GENERIC_S3": 0x600000}  # bytes, before v1.26
AUTO_VFS_SINCE = (1, 26, 0)
OLDEST_KNOWN = (1, 24, 0)


def names():
    return sorted(p.stem for p in BOARDS.glob("*.json"))


def load(name):
    path = BOARDS / f"{name}.json"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name or "") or not path.is_file():
        raise UserError(f"unknown board {name!r}; known boards: {', '.join(names())}")
    return json.loads(path.read_text())


def flash_bytes(board):
    m = re.fullmatch(r"(\d+)MB", board["flash_size"])
    if not m:
        raise UserError(f"board {board['name']}: flash_size {board['flash_size']!r} is not like '4MB'")
    return int(m.group(1)) * 1024 * 1024


def parse_version(text):
    """'1.25.0' / 'v1.25' -> (1, 25, 0)."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?", str(text).strip())
    if not m:
        raise UserError(f"MicroPython version {text!r}: give it like 1.26.0")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def build_of(board):
    """The board's MicroPython build: {"board": ..., "variant": ..., "min_version": ...}."""
    return board["micropython"]


def vfs_blocks(board, version=None):
    """Blocks of the LittleFS partition MicroPython `version` mounts on this board (None: v1.26 or
    newer, where it runs to the end of flash)."""
    flash = flash_bytes(board)
    if version is None:
        return (flash - VFS_OFFSET) // BLOCK_SIZE
    v = parse_version(version)
    mp = build_of(board)
    if v < parse_version(mp["min_version"]):
        raise UserError(f"board {board['name']} needs MicroPython {mp['min_version']} or newer, not {version}; "
                        f"flash a newer {mp['board']} build")
    if v >= AUTO_VFS_SINCE:
        return (flash - VFS_OFFSET) // BLOCK_SIZE
    if v < OLDEST_KNOWN or mp["board"] not in FIXED_VFS:
        raise UserError(f"the vfs partition of MicroPython {version} ({mp['board']}) is not known to m2mkit; "
                        f"use 1.24.0 or newer")
    size = FIXED_VFS[mp["board"]]
    if VFS_OFFSET + size > flash:
        raise UserError(f"MicroPython {version} ({mp['board']}) expects {(VFS_OFFSET + size) >> 20} MB of flash; "
                        f"board {board['name']} has {board['flash_size']}")
    return size // BLOCK_SIZE

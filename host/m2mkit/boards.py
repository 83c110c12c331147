"""Board definitions: one JSON file per board in boards/ (chip, flash, pins, modem, power timing)."""

import json
import re

from .errors import UserError
from .paths import BOARDS

BLOCK_SIZE = 4096
# Since MicroPython 1.26 the vfs partition runs from 0x200000 (end of the default partition table)
# to the end of flash.
VFS_OFFSET = 0x200000


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


def vfs_blocks(board):
    """Blocks of the LittleFS partition MicroPython creates on this board's flash."""
    return (flash_bytes(board) - VFS_OFFSET) // BLOCK_SIZE

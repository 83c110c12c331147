"""LittleFS2 flash images: the filesystem MicroPython on ESP32 mounts, built and read on the host.

Settings match MicroPython's ESP32 port: block 4096, read / prog / lookahead 32. The block count must
equal the vfs partition size / 4096 exactly, or the firmware reformats the partition at boot.
"""

import json
from pathlib import Path

from littlefs import LittleFS

from .boards import BLOCK_SIZE, vfs_blocks
from .errors import UserError
from .paths import FIRMWARE

FS_OPTS = dict(block_size=BLOCK_SIZE, read_size=32, prog_size=32, lookahead_size=32)


HOST_ONLY = ("/manifest.py",)  # firmware/manifest.py freezes m2m into a build; never on the flash


def firmware_files(root=FIRMWARE):
    """(device path, host path) of every file that goes onto the device."""
    root = Path(root)
    for p in sorted(root.rglob("*")):
        dev = "/" + p.relative_to(root).as_posix()
        if p.is_file() and "__pycache__" not in p.parts and dev not in HOST_ONLY:
            yield dev, p


def _mkdirs(fs, dev_path):
    parts = dev_path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/" + "/".join(parts[:i])
        try:
            fs.mkdir(d)
        except FileExistsError:
            pass


def build(board, firmware=FIRMWARE, extra=None, version=None):
    """Bytes of a flash image with the firmware, /board.json and any extra {path: bytes}, sized for
    the vfs partition of MicroPython `version` (None: v1.26 or newer)."""
    blocks = vfs_blocks(board, version)
    fs = LittleFS(block_count=blocks, **FS_OPTS)
    files = {dev: host.read_bytes() for dev, host in firmware_files(firmware)}
    files["/board.json"] = json.dumps(board, indent=1).encode()
    files.update(extra or {})
    for dev, data in files.items():
        _mkdirs(fs, dev)
        with fs.open(dev, "wb") as f:
            f.write(data)
    return bytes(fs.context.buffer)


def check_size(path, board, version=None):
    """Refuse an image that the board's MicroPython (`version`, None: v1.26 or newer) would not
    mount: its _boot.py would reformat the partition and wipe the firmware."""
    size = Path(path).stat().st_size
    want = vfs_blocks(board, version) * BLOCK_SIZE
    if size != want:
        running = f"MicroPython {version}" if version else "MicroPython 1.26 or newer"
        opt = f" --micropython {version}" if version else ""
        raise UserError(
            f"flash image {path} is {size} bytes ({size // BLOCK_SIZE} blocks); board {board['name']} running "
            f"{running} mounts exactly {want} bytes ({want // BLOCK_SIZE} blocks of {BLOCK_SIZE}). Build one with "
            f"`m2mkit image build --board {board['name']}{opt} --out {path}`, or leave out --flash."
        )


def open_image(path):
    """Mount an image file read-only on the host; returns a LittleFS object."""
    data = Path(path).read_bytes()
    if len(data) % BLOCK_SIZE:
        raise UserError(f"{path}: {len(data)} bytes is not a whole number of {BLOCK_SIZE}-byte blocks")
    fs = LittleFS(block_count=len(data) // BLOCK_SIZE, mount=False, **FS_OPTS)
    fs.context.buffer = bytearray(data)
    try:
        fs.mount()
    except Exception as e:
        raise UserError(f"{path} holds no LittleFS2 filesystem MicroPython could mount ({e})") from e
    return fs


def walk(fs, top="/"):
    """(path, size) of every file in a mounted image."""
    for root, _dirs, files in fs.walk(top):
        for name in files:
            p = (root.rstrip("/") + "/" + name) if root != "/" else "/" + name
            yield p, fs.stat(p).size

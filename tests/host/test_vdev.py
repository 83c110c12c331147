"""The virtual device, driven the way users drive a board: mpremote, ampy, a serial terminal."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import serial

from m2mkit import boards, image
from m2mkit.errors import UserError
from m2mkit.testing import micropython
from m2mkit.vdev.bridge import Bridge
from m2mkit.vdev.device import VirtualDevice

BIN = Path(sys.executable).parent


def tool(*args, timeout=30):
    p = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout)
    return p


def mpremote(port, *args, timeout=30):
    p = tool("mpremote", "connect", port, *args, timeout=timeout)
    assert p.returncode == 0, f"mpremote {' '.join(args)} failed ({p.returncode}): {p.stdout}{p.stderr}"
    return p.stdout.replace("\r\n", "\n")


class Console:
    """A serial terminal on the device's port."""

    def __init__(self, port):
        self.s = serial.Serial(port, 115200, timeout=0.05)
        self.seen = b""

    def write(self, data):
        self.s.write(data)

    def read_until(self, token, timeout=10):
        deadline = time.monotonic() + timeout
        while token not in self.seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"{token!r} not seen within {timeout} s; got {self.seen[-400:]!r}")
            self.seen += self.s.read(512)
        i = self.seen.index(token) + len(token)
        before, self.seen = self.seen[:i], self.seen[i:]
        return before

    def friendly(self):
        """Interrupt whatever runs and settle at an empty friendly prompt."""
        self.write(b"\r\x03")
        self.read_until(b">>> ")
        time.sleep(0.2)
        self.s.reset_input_buffer()
        self.seen = b""

    def close(self):
        self.s.close()


@pytest.fixture
def dev(tmp_path):
    d = VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", env={})
    d.start()
    d.wait_boot(1)
    yield d
    d.stop()


def test_mpremote_exec_ls_cp_cat_run(dev, tmp_path):
    assert mpremote(dev.port, "exec", "print(1+1)") == "2\n"
    ls = mpremote(dev.port, "fs", "ls")
    for name in ("boot.py", "main.py", "lib/", "board.json"):
        assert name in ls
    src = tmp_path / "hello.py"
    src.write_text("print('hello', 6 * 7)\n")
    mpremote(dev.port, "fs", "cp", str(src), ":hello.py")
    assert mpremote(dev.port, "fs", "cat", "hello.py") == "print('hello', 6 * 7)\n"
    assert mpremote(dev.port, "run", str(src)) == "hello 42\n"
    back = tmp_path / "back.py"
    mpremote(dev.port, "fs", "cp", ":hello.py", str(back))
    assert back.read_text() == src.read_text()
    mpremote(dev.port, "fs", "rm", "hello.py")
    assert "hello.py" not in mpremote(dev.port, "fs", "ls")


def test_mpremote_soft_reset_keeps_flash(dev):
    mpremote(dev.port, "exec", "open('keep.txt','w').write('kept')")
    mpremote(dev.port, "soft-reset")
    assert mpremote(dev.port, "exec", "print(open('keep.txt').read())") == "kept\n"


def test_ctrl_d_soft_resets_and_runs_main_again(dev):
    c = Console(dev.port)
    try:
        c.friendly()
        c.write(b"x = 5\r")
        c.read_until(b">>> ")
        c.write(b"\x04")
        c.read_until(b"MPY: soft reboot\r\n")
        banner = c.read_until(b">>> ")
        assert b"m2mkit " in banner and b"health:" in banner
        # the interpreter restarted: REPL state is gone, as after a soft reset on a board
        c.write(b"print('x' in globals())\r")
        assert b"False" in c.read_until(b">>> ")
    finally:
        c.close()


def test_raw_repl_soft_reset_comes_back_raw_without_main(dev):
    c = Console(dev.port)
    try:
        c.write(b"\r\x03\x03\r\x01")
        c.read_until(b"raw REPL; CTRL-B to exit\r\n>")
        c.write(b"\x04")
        c.read_until(b"soft reboot\r\n")
        after = c.read_until(b"raw REPL; CTRL-B to exit\r\n>")
        assert b"m2mkit " not in after  # main.py is skipped after a soft reset from raw REPL
        c.write(b"print(3*3)\x04")
        assert c.read_until(b"\x04>").startswith(b"OK9\r\n")
        c.write(b"\x02")
        c.read_until(b">>> ")
    finally:
        c.close()


def test_ctrl_c_stops_a_running_main(dev, tmp_path):
    loop = tmp_path / "main.py"
    loop.write_text("import time\nwhile True:\n    time.sleep_ms(10)\n")
    mpremote(dev.port, "fs", "cp", str(loop), ":main.py")
    c = Console(dev.port)
    try:
        c.write(b"\r\x02")
        c.read_until(b">>> ")
        c.write(b"\x04")  # soft reset in friendly mode: main.py runs and never returns
        c.read_until(b"MPY: soft reboot\r\n")
        time.sleep(0.3)
        c.write(b"\x03")
        out = c.read_until(b">>> ")
        assert b"KeyboardInterrupt" in out
    finally:
        c.close()


def test_ctrl_c_stops_a_busy_loop_that_makes_no_system_call(dev):
    # the bridge holds a Ctrl-C until the interpreter waits in a system call (bridge.interrupt);
    # a loop that never makes one still gets it, after the grace period
    c = Console(dev.port)
    try:
        c.friendly()
        c.write(b"n = 0\r")
        c.read_until(b">>> ")
        c.write(b"while True: n += 1\r\r")
        time.sleep(0.3)
        c.write(b"\x03")
        out = c.read_until(b">>> ")
        assert b"KeyboardInterrupt" in out
        c.write(b"print(n > 0)\r")
        assert b"True" in c.read_until(b">>> ")
    finally:
        c.close()


def test_reset_deepsleep_and_rtc_memory(dev):
    c = Console(dev.port)
    try:
        c.friendly()
        c.write(b"from m2m import hal; hal.RTC().memory(b'kept'); hal.deepsleep(200)\r")
        out = c.read_until(b">>> ")
        assert b"reset_cause=deep-sleep" in out
        c.write(b"print(hal.RTC().memory() if 'hal' in globals() else __import__('m2m.hal').hal.RTC().memory())\r")
        assert b"b'kept'" in c.read_until(b">>> ")
        c.write(b"from m2m import hal; hal.reset()\r")
        out = c.read_until(b">>> ")
        assert b"reset_cause=hard" in out  # machine.reset() is esp_restart(): HARD_RESET on the port
    finally:
        c.close()


def test_watchdog_restarts_a_stuck_device(dev):
    c = Console(dev.port)
    try:
        c.friendly()
        c.write(b"from m2m import hal; w = hal.WDT(timeout=300)\r")
        c.read_until(b">>> ")
        out = c.read_until(b"health:", timeout=10)  # not fed: the bridge resets the board
        assert b"m2mkit " in out
        assert b"reset_cause=watchdog" in c.read_until(b">>> ")
    finally:
        c.close()


def test_rtc_memory_is_lost_at_power_on(tmp_path):
    flash = tmp_path / "f.img"
    with VirtualDevice(flash=flash, env={}) as d:
        d.wait_boot()
        mpremote(d.port, "exec", "from m2m import hal; hal.RTC().memory(b'x'); hal.NVS('t').set_i32('n', 3) or hal.NVS('t')")
        mpremote(d.port, "exec", "from m2m import hal; n = hal.NVS('t'); n.set_i32('n', 3); n.commit()")
        assert mpremote(d.port, "exec", "from m2m import hal; print(hal.RTC().memory())") == "b'x'\n"
    with VirtualDevice(flash=flash, env={}) as d:
        d.wait_boot()
        out = mpremote(d.port, "exec", "from m2m import hal; print(hal.RTC().memory(), hal.NVS('t').get_i32('n'))")
        assert out == "b'' 3\n"  # RTC memory gone with the power, NVS kept with the flash


def test_flash_image_is_read_back_by_littlefs_python(tmp_path):
    flash = tmp_path / "flash.img"
    with VirtualDevice(flash=flash, env={}) as d:
        d.wait_boot()
        mpremote(d.port, "exec", "import os; os.mkdir('data')\nwith open('data/r.txt','w') as f: f.write('reading 1')")
    fs = image.open_image(flash)
    with fs.open("/data/r.txt", "r") as f:
        assert f.read() == "reading 1"
    files = dict(image.walk(fs))
    assert files["/main.py"] == (Path(__file__).parents[2] / "firmware/main.py").stat().st_size
    assert flash.stat().st_size == 512 * 4096


def test_blank_image_is_formatted_like_a_new_board(tmp_path):
    flash = tmp_path / "blank.img"
    flash.write_bytes(b"\xff" * 512 * 4096)
    with VirtualDevice(flash=flash, env={}) as d:
        d.wait_boot()
        assert mpremote(d.port, "exec", "import os; print(sorted(os.listdir('/')))") == "['boot.py']\n"
    # the host side is told too, once (the next boots find the filesystem)
    assert [kw for k, kw in d.events if k == "formatted"] == [{"flash": str(flash)}]


def test_ampy_lists_and_copies(dev, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("ampy was here\n")
    p = tool("ampy", "--port", dev.port, "put", str(src), "a.txt")
    assert p.returncode == 0, p.stderr
    p = tool("ampy", "--port", dev.port, "ls")
    assert p.returncode == 0 and "/a.txt" in p.stdout, p.stdout + p.stderr
    back = tmp_path / "back.txt"
    p = tool("ampy", "--port", dev.port, "get", "a.txt", str(back))
    assert p.returncode == 0, p.stderr
    assert back.read_bytes() == src.read_bytes()


def test_cli_sim_device_prints_port_first(tmp_path):
    proc = subprocess.Popen([str(BIN / "m2mkit"), "sim", "device", "--no-modem", "--flash", str(tmp_path / "c.img")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("port: /dev/pts/"), first
        port = first.split()[1]
        assert mpremote(port, "exec", "print('cli', 1+1)") == "cli 2\n"
    finally:
        proc.terminate()
        proc.wait(10)


def test_cli_unknown_board_lists_known_ones():
    p = tool("m2mkit", "sim", "device", "--board", "no-such-board")
    assert p.returncode == 2
    assert "unknown board 'no-such-board'" in p.stderr
    for name in boards.names():
        assert name in p.stderr


def test_cli_wrong_size_image_is_refused_with_expected_size(tmp_path):
    bad = tmp_path / "bad.img"
    bad.write_bytes(b"\xff" * 4096 * 100)
    p = tool("m2mkit", "sim", "device", "--board", "lilygo-t-sim7080g-s3", "--flash", str(bad))
    assert p.returncode == 2
    assert "exactly 14680064 bytes (3584 blocks of 4096)" in p.stderr, p.stderr
    assert bad.read_bytes() == b"\xff" * 4096 * 100  # left as it was


def test_image_build_and_ls(tmp_path):
    out = tmp_path / "i.img"
    p = tool("m2mkit", "image", "build", "--board", "lilygo-t-sim7000g", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size == 512 * 4096
    p = tool("m2mkit", "image", "ls", str(out))
    assert "/lib/m2m/hal/esp32.py" in p.stdout and "/board.json" in p.stdout
    p = tool("m2mkit", "image", "cat", str(out), "/board.json")
    assert '"name": "lilygo-t-sim7000g"' in p.stdout


def test_readme_deploy_onto_a_blank_board(tmp_path):
    """The README's quick-start deploy line, run against a freshly formatted virtual board."""
    flash = tmp_path / "blank.img"
    flash.write_bytes(b"\xff" * 512 * 4096)
    fw = Path(__file__).parents[2] / "firmware"
    with VirtualDevice(flash=flash, env={}) as d:
        d.wait_boot()
        p = subprocess.run([str(BIN / "mpremote"), "connect", d.port, "fs", "cp", "-r", "lib", ":", "+",
                            "fs", "cp", "boot.py", "main.py", ":", "+",
                            "fs", "cp", "../boards/lilygo-t-sim7080g-s3.json", ":board.json"],
                           cwd=fw, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        c = Console(d.port)
        try:
            c.friendly()
            c.write(b"\x04")
            out = c.read_until(b">>> ")
        finally:
            c.close()
    assert b"m2mkit 0.1.0 on LilyGO T-SIM7080G-S3" in out
    assert b"modem=sim7080g" in out


def test_ctrl_c_during_power_on_does_not_break_the_boot(tmp_path):
    """A tool that connects while the board powers up sends Ctrl-C at once: the flash must still be
    mounted and the interpreter alive (a Ctrl-C before Python code runs is only a byte)."""
    d = VirtualDevice(flash=tmp_path / "f.img", env={})
    d.start(power=False)
    try:
        c = Console(d.port)
        c.write(b"\x03" * 20)
        d.power_on()
        for _ in range(10):
            c.write(b"\x03")
            time.sleep(0.005)
        c.friendly()
        c.write(b"import os; print(sorted(os.listdir('/')))\r")
        out = c.read_until(b">>> ")
        assert b"'board.json', 'boot.py', 'lib', 'main.py'" in out
        assert [k for k, _ in d.events].count("reset") == 0  # the interpreter never died
        assert "fatal" not in [k for k, _ in d.events]
        c.close()
    finally:
        d.stop()


def test_large_output_reaches_a_reading_client_whole(dev, tmp_path):
    # one burst well above the bridge's OUT_HIGH (64 KB), small enough for one allocation on the
    # board-sized heap
    out = mpremote(dev.port, "exec", "print('x' * 120000)", timeout=60)
    assert out == "x" * 120000 + "\n"
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(100_000))
    mpremote(dev.port, "fs", "cp", str(blob), ":blob.bin", timeout=60)
    back = tmp_path / "back.bin"
    mpremote(dev.port, "fs", "cp", ":blob.bin", str(back), timeout=60)
    assert back.read_bytes() == blob.read_bytes()


def test_output_nobody_reads_does_not_stall_the_device(dev, tmp_path):
    # like a board on a USB-serial chip with no terminal open: its prints are lost, it keeps running
    main = tmp_path / "main.py"
    main.write_text("for i in range(3000):\n    print('line', i, 'x' * 100)\n"
                    "with open('done.txt', 'w') as f:\n    f.write('done')\n")
    mpremote(dev.port, "fs", "cp", str(main), ":main.py")
    c = Console(dev.port)
    c.friendly()
    c.write(b"\x04")  # soft reset: main.py prints ~330 KB ...
    c.close()         # ... to nobody
    time.sleep(4)
    assert mpremote(dev.port, "exec", "print(open('done.txt').read())") == "done\n"


# ---- the device gets its image and nothing else of the host ----

def _tree(root):
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}


def _image_files(flash):
    fs = image.open_image(flash)
    return sorted(n for n in fs.listdir("/"))


@pytest.mark.parametrize("kind", ["relative", "dot", "dotdot", "spaces", "symlink"])
def test_any_flash_path_gives_the_device_its_image_only(tmp_path, monkeypatch, kind):
    work = tmp_path / "work dir" / "cwd"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    target = {"relative": "my.img", "dot": "./my.img", "dotdot": "../my.img", "spaces": "a b/my img.img",
              "symlink": "link.img"}[kind]
    if kind == "spaces":
        (work / "a b").mkdir()
    if kind == "symlink":
        real = tmp_path / "real.img"
        real.write_bytes(image.build(boards.load("esp32-devkitc-bg95")))
        os.symlink(real, work / "link.img")
    before = _tree(tmp_path)
    with VirtualDevice(flash=target, env={}) as d:
        d.wait_boot()
        flash = Path(os.path.abspath(target))
        listed = mpremote(d.port, "exec", "import os; print(sorted(os.listdir('/')))")
        assert listed == f"{_image_files(flash)}\n"
        mpremote(d.port, "exec", "open('w.txt','w').write('w'); import os; os.mkdir('dd')\n"
                                 "open('dd/x','w').write('x')")
    created = _tree(tmp_path) - before
    state = os.path.relpath(str(flash) + ".state", tmp_path)
    image_rel = os.path.relpath(flash, tmp_path)
    assert {c for c in created if c != image_rel and not c.startswith(state)} == set()
    assert "/w.txt" in dict(image.walk(image.open_image(flash)))


@pytest.mark.parametrize("kind", ["directory", "missing-dir", "read-only", "state-is-a-file"])
def test_unusable_flash_paths_are_refused_before_boot(tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    good = image.build(boards.load("esp32-devkitc-bg95"))
    if kind == "directory":
        (tmp_path / "d.img").mkdir()
        target = "d.img"
    elif kind == "missing-dir":
        target = "no/such/dir/x.img"
    elif kind == "read-only":
        (tmp_path / "ro.img").write_bytes(good)
        os.chmod(tmp_path / "ro.img", 0o444)
        target = "ro.img"
    else:
        (tmp_path / "s.img").write_bytes(good)
        (tmp_path / "s.img.state").write_text("")
        target = "s.img"
    before = _tree(tmp_path)
    if kind == "read-only" and os.access(tmp_path / "ro.img", os.W_OK):
        # root may write any file: then the device must boot on that image and nothing else
        with VirtualDevice(flash=target, env={}) as d:
            d.wait_boot()
            assert mpremote(d.port, "exec", "import os; print(sorted(os.listdir('/')))") == \
                f"{_image_files(tmp_path / 'ro.img')}\n"
        return
    with pytest.raises(UserError, match="--flash"):
        VirtualDevice(flash=target, env={})
    assert _tree(tmp_path) == before


def _bridge_until_fatal(tmp_path, flash, heapsize="256K"):
    events = []
    b = Bridge(micropython(), flash, 512, tmp_path / "st.state", env={}, heapsize=heapsize,
               on_event=lambda kind, **kw: events.append((kind, kw)))
    port = b.start()
    c = Console(port)
    t = threading.Thread(target=b.serve, daemon=True)
    t.start()
    t.join(15)
    alive = t.is_alive()
    b.stop()
    t.join(5)
    out = c.s.read(4096)
    c.close()
    b.close()
    assert not alive, f"the bridge kept serving: {events}"
    return b, events, out


def test_an_image_vboot_cannot_open_stops_the_device_never_the_host_root(tmp_path):
    # the host-side checks are bypassed: vboot.py itself must refuse to go on with the host's /
    for flash in (tmp_path / "missing.img", tmp_path):
        b, events, out = _bridge_until_fatal(tmp_path, flash)
        kinds = [k for k, _ in events]
        assert kinds == ["fatal"], events  # no boot (no REPL), no restart
        assert "cannot mount the flash image" in b.fatal, b.fatal
        assert b">>> " not in out and b"cannot mount the flash image" in out


def test_an_interpreter_that_cannot_start_is_fatal_once(tmp_path):
    flash = tmp_path / "f.img"
    flash.write_bytes(image.build(boards.load("esp32-devkitc-bg95")))
    b, events, _ = _bridge_until_fatal(tmp_path, flash, heapsize="banana")
    assert [k for k, _ in events] == ["fatal"], events  # reported once, never a restart loop
    assert "Invalid command line arguments" in b.fatal


def test_wait_boot_reports_a_fatal_device(tmp_path):
    flash = tmp_path / "f.img"
    flash.write_bytes(image.build(boards.load("esp32-devkitc-bg95")))
    d = VirtualDevice(flash=flash, env={})
    d.bridge.heapsize = "banana"
    d.start()
    try:
        with pytest.raises(UserError, match="the virtual device stopped: the interpreter ended"):
            d.wait_boot(timeout=15)
    finally:
        d.stop()


def test_binary_stdout_passes_unchanged_text_is_cooked(dev):
    # on a board print() / sys.stdout turn "\n" into "\r\n" and sys.stdout.buffer is raw
    # (micropython shared/runtime/sys_stdio_mphal.c: stdio_write cooks, stdio_buffer_write does not)
    c = Console(dev.port)
    try:
        c.friendly()
        blob = bytes(range(256)) * 40  # every byte value, \x10 and \n included, across reads
        c.write(b"import sys; _ = sys.stdout.buffer.write(b'a\\nb'); _ = sys.stdout.write('c\\nd')\r")
        out = c.read_until(b">>> ")
        assert out.endswith(b"\r\na\nbc\r\nd>>> "), out
        c.write(b"_ = sys.stdout.buffer.write(bytes(range(256)) * 40); print('x\\ny')\r")
        out = c.read_until(b"x\r\ny\r\n>>> ")
        assert blob in out, out[:200]
    finally:
        c.close()


def test_raw_frames_cut_anywhere_are_reassembled(tmp_path):
    from m2mkit.vdev.bridge import RAW_FRAME

    stream = b"t\n" + RAW_FRAME + b"3:\n\x10\n" + b"u\n" + RAW_FRAME[:3] + b"v\n"
    for cut in range(1, len(stream)):
        b = Bridge(micropython(), tmp_path / "f.img", 512, tmp_path / "s")
        out = bytearray()
        b._split_raw(stream[:cut], out)
        b._split_raw(stream[cut:], out)
        b._split_raw(b"", out)
        assert bytes(out) == b"t\r\n\n\x10\nu\r\n" + RAW_FRAME[:3] + b"v\r\n", cut


def test_the_state_files_never_land_in_the_working_directory(tmp_path):
    # vboot.py and the port stand-in write their state files (interruptible, rtcmem, nvs.json) through
    # a VfsPosix rooted at the state folder, which joins its root to absolute paths only
    # (extmod/vfs_posix.c vfs_posix_get_path_str): run vboot from another directory
    from littlefs import LittleFS

    from m2mkit.vdev.bridge import VBOOT, _free

    fs = LittleFS(block_count=32, block_size=4096, read_size=32, prog_size=32, lookahead_size=32)
    with fs.open("/boot.py", "w") as f:
        f.write("import machine, esp32\nmachine.RTC().memory(b'x')\nn = esp32.NVS('t')\nn.set_i32('n', 1)\n"
                "n.commit()\nimport gc\nprint('m2m-free', gc.mem_free())\n")
    (tmp_path / "flash.img").write_bytes(bytes(fs.context.buffer))
    state, cwd = tmp_path / "state", tmp_path / "elsewhere"
    state.mkdir()
    cwd.mkdir()
    env = {"M2M_FLASH": str(tmp_path / "flash.img"), "M2M_FLASH_BLOCKS": "32", "M2M_STATE_DIR": str(state),
           "M2M_REPL_MODE": "raw", "M2M_FROZEN": "", "M2M_MODEM": "", "M2M_BUS": "", "M2M_GPIO": ""}
    _free(micropython(), ["-X", "heapsize=256K", str(VBOOT)], env, cwd=str(cwd))
    assert os.listdir(cwd) == []
    assert {"interruptible", "rtcmem", "nvs.json"} <= set(os.listdir(state)), os.listdir(state)


def test_input_after_machine_reset_reaches_the_next_interpreter(dev):
    """Bytes that come once machine.reset() has been called are not for the interpreter that asked
    for it: on a board it no longer runs (ports/esp32/modmachine.c mp_machine_reset is MP_NORETURN,
    esp_restart()). The virtual device keeps them for the next interpreter's REPL, as a board's UART
    keeps what arrives once MicroPython has set it up (ports/esp32/main.c uart_stdout_init, before
    boot.py; ports/esp32/mphalport.c stdin_ringbuf); what a board does with bytes during its ROM
    boot, before that, is not modelled (README)."""
    reset = dev.state_dir / "reset"
    for round in range(3):
        c = Console(dev.port)
        try:
            c.friendly()
            c.write(b"import machine; machine.reset()\r")
            deadline = time.monotonic() + 20
            while not reset.exists():
                assert time.monotonic() < deadline
                time.sleep(0.0005)
            c.write(b"\r\x01")  # raw REPL, asked of the board that restarts
            c.read_until(b"raw REPL; CTRL-B to exit\r\n>", 20)
            c.write(b"\x02")
        finally:
            c.close()

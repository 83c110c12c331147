"""Every CLI option with a bad value: a one-line error naming the option, no traceback, no loop, no
files left behind. And the CLI's lifecycle: warnings, SIGTERM cleanup, the demo's console."""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
M2MKIT = str(BIN / "m2mkit")


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _tree(root):
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}


# (arguments, the option the message must name); {tmp} is a fresh folder, {busy} a port in use
BAD = [
    (["sim", "device", "--heap", "banana"], "--heap"),
    (["sim", "device", "--heap", "1K"], "--heap"),
    (["sim", "device", "--time-scale", "0"], "--time-scale"),
    (["sim", "device", "--time-scale", "-1"], "--time-scale"),
    (["sim", "device", "--time-scale", "nan"], "--time-scale"),
    (["sim", "device", "--time-scale", "fast"], "--time-scale"),
    (["sim", "device", "--flash", "/nonexistent/dir/x.img"], "--flash"),
    (["sim", "device", "--flash", "{tmp}"], "--flash"),
    (["sim", "device", "--flash", "{tmp}/no/dir/x.img"], "--flash"),
    (["sim", "device", "--modem", "foo"], "--modem"),
    (["sim", "device", "--modem", "127.0.0.1:0"], "--modem"),
    (["sim", "device", "--bus", "nonsense"], "--bus"),
    (["sim", "device", "--gpio", "nonsense", "--modem", "127.0.0.1:7000"], "--gpio"),
    (["sim", "device", "--gpio", "127.0.0.1:7001"], "--gpio"),
    (["sim", "device", "--no-modem", "--modem", "127.0.0.1:7000"], "--no-modem"),
    (["sim", "device", "--board", "no-such-board"], "--board"),
    (["sim", "device", "--bogus"], "--bogus"),
    (["image", "build", "--out", "/nonexistent/dir/x.img"], "--out"),
    (["image", "build", "--out", "{tmp}"], "--out"),
    (["image", "build"], "--out"),
    (["image", "build", "--board", "nope", "--out", "{tmp}/x.img"], "--board"),
    (["image", "ls", "{tmp}/missing.img"], "missing.img"),
    (["image", "ls", "{tmp}/junk.img"], "junk.img"),
    (["image", "cat", "{tmp}/junk.img", "/x"], "junk.img"),
    (["bench", "--only", "no_such_figure"], "--only"),
    (["demo", "--seconds", "-1"], "--seconds"),
    (["demo", "--seconds", "soon"], "--seconds"),
    (["demo", "--board", "nope"], "--board"),
    (["sim", "modem"], "--model"),
    (["sim", "modem", "--model", "zz"], "--model"),
    (["sim", "modem", "--model", "bg95", "--listen", "foo"], "--listen"),
    (["sim", "modem", "--model", "bg95", "--listen", "127.0.0.1:99999"], "--listen"),
    (["sim", "modem", "--model", "bg95", "--listen", "8.8.8.8:7000"], "--listen"),
    (["sim", "modem", "--model", "bg95", "--listen", "127.0.0.1:{busy}"], "--listen"),
    (["sim", "modem", "--model", "bg95", "--control", "127.0.0.1:{busy}"], "--control"),
    (["sim", "modem", "--model", "bg95", "--time-scale", "0"], "--time-scale"),
    (["sim", "modem", "--model", "bg95", "--time-scale", "inf"], "--time-scale"),
    (["sim", "modem", "--model", "bg95", "--pin", "12"], "--pin"),
    (["sim", "modem", "--model", "bg95", "--puk", "1"], "--puk"),
    (["sim", "modem", "--model", "bg95", "--pwrkey-pin", "-1"], "--pwrkey-pin"),
    (["sim", "modem", "--model", "bg95", "--record", "{tmp}/no/dir/s.atlog"], "--record"),
    (["nosuchcommand"], "nosuchcommand"),
]


@pytest.fixture
def busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


@pytest.mark.parametrize("args,option", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_value_gets_one_line_naming_the_option(tmp_path, busy_port, args, option):
    (tmp_path / "junk.img").write_bytes(b"not a filesystem")
    tmp = tmp_path / "t"
    tmp.mkdir()
    before = _tree(tmp_path)
    env = dict(os.environ, TMPDIR=str(tmp))  # a temporary image left behind would show here
    args = [a.format(tmp=tmp, busy=busy_port) for a in args]
    p = subprocess.run([M2MKIT, *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp)
    lines = p.stderr.strip().splitlines()
    assert p.returncode in (1, 2), (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: ") and option in lines[0], lines[0]
    assert p.stdout == ""
    assert _tree(tmp_path) == before  # nothing created: no image, no state folder, no temp files


def test_help_lists_each_command_once():
    p = subprocess.run([M2MKIT, "--help"], capture_output=True, text=True, timeout=30)
    commands = p.stdout.split("Commands:", 1)[1].split()
    names = [w for w in commands if w in ("image", "image-", "sim", "bench", "demo", "boards")]
    assert sorted(names) == ["bench", "boards", "demo", "image", "sim"], p.stdout


def _start(args, env=None):
    return subprocess.Popen([M2MKIT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))


def test_modem_address_with_nothing_listening_is_warned_about(tmp_path):
    port = _free_port()
    p = _start(["sim", "device", "--flash", str(tmp_path / "f.img"), "--modem", f"127.0.0.1:{port}"])
    try:
        warning = p.stderr.readline()
        assert warning.startswith("warning: nothing listens on --modem 127.0.0.1:%d" % port), warning
        assert p.stdout.readline().startswith("port: /dev/pts/")
    finally:
        p.terminate()
        p.wait(15)


def test_sigterm_removes_the_temporary_image(tmp_path):
    p = _start(["sim", "device", "--no-modem"], env={"TMPDIR": str(tmp_path)})
    try:
        assert p.stdout.readline().startswith("port: ")
        board = p.stdout.readline()
        assert str(tmp_path) in board, board  # the temporary image is where TMPDIR says
        assert p.stdout.readline().startswith("boot: ")
        assert list(tmp_path.iterdir())
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(15)
    assert list(tmp_path.iterdir()) == []


def test_control_channel_answers_a_bad_request_with_the_operations():
    p = _start(["sim", "modem", "--model", "bg95"])
    try:
        p.stdout.readline()
        control = p.stdout.readline().split()[1]
        host, port = control.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as s:
            f = s.makefile("rwb")
            for bad in (b"status\n", b"[1, 2]\n", b'{"state": "home"}\n'):
                f.write(bad)
                f.flush()
                reply = json.loads(f.readline())
                assert reply["ok"] is False
                assert "operations: status, set_registration" in reply["error"], reply
            f.write(b'{"op": "set_registration", "state": "home"}\n')
            f.flush()
            assert json.loads(f.readline())["ok"] is True
    finally:
        p.terminate()
        p.wait(15)


def test_busy_port_error_has_no_asyncio_noise(busy_port):
    p = subprocess.run([M2MKIT, "sim", "modem", "--model", "bg95", "--listen", f"127.0.0.1:{busy_port}"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        f"error: --listen 127.0.0.1:{busy_port}: the address is in use; give another port (0 picks a free one)"]


# the console demo (m2mkit.demo), run as its own program: `m2mkit demo` builds on it
DEMO = [sys.executable, "-c", "import sys; from m2mkit.demo import run; run('esp32-devkitc-bg95', float(sys.argv[1]))"]


def test_demo_terminal_is_the_device_console(tmp_path):
    """The README says the demo shows the device's console: what is typed reaches its REPL."""
    master, slave = os.openpty()
    p = subprocess.Popen([*DEMO, "120"], stdin=slave, stdout=slave, stderr=slave,
                         env=dict(os.environ, TMPDIR=str(tmp_path), COLUMNS="200"))
    os.close(slave)
    seen = b""

    def until(token, timeout=60):
        nonlocal seen
        deadline = time.monotonic() + timeout
        while token not in seen:
            assert time.monotonic() < deadline, f"{token!r} not seen: {seen[-600:]!r}"
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        assert token in seen, seen[-600:]

    try:
        until(b"Ctrl-] leaves")
        until(b">>> ")
        os.write(master, b"print(6 * 7 + 1000)\r")
        until(b"1042")
        os.write(master, b"\x1d")
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.terminate()
            p.wait(15)
        os.close(master)
    assert list(tmp_path.iterdir()) == []  # the temporary image is gone


def test_sigterm_stops_the_demo_and_removes_its_image(tmp_path):
    p = subprocess.Popen([*DEMO, "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env=dict(os.environ, TMPDIR=str(tmp_path), COLUMNS="200"))
    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"console is" not in seen:
            assert time.monotonic() < deadline and p.poll() is None, seen[-600:]
            if select.select([p.stdout], [], [], 0.2)[0]:
                seen += os.read(p.stdout.fileno(), 4096)
        assert list(tmp_path.iterdir())
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(20)
    assert list(tmp_path.iterdir()) == []


def test_readme_relative_flash_and_what_a_connecting_tool_does(tmp_path):
    """The README's own `--flash my.img`, relative to the working folder: the device lists its image
    (never the host's /), and a tool connecting is reported as a soft reset, not as a reboot."""
    p = subprocess.Popen([M2MKIT, "sim", "device", "--no-modem", "--flash", "my.img"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = p.stdout.readline().split()[1]
        assert f"flash image {tmp_path / 'my.img'} " in p.stdout.readline()
        assert p.stdout.readline().startswith("boot: ")
        ls = subprocess.run([str(BIN / "mpremote"), "connect", port, "exec",
                             "import os; print(sorted(os.listdir('/')))"],
                            capture_output=True, text=True, timeout=30)
        assert ls.stdout.strip() == "['board.json', 'boot.py', 'lib', 'main.py']", ls.stdout + ls.stderr
        line = p.stdout.readline()
        assert line.startswith("soft reset: Ctrl-D at the raw REPL"), line
        assert "the board was not reset" in line
    finally:
        p.terminate()
        p.wait(15)
    assert sorted(os.listdir(tmp_path)) == ["my.img", "my.img.state"]


def test_sim_device_says_download_mode_deep_sleep_and_restarts_in_words(tmp_path):
    """`sim device --download`, then `m2mkit flash`, then a deep sleep: each printed as a sentence
    (never a bare `bootloader: ` or `deepsleep: ms=...`)."""
    from m2mkit import boards, flash, fleetimage

    p = subprocess.Popen([M2MKIT, "sim", "device", "--no-modem", "--download", "--flash", "my.img"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []

    def until(prefix):
        while True:
            line = p.stdout.readline()
            assert line, f"the device ended; it printed {seen}"
            seen.append(line)
            if line.startswith(prefix):
                return line

    try:
        port = until("port: ").split()[1]
        assert until("reset: ") == "reset: the chip restarts with GPIO0 held low, into download mode\n"
        assert until("download mode: ").startswith("download mode: the ROM loader waits for esptool on the port")
        flash.flash(port, boards.load("esp32-devkitc-bg95"), fleetimage.stand_in_firmware("esp32"))
        assert until("reset: ").startswith("reset: the chip restarts (EN, or the ROM loader's \"run user code\")")
        until("boot: ")
        ok = subprocess.run([str(BIN / "mpremote"), "connect", port, "exec", "print('up')"],
                            capture_output=True, text=True, timeout=30)
        assert ok.stdout.strip() == "up", ok.stdout + ok.stderr
        import serial

        with serial.Serial(port, timeout=1) as s:  # at the friendly REPL, as a user types it
            s.write(b"import machine; machine.deepsleep(50)\r")
            assert until("deep sleep: ") == "deep sleep: 50 ms of device time, then a reset (cause deep-sleep)\n"
            assert until("boot: ").endswith("(deep-sleep)\n")
    finally:
        p.terminate()
        p.wait(15)
    assert not [ln for ln in seen if ln.startswith(("bootloader:", "deepsleep:"))], seen


def test_image_fleet_keeps_credentials_in_the_inventory(tmp_path):
    """`m2mkit image fleet` records each device in the inventory (as README's usage section says) and a
    rebuilt image gets the same credentials: it was a new password per run, so a fleet rebuilt for a new
    MicroPython no longer matched the broker's accounts."""
    from m2mkit import fleetimage

    (tmp_path / "fw.bin").write_bytes(fleetimage.stand_in_firmware("esp32"))
    (tmp_path / "devices.csv").write_text("device_id,mqtt.broker\nm-1,mqtt://10.0.0.1:1883\nm-2,\n")
    db = tmp_path / "inv.sqlite"
    for out in ("a", "b"):
        p = subprocess.run([M2MKIT, "image", "fleet", "--board", "esp32-devkitc-bg95", "--firmware", "fw.bin",
                            "--devices", "devices.csv", "--out", out, "--db", str(db)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    assert (tmp_path / "a" / "credentials.csv").read_text() == (tmp_path / "b" / "credentials.csv").read_text()
    assert (tmp_path / "a" / "m-1.bin").read_bytes() == (tmp_path / "b" / "m-1.bin").read_bytes()
    listed = subprocess.run([M2MKIT, "inventory", "list", "--db", str(db)], capture_output=True, text=True,
                            timeout=60).stdout
    assert [ln.split()[0] for ln in listed.splitlines()] == ["m-1", "m-2"]
    password = (tmp_path / "a" / "credentials.csv").read_text().splitlines()[1].split(",")[2]
    assert password and password not in listed

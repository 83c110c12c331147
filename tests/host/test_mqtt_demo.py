"""`m2mkit demo`: the virtual device reports over MQTT to a Mosquitto the demo starts itself, what
arrives is shown as a subscriber sees it, and Ctrl-C stops everything and leaves no files."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# whole demos on a scaled clock: beside three other workers they missed their broker (final CI runs)
pytestmark = pytest.mark.alone

BIN = Path(sys.executable).parent


def _demo(tmp_path, *args):
    env = dict(os.environ, TMPDIR=str(tmp_path))  # whatever the demo makes goes here
    p = subprocess.Popen([str(BIN / "m2mkit"), "demo", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "".join(lines).count("/telemetry seq ") >= 2:  # two telemetry messages
                break
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C at the terminal reaches the whole group
        rest, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    return p.returncode, "".join(lines) + rest


@pytest.mark.parametrize("args", [(), ("--modem", "sim7080g"), ("--modem", "bg96")])
def test_demo_reports_to_its_own_broker_and_cleans_up(tmp_path, args):
    rc, out = _demo(tmp_path, *args)
    assert "broker> subscribed to m2mkit/# on mqtt://127.0.0.1:" in out, out
    assert "/status online" in out, out
    tele = [ln for ln in out.splitlines() if "/telemetry seq " in ln]  # main.py's supervisor: sensors
    assert len(tele) >= 2 and any("temperature=" in ln and "Cel" in ln for ln in tele), out
    assert "Traceback" not in out, out
    assert list(tmp_path.iterdir()) == []  # no image, state folder or broker folder left
    assert rc in (0, 130, -signal.SIGINT), (rc, out)


def test_demo_refuses_a_bad_broker_url(tmp_path):
    p = subprocess.run([str(BIN / "m2mkit"), "demo", "--broker", "http://x"], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert p.returncode != 0
    assert "give mqtt://HOST:PORT" in p.stderr + p.stdout
    assert "Traceback" not in p.stderr


def test_demo_refuses_a_board_without_that_modem(tmp_path):
    p = subprocess.run([str(BIN / "m2mkit"), "demo", "--board", "esp32-devkitc-bg95", "--modem", "gm02s"],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert p.returncode != 0 and "dptechnics-walter" in p.stderr + p.stdout


def test_demo_fits_a_bg96_where_a_bg95_sits():
    from m2mkit.demo_report import pick_board

    b = pick_board(None, "bg96")
    assert b["name"] == "esp32-devkitc-bg95" and b["modem"]["model"] == "bg96"
    assert pick_board(None, "gm02s") == "dptechnics-walter"


def test_ctrl_c_in_the_interactive_console_ends_the_demo(tmp_path):
    # a terminal on both ends: the demo's console is in raw mode, so Ctrl-C arrives as a byte
    import pty
    import select

    master, slave = pty.openpty()
    env = dict(os.environ, TMPDIR=str(tmp_path))
    p = subprocess.Popen([str(BIN / "m2mkit"), "demo"], stdin=slave, stdout=slave, stderr=slave, env=env,
                         start_new_session=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 120
        while out.count(b"/telemetry seq ") < 2 and time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
        assert out.count(b"/telemetry seq ") >= 2, out.decode(errors="replace")
        assert b"Ctrl-C ends the" in out  # (rich wraps at the terminal width)
        os.write(master, b"\x03")
        p.wait(30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        os.close(master)
    assert list(tmp_path.iterdir()) == []

"""Ctrl-C while the firmware writes the flash: vboot.py takes the interpreter's SIGINT handler away
for each flash access (a KeyboardInterrupt inside LittleFS's callbacks breaks it), and a board raises
a Ctrl-C that comes during a flash write once the write is done. So the bridge waits for the handler
to come back instead of passing the Ctrl-C on as a byte that nobody reads (the run would go on)."""

import subprocess
import time

import serial
from littlefs import LittleFS

from m2mkit.testing import _prelude, micropython, mpy_env
from m2mkit.vdev.bridge import AS_BYTE, interrupt
from m2mkit.vdev.device import VirtualDevice
from m2mkit.vdev.port import _m2m_table as T

MAIN = """
import time
f = open("/x", "wb")
buf = b"x" * 512
print("writing")
while True:  # much of its time in flash accesses, the rest waiting (as the supervisor's loop)
    f.seek(0)
    f.write(buf)
    f.flush()
    time.sleep_ms(1)
"""


def _wait(s, seen, token, timeout):
    deadline = time.monotonic() + timeout
    while token not in seen:
        assert time.monotonic() < deadline, (token, seen[-600:])
        seen += s.read(4096)
    return seen


def test_ctrl_c_stops_a_run_that_writes_the_flash(tmp_path):
    fs = LittleFS(block_count=512, block_size=4096, read_size=32, prog_size=32, lookahead_size=32)
    with fs.open("/main.py", "w") as f:
        f.write(MAIN)
    flash = tmp_path / "flash.img"
    flash.write_bytes(bytes(fs.context.buffer))
    with VirtualDevice("esp32-devkitc-bg95", flash=flash) as dev:
        s = serial.Serial(dev.port, 115200, timeout=0.05)
        for round in range(12):
            seen = _wait(s, bytearray(), b"writing", 20)
            time.sleep(0.2)
            s.write(b"\x03")
            seen = _wait(s, seen, b">>> ", 5)  # stopped: the REPL
            assert b"KeyboardInterrupt" in seen, (round, seen[-600:])
            s.write(b"\x04")  # soft reset: main.py runs again
        s.close()


# Most of this loop's time is spent in py/qstr.c qstr_find_strn with the interpreter's qstr mutex held
# (hasattr() interns each name: qstr_from_strn), the rest in the bytecode loop; it makes no system call.
# That is what a board's slow start is made of (the compiler and imports intern names), stretched.
NAMES_MAIN = """
names = ["name_%d" % i for i in range(1200)]
o = object()
print("interning")
while True:
    for s in names:
        hasattr(o, s)
"""


def test_ctrl_c_is_raised_at_the_bytecode_loop_never_inside_c_code(tmp_path):
    """A Ctrl-C raised from inside C code that holds a lock leaves it held: the unix port raises
    KeyboardInterrupt from its SIGINT handler wherever the C code is, so one raised inside
    qstr_from_strn left the qstr mutex locked and the next name interned (the REPL compiling a line,
    the soft reset's `import gc`) waited forever: the CI hang of test_mpremote_rtc_get_set_and_what_
    survives (a Ctrl-C that found no system call for 0.5 s was sent anyway). A board raises it at
    the VM's next check, and so must the bridge: after each Ctrl-C the REPL compiles new names and a
    soft reset comes back."""
    fs = LittleFS(block_count=512, block_size=4096, read_size=32, prog_size=32, lookahead_size=32)
    with fs.open("/main.py", "w") as f:
        f.write(NAMES_MAIN)
    flash = tmp_path / "flash.img"
    flash.write_bytes(bytes(fs.context.buffer))
    with VirtualDevice("esp32-devkitc-bg95", flash=flash) as dev:
        s = serial.Serial(dev.port, 115200, timeout=0.05)
        for round in range(4):
            seen = _wait(s, bytearray(), b"interning", 30)
            time.sleep(0.7)  # longer than the 0.5 s a Ctrl-C used to wait for a system call
            s.write(b"\r\x03")
            seen = _wait(s, seen, b">>> ", 30)
            assert b"KeyboardInterrupt" in seen, (round, seen[-600:])
            s.write(b"new_name_%d = 6 * 7; print('answer', new_name_%d)\r" % (round, round))
            seen = _wait(s, seen, b"answer 42", 10)
            s.write(b"\x04")  # soft reset (vboot.py's atexit interns `gc`): main.py runs again
            _wait(s, seen, b"MPY: soft reboot", 10)
        s.close()


def test_machine_reset_cannot_be_interrupted(tmp_path):
    """machine.reset() does not return on a board (ports/esp32/modmachine.c: MP_NORETURN,
    esp_restart()). The stand-in leaves the request for the bridge and waits to be ended; a Ctrl-C
    in that wait must not stop it (a KeyboardInterrupt there left an interpreter, about to be killed,
    reading the input the next one should get). So it takes its SIGINT handler away and the bridge
    sends none: the Ctrl-C stays a byte for the next interpreter."""
    p = subprocess.Popen([micropython(), "-c", _prelude() + "import machine\nprint('resetting')\nmachine.reset()\n"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=mpy_env({"M2M_STATE_DIR": str(tmp_path)}))
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / T.RESET).exists():
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()[0]
            time.sleep(0.01)
        time.sleep(0.05)  # in its wait
        assert interrupt(p.pid, interruptible=False) == AS_BYTE
        time.sleep(0.3)
        assert p.poll() is None  # still waiting to be ended, as a chip that restarts
    finally:
        p.kill()
        out = p.communicate()[0]
    assert "KeyboardInterrupt" not in out, out

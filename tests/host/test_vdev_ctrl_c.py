"""Ctrl-C while the firmware writes the flash: vboot.py takes the interpreter's SIGINT handler away
for each flash access (a KeyboardInterrupt inside LittleFS's callbacks breaks it), and a board raises
a Ctrl-C that comes during a flash write once the write is done. So the bridge waits for the handler
to come back instead of passing the Ctrl-C on as a byte that nobody reads (the run would go on)."""

import time

import serial
from littlefs import LittleFS

from m2mkit.vdev.device import VirtualDevice

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

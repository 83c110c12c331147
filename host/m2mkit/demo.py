"""`m2mkit demo`: a virtual device running the firmware, its console shown as it would be on a board."""

import time

import serial
from rich.console import Console
from rich.panel import Panel

from .vdev.device import VirtualDevice

# what the demo types at the device's REPL once it has booted
MODEM_CHECK = b"from m2m import app; m = app.modem_check()\r"


class _Console:
    def __init__(self, port, con):
        self.s = serial.Serial(port, 115200, timeout=0.1)
        self.con = con
        self.buf = b""

    def show_until(self, token, timeout):
        """Print device lines until `token` (a prompt) appears; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.buf += self.s.read(512)
            *lines, self.buf = self.buf.split(b"\n")
            for line in lines:
                self.con.print(f"[dim]device>[/] {line.decode(errors='replace').rstrip()}", highlight=False)
            if self.buf.endswith(token):
                self.buf = b""
                return True
        return False


def run(board_name, seconds=0.0):
    con = Console()
    dev = VirtualDevice(board_name, modem=True)
    board = dev.board
    port = dev.start(power=False)  # open the console first, so the boot output is seen
    con.print(Panel.fit(
        f"virtual [bold]{board['title']}[/] on [bold]{port}[/]\n"
        f"firmware/ in a {dev.blocks}-block LittleFS2 image; {board['modem']['model']} modem simulator on its UART\n"
        f"in another terminal: [cyan]mpremote connect {port} exec \"print(1+1)\"[/]",
        title="m2mkit demo"))
    try:
        c = _Console(port, con)
        dev.power_on()
        boot = dev.wait_boot(1, timeout=20)
        c.show_until(b">>> ", 10)
        con.print(f"[green]booted in {boot['ms']:.0f} ms; now the console types:[/] {MODEM_CHECK.decode().strip()}")
        c.s.write(MODEM_CHECK)
        c.show_until(b">>> ", 60)
        con.print(f"[green]the REPL is yours on {port}[/]" + (" (Ctrl-C here to stop)" if not seconds else ""))
        end = time.monotonic() + seconds if seconds else None
        while end is None or time.monotonic() < end:
            c.show_until(b"\x00", 0.5)
    except KeyboardInterrupt:
        pass
    finally:
        dev.stop()

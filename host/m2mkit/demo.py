"""`m2mkit demo`: a virtual device running the firmware; this terminal becomes its console."""

import os
import select
import signal
import sys
import termios
import time
import tty

import serial
from rich.console import Console
from rich.panel import Panel

from .vdev.device import VirtualDevice

# what the demo types at the device's REPL once it has booted
MODEM_CHECK = b"from m2m import app; m = app.modem_check()\r"
EXIT_KEY = b"\x1d"  # Ctrl-], as in miniterm
# demo_report.py sets these for the reporting demo: its command runs until stopped (no prompt to
# wait for), and Ctrl-C ends the demo instead of going to the device
COMMAND_RETURNS = True
CTRL_C_ENDS = False
DEVICE_ENV = {}  # demo_commerce.py: the virtual device's simulated peripherals (M2M_UART<n>)


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

    def terminal(self, end=None):
        """The device's console in this terminal: keys go to the device, its output comes here
        unchanged, Ctrl-] leaves (raw mode while it runs). Stops at `end` (monotonic) if given."""
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setraw(fd)
        out = sys.stdout.buffer
        if COMMAND_RETURNS:
            out.write(b">>> ")  # the prompt the scripted part consumed
        out.flush()
        try:
            while end is None or time.monotonic() < end:
                ready, _, _ = select.select([fd, self.s.fileno()], [], [], 0.2)
                if self.s.fileno() in ready:
                    out.write(self.s.read(self.s.in_waiting or 1))
                    out.flush()
                if fd in ready:
                    keys = os.read(fd, 1024)
                    if EXIT_KEY in keys:
                        self.s.write(keys.split(EXIT_KEY, 1)[0])
                        return
                    if CTRL_C_ENDS and b"\x03" in keys:
                        raise KeyboardInterrupt
                    self.s.write(keys)
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            out.write(b"\r\n")
            out.flush()


def _sigterm_interrupts():
    # a SIGTERM stops the demo the way Ctrl-C does, so the temporary image is removed
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run(board_name, seconds=0.0):
    _sigterm_interrupts()
    con = Console()
    dev = VirtualDevice(board_name, modem=True, env=DEVICE_ENV)
    try:
        _demo(dev, con, seconds)
    except KeyboardInterrupt:
        pass
    finally:
        dev.stop()


def _demo(dev, con, seconds):
    board = dev.board
    port = dev.start(power=False)  # open the console first, so the boot output is seen
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    con.print(Panel.fit(
        f"virtual [bold]{board['title']}[/] on [bold]{port}[/]\n"
        f"firmware/ in a {dev.blocks}-block LittleFS2 image; {board['modem']['model']} modem simulator on its UART\n"
        f"in another terminal: [cyan]mpremote connect {port} exec \"print(1+1)\"[/]",
        title="m2mkit demo"))
    c = _Console(port, con)
    dev.power_on()
    boot = dev.wait_boot(1, timeout=20)
    c.show_until(b">>> ", 10)
    con.print(f"[green]booted in {boot['ms']:.0f} ms; now the console types:[/] {MODEM_CHECK.decode().strip()}")
    c.s.write(MODEM_CHECK)
    if COMMAND_RETURNS:
        c.show_until(b">>> ", 60)
    end = time.monotonic() + seconds if seconds else None
    if interactive:
        con.print("[green]this terminal is now the device's console: type at its REPL; "
                  + ("Ctrl-C ends the demo[/]" if CTRL_C_ENDS else "Ctrl-] leaves[/]"), highlight=False)
        c.terminal(end)
        return
    # no terminal to type in (output piped, or stdin not a tty): show what the device prints
    con.print(f"[green]the device's console is {port}[/] (e.g. [cyan]mpremote connect {port} repl[/]); "
              + ("Ctrl-C here stops the demo" if not seconds else f"stopping in {seconds:g} s"))
    while end is None or time.monotonic() < end:
        c.show_until(b"\x00", 0.5)

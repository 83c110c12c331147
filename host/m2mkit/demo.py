"""`m2mkit demo`: a virtual device running the firmware, its console shown as it would be on a board."""

import time

import serial
from rich.console import Console
from rich.panel import Panel

from . import boards
from .cli import _start_modem_for
from .vdev.device import VirtualDevice


def run(board_name, seconds=0.0):
    con = Console()
    board = boards.load(board_name)
    modem = _start_modem_for(board, 1.0)
    env = {}
    if modem is not None:
        env = {"M2M_MODEM": "%s:%d" % modem.uart_address, "M2M_GPIO": "%s:%d" % modem.control_address}
    dev = VirtualDevice(board_name, env=env)
    port = dev.start(power=False)  # open the console first, so the boot output is seen
    con.print(Panel.fit(
        f"virtual [bold]{board['title']}[/] on [bold]{port}[/]\n"
        f"firmware/ in a {dev.blocks}-block LittleFS2 image; modem: "
        + (f"{board['modem']['model']} simulator at {env['M2M_MODEM']}" if modem else "none")
        + f"\nin another terminal: [cyan]mpremote connect {port} exec \"print(1+1)\"[/]",
        title="m2mkit demo"))
    try:
        with serial.Serial(port, 115200, timeout=0.2) as s:
            dev.power_on()
            boot = dev.wait_boot(1, timeout=20)
            deadline = time.monotonic() + seconds if seconds else None
            buf = b""
            while deadline is None or time.monotonic() < deadline:
                chunk = s.read(256)
                if chunk:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        con.print(f"[dim]device>[/] {line.decode(errors='replace').rstrip()}", highlight=False)
                elif deadline is None and b">>> " in buf:
                    con.print(f"[dim]device>[/] {buf.decode(errors='replace')}[green]booted in "
                              f"{boot['ms']:.0f} ms; the REPL is free on {port} (Ctrl-C here to stop)[/]")
                    buf = b""
    except KeyboardInterrupt:
        pass
    finally:
        dev.stop()
        if modem is not None:
            modem.stop()

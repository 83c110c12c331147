"""`m2mkit shell --port P`: mpremote's REPL on the device (Ctrl-] or Ctrl-x leaves it)."""

import sys

import click


@click.command("shell")
@click.option("--port", required=True, help="serial port of the board (or the virtual device's /dev/pts/N)")
def command(port):
    """Open the device's MicroPython REPL (mpremote's terminal)."""
    from mpremote.main import main as mpremote_main

    from .deploy import open_port

    open_port(port).close()  # the port's problems as one line that says what to do
    argv = sys.argv
    sys.argv = ["mpremote", "connect", port, "repl"]
    try:
        rc = mpremote_main()
    finally:
        sys.argv = argv
    sys.exit(rc or 0)

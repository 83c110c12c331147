"""`m2mkit shell --port P`: mpremote's REPL on the device (Ctrl-] or Ctrl-x leaves it)."""

import sys

import click


@click.command("shell")
@click.option("--port", required=True, help="serial port of the board (or the virtual device's /dev/pts/N)")
def command(port):
    """Open the device's MicroPython REPL (mpremote's terminal)."""
    from mpremote.main import main as mpremote_main

    from .deploy import open_port
    from .errors import UserError

    open_port(port).close()  # the port's problems as one line that says what to do
    if not sys.stdin.isatty():  # mpremote's console puts the terminal in raw mode (termios): a pipe has none
        raise UserError(f"m2mkit shell needs a terminal (its input is a pipe or a file); to run code from a "
                        f"script use `mpremote connect {port} exec \"...\"` or `mpremote connect {port} run FILE`")
    argv = sys.argv
    sys.argv = ["mpremote", "connect", port, "repl"]
    try:
        rc = mpremote_main()
    finally:
        sys.argv = argv
    sys.exit(rc or 0)

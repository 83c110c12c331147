"""The `m2mkit` command line."""

import json
import sys
import time
from pathlib import Path

import click

from . import __version__, boards, image
from .errors import UserError


class Group(click.Group):
    """Shows a UserError as one line that says what to do, with exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=Group)
@click.version_option(__version__, prog_name="m2mkit")
def main():
    """m2mkit: firmware and tools for ESP32 boards with an LTE-M / NB-IoT modem."""


@main.group(cls=Group)
def sim():
    """Simulators: the virtual device and the modem."""


def _board_option(default="esp32-devkitc-bg95"):
    return click.option("--board", default=default, show_default=True,
                        help=f"board name; one of: {', '.join(boards.names())}")


@sim.command("device")
@_board_option()
@click.option("--flash", type=click.Path(dir_okay=False, path_type=Path),
              help="flash image file (LittleFS2); created from firmware/ when it does not exist. "
                   "Without it a fresh image is built and thrown away at exit.")
@click.option("--heap", default=None, help="MicroPython heap size (default: 256K, or 2M with PSRAM)")
@click.option("--time-scale", default=1.0, show_default=True, type=float,
              help="device seconds per real second (the built-in modem simulator runs at the same scale)")
@click.option("--modem", "modem_addr", default=None, metavar="HOST:PORT",
              help="UART of a modem simulator already running (m2mkit sim modem) instead of a built-in one")
@click.option("--gpio", "gpio_addr", default=None, metavar="HOST:PORT",
              help="with --modem: where output pin changes go (that simulator's control port)")
@click.option("--bus", "bus_addr", default=None, metavar="HOST:PORT",
              help="simulated I2C / 1-Wire / ADC bus")
@click.option("--no-modem", is_flag=True, help="no modem on the UART (a board with its modem unplugged)")
@click.option("--micropython", "mp_version", default=None, metavar="VERSION",
              help="MicroPython version the board runs: the flash is its vfs partition (default: 1.26 or newer)")
def sim_device(board, flash, heap, time_scale, modem_addr, gpio_addr, bus_addr, no_modem, mp_version):
    """Start a virtual board on a pseudo-terminal. The first line printed is `port: /dev/pts/N`."""
    from .vdev.bridge import install_sigterm_handler
    from .vdev.device import VirtualDevice

    env = {}
    if modem_addr:
        env["M2M_MODEM"] = modem_addr
        if gpio_addr:
            env["M2M_GPIO"] = gpio_addr
    if bus_addr:
        env["M2M_BUS"] = bus_addr

    def event(kind, **kw):
        if kind == "boot":
            click.echo(f"boot: {kw['ms']:.0f} ms ({kw['cause']})")
        else:
            click.echo(f"{kind}: " + " ".join(f"{k}={v}" for k, v in kw.items()))
        sys.stdout.flush()

    dev = VirtualDevice(board, flash=flash, heapsize=heap, time_scale=time_scale, env=env, on_event=event,
                        modem=not (no_modem or modem_addr), micropython=mp_version)
    port = dev.start(power=False, background=False)  # serve() below, in this thread
    click.echo(f"port: {port}")
    click.echo(f"board: {dev.board['name']} ({dev.board['title']}), flash image {dev.flash} ({dev.blocks} blocks)")
    if dev.modem is not None:
        click.echo(f"modem: {dev.modem.model} simulator, uart {dev.env['M2M_MODEM']}, control {dev.env['M2M_GPIO']}")
    if dev.bus is not None:
        click.echo(f"bus: {dev.bus.address_str} (the simulated I2C bus holding the modem's PMU)")
    sys.stdout.flush()
    install_sigterm_handler(dev.bridge)
    dev.power_on()
    try:
        dev.bridge.serve()
    finally:
        dev.stop(check=False)  # the simulator printed any internal error when it happened


try:
    from .sim.modem.cli import modem_command

    sim.add_command(modem_command, "modem")
except ImportError:
    pass


@main.group(cls=Group)
def image_():
    """LittleFS2 flash images (the filesystem MicroPython mounts at /)."""


main.add_command(image_, "image")


@image_.command("build")
@_board_option()
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--micropython", "mp_version", default=None, metavar="VERSION",
              help="MicroPython version flashed on the board (sizes the image to its vfs partition; "
                   "default: 1.26 or newer, where vfs runs to the end of flash)")
def image_build(board, out, mp_version):
    """Build a flash image holding firmware/ and the board's board.json."""
    b = boards.load(board)
    out.write_bytes(image.build(b, version=mp_version))
    click.echo(f"{out}: {boards.vfs_blocks(b, mp_version)} blocks of {boards.BLOCK_SIZE} bytes for {b['name']}")


@image_.command("ls")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def image_ls(path):
    """List the files in a flash image."""
    fs = image.open_image(path)
    for p, size in image.walk(fs):
        click.echo(f"{size:>8} {p}")


@image_.command("cat")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("file")
def image_cat(path, file):
    """Print one file from a flash image."""
    fs = image.open_image(path)
    try:
        with fs.open(file, "rb") as f:
            sys.stdout.buffer.write(f.read())
    except FileNotFoundError:
        raise UserError(f"{file} is not in {path}; list the image with `m2mkit image ls {path}`")


@main.command()
@click.option("--only", multiple=True, help="run only figures whose name starts with this")
def bench(only):
    """Print the project's figures, one JSON object per line."""
    from .bench import run

    for fig in run(only):
        click.echo(json.dumps(fig))
        sys.stdout.flush()


@main.command()
@_board_option()
@click.option("--seconds", default=0.0, help="stop after this many seconds (0: run until Ctrl-C)")
def demo(board, seconds):
    """Boot a virtual device running the firmware and show what it prints."""
    from .demo import run

    run(board, seconds)


@main.command("boards")
def boards_cmd():
    """List the supported boards."""
    for n in boards.names():
        b = boards.load(n)
        click.echo(f"{n:<24} {b['title']} ({b['chip']}, {b['flash_size']}, modem {b['modem']['model']})")


if __name__ == "__main__":
    main()

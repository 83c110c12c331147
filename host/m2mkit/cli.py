"""The `m2mkit` command line."""

import json
import math
import socket
import sys
from pathlib import Path

import click

from . import __version__, boards, image
from .errors import UserError


class Group(click.Group):
    """Shows a UserError, and click's own usage errors, as one line that says what to do (exit 2)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)

    def main(self, *args, standalone_mode=True, **kw):
        try:
            rv = super().main(*args, standalone_mode=False, **kw)
        except click.ClickException as e:
            msg = " ".join(e.format_message().split())
            where = getattr(e, "ctx", None)
            hint = f" (see `{where.command_path} --help`)" if where is not None else ""
            click.echo(f"error: {msg}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


def _board(ctx, param, value):
    try:
        boards.load(value)
    except UserError as e:
        raise UserError(f"--board: {e}") from None
    return value


def _host_port(option):
    def check(ctx, param, value):
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
            raise UserError(f"{option} {value!r}: give HOST:PORT with a port 1-65535, e.g. 127.0.0.1:7000")
        return value
    return check


def _checked(fn):
    def check(ctx, param, value):
        return None if value is None else fn(value)
    return check


def _listening(addr):
    host, _, port = addr.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


@click.group(cls=Group)
@click.version_option(__version__, prog_name="m2mkit")
def main():
    """m2mkit: firmware and tools for ESP32 boards with an LTE-M / NB-IoT modem."""


@main.group(cls=Group)
def sim():
    """Simulators: the virtual device and the modem."""


def _board_option(default="esp32-devkitc-bg95"):
    return click.option("--board", default=default, show_default=True, callback=_board,
                        help=f"board name; one of: {', '.join(boards.names())}")


def _check_flash(value):
    from .vdev.device import flash_path

    return flash_path(value)


def _check_heap(value):
    from .vdev.device import check_heap

    return check_heap(value)


def _check_scale(option):
    def check(ctx, param, value):
        try:
            scale = float(value)
        except ValueError:
            scale = None
        if scale is None or not math.isfinite(scale) or scale <= 0:
            raise UserError(f"{option} {value!r}: give a number greater than 0 (1 is real time, 60 a minute per second)")
        return scale
    return check


@sim.command("device")
@_board_option()
@click.option("--flash", callback=_checked(_check_flash),
              help="flash image file (LittleFS2); created from firmware/ when it does not exist. "
                   "Without it a fresh image is built and thrown away at exit.")
@click.option("--heap", default=None, callback=_checked(_check_heap),
              help="MicroPython heap size, bytes with K or M (default: 256K, or 2M with PSRAM)")
@click.option("--time-scale", default="1", show_default=True, callback=_check_scale("--time-scale"),
              help="device seconds per real second (the built-in modem simulator runs at the same scale)")
@click.option("--modem", "modem_addr", default=None, metavar="HOST:PORT", callback=_host_port("--modem"),
              help="UART of a modem simulator already running (m2mkit sim modem) instead of a built-in one")
@click.option("--gpio", "gpio_addr", default=None, metavar="HOST:PORT", callback=_host_port("--gpio"),
              help="with --modem: where output pin changes go (that simulator's control port)")
@click.option("--bus", "bus_addr", default=None, metavar="HOST:PORT", callback=_host_port("--bus"),
              help="simulated I2C / 1-Wire / ADC bus")
@click.option("--no-modem", is_flag=True, help="no modem on the UART (a board with its modem unplugged)")
@click.option("--micropython", "mp_version", default=None, metavar="VERSION",
              help="MicroPython version the board runs: the flash is its vfs partition (default: 1.26 or newer)")
@click.option("--download", is_flag=True,
              help="start in the ROM's download mode (GPIO0 held low): esptool / m2mkit flash talk to it")
@click.option("--rfc2217", "rfc2217_port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="also offer the device on this RFC 2217 TCP port (0: a free one); DTR/RTS drive EN and GPIO0")
@click.option("--romfs", is_flag=True, help="a MicroPython built with ROMFS and a romfs partition (FILE.state/romfs.bin, "
              "kept): its image is mounted at /rom (`m2mkit deploy --romfs` writes it)")
def sim_device(board, flash, heap, time_scale, modem_addr, gpio_addr, bus_addr, no_modem, mp_version, download,
               rfc2217_port, romfs):
    """Start a virtual board on a pseudo-terminal. The first line printed is `port: /dev/pts/N`."""
    from .vdev.device import VirtualDevice

    if gpio_addr and not modem_addr:
        raise UserError("--gpio needs --modem: the built-in modem simulator wires its own power pins")
    if no_modem and modem_addr:
        raise UserError("--no-modem and --modem exclude each other: give one of them")
    if modem_addr and not _listening(modem_addr):
        click.echo(f"warning: nothing listens on --modem {modem_addr} yet; the UART stays silent until "
                   f"a simulator starts there (m2mkit sim modem --listen {modem_addr})", err=True)
    env = {}
    if modem_addr:
        env["M2M_MODEM"] = modem_addr
        if gpio_addr:
            env["M2M_GPIO"] = gpio_addr
    if bus_addr:
        env["M2M_BUS"] = bus_addr

    def event(kind, **kw):
        if kind == "boot" and kw.get("soft"):
            click.echo(f"ready: {kw['ms']:.0f} ms after the soft reset")
        elif kind == "boot":
            click.echo(f"boot: {kw['ms']:.0f} ms ({kw['cause']})")
        elif kind == "reset" and kw.get("via") == "raw REPL":
            click.echo("soft reset: Ctrl-D at the raw REPL (a tool such as mpremote or ampy connecting); "
                       "the board was not reset")
        elif kind == "reset" and kw.get("via"):
            click.echo(f"soft reset: Ctrl-D at the {kw['via']}; boot.py and main.py run again")
        elif kind == "formatted":
            click.echo(f"flash: {kw['flash']} held no filesystem: formatted it and wrote a boot.py "
                       f"(\"Performing initial setup\", as a new board)")
        elif kind == "fatal":
            click.echo(f"error: {kw['message']}", err=True)
        elif kind == "bootloader":
            click.echo("download mode: the ROM loader waits for esptool on the port (`m2mkit flash`, or esptool "
                       "--before no-reset --no-stub); its \"run user code\" (esptool's soft reset) boots the device")
        elif kind == "deepsleep":
            click.echo(f"deep sleep: {kw['ms']} ms of device time, then a reset (cause deep-sleep)")
        elif kind == "reset" and kw.get("button"):
            download = kw["button"] == "download"
            click.echo("reset: the chip restarts " + ("with GPIO0 held low, into download mode" if download
                                                      else "(EN, or the ROM loader's \"run user code\") and boots"))
        else:
            click.echo(f"{kind}: " + " ".join(f"{k}={v}" for k, v in kw.items()))
        sys.stdout.flush()

    _sigterm_interrupts()  # until the bridge serves: a SIGTERM while setting up still cleans up
    dev = VirtualDevice(board, flash=flash, heapsize=heap, time_scale=time_scale, env=env, on_event=event,
                        modem=not (no_modem or modem_addr), micropython=mp_version, download=download,
                        romfs=True if romfs else None)
    dev.rfc2217_port = rfc2217_port
    try:
        _serve_device(dev)
    finally:
        dev.stop(check=False)  # the simulator printed any internal error when it happened
    if dev.bridge.fatal:
        sys.exit(1)


def _sigterm_interrupts():
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _serve_device(dev):
    from .vdev.bridge import install_sigterm_handler

    port = dev.start(power=False, background=False)  # serve() below, in this thread
    click.echo(f"port: {port}")
    if dev.rfc2217_port is not None:
        click.echo(f"rfc2217: {dev.rfc2217(dev.rfc2217_port)}?ign_set_control (esptool's reset works there)")
    click.echo(f"board: {dev.board['name']} ({dev.board['title']}), flash image {dev.flash} ({dev.blocks} blocks)")
    if dev.modem is not None:
        click.echo(f"modem: {dev.modem.model} simulator, uart {dev.env['M2M_MODEM']}, control {dev.env['M2M_GPIO']}")
    if dev.bus is not None:
        click.echo(f"bus: {dev.bus.address_str} (the simulated I2C bus holding the modem's PMU)")
    if dev.romfs is not None:
        from .romfs import image_size

        n = image_size(dev.romfs.read_bytes()[:16])
        click.echo(f"romfs: partition {dev.romfs} ({dev.romfs.stat().st_size} bytes), "
                   + (f"an image of {n} bytes mounted at /rom" if n else "erased (m2mkit deploy --romfs writes it)"))
    sys.stdout.flush()
    install_sigterm_handler(dev.bridge)
    dev.power_on()
    dev.bridge.serve()


try:
    from .sim.modem.cli import modem_command

    sim.add_command(modem_command, "modem")
except ImportError:
    pass


@main.group("image", cls=Group)
def image_():
    """LittleFS2 flash images (the filesystem MicroPython mounts at /)."""


def _check_out(value):
    p = Path(value)
    if p.is_dir():
        raise UserError(f"--out {value}: is a directory; give an image file name")
    if not p.absolute().parent.is_dir():
        raise UserError(f"--out {value}: folder {p.absolute().parent} does not exist; create it or give another path")
    return p


@image_.command("build")
@_board_option()
@click.option("--out", required=True, callback=_checked(_check_out), help="image file to write")
@click.option("--micropython", "mp_version", default=None, metavar="VERSION",
              help="MicroPython version flashed on the board (sizes the image to its vfs partition; "
                   "default: 1.26 or newer, where vfs runs to the end of flash)")
def image_build(board, out, mp_version):
    """Build a flash image holding firmware/ and the board's board.json."""
    b = boards.load(board)
    data = image.build(b, version=mp_version)
    try:
        out.write_bytes(data)
    except OSError as e:
        raise UserError(f"--out {out}: cannot write it ({e.strerror}); give another path") from None
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
@click.option("--quick", is_flag=True, help="fewer iterations and readings, the same code (what the tests "
                                            "run): rougher values, not the README's figures")
def bench(only, quick):
    """Print the project's figures, one JSON object per line."""
    from .bench import FIGURES, run

    names = [fn.__name__ for fn in FIGURES]
    for o in only:
        if not any(n.startswith(o) for n in names):
            raise UserError(f"--only {o!r} matches no figure function; they are: {', '.join(names)}")

    for fig in run(only, quick=quick):
        click.echo(json.dumps(fig))
        sys.stdout.flush()


def _seconds(value):
    try:
        s = float(value)
    except ValueError:
        s = -1.0
    if not math.isfinite(s) or s < 0:
        raise UserError(f"--seconds {value!r}: give a number of seconds, 0 or more (0: run until Ctrl-C)")
    return s


@main.command()
@click.option("--board", default=None, callback=lambda c, p, v: v and _board(c, p, v),
              help=f"board name (default: lilygo-t-sim7000g, or the first with --modem); one of: "
                   f"{', '.join(boards.names())}")
@click.option("--modem", default=None, help="modem model: the first board that carries it")
@click.option("--broker", default=None, metavar="mqtt://HOST:PORT",
              help="report to this broker (default: a Mosquitto started on a free loopback port)")
@click.option("--seconds", default="0", callback=lambda c, p, v: _seconds(v),
              help="stop after this many seconds (0: run until Ctrl-C)")
@click.option("--commerce", is_flag=True,
              help="an ink tank drains, the device orders ink, a local supplier gets exactly one order")
@click.option("--lwm2m", default=None, metavar="coap://HOST:PORT",
              help="run the device's LwM2M client against this server instead of reporting over MQTT")
def demo(board, modem, broker, seconds, commerce, lwm2m):
    """Boot a virtual device that reports its readings over MQTT; show its console and what arrives."""
    if lwm2m is not None:
        if broker is not None or commerce:
            raise UserError("give --lwm2m (LwM2M) or --broker / --commerce (MQTT), not both")
        from .lwm2m.demo import run as run_lwm2m

        return run_lwm2m(board, seconds, modem=modem, url=lwm2m)
    if commerce:
        from .demo_commerce import run
    else:
        from .demo_sense import run  # main.py's supervisor: sensors of a slowly varying environment

    run(board, seconds, modem=modem, broker=broker)


@main.command("boards")
def boards_cmd():
    """List the supported boards."""
    for n in boards.names():
        b = boards.load(n)
        click.echo(f"{n:<24} {b['title']} ({b['chip']}, {b['flash_size']}, modem {b['modem']['model']})")


from . import hosttools  # noqa: E402  (deploy, image, provision, flash, shell, ...: issue #12)

hosttools.register(main)

from .lwm2m.cli import lwm2m_command  # noqa: E402  (m2mkit lwm2m serve: issue #10)

main.add_command(lwm2m_command)

from .commerce import commerce as _commerce  # noqa: E402  (orders and usage records: issue #14)

main.add_command(_commerce)

from .usage import command as _usage  # noqa: E402  (usage verify|report: issue #14)

main.add_command(_usage)


if __name__ == "__main__":
    main()

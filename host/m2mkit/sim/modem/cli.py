"""`m2mkit sim modem`: serve a simulated modem until Ctrl-C."""

import errno
import math
import os
import threading

import click

from .server import LOOPBACK, MODELS, ModemSim


def _addr(value, what):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter("%s must be HOST:PORT with a port 0-65535, e.g. 127.0.0.1:7000" % what)
    host = host or "127.0.0.1"
    if host not in LOOPBACK:
        raise click.BadParameter("%s host %r is not loopback: the simulator only listens on 127.0.0.1"
                                 % (what, host))
    return "127.0.0.1" if host == "localhost" else host, int(port)


@click.command("modem")
@click.option("--model", type=click.Choice(sorted(MODELS)), required=True, help="Which modem to simulate.")
@click.option("--listen", default="127.0.0.1:0", show_default=True,
              help="HOST:PORT of the UART (loopback only; port 0 picks a free one).")
@click.option("--control", default="127.0.0.1:0", show_default=True,
              help="HOST:PORT of the control + GPIO channel (JSON lines).")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Modem seconds per real second (60 runs an hour in a minute).")
@click.option("--pin", default=None, help="SIM PIN (the SIM asks for it at boot). Default: no PIN.")
@click.option("--puk", default="12345678", show_default=True, help="SIM PUK.")
@click.option("--pwrkey-pin", type=int, default=None, help="GPIO number wired to PWRKEY (RESET on gm02s).")
@click.option("--status-pin", type=int, default=None,
              help="GPIO number the modem's STATUS output drives (the board file's modem.status_pin).")
@click.option("--record", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the session to this .atlog transcript.")
@click.option("--off", is_flag=True, help="Start powered off (wait for a PWRKEY pulse or a power op).")
def modem_command(model, listen, control, time_scale, pin, puk, pwrkey_pin, record, off, status_pin=None):
    """Simulate a cellular modem on a loopback TCP 'UART'."""
    host, port = _addr(listen, "--listen")
    chost, cport = _addr(control, "--control")
    if chost != host:
        raise click.BadParameter("--control must use the same host as --listen")
    if not math.isfinite(time_scale) or time_scale <= 0:
        raise click.BadParameter("--time-scale must be a number greater than 0")
    # "PIN1 consists of 4 to 8 digits, PUK1 is an 8-digit code only" (Siemens TC35i AT Command Set,
    # TC35i_ATC_V01.05, 4.35.1)
    if pin is not None and not (pin.isdigit() and 4 <= len(pin) <= 8):
        raise click.BadParameter("--pin must be 4 to 8 digits (a SIM PIN)")
    if not (puk.isdigit() and len(puk) == 8):
        raise click.BadParameter("--puk must be 8 digits (a SIM PUK)")
    if pwrkey_pin is not None and pwrkey_pin < 0:
        raise click.BadParameter("--pwrkey-pin must be a GPIO number, 0 or more")
    if status_pin is not None and status_pin < 0:
        raise click.BadParameter("--status-pin must be a GPIO number, 0 or more")
    if record is not None and not os.path.isdir(os.path.dirname(os.path.abspath(record))):
        raise click.BadParameter("--record %s: its folder does not exist; create it or give another path" % record)
    sim = ModemSim(model=model, time_scale=time_scale, pin=pin, puk=puk, pwrkey_pin=pwrkey_pin,
                   record=record, power_on=not off, status_pin=status_pin)
    try:
        sim.start(host=host, port=port, control_port=cport)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            which = "--control %s" % control if len(sim._servers) == 1 else "--listen %s" % listen
            raise click.ClickException("%s: the address is in use; give another port (0 picks a free one)" % which)
        what = "--record %s" % record if record and e.filename == record else "the simulator"
        raise click.ClickException("%s: %s" % (what, e.strerror or e))
    click.echo("uart: %s:%d" % tuple(sim.uart_address))
    click.echo("control: %s:%d" % tuple(sim.control_address))
    click.echo("model %s, time scale %g; Ctrl-C to stop" % (model, time_scale), err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop(check=False)  # internal errors were printed as they happened


if __name__ == "__main__":
    modem_command()

"""`m2mkit sim modem`: serve a simulated modem until Ctrl-C."""

import threading

import click

from .server import LOOPBACK, MODELS, ModemSim


def _addr(value, what):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter("%s must be HOST:PORT, e.g. 127.0.0.1:7000" % what)
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
@click.option("--record", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the session to this .atlog transcript.")
@click.option("--off", is_flag=True, help="Start powered off (wait for a PWRKEY pulse or a power op).")
def modem_command(model, listen, control, time_scale, pin, puk, pwrkey_pin, record, off):
    """Simulate a cellular modem on a loopback TCP 'UART'."""
    host, port = _addr(listen, "--listen")
    chost, cport = _addr(control, "--control")
    if chost != host:
        raise click.BadParameter("--control must use the same host as --listen")
    if time_scale <= 0:
        raise click.BadParameter("--time-scale must be greater than 0")
    try:
        sim = ModemSim(model=model, time_scale=time_scale, pin=pin, puk=puk, pwrkey_pin=pwrkey_pin,
                       record=record, power_on=not off)
        sim.start(host=host, port=port, control_port=cport)
    except (ValueError, OSError) as e:
        raise click.ClickException(str(e))
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

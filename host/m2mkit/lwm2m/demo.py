"""`m2mkit demo --lwm2m coap://HOST:PORT`: the demo's virtual device runs the firmware's LwM2M client
(m2m.lwm2m, config section "lwm2m") against any LwM2M server instead of reporting over MQTT."""

from ..errors import UserError

ENDPOINT = "m2mkit-demo"  # the endpoint name when the device has no device.id
# the network, UDP sockets and the client need more heap than a board without PSRAM leaves
# (README "Figures", lwm2m_heap_registered): without --board / --modem the demo runs on one with PSRAM
BOARD = "lilygo-t-sim7000g"


def check_url(url):
    scheme, sep, rest = (url or "").partition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    if scheme != "coap" or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--lwm2m {url!r}: give coap://HOST:PORT of an LwM2M server, e.g. coap://127.0.0.1:5683 "
                        "(`m2mkit lwm2m serve` is one)")
    return url


def device_command(url):
    """The line typed at the device's REPL: the board's network up, then the client registered with
    `url` and stepped with the network by the one loop until Ctrl-C."""
    return ("from m2m import board, config, loop; from m2m.net import sock; from m2m.net.network import Network; "
            "cfg = config.load(); cfg['device']['id'] = cfg['device']['id'] or %r; cfg['lwm2m']['server'] = %r; "
            "net = Network(board.load(), cfg); print('network: coming up'); net.up(600000); "
            "from m2m.lwm2m.client import Client; "
            "c = Client(cfg, network=net, stack=sock.Stack(net.modem, kind='udp', timeout_ms=10000)); "
            "print('lwm2m: registering as %%s with %%s (Ctrl-C stops)' %% (c.name, %r)); loop.run((net, c))\r"
            % (ENDPOINT, url, url)).encode()


def run(board=None, seconds=0.0, modem=None, url=None):
    from .. import demo
    from ..demo_report import pick_board

    url = check_url(url)
    board = pick_board(board, modem) or BOARD
    demo.MODEM_CHECK = device_command(url)
    demo.COMMAND_RETURNS = False  # the client runs until stopped
    demo.CTRL_C_ENDS = True
    demo.run(board, seconds)

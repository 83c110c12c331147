"""The reporting half of `m2mkit demo`: a Mosquitto of its own on a free loopback port (or the broker
given), a paho subscriber that prints what arrives as any subscriber sees it, and the line the demo
types at the device's REPL to start reporting (m2m.report.mqtt.run)."""

import sys
import threading

from . import boards
from .broker import Broker, Subscriber
from .errors import UserError
from .senml import SenMLError, Units, resolve


# a modem no board file carries, fitted where its pin-compatible sibling sits (BG95 & BG96:
# Quectel's BG95&BG96 Compatible Design)
FITS = {"bg96": "bg95"}


def pick_board(board, modem):
    """The board to run (a name, or board data): `board` as given; with `modem`, the first board that
    carries it, or one that carries its pin-compatible sibling with it fitted instead."""
    if modem is None:
        return board
    from .sim.modem import MODELS

    if modem not in MODELS:
        raise UserError(f"--modem {modem!r}: give one of {', '.join(sorted(MODELS))}")
    takes = (modem, FITS.get(modem))
    names = [board] if board is not None else boards.names()
    for n in names:
        b = boards.load(n)
        if b["modem"]["model"] == modem:
            return n
        if b["modem"]["model"] in takes:
            b["modem"]["model"] = modem
            b["title"] += f" with a {modem.upper()} fitted"
            return b
    have = [n for n in boards.names() if boards.load(n)["modem"]["model"] in takes]
    raise UserError(f"board {board} carries a {boards.load(board)['modem']['model']}, not a {modem}: "
                    f"leave out --board, or give one of {', '.join(have)}")


def check_url(url):
    scheme, sep, rest = (url or "").partition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    if scheme != "mqtt" or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--broker {url!r}: give mqtt://HOST:PORT, e.g. mqtt://127.0.0.1:1883")
    return url


class Reporting:
    """start(): the broker (unless one was given) and the subscriber; stop() ends what it started."""

    def __init__(self, broker_url=None, write=None, prefix="m2mkit"):
        self.url = check_url(broker_url) if broker_url else None
        self.broker = None
        self.sub = None
        self.write = write or (lambda text: (sys.stdout.write(text + "\n"), sys.stdout.flush()))
        self.prefix = prefix
        self._stop = threading.Event()
        self._thread = None
        self.seen = 0
        self.units = Units()  # from the retained status, joined to the telemetry shown

    def start(self):
        if self.url is None:
            self.broker = Broker(tls=False).start()
            self.url = self.broker.url
        self.sub = Subscriber(self.url, topics=(self.prefix + "/#",))
        self._thread = threading.Thread(target=self._show, daemon=True)
        self._thread.start()
        return self

    def device_command(self, every_s=10):
        return f'from m2m.report import health; health.run("{self.url}", {every_s})\r'.encode()

    def _show(self):
        while not self._stop.is_set():
            for topic, payload, retained in self.sub.wait(1, timeout=0.5):
                self.seen += 1
                self.write(describe(topic, payload, retained, self.units))

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self.sub is not None:
            try:
                self.sub.close()
            except Exception:
                pass
            self.sub = None
        if self.broker is not None:
            self.broker.stop()  # its temporary folder goes with it
            self.broker = None


# decimals a person reads a quantity with, by its SenML unit (symbols of the IANA SenML Units
# registry, www.iana.org/assignments/senml: RFC 8428 12.1, B from RFC 8798): the demo's sensors
# resolve 0.01 degC and 0.01 %RH and its deadband is 0.05 (demo_sense), so two decimals show each
# change of a temperature; pressure in whole pascals, a voltage in hundredths. Display only: what
# goes to the broker is the device's own value.
DECIMALS = {"Cel": 2, "K": 2, "%RH": 1, "Pa": 0, "V": 2, "A": 3, "W": 1, "/": 2, "B": 0, "s": 1, "m": 2,
            "lx": 0, "Hz": 1, "J": 0, "dBW": 0}


def shown(value, unit=""):
    """A reading as a person reads it, the unit after a space: `17.00 Cel`, `38.1 %RH`, `101325 Pa`;
    a unit not in DECIMALS: 4 significant digits, a whole number as it is (`pulses=3`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = str(value)
    elif unit in DECIMALS:
        text = f"{value:.{DECIMALS[unit]}f}"
    elif isinstance(value, int) or value == int(value):
        text = str(int(value))
    else:
        text = f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return f"{text} {unit}" if unit else text


def describe(topic, payload, retained=False, units=None):
    """One line for a message as a subscriber sees it; SenML telemetry shown as name=value unit (the
    value as a person reads it, `shown`), the units joined from the device's retained status
    (`units`, a senml.Units that status messages feed) where the records leave them out
    (mqtt.units "status")."""
    text = payload.decode("utf-8", "replace")
    units = units if units is not None else Units()
    if topic.endswith("/status"):
        try:
            state = units.feed(topic, payload)
            if text.startswith("{"):
                dev = topic.rsplit("/", 2)[1] + ":"
                names = sorted((n[len(dev):], u) for n, u in units.names.items() if n.startswith(dev))
                text = state + (", units " + " ".join(f"{n}={u}" for n, u in names) if names else "")
        except SenMLError:
            pass
    elif topic.endswith("/telemetry"):
        try:
            seq, vals = [], []
            for name, value, unit, _ in resolve(payload, units.names):
                short = name.partition(":")[2]
                if short in ("", "seq"):  # the record without a name: the outbox sequence number
                    seq.append(value)
                else:
                    vals.append(f"{short}={shown(value, unit)}")
            text = f"seq {','.join(str(s) for s in seq)}: {' '.join(vals)}"
        except (SenMLError, ValueError, KeyError, TypeError, AttributeError):
            text = "not SenML: " + text
    return f"broker> {topic}{' (retained)' if retained else ''} {text}"


def run(board=None, seconds=0.0, modem=None, broker=None, every_s=10):
    """`m2mkit demo`: the virtual device (demo.py shows its console) reporting its health readings to
    a Mosquitto started here on a free loopback port, or to `broker`; what arrives is printed as a
    subscriber sees it, beside the console. Ctrl-C (or `seconds`) stops all of it; nothing is left."""
    from . import demo

    board = pick_board(board, modem) or "esp32-devkitc-bg95"

    def write(text):
        # \r first: in the interactive console the terminal is in raw mode
        sys.stdout.write("\r\x1b[36m" + text + "\x1b[0m\r\n" if sys.stdout.isatty() else text + "\n")
        sys.stdout.flush()

    rep = Reporting(broker, write=write)
    try:
        rep.start()
        write(f"broker> subscribed to {rep.prefix}/# on {rep.url}"
              + ("" if broker else " (a Mosquitto of the demo's own, gone at exit)"))
        demo.MODEM_CHECK = rep.device_command(every_s)  # what the demo types at the REPL
        demo.COMMAND_RETURNS = False  # it reports until stopped
        demo.CTRL_C_ENDS = True
        demo.run(board, seconds)
    finally:
        rep.stop()

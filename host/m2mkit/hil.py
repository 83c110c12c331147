"""pytest plugin for hardware-in-the-loop tests: `pytest -p m2mkit.hil [--target sim | --port P --board B]`
(every option also as --m2mkit-target, --m2mkit-port, ...: beside pytest-embedded, see OPTIONS).

--target sim (the default): a virtual device of --board (default esp32-devkitc-bg95) with its modem
simulator, a Mosquitto broker on loopback. --port /dev/ttyUSB0 --board B: a real board; its modem and
network are real, and the broker is --broker mqtt://HOST:PORT (one the board's network can reach).

Fixtures: `target` (kind, port, board), `device` (a raw-REPL session: `device.exec(code)` returns what
the code printed, `device.repl_line(text)` types at the friendly REPL), `modem` (on sim the
simulator, with .imei / .card.iccid / .card.imsi; on a board an AT passthrough through the device:
`modem.at("AT+CGSN")`), `broker` (a URL and a subscriber: `broker.url`, `broker.wait(n, timeout)`).
Marks: `hardware` (only on a real board), `sim_only` (only on the virtual device).
The shipped end-to-end suite is m2mkit/hil_tests: `pytest -p m2mkit.hil --pyargs m2mkit.hil_tests`.
"""

import pytest

from . import boards
from .errors import UserError


# Every option has an m2mkit- name; the short names are kept where no other plugin has them:
# pytest-embedded (installed beside m2mkit, and loaded by pytest wherever it is installed unless
# `-p no:pytest_embedded`) defines --port and --target itself (pytest_embedded/plugin.py
# pytest_addoption), and two plugins cannot add one option name. When it is loaded its --port is
# read as the board's port (the same meaning: the board's serial port), and its --target when that
# says sim or board. The short names are added at once when pytest-embedded cannot come (blocked by
# `-p no:pytest_embedded`, or not installed), else once every plugin named on the command line or
# installed has registered its options (pytest_load_initial_conftests), if still free. (This plugin
# loaded from a conftest's pytest_plugins, with pytest-embedded installed but its autoload off,
# misses that hook: the m2mkit- names are there.)
OPTIONS = (  # short name or None, m2mkit name, keyword arguments
    ("--target", "--m2mkit-target", dict(choices=("sim", "board"), default=None,
     help="sim: virtual device + modem simulator + local broker (default); board: a real board on --port")),
    ("--port", "--m2mkit-port", dict(default=None, help="serial port of a real board (implies --target board)")),
    ("--board", "--m2mkit-board", dict(default=None,
     help="board file name (default esp32-devkitc-bg95 on sim; required on a board)")),
    ("--broker", "--m2mkit-broker", dict(default=None, help="on a board: mqtt://HOST:PORT its network reaches")),
    ("--time-scale", "--m2mkit-time-scale", dict(type=float, default=10.0,
     help="on sim: device seconds per real second")),
    ("--heap", "--m2mkit-heap", dict(default=None,
     help="on sim: the virtual device's heap (default: the board's, vdev heap_for)")),
)
# short names another plugin may define (pytest-embedded: --port, --target): added late, if free
LATE = ("--port", "--target")
GROUP = ("m2mkit-hil", "m2mkit hardware-in-the-loop")
_late = []  # the parser whose short names wait for every plugin's options


def _dest(long_name):
    return long_name[2:].replace("-", "_")  # --m2mkit-port -> m2mkit_port


def pytest_addoption(parser, pluginmanager):
    g = parser.getgroup(*GROUP)
    for short, long_name, kw in OPTIONS:
        names = (long_name,) if short in LATE else (long_name, short)
        g.addoption(*names, dest=_dest(long_name), **kw)
    if _may_come(pluginmanager):
        _late.append(parser)
    else:
        _add_short(parser, pluginmanager)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Every plugin loaded before the conftests has its options now: the short names nobody took."""
    while _late:
        _add_short(_late.pop(), early_config.pluginmanager)


def _add_short(parser, pluginmanager):
    taken = _taken(pluginmanager)
    g = parser.getgroup(*GROUP)
    for short, long_name, kw in OPTIONS:
        if short in LATE and short not in taken:
            g.addoption(short, dest=_dest(long_name), **dict(kw, help=f"the same as {long_name}"))


def _may_come(pluginmanager):
    """pytest-embedded has registered or may still register its options."""
    if pluginmanager.hasplugin("pytest_embedded"):
        return True
    if pluginmanager.is_blocked("pytest_embedded"):
        return False
    from importlib.metadata import entry_points

    return any(ep.name == "pytest_embedded" for ep in entry_points(group="pytest11"))


def _taken(pluginmanager):
    """The short names a loaded plugin defines (pytest-embedded: --port and --target)."""
    return LATE if pluginmanager.hasplugin("pytest_embedded") else ()


def _opt(config, short):
    """An option by its short name: ours, else (pytest-embedded's --port / --target) the other
    plugin's where it means the same."""
    long_name = next(n for s, n, _ in OPTIONS if s == short)
    v = config.getoption(_dest(long_name))
    if v is None and short in LATE and short in _taken(config.pluginmanager):
        v = config.getoption(short[2:], None)
        if short == "--target" and v not in ("sim", "board"):
            v = None  # a chip name (esp32s3...) is pytest-embedded's, not a target kind
    return v


def pytest_configure(config):
    config.addinivalue_line("markers", "hardware: needs a real board (--port); skipped on the virtual device")
    config.addinivalue_line("markers", "sim_only: needs the simulators' control; skipped on a real board")
    if _taken(config.pluginmanager):
        # pytest-embedded has a `target` fixture too (its --target's value), registered after this
        # plugin when loaded by `-p m2mkit.hil`, and of two plugins' fixtures the later one is used:
        # ours again, now, after it (its autouse parametrize_fixtures then gets this target too; a
        # session runs m2mkit's HIL tests or pytest-embedded's dut tests, not both)
        config.pluginmanager.register(type("M2mkitHilTarget", (), {"target": target}), "m2mkit-hil-target")
        # its autouse fixtures ask for its app_path, which records an XML attribute: a warning per test
        config.addinivalue_line("filterwarnings", "ignore:record_xml_attribute is an experimental feature"
                                                  ":pytest.PytestExperimentalApiWarning")


def _kind(config):
    t = _opt(config, "--target")
    port = _opt(config, "--port")
    if t is None:
        t = "board" if port else "sim"
    if t == "board" and not port:
        raise pytest.UsageError("--target board needs --port /dev/ttyUSB0 (and --board)")
    if t == "board" and not _opt(config, "--board"):
        raise pytest.UsageError(f"--port needs --board; one of: {', '.join(boards.names())}")
    return t


def pytest_collection_modifyitems(config, items):
    kind = _kind(config)
    for item in items:
        if kind == "sim" and item.get_closest_marker("hardware"):
            item.add_marker(pytest.mark.skip(reason="hardware test: run with --port and --board on a real board"))
        if kind == "board" and item.get_closest_marker("sim_only"):
            item.add_marker(pytest.mark.skip(reason="needs the simulators: run with --target sim"))


class Target:
    def __init__(self, kind, port, board, dev=None):
        self.kind, self.port, self.board, self.dev = kind, port, board, dev


@pytest.fixture(scope="session")
def target(request, tmp_path_factory):
    config = request.config
    kind = _kind(config)
    board = _opt(config, "--board") or "esp32-devkitc-bg95"
    try:
        boards.load(board)
    except UserError as e:
        raise pytest.UsageError(f"--board: {e}") from None
    if kind == "board":
        yield Target(kind, _opt(config, "--port"), board)
        return
    import shutil

    from . import image
    from .bench import heap_trees
    from .paths import FIRMWARE
    from .vdev.device import VirtualDevice

    # the firmware as a board runs it after `m2mkit deploy`: boot.py and main.py, the package as .mpy
    # (for the unix port's arch), not .py compiled on the device's heap at every boot
    d = tmp_path_factory.mktemp("hil")
    fw = d / "firmware"
    shutil.copytree(FIRMWARE, fw, ignore=shutil.ignore_patterns("lib", "__pycache__"))
    shutil.move(str(heap_trees(d / "trees")["mpy"]), str(fw / "lib"))
    (d / "flash.img").write_bytes(image.build(boards.load(board), firmware=fw))
    dev = VirtualDevice(board, flash=d / "flash.img", modem=True, time_scale=_opt(config, "--time-scale"),
                        heapsize=_opt(config, "--heap"))
    dev.start()
    dev.wait_boot(1, timeout=30)
    try:
        yield Target(kind, dev.port, board, dev)
    finally:
        dev.stop()


class Device:
    """A raw-REPL session on the target's port (mpremote's SerialTransport)."""

    def __init__(self, port):
        from .deploy import open_port, raw_repl

        self.port = port
        self.t = open_port(port)
        raw_repl(self.t, port)

    def exec(self, code, timeout=120):
        out, err = self.t.exec_raw(code, timeout=timeout)
        if err:
            raise AssertionError(f"the device raised:\n{err.decode(errors='replace')}")
        return out.decode(errors="replace")

    def repl_line(self, text):
        """Leave the raw REPL and type a line at the friendly REPL (for code that runs on)."""
        self.t.exit_raw_repl()
        self.t.serial.write(text.encode() + b"\r")

    def console(self):
        """What the device printed since the last call (without waiting): code started with repl_line
        runs on while a test waits elsewhere; a failing test shows this tail to say why."""
        s = self.t.serial
        n = s.in_waiting
        return s.read(n).decode(errors="replace") if n else ""

    def close(self):
        try:
            self.t.close()
        except Exception:
            pass


@pytest.fixture
def device(target):
    d = Device(target.port)
    yield d
    d.close()


class ATPassthrough:
    """The board's modem through the device's own AT driver: `at("AT+CGSN")` returns its lines."""

    def __init__(self, device):
        self.device = device
        device.exec("from m2m import app\n_m = app.modem_check()\n")

    def at(self, cmd, timeout_ms=5000):
        out = self.device.exec(f"_r = _m.at.cmd({cmd!r}, timeout_ms={timeout_ms})\n"
                               f"print(repr((_r.ok, [bytes(x) for x in _r.lines])))")
        import ast

        ok, lines = ast.literal_eval(out.strip())
        if not ok:
            raise AssertionError(f"{cmd}: the modem did not answer OK: {lines}")
        return [x.decode(errors="replace") for x in lines]


@pytest.fixture
def modem(target, device):
    if target.kind == "sim":
        return target.dev.modem
    return ATPassthrough(device)


class BrokerHandle:
    def __init__(self, url, sub):
        self.url, self.sub = url, sub

    def wait(self, n=1, timeout=10, topic=None):
        return self.sub.wait(n, timeout=timeout, topic=topic)


@pytest.fixture(scope="session")
def broker(request, target):
    from .broker import Broker, Subscriber

    url = _opt(request.config, "--broker")
    started = None
    if target.kind == "sim" and url is None:
        started = Broker(tls=False).start()
        url = started.url
    if url is None:
        raise pytest.UsageError("on a real board give --broker mqtt://HOST:PORT (one its network reaches)")
    sub = Subscriber(url, topics=("m2mkit/#",))
    try:
        yield BrokerHandle(url, sub)
    finally:
        sub.close()
        if started is not None:
            started.stop()

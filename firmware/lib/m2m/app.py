# The application: main.py calls main(): the banner and the health of the device, and the config
# when /config.json sets device.autorun, for main.py to start the supervisor (m2m.supervisor:
# sensors, network, reporting, watchdog) until Ctrl-C; otherwise the REPL is the user's.
import gc
import os
import sys

from m2m import VERSION, board, hal

_CAUSES = {
    hal.PWRON_RESET: "power-on",
    hal.HARD_RESET: "hard",
    hal.WDT_RESET: "watchdog",
    hal.DEEPSLEEP_RESET: "deep-sleep",
    hal.SOFT_RESET: "soft",
    hal.UNKNOWN_RESET: "other",  # e.g. through the S3's USB-Serial-JTAG (the port maps it to 0)
}


def health():
    # A snapshot an operator (or a test) can read: memory, flash, reset cause, board, and the
    # battery when the board can measure it (battery_mv; charge when a PMU reports it).
    gc.collect()
    st = os.statvfs("/")
    b = board.load() or {}
    try:
        bat = board.battery(b) or {}
    except (OSError, ValueError):  # a silent PMU: None says the battery could not be read
        bat = {"battery_mv": None}
    h = {
        "version": VERSION,
        "platform": hal.PLATFORM,
        "board": b.get("name"),
        "modem": (b.get("modem") or {}).get("model"),
        "reset_cause": _CAUSES.get(hal.reset_cause(), hal.reset_cause()),
        "heap_free": gc.mem_free(),
        "heap_used": gc.mem_alloc(),
        "flash_free": st[0] * st[3],
        "flash_total": st[0] * st[2],
        "uid": "".join("%02x" % x for x in hal.unique_id()),
    }
    h.update(bat)
    return h


def banner():
    b = board.load() or {}
    return "m2mkit %s on %s (%s, MicroPython %s)" % (
        VERSION,
        b.get("title", "an unknown board: deploy a board.json"),
        hal.PLATFORM,
        ".".join(str(x) for x in sys.implementation.version[:3]),
    )


def main(path="/config.json"):
    print(banner())
    h = health()
    print("health:", " ".join("%s=%s" % (k, h[k]) for k in sorted(h)))
    try:
        os.stat(path)
    except OSError:
        return None  # no config: a new board, the REPL is the user's
    from m2m import config

    try:
        cfg = config.load(path)
    except ValueError as e:  # ConfigError: which key, and what to do; never a boot loop
        print("config: %s" % e)
        return None
    if not cfg["device"]["autorun"]:
        print("autorun: off (set device.autorun to true in %s to start the supervisor at boot)" % path)
        return None
    return cfg  # main.py starts the supervisor with it, once this module has left the heap


def modem_check():
    # Bring up the board's modem and say who it is: switch on its supply (PMU rails), open its UART
    # (flow control when the board wires RTS/CTS), hold a RESET line inactive, power it on (PWRKEY
    # or RESET pulse when it does not answer), detect the dialect by its AT+CGMM answer, run the
    # dialect's init script. Returns the Modem; raises ModemError with what to check when it stays
    # silent or is unknown.
    from m2m import modem
    from m2m.at import AT

    b = board.load() or {}
    m = b.get("modem") or {}
    # a cold boot of a PMU board cuts the modem's main supply first (m2m.boardpmu, once per boot):
    # the modem is then known to be off, pulsed without probes or the boot-time wait (up.power_on)
    off = board.modem_supply(b)
    at = AT(board.modem_uart(b))
    if not modem.Modem(at, m).power_on(off):
        raise modem.ModemError("the modem did not answer AT after power-on: check its supply, "
                               "the UART pins and baud in board.json, and the power key wiring")
    dev = modem.detect(at)(at, m)
    ident = dev.init()
    print("modem:", " ".join("%s=%s" % (k, ident[k]) for k in sorted(ident)))
    if m.get("model") and m["model"] != ident["model"]:
        print("warning: board.json names a %s but the modem answers as a %s" % (m["model"], ident["model"]))
    return dev


def run(services=(), until=None, max_ms=None):
    # The device's main loop: the network (m2m.net.network.Network over the board's modem, with
    # /config.json) and any other services, stepped by m2m.loop until until() or max_ms. Returns
    # the Network (its status() says where it stands).
    from m2m import config, loop
    from m2m.net.network import Network

    gc.collect()
    n = Network(board.load() or {}, config.load())
    gc.collect()
    loop.run((n,) + tuple(services), until, max_ms)
    return n

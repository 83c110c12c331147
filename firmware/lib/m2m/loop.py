# The device's one synchronous loop (docs/CONTRACTS.md, "Concurrency model").
#   run(services, until=None, max_ms=None)  step each service (service.step() -> ms it may sleep),
#                                 sleep the least of their answers in slices that call idle()
#   idle()                        run the deadline hooks (watchdog feed, sampler reads, alarms);
#                                 blocking waits call it between polls (see Guarded)
#   add_hook(fn) / remove_hook(fn) hooks take no argument, must be quick, must never send AT
#                                 commands or touch sockets: the guard raises RuntimeError
#   sleep(ms)                     hal.sleep_ms in slices of at most SLICE_MS, idle() between
#   reset()                       an intentional restart: idle() once, then hal.reset()
#   Guarded(uart)                 the modem UART as the AT driver sees it: wait() in slices that call
#                                 idle(), write() refused while a hook runs
#   drop(name)                    forget a module loaded for one job (bring-up code): its bytecode
#                                 and tables go at the next collection; a later import reads it again
from micropython import const

from m2m import hal

SLICE_MS = const(100)

_hooks = []
_in_hook = False


def drop(name):
    import sys

    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    p = sys.modules.get(pkg)
    if p is not None and hasattr(p, attr):
        delattr(p, attr)


def add_hook(fn):
    if fn not in _hooks:
        _hooks.append(fn)


def remove_hook(fn):
    if fn in _hooks:
        _hooks.remove(fn)


def in_hook():
    return _in_hook


def idle():
    global _in_hook
    if _in_hook or not _hooks:
        return
    _in_hook = True
    try:
        for fn in _hooks:
            fn()
    finally:
        _in_hook = False


def reset():
    # the hooks once before the chip resets: a hardware pulse counter's count since its last sync
    # (the reset clears the counter) into RTC memory, a last watchdog feed. A hook that fails does
    # not stop the restart.
    try:
        idle()
    finally:
        hal.reset()


def sleep(ms):
    while ms > 0:
        s = ms if ms < SLICE_MS else SLICE_MS
        hal.sleep_ms(s)
        ms -= s
        idle()


def run(services, until=None, max_ms=None):
    # True when until() became true, False when max_ms (device ms) ran out
    t0 = hal.ticks_ms()
    while True:
        if until is not None and until():
            return True
        wait = 60000
        for s in services:
            w = s.step()
            if w < wait:
                wait = w
        idle()
        if until is not None and until():
            return True
        if max_ms is not None:
            left = max_ms - hal.ticks_diff(hal.ticks_ms(), t0)
            if left <= 0:
                return False
            if wait > left:
                wait = left
        sleep(wait)


class Guarded:
    # wraps the modem UART for m2m.at.AT: the driver's waits keep the deadline hooks running, and a
    # hook that tries to write to the modem is stopped
    def __init__(self, uart):
        self.uart = uart
        self.readinto = uart.readinto
        self.read = uart.read
        self.any = uart.any

    def write(self, buf):
        if _in_hook:
            raise RuntimeError("deadline hooks must not send AT commands or touch sockets")
        return self.uart.write(buf)

    def wait(self, timeout_ms):
        u = self.uart
        while True:
            s = timeout_ms if timeout_ms < SLICE_MS else SLICE_MS
            if u.wait(s):
                return True
            timeout_ms -= s
            idle()
            if timeout_ms <= 0:
                return False

    def init(self, *a, **kw):
        return self.uart.init(*a, **kw)

    def deinit(self):
        return self.uart.deinit()

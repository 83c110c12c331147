# hal for the virtual device: the same code as on a board (m2m.hal.esp32), running on the strict
# stand-in of the ESP32 port's machine / esp32 / onewire modules (host/m2mkit/vdev/port/, installed
# by the virtual device's boot script and by m2mkit.testing). Only the device clock differs: it runs
# at M2M_TIME_SCALE (device ms = real ms * scale), so tests can run hours of modem time quickly.
import os as _os
import time as _time

from m2m.hal import esp32 as _b
from m2m.hal.esp32 import *  # noqa: F401,F403

PLATFORM = "unix"

_SCALE = float(_os.getenv("M2M_TIME_SCALE") or 1)
_T0 = _time.ticks_us()


def _now():
    return _time.time_ns() / 1e9 + _b.EPOCH_2000


_WALL0 = _now()


def ticks_ms():
    if _SCALE == 1:
        return _time.ticks_ms()
    return int(_time.ticks_diff(_time.ticks_us(), _T0) * _SCALE) // 1000


def sleep_ms(ms):
    if ms > 0:
        _time.sleep_us(int(ms * 1000 / _SCALE))


def asleep_ms(ms):
    # awaitable: `await hal.asleep_ms(100)`
    import asyncio

    return asyncio.sleep_ms(int(ms / _SCALE) if ms > 0 else 0)


def time_scale():
    return _SCALE


def epoch():
    # seconds since 1970 on the device clock
    return _WALL0 + (_now() - _WALL0) * _SCALE


def idle():
    _time.sleep_ms(1)


class UART(_b.UART):
    def wait(self, timeout_ms):
        # True when bytes are waiting; timeout in device ms
        return self._u._wait(int(timeout_ms / _SCALE) if timeout_ms > 0 else 0)

    @property
    def stream(self):
        if self._u._w.connect() is None:
            raise OSError(19)  # no simulator at M2M_MODEM
        return self._u

# Stand-in of the ESP32 port's `time`: the unix port's, with the esp32 epoch and the RTC's setting.
# The esp32 port keeps MicroPython's 2000 epoch: MICROPY_EPOCH_IS_1970 is not set in ports/esp32
# (v1.24/v1.25: shared/timeutils/timeutils.h; v1.26/v1.27: py/mpconfig.h defaults to
# MICROPY_EPOCH_IS_2000), so time.time() counts from 2000-01-01; the unix port counts from 1970.
from utime import *  # noqa: F401,F403  ticks_*, sleep*, time_ns
import utime as _t

import _m2m_sim as _S
import _m2m_table as _T

_EPOCH_2000 = 946684800  # 2000-01-01 in seconds since 1970


def _offset():
    return _S.load_int(_T.RTC_OFFSET)


def time():
    return int(_t.time()) - _EPOCH_2000 + _offset()


def time_ns():
    return _t.time_ns() - _EPOCH_2000 * 1000000000 + _offset() * 1000000000


def gmtime(secs=None):
    return _t.gmtime((time() if secs is None else int(secs)) + _EPOCH_2000)


localtime = gmtime  # no time zones on the port


def mktime(t):
    return int(_t.mktime(t)) - _EPOCH_2000


# pin interrupt handlers run while the firmware sleeps (the port's scheduler runs them then too)
def sleep(s):
    _t.sleep(s)
    _S.poll_irqs()


def sleep_ms(ms):
    _t.sleep_ms(ms)
    _S.poll_irqs()


def sleep_us(us):
    _t.sleep_us(us)
    _S.poll_irqs()

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


# While a Pin.irq handler runs, the ticks run _S.held us behind the host's: the handlers of edges that
# came together start at the same instant, as on the port (see _m2m_sim.held)
def ticks_us():
    return _t.ticks_add(_t.ticks_us(), -_S.held) if _S.held else _t.ticks_us()


def ticks_ms():
    return _t.ticks_add(_t.ticks_ms(), -(_S.held // 1000)) if _S.held else _t.ticks_ms()


# Pin interrupt handlers run while the firmware sleeps: ports/esp32/mphalport.c mp_hal_delay_ms
# calls mp_handle_pending (the scheduled Pin.irq handlers) every FreeRTOS tick of a sleep. Here a
# sleep with handlers registered polls the bus's edges every 2 ms of real time.
def _sleep_us(us):
    while _S.irqs and us > 2000:
        _t.sleep_us(2000)
        us -= 2000
        _S.poll_irqs()
    if us > 0:  # as the port: a negative sleep returns at once
        _t.sleep_us(us)
    _S.poll_irqs()


def sleep(s):
    _sleep_us(int(s * 1000000))


def sleep_ms(ms):
    _sleep_us(int(ms) * 1000)


def sleep_us(us):
    _sleep_us(int(us))

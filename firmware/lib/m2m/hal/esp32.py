# hal for a real ESP32 / ESP32-S3 board. Every name here mirrors m2m.hal.unix.
import asyncio
import select
import time

import esp32
import machine

PLATFORM = "esp32"

PWRON_RESET = machine.PWRON_RESET
HARD_RESET = machine.HARD_RESET
WDT_RESET = machine.WDT_RESET
DEEPSLEEP_RESET = machine.DEEPSLEEP_RESET
SOFT_RESET = machine.SOFT_RESET
TIMER_WAKE = machine.TIMER_WAKE

# ---- time (real time on a board) ----
ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff
ticks_add = time.ticks_add
sleep_ms = time.sleep_ms


def asleep_ms(ms):
    return asyncio.sleep_ms(ms)


def time_scale():
    return 1


def epoch():
    # MicroPython's ESP32 epoch is 1970 since v1.22
    return time.time()


idle = machine.idle
freq = machine.freq
unique_id = machine.unique_id
reset_cause = machine.reset_cause
wake_reason = machine.wake_reason
reset = machine.reset
deepsleep = machine.deepsleep

Pin = machine.Pin
ADC = machine.ADC
WDT = machine.WDT
RTC = machine.RTC
NVS = esp32.NVS


def I2C(id=0, scl=None, sda=None, freq=400000):
    return machine.I2C(id, scl=Pin(scl), sda=Pin(sda), freq=freq)


def OneWire(pin):
    import onewire

    return onewire.OneWire(pin if isinstance(pin, Pin) else Pin(pin))


class UART:
    # machine.UART plus the two calls the AT drivers need: wait() and stream
    def __init__(self, id, baudrate=115200, tx=None, rx=None, rxbuf=1024, **kw):
        self._u = machine.UART(id, baudrate=baudrate, tx=tx, rx=rx, rxbuf=rxbuf, **kw)
        self._poll = select.poll()
        self._poll.register(self._u, select.POLLIN)
        self.id = id
        self.baudrate = baudrate

    def init(self, baudrate=115200, **kw):
        self.baudrate = baudrate
        self._u.init(baudrate=baudrate, **kw)

    def write(self, buf):
        return self._u.write(buf) or 0

    def readinto(self, buf):
        if not self._u.any():
            return 0
        return self._u.readinto(buf) or 0

    def read(self, n=256):
        return self._u.read(n)

    def any(self):
        return self._u.any()

    def wait(self, timeout_ms):
        return bool(self._poll.poll(timeout_ms))

    @property
    def stream(self):
        return self._u

    def deinit(self):
        self._u.deinit()

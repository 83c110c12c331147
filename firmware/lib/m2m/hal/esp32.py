# hal for an ESP32 / ESP32-S3 board on MicroPython's esp32 port (v1.24-v1.27). The virtual device
# runs this same module on a strict stand-in of the port (host/m2mkit/vdev/port/). Contract:
# docs/CONTRACTS.md "Device time and I/O".
import select as _select
import time as _time

import esp32 as _esp32
import machine as _machine

# (modules under private names: `from m2m.hal.esp32 import *` must not export `esp32`, which would
# hide this module as the attribute m2m.hal.esp32)

PLATFORM = "esp32"

PWRON_RESET = _machine.PWRON_RESET
HARD_RESET = _machine.HARD_RESET  # also after hal.reset(): esp_restart() reports ESP_RST_SW
WDT_RESET = _machine.WDT_RESET
DEEPSLEEP_RESET = _machine.DEEPSLEEP_RESET
SOFT_RESET = _machine.SOFT_RESET
UNKNOWN_RESET = 0  # causes the port does not map, e.g. a reset through the S3's USB-Serial-JTAG
TIMER_WAKE = _machine.TIMER_WAKE

# ---- time (real time on a board) ----
ticks_ms = _time.ticks_ms
ticks_diff = _time.ticks_diff
ticks_add = _time.ticks_add
sleep_ms = _time.sleep_ms


def asleep_ms(ms):
    # asyncio is imported by the code that awaits (the device's own stack runs one synchronous loop)
    import asyncio

    return asyncio.sleep_ms(ms)


def time_scale():
    return 1


# The esp32 port counts time.time() from 2000-01-01 (MICROPY_EPOCH_IS_1970 is not set for it in
# v1.24-v1.27); the hal's epoch is 1970.
EPOCH_2000 = 946684800


def epoch():
    return _time.time() + EPOCH_2000


idle = _machine.idle
freq = _machine.freq
unique_id = _machine.unique_id
reset_cause = _machine.reset_cause
wake_reason = _machine.wake_reason
reset = _machine.reset
deepsleep = _machine.deepsleep

Pin = _machine.Pin
WDT = _machine.WDT
RTC = _machine.RTC
NVS = _esp32.NVS
# digital pads (not RTC-capable) keep a Pin(hold=True) level through deep sleep only after this
# (ESP-IDF gpio_deep_sleep_hold_en; modesp32.c)
gpio_deep_sleep_hold = _esp32.gpio_deep_sleep_hold


def pcnt():
    # the chip's pulse counter class, esp32.PCNT (v1.26+: ports/esp32/esp32_pcnt.c), else None
    return getattr(_esp32, "PCNT", None)


def _kw(**kw):
    # the port refuses None for a pin ("invalid pin"): leave unset keywords out
    return {k: v for k, v in kw.items() if v is not None}


def I2C(id=0, scl=None, sda=None, freq=400000):
    return _machine.I2C(id, freq=freq, **_kw(scl=scl, sda=sda))


def ADC(pin, atten=None):
    # explicit attenuation: the port's default was 0 dB (full scale ~0.95 V) before v1.26
    a = _machine.ADC.ATTN_11DB if atten is None else atten
    return _machine.ADC(pin if isinstance(pin, Pin) else Pin(pin), atten=a)


class OneWire:
    # onewire.OneWire plus read(n); a missing presence pulse with required=True is OSError(19)
    def __init__(self, pin):
        import onewire

        self._err = onewire.OneWireError
        self._ow = onewire.OneWire(pin if isinstance(pin, Pin) else Pin(pin))
        self.pin = self._ow.pin

    def reset(self, required=False):
        try:
            return self._ow.reset(required)
        except self._err:
            raise OSError(19)

    def read(self, n):
        buf = bytearray(n)
        self._ow.readinto(buf)
        return bytes(buf)

    def readinto(self, buf):
        self._ow.readinto(buf)

    def readbyte(self):
        return self._ow.readbyte()

    def write(self, buf):
        self._ow.write(buf)

    def writebyte(self, b):
        self._ow.writebyte(b)

    def select_rom(self, rom):
        self._ow.select_rom(rom)

    def scan(self):
        return self._ow.scan()

    def crc8(self, data):
        return self._ow.crc8(data)


class UART:
    # machine.UART plus the two calls the AT drivers need: wait() and stream
    RTS = _machine.UART.RTS
    CTS = _machine.UART.CTS

    def __init__(self, id, baudrate=115200, tx=None, rx=None, rxbuf=1024, rts=None, cts=None, flow=0):
        self._u = _machine.UART(id, baudrate=baudrate, rxbuf=rxbuf, flow=flow,
                               **_kw(tx=tx, rx=rx, rts=rts, cts=cts))
        self._poll = _select.poll()
        self._poll.register(self._u, _select.POLLIN)
        self.id = id
        self.baudrate = baudrate

    def init(self, baudrate=115200, **kw):
        self.baudrate = baudrate
        self._u.init(baudrate=baudrate, **_kw(**kw))

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

# hal for an ESP32 / ESP32-S3 board on MicroPython's esp32 port (v1.24-v1.27). The virtual device
# runs this same module on a strict stand-in of the port (host/m2mkit/vdev/port/). Contract:
# docs/CONTRACTS.md "Device time and I/O".
import asyncio
import select
import time

import esp32
import machine

PLATFORM = "esp32"

PWRON_RESET = machine.PWRON_RESET
HARD_RESET = machine.HARD_RESET  # also after hal.reset(): esp_restart() reports ESP_RST_SW
WDT_RESET = machine.WDT_RESET
DEEPSLEEP_RESET = machine.DEEPSLEEP_RESET
SOFT_RESET = machine.SOFT_RESET
UNKNOWN_RESET = 0  # causes the port does not map, e.g. a reset through the S3's USB-Serial-JTAG
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


# The esp32 port counts time.time() from 2000-01-01 (MICROPY_EPOCH_IS_1970 is not set for it in
# v1.24-v1.27); the hal's epoch is 1970.
EPOCH_2000 = 946684800


def epoch():
    return time.time() + EPOCH_2000


idle = machine.idle
freq = machine.freq
unique_id = machine.unique_id
reset_cause = machine.reset_cause
wake_reason = machine.wake_reason
reset = machine.reset
deepsleep = machine.deepsleep

Pin = machine.Pin
WDT = machine.WDT
RTC = machine.RTC
NVS = esp32.NVS


def _kw(**kw):
    # the port refuses None for a pin ("invalid pin"): leave unset keywords out
    return {k: v for k, v in kw.items() if v is not None}


def I2C(id=0, scl=None, sda=None, freq=400000):
    return machine.I2C(id, freq=freq, **_kw(scl=scl, sda=sda))


def ADC(pin, atten=None):
    # explicit attenuation: the port's default was 0 dB (full scale ~0.95 V) before v1.26
    a = machine.ADC.ATTN_11DB if atten is None else atten
    return machine.ADC(pin if isinstance(pin, Pin) else Pin(pin), atten=a)


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
    RTS = machine.UART.RTS
    CTS = machine.UART.CTS

    def __init__(self, id, baudrate=115200, tx=None, rx=None, rxbuf=1024, rts=None, cts=None, flow=0):
        self._u = machine.UART(id, baudrate=baudrate, rxbuf=rxbuf, flow=flow,
                               **_kw(tx=tx, rx=rx, rts=rts, cts=cts))
        self._poll = select.poll()
        self._poll.register(self._u, select.POLLIN)
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

# Strict stand-in of the ESP32 port's `machine` (MicroPython v1.24-v1.27), written from its sources:
# ports/esp32/modmachine.c, machine_pin.c, machine_uart.c, machine_i2c.c, machine_adc.c, machine_rtc.c,
# machine_wdt.c. Same keywords (keyword-only where the port's are), constants, return values and
# exceptions; the hardware behind it is the loopback simulation in _m2m_sim.
import io
import sys
import uos
import utime

import _m2m_sim as S
import _m2m_table as T

# modmachine.c: reset_reason_t; wake reasons are esp_sleep_wakeup_cause_t (ESP-IDF esp_sleep.h)
PWRON_RESET = T.PWRON_RESET
HARD_RESET = T.HARD_RESET
WDT_RESET = T.WDT_RESET
DEEPSLEEP_RESET = T.DEEPSLEEP_RESET
SOFT_RESET = T.SOFT_RESET
SLEEP = 2  # modmachine.h wake_type_t
DEEPSLEEP = 4
PIN_WAKE = EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6

_NOARG = object()  # the port's MP_OBJ_NULL: "keyword not given" (None is a value, and is refused)
# ESP-IDF's Kconfig default CPU clock (CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ 160): ESP32_GENERIC(_S3)'s
# mpconfigboard.cmake use boards/sdkconfig.base, which does not set it (only sdkconfig.240mhz does)
_freq = 160000000
_wake = 0


def _chip_reset():
    return int(uos.getenv("M2M_RESET_CAUSE") or PWRON_RESET)


def reset_cause():
    # modmachine.c: SOFT_RESET after a soft reboot (machine_deinit), else the chip's esp_reset_reason()
    return SOFT_RESET if uos.getenv("M2M_SOFT_RESET") else _chip_reset()


def wake_reason():
    # esp_sleep_get_wakeup_cause(): the timer after a timed (deep or light) sleep, else 0 (undefined);
    # a soft reboot does not change it
    if _wake:
        return _wake
    return TIMER_WAKE if _chip_reset() == DEEPSLEEP_RESET else 0


def reset():
    # esp_restart(): reset_cause() is HARD_RESET afterwards
    S.request_restart(T.RESET, 1)


def soft_reset():
    raise SystemExit


def bootloader(*args):
    # the chip restarts into its ROM download mode; the bridge says so and holds it there
    S.request_restart(T.BOOTLOADER, 1)


# Pads held with Pin(..., hold=True), and esp32.gpio_deep_sleep_hold(). ESP-IDF gpio_hold_en(): "The
# state of digital gpio cannot be held during Deep-sleep ... If the digital gpio also needs to be held
# during Deep-sleep, gpio_deep_sleep_hold_en should also be called" (ESP-IDF driver/gpio.h); RTC pads
# keep their hold. RTC-capable pads: ports/esp32/modesp32.h RTC_VALID_EXT_PINS (ESP32-S2/S3: GPIO0-21;
# ESP32: 0, 2, 4, 12-15, 25-27, 32-39).
_held = {}
_deep_sleep_hold = False
_RTC_PADS = {"esp32": (0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39),
             "esp32s3": tuple(range(22))}


def _chip():
    import json

    try:
        with open("/board.json") as f:
            return json.load(f).get("chip") or "esp32"
    except (OSError, ValueError):
        return "esp32"


def deepsleep(time_ms=0):
    if _held and not _deep_sleep_hold:
        rtc = _RTC_PADS.get(_chip(), ())
        for pin, level in _held.items():
            if pin not in rtc:
                # a digital pad lets go in deep sleep: tell the wire it is no longer held
                S.gpio.request({"op": "pin", "pin": pin, "value": level})
    S.request_restart(T.DEEPSLEEP, int(time_ms))


def lightsleep(time_ms=None):
    global _wake
    if time_ms is None:
        raise ValueError("no wake source")  # not modelled: a pin or touch wake-up
    utime.sleep_ms(int(int(time_ms) / S.SCALE))
    _wake = TIMER_WAKE


def idle():
    utime.sleep_ms(1)
    S.poll_irqs()


def freq(hz=_NOARG):
    # modmachine.c mp_machine_set_freq: 20/40/80/160/240 MHz on ESP32 and ESP32-S3
    global _freq
    if hz is _NOARG:
        return _freq
    mhz = int(hz) // 1000000
    if mhz not in (20, 40, 80, 160, 240):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    _freq = mhz * 1000000


def unique_id():
    uid = uos.getenv("M2M_UID") or "240ac4000001"
    return bytes(int(uid[i:i + 2], 16) for i in range(0, len(uid), 2))


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def _pin_id(pin):
    # machine_pin.c machine_pin_find: a Pin, or an int naming a GPIO; anything else is refused
    if isinstance(pin, Pin):
        return pin._id
    if isinstance(pin, int) and 0 <= pin < 49:
        return pin
    raise ValueError("invalid pin")


# ---- Pin (machine_pin.c) ----
class Pin:
    IN = 1  # GPIO_MODE_INPUT
    OUT = 3  # GPIO_MODE_INPUT_OUTPUT
    OPEN_DRAIN = 7  # GPIO_MODE_INPUT_OUTPUT_OD
    PULL_DOWN = 1  # machine_pin.c: #define GPIO_PULL_DOWN (1)
    PULL_UP = 2  # #define GPIO_PULL_UP (2)
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __init__(self, id, mode=None, pull=-1, *, value=_NOARG, drive=_NOARG, hold=_NOARG):
        self._id = _pin_id(id)
        self._mode = None
        self._pull = None
        self._out = 0
        self._hold = False
        self.init(mode, pull, value=value, drive=drive, hold=hold)

    def init(self, mode=None, pull=-1, *, value=_NOARG, drive=_NOARG, hold=_NOARG):
        if mode is not None:
            mode = int(mode)
            if mode not in (0, 1, 2, 3, 6, 7):
                raise ValueError("invalid pin mode")
            self._mode = mode
        if pull != -1:
            self._pull = None if pull is None else int(pull)
        if hold is not _NOARG:
            self._hold = False  # the port always releases the pad first to apply the new config
        if value is not _NOARG:
            self._set(value, hold is not _NOARG and bool(hold))
        if hold is not _NOARG:
            self._hold = bool(hold)
            if self._hold:
                _held[self._id] = self._out
            else:
                _held.pop(self._id, None)

    def _set(self, v, hold=False):
        if self._hold:
            return  # gpio_hold_en: the pad keeps its level until the hold is released
        self._out = 1 if v else 0
        if self._mode is not None and self._mode & 2:
            line = {"op": "pin", "pin": self._id, "value": self._out}
            if hold:
                line["hold"] = True
            # the receiver answers every line; waiting for it keeps the pulse timing honest
            S.gpio.request(line)

    def value(self, v=_NOARG):
        if v is _NOARG:
            if self._mode is not None and self._mode & 2:
                return self._out
            S.poll_irqs()
            r = S.bus_call("pin_read", pin=self._id)
            if r is None:  # not a bus input: the modem's STATUS output, where the board wires it
                r = S.gpio.request({"op": "pin_read", "pin": self._id})
                if r is not None and not (r.get("ok") and "value" in r):
                    r = None  # not the modem's pin, or a receiver that does not read pins
            if r is not None:
                return r["value"]
            return 1 if self._pull == self.PULL_UP else 0
        self._set(v)

    def __call__(self, v=_NOARG):
        return self.value(v)

    def on(self):
        self._set(1)

    def off(self):
        self._set(0)

    def irq(self, handler=_NOARG, trigger=3, wake=None):
        # machine_pin.c machine_pin_irq: handler, trigger (IRQ_RISING | IRQ_FALLING), wake; no
        # `hard` keyword on this port (the handler is always scheduled); with no argument at all it
        # only returns the irq object. Edges come from the bus (_m2m_sim.poll_irqs); wake is
        # accepted and not modelled.
        if handler is _NOARG and trigger == 3 and wake is None:
            return _PinIRQ(self)
        if handler is None or handler is _NOARG:
            S.irqs.pop(self._id, None)
        else:
            S.irqs[self._id] = (self, handler, int(trigger), utime.ticks_us())
        return _PinIRQ(self)

    def __repr__(self):
        return "Pin(%d)" % self._id


class _PinIRQ:
    def __init__(self, pin):
        self._pin = pin

    def trigger(self):
        e = S.irqs.get(self._pin._id)
        return e[2] if e else 0


class Signal:
    def __init__(self, pin, *, invert=False):
        self._pin = pin if isinstance(pin, Pin) else Pin(pin)
        self._inv = bool(invert)

    def value(self, v=_NOARG):
        if v is _NOARG:
            return self._pin.value() ^ self._inv
        self._pin.value(bool(v) ^ self._inv)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


# ---- UART (machine_uart.c) ----
class UART(io.IOBase):
    RTS = 1  # UART_HW_FLOWCTRL_RTS (ESP-IDF hal/uart_types.h uart_hw_flowcontrol_t; machine_uart.c
    CTS = 2  # UART_HW_FLOWCTRL_CTS   exports both and refuses flow outside UART_HW_FLOWCTRL_CTS_RTS)
    IRQ_RX = 1
    IRQ_BREAK = 2
    IRQ_RXIDLE = 4

    def __init__(self, id, *args, **kw):
        if not isinstance(id, int) or not 0 <= id < 3:
            raise ValueError("UART(%s) does not exist" % id)
        self._num = id
        self._cfg = {"baudrate": 115200, "tx": None, "rx": None, "rts": None, "cts": None, "flow": 0}
        self._timeout = 0
        own = "M2M_UART%d" % id  # a second serial device (e.g. Modbus) on its own address
        self._w = S.Wire(own if uos.getenv(own) else "M2M_MODEM")
        self.init(*args, **kw)
        self._w.connect()

    def init(self, baudrate=0, bits=0, parity=_NOARG, stop=0, *, tx=_NOARG, rx=_NOARG, rts=_NOARG,
             cts=_NOARG, txbuf=-1, rxbuf=-1, timeout=-1, timeout_char=-1, invert=-1, flow=-1):
        c = self._cfg
        if baudrate > 0:
            c["baudrate"] = baudrate
        for k, v in (("tx", tx), ("rx", rx), ("rts", rts), ("cts", cts)):
            if v is not _NOARG:
                c[k] = _pin_id(v)
        if bits not in (0, 5, 6, 7, 8):
            raise ValueError("invalid data bits")
        if stop not in (0, 1, 2):
            raise ValueError("invalid stop bits")
        if timeout != -1:
            self._timeout = timeout
        if flow != -1:
            if flow & ~3:
                raise ValueError("invalid flow control mask")
            c["flow"] = flow
        f = c["flow"]
        S.gpio.request({"op": "uart", "id": self._num, "baudrate": c["baudrate"], "tx": c["tx"],
                        "rx": c["rx"], "rts": c["rts"], "cts": c["cts"],
                        "flow": (["rts"] if f & 1 else []) + (["cts"] if f & 2 else [])})

    def deinit(self):
        self._w.drop()

    def any(self):
        return self._w.any()

    def _wait(self, real_ms):
        return self._w.wait(real_ms)

    def write(self, buf):
        return self._w.write(buf)

    def readinto(self, buf, nbytes=-1):
        # None when nothing arrived within `timeout` (the stream's EAGAIN), as on the port
        mv = memoryview(buf)
        if nbytes >= 0:
            mv = mv[:nbytes]
        if self._timeout > 0 and not self._w.any():
            self._w.wait(self._timeout)
        n = self._w.readinto(mv)
        return n or None

    def read(self, nbytes=-1):
        buf = bytearray(nbytes if nbytes >= 0 else 256)
        n = self.readinto(buf)
        return bytes(buf[:n]) if n else None

    def readline(self):
        out = b""
        one = bytearray(1)
        while not out.endswith(b"\n"):
            if not self.readinto(one):
                break
            out += one
        return out or None

    def ioctl(self, req, arg):
        if req == 10:  # MP_STREAM_GET_FILENO: select.poll works on the connection itself
            return self._w.sock.fileno() if self._w.sock is not None else -1
        return 0

    def flush(self):
        pass

    def txdone(self):
        return True

    def sendbreak(self):
        pass


# ---- I2C (machine_i2c.c, extmod/machine_i2c.c) ----
class I2C:
    def __init__(self, id=0, *, scl=_NOARG, sda=_NOARG, freq=-1, timeout=-1):
        if not isinstance(id, int) or not 0 <= id < 2:
            raise ValueError("I2C(%s) doesn't exist" % id)
        self._bus = id
        self._scl = None if scl is _NOARG else _pin_id(scl)
        self._sda = None if sda is _NOARG else _pin_id(sda)
        self._freq = 400000 if freq == -1 else freq

    def _call(self, op, **kw):
        r = S.bus_call(op, bus=self._bus, **kw)
        if r is None:
            raise OSError(19)  # MP_ENODEV: nobody acknowledged the address
        return r

    def scan(self):
        r = S.bus_call("i2c_scan", bus=self._bus)
        return r["addrs"] if r else []

    def writeto(self, addr, buf, stop=True):
        self._call("i2c_write", addr=addr, data=bytes(buf).hex(), stop=stop)
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        data = bytes.fromhex(self._call("i2c_read", addr=addr, n=len(buf))["data"])
        buf[:len(data)] = data

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self.writeto(addr, memaddr.to_bytes(addrsize // 8, "big") + bytes(buf))

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self.writeto(addr, memaddr.to_bytes(addrsize // 8, "big"), False)
        self.readfrom_into(addr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf, addrsize=addrsize)
        return bytes(buf)


# ---- ADC (machine_adc.c, adc.c) ----
# full scale per attenuation: ESP-IDF programming guide (v4.4) for the ESP32-S3, "ADC Attenuation":
# docs.espressif.com/projects/esp-idf/en/v4.4.8/esp32s3/api-reference/peripherals/adc.html
_ADC_MAX_UV = (950000, 1250000, 1750000, 3100000)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 12

    def __init__(self, pin, *, atten=-1):
        self._pin = _pin_id(pin)
        self._atten = 0  # v1.24/v1.25 default 0 dB (v1.26 moved it to 11 dB): the stricter one
        self.init(atten=atten)

    def init(self, *, atten=-1):
        if not isinstance(atten, int):
            raise TypeError("can't convert %s to int" % type(atten).__name__)
        if atten != -1:
            if not 0 <= atten <= 3:
                raise ValueError("invalid attenuation")
            self._atten = atten

    def atten(self, a):
        self.init(atten=a)

    def read_uv(self):
        r = S.bus_call("adc", pin=self._pin)
        uv = r["uv"] if r else 0
        return max(0, min(uv, _ADC_MAX_UV[self._atten]))

    def read_u16(self):
        return self.read_uv() * 65535 // _ADC_MAX_UV[self._atten]

    def read(self):
        return self.read_u16() >> 4


# ---- WDT (machine_wdt.c): the bridge restarts the interpreter when the deadline passes ----
class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        self._ms = int(timeout / S.SCALE) or 1
        self.feed()

    def feed(self):
        S.store(T.WDT, str(S.host_ms() + self._ms))


# ---- RTC (machine_rtc.c): clock = host clock + a per-device offset; memory survives resets ----
def _rtc_offset():
    return S.load_int(T.RTC_OFFSET)


class RTC:
    def __init__(self, id=0):
        pass

    def datetime(self, dt=_NOARG):
        import time  # the stand-in time: 2000 epoch, this offset

        if dt is _NOARG:
            us = utime.time_ns() // 1000 % 1000000
            t = time.gmtime(time.time())
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], us)
        if len(dt) != 8:
            raise ValueError("requested length 8 but object has length %d" % len(dt))
        want = time.mktime((dt[0], dt[1], dt[2], dt[4], dt[5], dt[6], 0, 0))
        S.store(T.RTC_OFFSET, str(want - (time.time() - _rtc_offset())))

    def init(self, dt):
        # init's tuple has no weekday: (year, month, day, hour, minute, second, us, tz)
        self.datetime((dt[0], dt[1], dt[2], 0, dt[3], dt[4], dt[5], dt[7] if len(dt) > 7 else 0))

    def memory(self, data=_NOARG):
        if data is _NOARG:
            return S.load(T.RTC_MEMORY, b"")
        if len(data) > 2048:  # MICROPY_HW_RTC_USER_MEM_MAX
            raise ValueError("buffer too long")
        S.store(T.RTC_MEMORY, bytes(data))

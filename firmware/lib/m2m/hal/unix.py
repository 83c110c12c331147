# hal for the virtual device: the MicroPython unix port run by `m2mkit sim device`.
#
# Every name here mirrors m2m.hal.esp32. Hardware that cannot exist on a PC is reached over loopback:
#   M2M_MODEM       host:port  the modem simulator; UART(1..) is a TCP connection to it
#   M2M_GPIO        host:port  output pin changes go there as JSON lines (the modem simulator's PWRKEY)
#   M2M_BUS         host:port  the simulated I2C / 1-Wire / ADC / input-pin bus fed by the host
#   M2M_STATE_DIR   dir        host folder kept beside the flash image by the bridge: RTC memory, NVS,
#                              watchdog deadline, reset / deep-sleep requests. Inside the virtual device
#                              `/` is the LittleFS image, so the bridge's boot script hands this folder
#                              over as the VfsPosix object `_m2m_host.state`.
#   M2M_TIME_SCALE  float      device ms = real ms * scale, so tests can run hours of modem time quickly
#   M2M_RESET_CAUSE int        set by the bridge on each (re)start
#   M2M_UID         hex        machine.unique_id()
# What it does not model: electrical levels, pin interrupts, UART baud rate (bytes arrive whatever the
# baud), PWM/DAC/touch, light sleep current, brown-outs.
import asyncio
import json
import os
import select
import socket
import sys
import time

PLATFORM = "unix"

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
TIMER_WAKE = 4

_SCALE = float(os.getenv("M2M_TIME_SCALE") or 1)
_STATE = os.getenv("M2M_STATE_DIR")
_T0 = time.ticks_us()
_WALL0 = time.time()


def _env_addr(name):
    v = os.getenv(name)
    if not v:
        return None
    host, _, port = v.rpartition(":")
    return socket.getaddrinfo(host, int(port))[0][-1]


try:
    from _m2m_host import state as _HOSTFS  # installed by the virtual device's boot script
except ImportError:
    _HOSTFS = None  # plain `micropython` (tests): the host filesystem is the root


def _state_open(name, mode):
    # a file in the host-side state folder, or None when this interpreter has none
    if _HOSTFS is not None:
        return _HOSTFS.open(name, mode)
    if _STATE:
        return open(_STATE + "/" + name, mode)
    return None


# ---- time (device time runs at M2M_TIME_SCALE) ----
def ticks_ms():
    if _SCALE == 1:
        return time.ticks_ms()
    return int(time.ticks_diff(time.ticks_us(), _T0) * _SCALE) // 1000


ticks_diff = time.ticks_diff
ticks_add = time.ticks_add


def sleep_ms(ms):
    if ms > 0:
        time.sleep_us(int(ms * 1000 / _SCALE))


def asleep_ms(ms):
    # awaitable: `await hal.asleep_ms(100)`
    return asyncio.sleep_ms(int(ms / _SCALE) if ms > 0 else 0)


def time_scale():
    return _SCALE


def epoch():
    # seconds since 1970 on the device clock
    return _WALL0 + (time.time() - _WALL0) * _SCALE


def idle():
    time.sleep_ms(1)


def freq():
    return 240000000


def unique_id():
    uid = os.getenv("M2M_UID") or "240ac4000001"
    return bytes(int(uid[i:i + 2], 16) for i in range(0, len(uid), 2))


def reset_cause():
    return int(os.getenv("M2M_RESET_CAUSE") or PWRON_RESET)


def wake_reason():
    return TIMER_WAKE if reset_cause() == DEEPSLEEP_RESET else 0


def _exit_with(request, value):
    # Under the virtual device's bridge: leave the request and stop; the bridge ends this interpreter
    # within a few ms and starts a new one as the chip would restart. Alone: just exit.
    f = _state_open(request, "w")
    if f is None:
        sys.exit(0)
    f.write(str(value))
    f.close()
    while True:
        time.sleep_ms(1000)


def reset():
    _exit_with("reset", 1)


def deepsleep(ms=0):
    _exit_with("deepsleep", int(ms))


# ---- a line-oriented loopback link, shared by the GPIO and bus channels ----
class _Link:
    def __init__(self, env):
        self.addr = _env_addr(env)
        self.sock = None
        self.rx = b""

    def _open(self):
        if self.sock is None and self.addr:
            s = socket.socket()
            try:
                s.connect(self.addr)
            except OSError:
                s.close()
                return None
            s.settimeout(5)  # a peer that never answers must not hang the device
            self.sock = s
        return self.sock

    def send(self, obj):
        s = self._open()
        if s is None:
            return False
        try:
            s.write(json.dumps(obj) + "\n")
        except OSError:
            self.close()
            return False
        return True

    def request(self, obj):
        if not self.send(obj):
            return None
        while b"\n" not in self.rx:
            try:
                chunk = self.sock.recv(256)  # read(n) would wait for all n bytes
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return None
            self.rx += chunk
        line, _, self.rx = self.rx.partition(b"\n")
        return json.loads(line)

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None
        self.rx = b""


_gpio = _Link("M2M_GPIO")
_bus = _Link("M2M_BUS")


def _bus_call(op, **kw):
    kw["op"] = op
    r = _bus.request(kw)
    if r is None or r.get("err"):
        # 19 = ENODEV: what an ESP32 raises when nothing acknowledges on the bus
        raise OSError(19)
    return r


# ---- UART: a TCP connection to the modem simulator ----
class UART:
    def __init__(self, id, baudrate=115200, tx=None, rx=None, rxbuf=1024, **kw):
        self.id = id
        self.baudrate = baudrate
        self._addr = _env_addr("M2M_MODEM")
        self._sock = None
        self._poll = select.poll()
        self._connect()

    def init(self, baudrate=115200, **kw):
        self.baudrate = baudrate

    def _connect(self):
        if self._sock is not None or self._addr is None:
            return self._sock
        s = socket.socket()
        try:
            s.connect(self._addr)
        except OSError:
            s.close()
            return None
        s.setblocking(False)
        self._sock = s
        self._poll.register(s, select.POLLIN)
        return s

    def _drop(self):
        # the simulator went away: from here on it is a UART with nothing attached
        if self._sock is not None:
            self._poll.unregister(self._sock)
            self._sock.close()
            self._sock = None

    def write(self, buf):
        s = self._connect()
        if s is None:
            return len(buf)
        mv = memoryview(buf)
        off = 0
        while off < len(mv):
            try:
                n = s.write(mv[off:])
            except OSError:
                self._drop()
                return len(buf)
            if n:
                off += n
            else:
                time.sleep_ms(1)  # the simulator is not reading: like a UART TX FIFO that is full
        return len(buf)

    def readinto(self, buf):
        s = self._sock
        if s is None:
            return 0
        try:
            n = s.readinto(buf)
        except OSError:
            n = 0
        if n is None:
            return 0
        if n == 0:
            self._drop()
        return n

    def read(self, n=256):
        buf = bytearray(n)
        got = self.readinto(buf)
        return bytes(buf[:got]) if got else None

    def any(self):
        if self._sock is None:
            return 0
        return 1 if self._poll.poll(0) else 0

    def wait(self, timeout_ms):
        # True when bytes are waiting; timeout in device ms
        real = int(timeout_ms / _SCALE) if timeout_ms > 0 else 0
        if self._sock is None and self._connect() is None:
            time.sleep_ms(real)
            return False
        # a hang-up also counts as readable: readinto() then sees the close
        return bool(self._poll.poll(real))

    @property
    def stream(self):
        if self._connect() is None:
            raise OSError(19)  # no simulator at M2M_MODEM
        return self._sock

    def deinit(self):
        self._drop()


# ---- GPIO ----
class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self._v = 0
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if getattr(self, "mode", self.IN) == self.IN:
                try:
                    return _bus_call("pin_read", pin=self.id)["value"]
                except OSError:
                    return 1 if getattr(self, "pull", -1) == self.PULL_UP else 0
            return self._v
        self._v = 1 if v else 0
        # the receiver answers every line; waiting for it keeps the pulse timing honest
        _gpio.request({"op": "pin", "pin": self.id, "value": self._v})

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, v=None):
        return self.value(v)


# ---- I2C over the simulated bus ----
class I2C:
    def __init__(self, id=0, scl=None, sda=None, freq=400000):
        self.id = id

    def scan(self):
        try:
            return _bus_call("i2c_scan", bus=self.id)["addrs"]
        except OSError:
            return []

    def writeto(self, addr, buf, stop=True):
        _bus_call("i2c_write", bus=self.id, addr=addr, data=bytes(buf).hex(), stop=stop)
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        data = bytes.fromhex(_bus_call("i2c_read", bus=self.id, addr=addr, n=len(buf))["data"])
        buf[:len(data)] = data

    def readfrom(self, addr, n, stop=True):
        buf = bytearray(n)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)

    def _memaddr(self, memaddr, addrsize):
        return memaddr.to_bytes(addrsize // 8, "big")

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self.writeto(addr, self._memaddr(memaddr, addrsize), False)
        self.readfrom_into(addr, buf)

    def readfrom_mem(self, addr, memaddr, n, addrsize=8):
        buf = bytearray(n)
        self.readfrom_mem_into(addr, memaddr, buf, addrsize)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self.writeto(addr, self._memaddr(memaddr, addrsize) + bytes(buf))


# ---- 1-Wire over the simulated bus (same methods as MicroPython's onewire.OneWire) ----
class OneWire:
    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin):
        self.pin = pin

    def reset(self, required=False):
        try:
            ok = _bus_call("ow_reset", pin=_pin_id(self.pin))["presence"]
        except OSError:
            ok = False
        if required and not ok:
            raise OSError(19)
        return ok

    def readbyte(self):
        return self.read(1)[0]

    def read(self, n):
        return bytes.fromhex(_bus_call("ow_read", pin=_pin_id(self.pin), n=n)["data"])

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:len(data)] = data

    def writebyte(self, b):
        self.write(bytes((b,)))

    def write(self, buf):
        _bus_call("ow_write", pin=_pin_id(self.pin), data=bytes(buf).hex())

    def select_rom(self, rom):
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def scan(self):
        try:
            roms = _bus_call("ow_scan", pin=_pin_id(self.pin))["roms"]
        except OSError:
            return []
        return [bytearray(bytes.fromhex(r)) for r in roms]

    def crc8(self, data):
        crc = 0
        for b in data:
            for _ in range(8):
                mix = (crc ^ b) & 1
                crc >>= 1
                if mix:
                    crc ^= 0x8C
                b >>= 1
        return crc


def _pin_id(pin):
    return pin.id if isinstance(pin, Pin) else pin


# ---- ADC ----
class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = _pin_id(pin)

    def read_uv(self):
        try:
            return _bus_call("adc", pin=self.pin)["uv"]
        except OSError:
            return 0

    def read_u16(self):
        # ESP32 full scale with 11 dB attenuation is about 3.1 V
        return min(65535, self.read_uv() * 65535 // 3100000)


# ---- watchdog: the bridge restarts the interpreter when the deadline passes ----
class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feed()

    def feed(self):
        f = _state_open("wdt", "w")
        if f:
            f.write(str(time.time_ns() // 1000000 + int(self.timeout / _SCALE)))
            f.close()


# ---- RTC: memory survives soft resets and deep sleep, not a power cycle ----
_rtc_mem = b""


class RTC:
    def datetime(self, dt=None):
        if dt is None:
            t = time.localtime(int(epoch()))
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        raise OSError(1)  # the virtual clock follows the host's; setting it is not modelled

    def memory(self, data=None):
        global _rtc_mem
        if data is None:
            try:
                f = _state_open("rtcmem", "rb")
            except OSError:
                return b""
            if f is None:
                return _rtc_mem
            data = f.read()
            f.close()
            return data
        if len(data) > 2048:
            raise ValueError("RTC memory holds 2048 bytes")
        f = _state_open("rtcmem", "wb")
        if f is None:
            _rtc_mem = bytes(data)
        else:
            f.write(data)
            f.close()


# ---- NVS (the esp32.NVS API), kept in nvs.json in the state folder beside the flash image ----
_nvs_mem = {}


class NVS:
    def __init__(self, namespace):
        self.ns = namespace
        self._all = self._load()
        self._d = self._all.setdefault(namespace, {})

    def _load(self):
        try:
            f = _state_open("nvs.json", "r")
        except OSError:
            return {}
        if f is None:
            return _nvs_mem
        try:
            return json.load(f)
        except ValueError:
            return {}
        finally:
            f.close()

    def set_i32(self, key, value):
        self._d[key] = ["i32", int(value)]

    def get_i32(self, key):
        v = self._d.get(key)
        if v is None or v[0] != "i32":
            raise OSError(-4354)  # ESP_ERR_NVS_NOT_FOUND, as esp32.NVS raises
        return v[1]

    def set_blob(self, key, value):
        self._d[key] = ["blob", bytes(value).hex()]

    def get_blob(self, key, buf):
        v = self._d.get(key)
        if v is None or v[0] != "blob":
            raise OSError(-4354)
        data = bytes.fromhex(v[1])
        buf[:len(data)] = data
        return len(data)

    def erase_key(self, key):
        if self._d.pop(key, None) is None:
            raise OSError(-4354)

    def commit(self):
        f = _state_open("nvs.json", "w")
        if f:
            json.dump(self._all, f)
            f.close()

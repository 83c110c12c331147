# Stand-in of the ESP32 port's `esp32` module: NVS (ports/esp32/esp32_nvs.c) over nvs.json in the
# state folder. Errors are OSError(-esp_err_t), as check_esp_err() in ports/esp32/mphalport.c raises
# them; codes from ESP-IDF components/nvs_flash/include/nvs.h. Key and namespace names hold at most
# 15 characters (NVS_KEY_NAME_MAX_SIZE 16 with the NUL); for a namespace the stand-in answers
# ESP_ERR_NVS_KEY_TOO_LONG too (assumed: not checked against nvs_open's code).
import json

import utime

import _m2m_sim as S
import _m2m_table as T

_NOT_FOUND = -0x1102  # ESP_ERR_NVS_NOT_FOUND
_TYPE_MISMATCH = -0x1103  # ESP_ERR_NVS_TYPE_MISMATCH
_KEY_TOO_LONG = -0x1109  # ESP_ERR_NVS_KEY_TOO_LONG
_INVALID_LENGTH = -0x110C  # ESP_ERR_NVS_INVALID_LENGTH: get_blob into a buffer that is too small


def _name(s):
    if not isinstance(s, str):
        raise TypeError("can't convert %s to str" % type(s).__name__)
    if len(s) > 15:
        raise OSError(_KEY_TOO_LONG)
    return s


def _load():
    raw = S.load(T.NVS)
    try:
        return json.loads(raw.decode()) if raw else {}
    except ValueError:
        return {}


class NVS:
    def __init__(self, namespace):
        self._ns = _name(namespace)
        self._pending = {}  # written but not committed: on the port, visible to this handle at once

    def _get(self, key, kind):
        key = _name(key)
        if key in self._pending:
            v = self._pending[key]
        else:
            v = _load().get(self._ns, {}).get(key)
        if v is None:
            raise OSError(_NOT_FOUND)
        if v[0] != kind:
            raise OSError(_TYPE_MISMATCH)
        return v[1]

    def set_i32(self, key, value):
        value = int(value)
        if not -0x80000000 <= value <= 0x7FFFFFFF:
            raise OverflowError("overflow converting long int to machine word")
        self._pending[_name(key)] = ["i32", value]

    def get_i32(self, key):
        return self._get(key, "i32")

    def set_blob(self, key, value):
        self._pending[_name(key)] = ["blob", bytes(value).hex()]

    def get_blob(self, key, buf):
        data = bytes.fromhex(self._get(key, "blob"))
        if len(data) > len(buf):
            raise OSError(_INVALID_LENGTH)
        buf[:len(data)] = data
        return len(data)

    def erase_key(self, key):
        key = _name(key)
        self._kind(key)  # OSError when absent
        self._pending[key] = None

    def _kind(self, key):
        v = self._pending[key] if key in self._pending else _load().get(self._ns, {}).get(key)
        if v is None:
            raise OSError(_NOT_FOUND)
        return v[0]

    def commit(self):
        allns = _load()
        d = allns.setdefault(self._ns, {})
        for k, v in self._pending.items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        self._pending = {}
        S.store(T.NVS, json.dumps(allns))


def gpio_deep_sleep_hold(enable):
    # modesp32.c esp32_gpio_deep_sleep_hold: gpio_deep_sleep_hold_en() / _dis(); see machine.deepsleep
    import machine

    machine._deep_sleep_hold = bool(enable)


# ---- PCNT (ports/esp32/esp32_pcnt.c, MicroPython v1.26+; docs/library/esp32.rst) ----
# Offered only when the modelled MicroPython is v1.26 or newer (M2M_MICROPYTHON, set by the virtual
# device from its --micropython; unset: the newest), as `hasattr(esp32, "PCNT")` tells on a board.
# The unit counts the edges of its pins as the bus stamped them, whenever the firmware looks (value(),
# start/stop/init, and the stand-in's pending checks: _m2m_sim.fetch), so no count depends on the
# interpreter being scheduled. Constants: ESP-IDF's legacy driver types (pcnt_types_legacy.h:
# pcnt_count_mode_t, pcnt_ctrl_mode_t, pcnt_evt_type_t). Units: 8 on the ESP32, 4 on the ESP32-S3
# (soc_caps.h SOC_PCNT_UNITS_PER_GROUP). The glitch filter: `filter` 0-1023 APB_CLK cycles (80 MHz,
# 12.5 ns: at most 12.79 us); "any pulses with width less than this will be ignored" (the PCNT
# FILTER_THRES register field, ESP32 TRM), so a level that lasts less is dropped with both its edges,
# and an edge counts once its level has lasted the filter's time. At `max` (or `min`) the counter
# goes back to zero (docs/library/esp32.rst's note; ports/esp32/modules/machine.py Counter counts
# _PCNT_RANGE per overflow) with the IRQ_MAX (IRQ_MIN) and IRQ_ZERO events. Without a limit the
# 16-bit counter wraps from 32767 to -32768: ASSUMED docs/ASSUMED.md#A-PCNT-NOLIMIT-WRAP.
# Not modelled: mode_pin / mode_low / mode_high (taken, checked, and counted as NORMAL), the
# threshold events' exact latching, a pulse narrower than an APB cycle.
def _version():
    import uos

    v = uos.getenv("M2M_MICROPYTHON")
    if not v:
        return (99, 0)
    try:
        return tuple(int(x) for x in v.split(".")[:2])
    except ValueError:
        return (99, 0)


def __getattr__(name):
    if name == "PCNT" and _version() >= (1, 26):
        return _PCNT
    raise AttributeError(name)


_NOARG = object()  # the port's MP_OBJ_NULL: a keyword not given


def _pcint(oc):
    # mp_obj_get_int
    if not isinstance(oc, int):
        raise TypeError("can't convert %s to int" % type(oc).__name__)
    return int(oc)


class _IRQ:
    # shared/runtime/mpirq.c mp_irq_type: flags() (read and cleared: esp32_pcnt_irq_info), trigger()
    def __init__(self, uid):
        self._pcu = uid

    def flags(self):
        f = self._pcu._flags
        self._pcu._flags = 0
        return f

    def trigger(self, trig=None):
        if trig is None:
            return self._pcu._trigger
        self._pcu._trigger = int(trig)
        return 0


class _PCNT:
    IGNORE = 0
    INCREMENT = 1
    DECREMENT = 2
    NORMAL = 0
    REVERSE = 1
    HOLD = 2
    IRQ_THRESHOLD1 = 1 << 2
    IRQ_THRESHOLD0 = 1 << 3
    IRQ_MIN = 1 << 4
    IRQ_MAX = 1 << 5
    IRQ_ZERO = 1 << 6
    _units = {}

    def __new__(kls, *args, **kw):
        if not args:
            raise TypeError("id")
        uid = _pcint(args[0])
        import machine

        if not 0 <= uid < (4 if machine._chip() == "esp32s3" else 8):
            raise ValueError("invalid id")
        self = kls._units.get(uid)
        if self is None:
            self = object.__new__(kls)
            self._unit = uid
            self._irq = None
            self._ch = [{}, {}]
            self._pend = {}
            self._in_handler = False
            kls._units[uid] = self
            self.deinit()
        self.init(*args[1:], **kw)
        return self

    def __init__(self, *args, **kw):
        pass  # __new__ did it (a singleton per unit, as esp32_pcnt_make_new)

    def __repr__(self):
        return "PCNT(%u)" % self._unit

    def init(self, *args, channel=0, pin=_NOARG, rising=_NOARG, falling=_NOARG, mode_pin=_NOARG,
             mode_low=_NOARG, mode_high=_NOARG, min=_NOARG, max=_NOARG, filter=_NOARG, threshold0=_NOARG,
             threshold1=_NOARG, value=_NOARG):
        if args:
            raise TypeError("function takes 1 positional arguments but %d were given" % (len(args) + 1))
        S.fetch()  # what came before counts with the settings it came under
        chn = _pcint(channel)
        if not 0 <= chn < 2:
            raise ValueError("channel")
        c = self._ch[chn]
        if pin is not _NOARG or mode_pin is not _NOARG:
            if pin is _NOARG:
                raise ValueError("pin")
            import machine

            newpin = None if pin is None else machine._pin_id(pin)
            if mode_pin not in (_NOARG, None):
                machine._pin_id(mode_pin)
            self._pcbind(c, newpin)
        if rising is not _NOARG or falling is not _NOARG or mode_low is not _NOARG or mode_high is not _NOARG:
            r = 0 if rising is _NOARG else _pcint(rising)
            f = 0 if falling is _NOARG else _pcint(falling)
            for name, v in (("rising", r), ("falling", f), ("mode_low", 0 if mode_low is _NOARG else _pcint(mode_low)),
                            ("mode_high", 0 if mode_high is _NOARG else _pcint(mode_high))):
                if not 0 <= v < 3:  # mp_uint_t: a negative value is a large one
                    raise ValueError(name)
            c["rising"], c["falling"] = r, f
        if filter is not _NOARG:
            f = _pcint(filter)
            if not 0 <= f <= 1023:
                raise ValueError("filter")
            self._filter = f
        clear = False
        if value is not _NOARG:
            if _pcint(value) != 0:
                raise ValueError("value")
            clear = True
        if min is not _NOARG:
            v = _pcint(min)
            if not -32768 <= v <= 0:
                raise ValueError("minimum")
            self._lim[0] = v
            clear = True
        if max is not _NOARG:
            v = _pcint(max)
            if not 0 <= v <= 32767:
                raise ValueError("maximum")
            self._lim[1] = v
            clear = True
        for i, (name, t) in enumerate((("threshold0", threshold0), ("threshold1", threshold1))):
            if t is not _NOARG:
                v = _pcint(t)
                if not -32768 <= v <= 32767:
                    raise ValueError(name)
                self._thres[i] = v
                clear = True
        if clear:
            self._pcv = 0

    def _pcbind(self, c, pin):
        old = c.get("pin")
        if old is not None and self in S.counters.get(old, ()):
            if not any(oc is not c and oc.get("pin") == old for oc in self._ch):
                S.counters[old].remove(self)
                if not S.counters[old]:
                    del S.counters[old]
                self._pend.pop(old, None)
        c["pin"] = pin
        if pin is not None:
            units = S.counters.setdefault(pin, [])
            if self not in units:
                units.append(self)
            c["since"] = utime.ticks_us()  # what the bus queued before is not this unit's

    def deinit(self):
        S.fetch()
        if self._irq is not None:
            self._handler = None
            self._trigger = 0
        for c in self._ch:
            self._pcbind(c, None)
            c.clear()
        self._handler = None
        self._trigger = 0
        self._flags = 0
        self._sched = False
        self._filter = 0
        self._lim = [0, 0]
        self._thres = [0, 0]
        self._run = False
        self._pcv = 0

    def start(self):
        S.fetch()
        if not self._run:
            self._run = True
            self._pcsince = utime.ticks_us()

    def stop(self):
        S.fetch()
        self._pcsettle(True)
        self._run = False

    def _edge(self, e):
        # one edge [pin, level, instant] of a pin this unit watches
        pin, level = e[0], e[1]
        t = e[2] & S._TMASK if len(e) > 2 else utime.ticks_us()
        if not self._run or utime.ticks_diff(t, self._pcsince) < 0:
            return
        e = (pin, level, t)
        if self._filter:
            p = self._pend.pop(pin, None)
            if p is not None:
                if utime.ticks_diff(t, p[2]) * S.SCALE * 80 < self._filter:
                    return  # a glitch: the level went back within the filter's width
                self._apply(p)
            self._pend[pin] = (pin, level, t)
            return
        self._apply(e)

    def _pcsettle(self, all=False):
        # pending edges whose level has lasted the filter's width count now
        tnow = utime.ticks_us()
        for pin, p in list(self._pend.items()):
            if all or utime.ticks_diff(tnow, p[2]) * S.SCALE * 80 >= self._filter:
                del self._pend[pin]
                self._apply(p)

    def _apply(self, e):
        evs = 0
        for c in self._ch:
            if c.get("pin") == e[0] and utime.ticks_diff(e[2], c.get("since", 0)) >= 0:
                a = c.get("rising" if e[1] else "falling", 0)
                if a:
                    evs |= self._pcstep(1 if a == 1 else -1)
        if evs and self._handler is not None and evs & self._trigger:
            self._flags |= evs & self._trigger
            self._sched = True
            # an idle board runs the scheduled handler microseconds after the event, before the next
            # edges: here at the event's place among them (a board's own latency is not modelled)
            if not self._in_handler:
                self._scheduled()

    def _pcstep(self, d):
        v = self._pcv + d
        llim, hlim = self._lim
        evs = 0
        if hlim and v >= hlim:
            v, evs = 0, self.IRQ_MAX | self.IRQ_ZERO
        elif llim and v <= llim:
            v, evs = 0, self.IRQ_MIN | self.IRQ_ZERO
        elif v > 32767:
            v = -32768
        elif v < -32768:
            v = 32767
        if v == 0:
            evs |= self.IRQ_ZERO
        if v == self._thres[0]:
            evs |= self.IRQ_THRESHOLD0
        if v == self._thres[1]:
            evs |= self.IRQ_THRESHOLD1
        self._pcv = v
        return evs

    def value(self, *args):
        if len(args) > 1:
            raise TypeError("function takes at most 2 arguments")
        if args and _pcint(args[0]) != 0:
            raise ValueError("value")
        S.fetch()
        self._pcsettle()
        while True:
            v = self._pcv
            # pending events run first, so the caller's state matches the value (esp32_pcnt_value)
            if self._flags and self._handler is not None:
                self._handler(self)
            else:
                break
        if args:
            self._pcv = 0
        return v

    def _scheduled(self):
        # the event's handler, scheduled by the interrupt: as py/scheduler.c runs it, never inside
        # itself, an exception printed
        if self._sched and not self._in_handler:
            self._sched = False
            if self._handler is not None:
                self._in_handler = True
                try:
                    self._handler(self)
                except Exception as x:
                    import sys

                    sys.print_exception(x)
                finally:
                    self._in_handler = False

    def irq(self, *args, **kw):
        # irq(handler=None, trigger=IRQ_ZERO): with no argument only the irq object (esp32_pcnt_irq)
        if len(args) > 2:
            raise TypeError("function takes at most 3 arguments")
        gvn = bool(args or kw)
        handler = args[0] if args else kw.pop("handler", None)
        trigger = args[1] if len(args) > 1 else kw.pop("trigger", self.IRQ_ZERO)
        if kw:
            raise TypeError("unexpected keyword argument '%s'" % list(kw)[0])
        if self._irq is None:
            self._irq = _IRQ(self)
        if gvn:
            trigger = _pcint(trigger)
            if trigger < self.IRQ_THRESHOLD1 or trigger >= self.IRQ_ZERO << 1:
                raise ValueError("trigger")
            S.fetch()
            if handler is not None:
                self._handler = handler
                self._trigger = trigger
            else:
                self._handler = None
                self._trigger = 0
        return self._irq

# The sampler: reads each sensor at its interval (two phases: start() a conversion, read() when it
# is done), and hands readings (name, value, unit, t) to sink(readings, urgent):
#  - deadband: a quantity is reported when it moved more than `deadband` since its last report, or
#    `max_interval_s` after it; or, with `window_s`, as min / max / mean / count at each window's end;
#  - alarms (quantity, above or below a level, hysteresis) report at once with urgent=True and post
#    an "alarm" event, raised and cleared;
#  - faults (missing device, CRC, out of range, any driver error) post one "sensor.fault" event per
#    change of state and never escape; a sensor absent at start is reported once and not polled.
# step() does one bounded pass and returns the ms until the next sensor is due; hook() is the same
# pass over the sensors that have alarms, for m2m.loop.idle(), so alarms keep being read while a
# report waits on the network: the sink must only queue (no AT command, no socket).
from micropython import const

from m2m import hal
from m2m.sense import QUANTITIES

try:
    from m2m.events import post as _post
except ImportError:  # the event stream is optional
    _post = None

_IDLE = const(0)
_CONVERTING = const(1)
_ABSENT = const(2)


def _event(kind, **f):
    if _post is not None:
        _post(kind, **f)
    else:
        print("event:", kind, " ".join("%s=%s" % kv for kv in f.items()))


class _Sensor:
    def __init__(self, sid, make, names, units, interval_ms, deadband, max_ms, window_ms, alarms, ranges):
        self.sid = sid
        self.make = make
        self.drv = None
        self.names = names
        self.units = units
        self.interval = interval_ms
        self.deadband = deadband
        self.max_ms = max_ms
        self.window = window_ms
        self.alarms = alarms  # [index, above (bool), level, hysteresis, active]
        self.ranges = ranges
        self.state = _IDLE
        self.due = self.cycle = hal.ticks_ms()
        self.fault = None
        n = len(names)
        self.last = [None] * n  # last reported value
        self.last_t = [0] * n  # ticks of that report
        self.agg = [None] * n  # [min, max, sum, count]
        self.win_end = hal.ticks_add(self.due, window_ms) if window_ms else 0
        self.now = None  # the latest good reading's values (reported or not), and its epoch time
        self.now_t = 0


class Sampler:
    def __init__(self, sink):
        self.sink = sink
        self.sensors = []
        self._busy = False
        self.faults = 0

    def add(self, sid, make, quant=None, units=None, prefix=None, interval_s=60, deadband=0,
            max_interval_s=900, window_s=0, alarms=(), ranges=None):
        # make: a driver, or a function that opens one, or (fn, args, kwargs) for fn(*args, **kwargs)
        # (called at the first reading: a missing device is then a fault event, not an exception
        # at boot). alarms: dicts with "q"
        # (quantity), "above" or "below" (level), optional "hyst".
        if quant is None:
            quant = make.QUANT
            if ranges is None:
                ranges = make.RANGE
        quant = tuple(quant)
        if units is None:
            units = tuple(QUANTITIES.get(q, ("",))[0] for q in quant)
        names = tuple((prefix + "." + q) if prefix else q for q in quant)
        al = []
        for a in alarms:
            q = a.get("q", quant[0])
            if q not in quant:
                raise ValueError("alarm on %r: sensor %s measures %s" % (q, sid, ", ".join(quant)))
            above = "above" in a
            al.append([quant.index(q), above, a["above"] if above else a["below"], a.get("hyst", 0), False])
        s = _Sensor(sid, make, names, tuple(units), int(interval_s * 1000), deadband,
                    int(max_interval_s * 1000), int(window_s * 1000), al, ranges)
        if not callable(make) and type(make) is not tuple:
            s.drv = make
        self.sensors.append(s)
        return s

    def names(self):
        # every reading name the sensors give (windows' .min/.max/... left out), in config order
        return [n for s in self.sensors for n in s.names]

    def latest(self, name):
        # (value, unit, t) of the newest good reading of `name`, read whether or not it was
        # reported (deadband, window); None before the first one. For readers such as the LwM2M
        # IPSO objects, which need no table of their own.
        for s in self.sensors:
            if name in s.names and s.now is not None:
                i = s.names.index(name)
                return (s.now[i], s.units[i], s.now_t)
        return None

    def hook(self):
        # for loop.add_hook: only the sensors with alarms (a Modbus timeout must not stall an AT wait)
        self.step(True)

    def step(self, alarms_only=False):
        # one pass over the due sensors; ms until the next is due (bounded by 60 s)
        if self._busy:
            return 0
        self._busy = True
        try:
            now = hal.ticks_ms()
            wait = 60000
            for s in self.sensors:
                if s.state == _ABSENT or (alarms_only and not s.alarms):
                    continue
                d = hal.ticks_diff(s.due, now)
                if d <= 0:
                    self._run(s, now)
                    now = hal.ticks_ms()
                    d = hal.ticks_diff(s.due, now)
                if d < wait:
                    wait = d
            return max(wait, 0)
        finally:
            self._busy = False

    def _fault(self, s, kind, msg):
        if s.fault != kind:
            s.fault = kind
            self.faults += 1
            _event("sensor.fault", sensor=s.sid, fault=kind, error=msg)

    def _run(self, s, now):
        try:
            if s.drv is None:
                try:
                    m = s.make  # a function, or (fn, args, kwargs) (m2m.sense.build)
                    s.drv = m[0](*m[1], **m[2]) if type(m) is tuple else m()
                except OSError as e:
                    s.state = _ABSENT  # reported once, never polled again
                    self._fault(s, "missing", "no answer (%s): check its wiring and address" % e)
                    return
            if s.state == _IDLE:
                s.cycle = s.due if hal.ticks_diff(now, s.due) < s.interval else now  # keep the cadence
                ms = s.drv.start()
                if ms:
                    s.state = _CONVERTING
                    s.due = hal.ticks_add(now, ms)
                    return
            s.state = _IDLE
            s.due = hal.ticks_add(s.cycle, s.interval)
            vals = s.drv.read()
        except OSError as e:
            s.state = _IDLE
            s.due = hal.ticks_add(now, s.interval)
            self._fault(s, "missing" if getattr(e, "errno", 0) == 19 else "io", repr(e))
            return
        except Exception as e:  # CRC, identity, anything a driver raises: an event, never a crash
            s.state = _IDLE
            s.due = hal.ticks_add(now, s.interval)
            self._fault(s, "crc" if "CRC" in str(e) else "error", str(e))
            return
        if s.ranges:
            for i, v in enumerate(vals):
                lo, hi = s.ranges[i]
                if not lo <= v <= hi:
                    self._fault(s, "range", "%s=%s outside %s..%s" % (s.names[i], v, lo, hi))
                    return
        if s.fault is not None:
            _event("sensor.ok", sensor=s.sid)
            s.fault = None
        self._consider(s, vals, now)

    def _consider(self, s, vals, now):
        t = hal.epoch()
        s.now = vals
        s.now_t = t
        urgent = []
        for a in s.alarms:
            i, above, level, hyst, active = a
            v = vals[i]
            if not active and (v > level if above else v < level):
                a[4] = True
            elif active and (v < level - hyst if above else v > level + hyst):
                a[4] = False
            else:
                continue
            urgent.append((s.names[i], v, s.units[i], t))
            _event("alarm", sensor=s.sid, name=s.names[i], value=v, unit=s.units[i],
                   state="raised" if a[4] else "cleared", level=level)
        if urgent:
            for r in urgent:
                i = s.names.index(r[0])
                s.last[i] = r[1]
                s.last_t[i] = now
            self.sink(tuple(urgent), True)
        out = []
        if s.window:
            if hal.ticks_diff(now, s.win_end) >= 0:  # the window closed: this reading opens the next
                s.win_end = hal.ticks_add(now, s.window)
                for i, g in enumerate(s.agg):
                    if g is None:
                        continue
                    n, u = s.names[i], s.units[i]
                    out.append((n + ".min", g[0], u, t))
                    out.append((n + ".max", g[1], u, t))
                    out.append((n + ".mean", g[2] / g[3], u, t))
                    out.append((n + ".count", g[3], "", t))
                    s.agg[i] = None
            for i, v in enumerate(vals):
                g = s.agg[i]
                if g is None:
                    s.agg[i] = [v, v, v, 1]
                else:
                    if v < g[0]:
                        g[0] = v
                    if v > g[1]:
                        g[1] = v
                    g[2] += v
                    g[3] += 1
        else:
            for i, v in enumerate(vals):
                last = s.last[i]
                if (last is None or abs(v - last) > s.deadband
                        or hal.ticks_diff(now, s.last_t[i]) >= s.max_ms):
                    if last is not None and any(r[0] == s.names[i] for r in urgent):
                        continue
                    s.last[i] = v
                    s.last_t[i] = now
                    out.append((s.names[i], v, s.units[i], t))
        if out:
            self.sink(tuple(out), False)

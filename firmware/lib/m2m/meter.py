# Meters for billing (config section "meter"; README "Usage metering"): each an integer counter
#  - pulses:   an S0 / reed pulse input (m2m.sense.pulse: every pulse in RTC memory, to flash every
#              save_n pulses), one count per pulse;
#  - hours:    running time of an input at its active level, or of a sampler reading above a level,
#              one count per second (k "1/3600" h by default);
#  - integral: a sampler reading integrated over time, one count per `every` (value x seconds).
# Records (m2m.usagerec) at each multiple of interval_s (UTC) and on demand ("usage" /cmd command).
# What a power cut costs: nothing that is in a record (the record is the unit of truth: a counter
# found below its last record's end goes on from that end, so nothing is billed twice); of what is
# not yet recorded, the pulses since the last flash save (none with save_n 1) and at most save_s of
# running time or integral.
from m2m import hal
from m2m.usagerec import Chain, check_name, load_key

_PULSES, _HOURS, _INTEGRAL = 0, 1, 2
_TYPES = ("pulses", "hours", "integral")


def _post(kind, **f):
    try:
        from m2m.events import post

        post(kind, **f)
    except ImportError:
        pass


class _Meter:
    def __init__(self, e, cfg, sampler):
        self.name = e.get("name")
        check_name("meter", self.name or "")
        t = e.get("type")
        if t not in _TYPES:
            raise ValueError("meter %s: type %r: give one of %s" % (self.name, t, ", ".join(_TYPES)))
        self.kind = _TYPES.index(t)
        self.k = str(e.get("k", "1/3600" if self.kind == _HOURS else "1"))
        for c in self.k:
            if c not in "0123456789./":
                raise ValueError("meter %s: k %r: give units per count as a decimal (\"0.5\") or a "
                                 "fraction (\"1/3600\")" % (self.name, self.k))
        self.unit = e.get("unit", "h" if self.kind == _HOURS else None)
        if self.unit is None:
            raise ValueError("meter %s: give \"unit\" (L, m3, kWh, pages, ...)" % self.name)
        check_name("unit", self.unit)
        self.pin = None
        self.src = None
        self.reading = e.get("reading")
        self.above = e.get("above")
        self.every = float(e.get("every", 1))
        self.frac = 0.0  # hours: ms not yet a whole second; integral: value x s not yet a count
        if self.kind == _PULSES:
            from m2m.sense.pulse import Pulses

            if "pin" not in e:
                raise ValueError("meter %s: a pulses meter needs \"pin\"" % self.name)
            self.src = Pulses(e["pin"], e.get("slot", 0), e.get("debounce_ms", 20),
                              path=cfg["state"].rsplit(".", 1)[0] + ".pulses",
                              flush_n=cfg["save_n"], flush_s=cfg["save_s"])
        elif "pin" in e:
            if self.kind != _HOURS:
                raise ValueError("meter %s: an integral meter reads \"reading\", not a pin" % self.name)
            self.pin = hal.Pin(e["pin"], hal.Pin.IN)
            self.active = e.get("active", 1)
        elif self.reading is None or sampler is None:
            raise ValueError("meter %s: give \"pin\" or \"reading\" (a sensor reading of sense.sensors)"
                             % self.name)
        elif self.kind == _HOURS and self.above is None:
            raise ValueError("meter %s: an hours meter on a reading needs \"above\"" % self.name)
        self.sampler = sampler
        self.count = 0

    def update(self, dt_ms):
        # add what the last dt_ms brought (pulses are counted by their interrupt)
        if self.kind == _PULSES:
            self.src.sync()  # a hardware counter's pulses (esp32.PCNT) into src.count
            self.count = self.src.count
            return
        if self.pin is not None:
            on = self.pin.value() == self.active
            v = None
        else:
            r = self.sampler.latest(self.reading)
            if r is None:
                return
            v = r[0]
            on = v > self.above if self.kind == _HOURS else True
        if not on:
            return
        if self.kind == _HOURS:
            self.frac += dt_ms
            whole = int(self.frac // 1000)
            self.frac -= whole * 1000
        else:
            self.frac += v * dt_ms / 1000
            whole = int(self.frac // self.every)
            self.frac -= whole * self.every
        self.count += whole


class Meters:
    # The loop service: step() -> ms; record(name=None) -> [n, ...]; counters() -> {name: count}
    def __init__(self, cfg, outbox, device_id, key=None, sampler=None):
        self.cfg = cfg
        self.interval = cfg["interval_s"]
        self.save_ms = cfg["save_s"] * 1000
        if key is None:
            key = load_key(cfg["key_file"])
        self.chain = ch = Chain(device_id, key, outbox, cfg["state"])
        x = ch.extra
        now = hal.epoch()
        self.meters = []
        for e in cfg["meters"]:
            m = _Meter(e, cfg, sampler)
            if m.name in [o.name for o in self.meters]:
                raise ValueError("meter %s is defined twice in meter.meters" % m.name)
            live = x.get(m.name)
            if live:
                m.count, m.frac = live[0], live[1]
            was = m.count
            if m.src is not None:
                m.src.sync()
                was = m.src.count
                m.count = max(m.count, was)
            last = ch.meters.get(m.name)
            if last and m.count < last[0]:
                m.count = last[0]
            if was < m.count:
                # the counter lost counts (flash or RTC memory gone): it goes on from the saved state
                # or the last record's end, whichever is higher, so no unit is billed twice
                _post("meter.reset", meter=m.name, was=was, now=m.count)
                if m.src is not None:
                    # added, not set: a pulse its handler counted since `was` was read (a scheduled
                    # handler runs at the VM's pending checks, every conditional jump) stays counted
                    m.src.count += m.count - was
                    m.src._store_rtc()
                    m.src.save()
            self.meters.append(m)
            ch.begin(m.name, m.count, now)
            x[m.name] = [m.count, m.frac]
        self._t = hal.ticks_ms()
        self._saved = self._t
        self._next = (now // self.interval + 1) * self.interval
        try:
            from m2m.report import contract

            contract.EXTRA["usage"] = self._cmd
        except ImportError:
            pass

    def _cmd(self, args):
        return {"records": self.record(args.get("meter"))}

    def _update(self):
        now = hal.ticks_ms()
        dt = hal.ticks_diff(now, self._t)
        self._t = now
        x = self.chain.extra
        for m in self.meters:
            m.update(dt)
            x[m.name] = [m.count, m.frac]

    def counters(self):
        self._update()
        return {m.name: m.count for m in self.meters}

    def record(self, name=None):
        # a record per meter (or of `name`) now; returns their numbers
        if name is not None and name not in [m.name for m in self.meters]:
            raise ValueError("no meter %r: give one of %s" % (name, ", ".join(m.name for m in self.meters)))
        self._update()
        t = hal.epoch()
        out = []
        for m in self.meters:
            if name is None or m.name == name:
                if m.src is not None:
                    m.src.save()  # the counter on flash before a record ends there
                out.append(self.chain.record(m.name, m.count, m.k, m.unit, t))
        self._saved = hal.ticks_ms()
        return out

    def step(self):
        self._update()
        for m in self.meters:
            if m.src is not None:
                m.src.read()  # pulses to flash every save_n (m2m.sense.pulse)
        if hal.epoch() >= self._next:
            self.record()
            self._next = (hal.epoch() // self.interval + 1) * self.interval
        elif hal.ticks_diff(hal.ticks_ms(), self._saved) >= self.save_ms:
            self.chain.save()
            self._saved = hal.ticks_ms()
        return 1000

    def stop(self):
        # the supervisor's stop (Ctrl-C): the counters and the chain's live state to flash
        self._update()
        for m in self.meters:
            if m.src is not None:
                m.src.save()
        self.chain.save()


def setup(cfg, outbox, device_id, sampler=None):
    # Meters from the config's "meter" section, or None when it defines none (nothing imported)
    c = cfg.get("meter") or {}
    if not c.get("meters"):
        return None
    return Meters(c, outbox, device_id, sampler=sampler)


def service(ctx):
    # the supervisor's plugin hook (m2m.supervisor.PLUGINS entry ("meter", "meters", "m2m.meter",
    # False): no network needed, records wait in the outbox): ctx {"cfg", "id", "outbox", "sampler", ...}
    return Meters(ctx["cfg"]["meter"], ctx["outbox"], ctx["id"], sampler=ctx.get("sampler"))

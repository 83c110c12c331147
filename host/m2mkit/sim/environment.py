"""A slowly varying environment for the simulated sensors, so that deadbands and alarms can be shown
(`m2mkit demo`) and driven by tests.

    env = Environment(day_s=600, seed=1)           # a "day" lasts 10 minutes of device time
    env.attach("temperature", bme.set_temperature_c) ...
    env.bme280(bme); env.sht4x(sht); env.ds18b20(ds); env.adc(bus, 35, divider=2.0)
    env.excursion("temperature", start_s=120, length_s=60, delta=15)   # a hot spell: alarms
    env.apply(t_s)                                  # set every attached sensor for time t_s
    env.start(time_scale=1)                         # or a thread that applies it every second

Values are pure functions of time (a daily sine, a slow random walk from `seed`, excursions), so a
test can ask what a sensor reads at any instant with value(quantity, t_s).
"""

import math
import random
import threading
import time

BASE = {  # mean, daily swing (amplitude), walk step per "hour"
    "temperature": (21.0, 4.0, 0.3),
    "humidity": (50.0, 12.0, 1.0),
    "pressure": (101325.0, 150.0, 20.0),
    "battery": (3.9, 0.05, 0.01),
}


class Environment:
    def __init__(self, day_s=86400, seed=0, base=None):
        self.day_s = day_s
        self.base = dict(BASE)
        self.base.update(base or {})
        self.excursions = []
        self.sinks = []  # (quantity, function taking the value)
        self.fixed = {}  # quantity -> value set by a test
        rnd = random.Random(seed)
        self.walk = {q: [rnd.gauss(0, 1) for _ in range(256)] for q in self.base}
        self._stop = threading.Event()
        self.thread = None

    def value(self, quantity, t_s):
        if quantity in self.fixed:
            return self.fixed[quantity]
        mean, swing, step = self.base[quantity]
        phase = 2 * math.pi * (t_s / self.day_s)
        hour = self.day_s / 24
        i = int(t_s // hour)
        w = self.walk[quantity]
        frac = (t_s % hour) / hour
        drift = step * (sum(w[:i % 256]) * 0.2 + w[i % 256] * frac)
        v = mean + swing * math.sin(phase - math.pi / 2) + drift
        for q, start, length, delta in self.excursions:
            if q == quantity and start <= t_s < start + length:
                v += delta * math.sin(math.pi * (t_s - start) / length)  # up and back down
        return v

    def set(self, quantity, value):
        """Hold a quantity at a value (None lets it vary again)."""
        if value is None:
            self.fixed.pop(quantity, None)
        else:
            self.fixed[quantity] = value

    def excursion(self, quantity, start_s, length_s, delta):
        self.excursions.append((quantity, start_s, length_s, delta))

    def attach(self, quantity, fn):
        self.sinks.append((quantity, fn))

    def bme280(self, dev):
        self.sinks.append(("@bme280", dev))

    def sht4x(self, dev):
        self.sinks.append(("@sht4x", dev))

    def ds18b20(self, dev, offset=0.0):
        self.attach("temperature", lambda v: setattr(dev, "temperature", v + offset))

    def adc(self, bus, pin, quantity="battery", divider=1.0):
        self.attach(quantity, lambda v: bus.adc.__setitem__(pin, int(v / divider * 1e6)))

    def apply(self, t_s):
        v = {q: self.value(q, t_s) for q in self.base}
        for q, target in self.sinks:
            if q == "@bme280":
                target.set(temperature=v["temperature"], humidity=v["humidity"], pressure=v["pressure"])
            elif q == "@sht4x":
                target.temperature, target.humidity = v["temperature"], v["humidity"]
            else:
                target(v[q])
        return v

    def start(self, time_scale=1.0, every_s=1.0):
        """Apply the environment every `every_s` real seconds, device time = real time * time_scale."""
        t0 = time.monotonic()

        def run():
            while not self._stop.wait(every_s):
                self.apply((time.monotonic() - t0) * time_scale)

        self.apply(0)
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self.thread:
            self.thread.join(5)

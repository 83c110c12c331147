# Sensors from the device config ("sense" section, m2m/config.py) and the board file: one sampler.
# Each entry of sense.sensors is a dict with "type" (bme280, sht4x, ds18b20, battery, pulses,
# modbus), optional "id" (names readings "<id>.<quantity>"), "interval_s", "deadband",
# "max_interval_s", "window_s", "alarms" and the type's own keys (addr, pin, rom, slot,
# debounce_ms, uart, unit, regs). Drivers are imported only for the types configured.
from m2m.sense.sampler import Sampler

TYPES = ("bme280", "sht4x", "ds18b20", "battery", "pulses", "modbus")


def _opener(e, b, flush_s=3600):
    # (fn, args, kwargs): the sampler opens the driver with fn(*args, **kwargs) at its first reading.
    # No function of this module: one (a lambda here) would keep the whole module on the heap for
    # as long as the sampler lives (a function holds its module's globals), where it is dropped
    # after the build; fn is the driver's (or the board's) own, in a module the sensor holds anyway
    t = e["type"]
    if t == "bme280" or t == "sht4x":
        from m2m import board

        if t == "bme280":
            from m2m.sense.bme280 import BME280 as cls
        else:
            from m2m.sense.sht4x import SHT4x as cls
        return board.i2c_device, (cls, b, e.get("addr", 0x76 if t == "bme280" else 0x44)), {}
    if t == "ds18b20":
        from m2m.sense import ds18b20

        rom = e.get("rom")
        return ds18b20.on_pin, (e["pin"], bytes.fromhex(rom) if rom else None), {}
    if t == "battery":
        from m2m.sense import battery

        return battery.opened, (b,), {}
    if t == "pulses":
        from m2m.sense.pulse import Pulses

        return Pulses, (e["pin"], e.get("slot", 0), e.get("debounce_ms", 20)), {"flush_s": flush_s}
    if t == "modbus":
        from m2m.sense import modbus

        regs = [(r["name"], r.get("fc", 3), r["addr"], r.get("scale", 1)) for r in e["regs"]]
        return modbus.opened, (e, regs), {}
    raise ValueError("sense.sensors: unknown type %r (known: %s)" % (t, ", ".join(TYPES)))


def sampler(cfg, sink, b=None):
    # cfg: the validated config; b: the board dict. Bad entries raise ValueError naming the entry.
    from m2m import board

    b = board.load() if b is None else b
    b = b or {}
    sc = cfg["sense"]
    sm = Sampler(sink)
    entries = list(sc["sensors"])
    for n, e in enumerate(entries):
        if type(e) is not dict or "type" not in e:
            raise ValueError("sense.sensors[%d] must be an object with a \"type\" (one of %s)" % (n, ", ".join(TYPES)))
    if sc["battery"] and not any(e["type"] == "battery" for e in entries):
        entries.append({"type": "battery"})
    for e in entries:
        make = _opener(e, b, sc["flush_s"])
        quant = units = None
        if e["type"] == "modbus":
            quant = tuple(r["name"] for r in e["regs"])
            units = tuple(r.get("unit", "") for r in e["regs"])
        else:
            quant = {"bme280": ("temperature", "humidity", "pressure"), "sht4x": ("temperature", "humidity"),
                     "ds18b20": ("temperature",), "battery": ("battery",), "pulses": ("pulses",)}[e["type"]]
        ranges = {"bme280": ((-40, 85), (0, 100), (30000, 110000)), "sht4x": ((-40, 125), (0, 100)),
                  "ds18b20": ((-55, 125),), "battery": ((0, 6),)}.get(e["type"])
        sm.add(e.get("id") or e["type"], make, quant, units, e.get("id"),
               e.get("interval_s", sc["interval_s"]), e.get("deadband", sc["deadband"]),
               e.get("max_interval_s", sc["max_interval_s"]), e.get("window_s", 0),
               e.get("alarms", ()), ranges)
    return sm


def check(seconds=3, cfg=None, b=None):
    # Read every configured sensor once and print the readings ("sense: name=value unit"); faults
    # show as event lines. At a board's REPL: from m2m.sense import build; build.check()
    from m2m import config, hal

    got = []
    sm = sampler(cfg or config.load(), lambda r, u: got.extend(r), b)
    want = sum(len(s.names) for s in sm.sensors)
    t0 = hal.ticks_ms()
    while len(got) < want and hal.ticks_diff(hal.ticks_ms(), t0) < seconds * 1000:
        w = sm.step()
        if all(s.state == 2 or s.fault for s in sm.sensors if s.last[0] is None):
            break  # every sensor has read or failed
        hal.sleep_ms(min(w, 100) or 1)
    for r in got:
        print("sense: %s=%s %s" % (r[0], r[1], r[2]))
    return got

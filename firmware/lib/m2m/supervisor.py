# The device's run, started by main.py (after m2m.app.main) when /config.json sets device.autorun:
#   outbox -> sampler (sense section; its sink queues, Sense.step appends to the outbox) ->
#   network + MQTT reporter (mqtt.broker) and plugins such as the LwM2M client (PLUGINS) ->
#   m2m.loop.run with the watchdog fed by a loop hook.
# Each layer is imported only when the config enables it, with gc.collect() between layers.
# A service's exception is an "app.crash" event and the service runs again after a back-off
# (1 s doubling to 5 min); only the watchdog resets the device. Ctrl-C stops the run and leaves the
# REPL (the watchdog, which the ESP32 port cannot stop, is stretched to STRETCH_MS).
# Reference: README "Quick start", docs/CONTRACTS.md "Supervisor".
import gc
import json
import sys

from micropython import const

from m2m import events, hal, loop

_BACKOFF_MIN = const(1000)
_BACKOFF_MAX = const(300000)
_CALM_MS = const(600000)  # this long without a crash: the back-off starts again at 1 s
_QUEUE = const(32)  # readings waiting for the outbox (the sink may run inside an idle hook)
_PER_RECORD = const(12)  # readings per outbox record (a record is at most 1024 bytes)
_EVENTS_PER_STEP = const(8)
STRETCH_MS = 3600000  # the watchdog's timeout once Ctrl-C has stopped the run

# events left on the console, not sent: the signal is read every net.check_s
SKIP = ("net.signal",)

# Services other layers add: (config section, key or tuple of keys, module[, needs the network]).
# When cfg[section][key] is set (any of the keys) the supervisor imports the module and adds
# module.service(ctx) to the loop (an object with step() -> ms; optional stop() or close()), in this
# order. ctx: {"cfg", "board", "id", "outbox", "net", "sampler", "meters"} (net / sampler / meters
# None when not running; meters: the m2m.meter service, built before the orders that read it). The
# network runs whenever the MQTT broker or a plugin that needs it (all but those marked False) is on.
# Meters and orders only write the outbox (the MQTT reporter, with mqtt.broker, takes it further).
PLUGINS = [("lwm2m", ("server", "bootstrap"), "m2m.lwm2m"), ("meter", "meters", "m2m.meter", False),
           ("orders", "rules", "m2m.orders", False)]

current = None  # the Run that main() started: at the REPL after Ctrl-C, supervisor.current.status()


class Guard:
    # Runs a service so that its exception never ends the loop: the exception is printed (its
    # traceback, but for a MemoryError), posted as an "app.crash" event (service, error, count,
    # retry_s), on_crash() runs (e.g. close a connection), and the service is stepped again after
    # the back-off.
    def __init__(self, name, svc, on_crash=None):
        self.name = name
        self.svc = svc
        self.on_crash = on_crash
        self.crashes = 0
        self.backoff = _BACKOFF_MIN
        self.wait_until = None
        self.last_crash = 0

    def step(self):
        now = hal.ticks_ms()
        if self.wait_until is not None:
            left = hal.ticks_diff(self.wait_until, now)
            if left > 0:
                return left
            self.wait_until = None
        if self.crashes and hal.ticks_diff(now, self.last_crash) > _CALM_MS:
            self.backoff = _BACKOFF_MIN
        try:
            return self.svc.step()
        except Exception as e:  # not KeyboardInterrupt / SystemExit: Ctrl-C still stops the run
            self.crashes += 1
            self.last_crash = now
            b = self.backoff
            self.backoff = min(b * 2, _BACKOFF_MAX)
            self.wait_until = hal.ticks_add(now, b)
            if not isinstance(e, MemoryError):  # where an allocation failed says little: the event
                sys.print_exception(e)
            events.post("app.crash", service=self.name, error=repr(e)[:120], count=self.crashes,
                        retry_s=b // 1000)
            if self.on_crash is not None:
                try:
                    self.on_crash()
                except Exception:
                    pass
            gc.collect()
            return b


class Sense:
    # The sampler as a loop service. Its sink only queues (it may run inside loop.idle(), where the
    # outbox must not be written); step() appends what is queued as TELEMETRY records of at most
    # _PER_RECORD readings, at once (alarm readings included: they never wait for a batch).
    def __init__(self, outbox):
        self.outbox = outbox
        self.sampler = None
        self.q = []
        self.dropped = 0
        self.records = 0

    def sink(self, readings, urgent):
        q = self.q
        for r in readings:
            if len(q) >= _QUEUE:
                q.pop(0)
                self.dropped += 1
            q.append(r)

    def step(self):
        w = self.sampler.step()
        self.flush()
        return w

    def flush(self):
        from m2m.report.contract import pack_readings

        q = self.q
        while q:
            part = q[:_PER_RECORD]
            self.outbox.append(1, pack_readings(part))  # outbox.TELEMETRY
            del q[:len(part)]
            self.records += 1
        if self.dropped:
            n = self.dropped
            self.dropped = 0
            events.post("sense.dropped", readings=n)


class Forward:
    # Events from the ring into the outbox: "alarm" as ALARM records, the rest (but SKIP) as EVENT
    # records, {"kind", "t", ...fields}; the reporter publishes them to .../events.
    def __init__(self, outbox):
        self.outbox = outbox
        self.sent = 0

    def step(self):
        for _ in range(_EVENTS_PER_STEP):
            e = events.take()
            if e is None:
                return 1000
            kind, _, f = e
            if kind in SKIP:
                continue
            d = {}
            for k in f:
                v = f[k]
                t = type(v)
                if t is bytes:
                    v = v.decode()
                elif v is not None and t not in (int, float, str, bool):
                    v = str(v)  # MicroPython's json would write its repr: not JSON
                d[k] = v
            d["kind"] = kind
            d["t"] = hal.epoch()
            self.outbox.append(2 if kind == "alarm" else 3, json.dumps(d)[:1024])  # outbox.ALARM / EVENT
            self.sent += 1
        return 0


class Run:
    # The layers, built from the config and the board (m2m.supervisor_build, which leaves the heap
    # once it has run); run() steps them until Ctrl-C.
    def __init__(self, cfg, b=None, outbox_path="/outbox"):
        self.cfg = cfg
        self.services = []
        self.sense = None
        self.meters = None  # m2m.meter.Meters when meter.meters is set
        self.net = None
        self.reporter = None
        self.wdt = None
        try:
            from m2m import supervisor_build

            supervisor_build.build(self, cfg, b, outbox_path)
        finally:
            supervisor_build = None
            sys.modules.pop("m2m.supervisor_build", None)
            import m2m

            if hasattr(m2m, "supervisor_build"):
                delattr(m2m, "supervisor_build")
            gc.collect()

    def run(self, max_ms=None, until=None):
        ws = self.cfg["device"]["watchdog_s"]
        if ws:
            self.wdt = hal.WDT(timeout=ws * 1000)
            loop.add_hook(self.wdt.feed)
        if self.sense is not None:
            loop.add_hook(self.sense.sampler.hook)  # alarms keep being read during AT waits
        try:
            return loop.run(self.services, until, max_ms)
        finally:
            self.stop()

    def stop(self):
        if self.sense is not None:
            loop.remove_hook(self.sense.sampler.hook)
            for s in self.sense.sampler.sensors:
                save = getattr(s.drv, "save", None)  # pulse counts to flash
                if save is not None:
                    try:
                        save()
                    except OSError:
                        pass
        if self.reporter is not None:  # None until the first attach (m2m.supervisor_mqtt)
            self.reporter.client.close()  # no DISCONNECT: the broker sends the "offline" will
        for g in self.services:
            stop = getattr(g.svc, "stop", None) or getattr(g.svc, "close", None)
            if stop is not None:
                try:
                    stop()
                except Exception:
                    pass
        u = sys.modules.get("m2m.net.usage")
        if u is not None:
            try:
                u.save()
            except Exception:
                pass
        if self.wdt is not None:
            loop.remove_hook(self.wdt.feed)
            self.wdt = hal.WDT(timeout=STRETCH_MS)  # the port cannot stop it: stretched


def start(cfg, b=None, outbox_path="/outbox"):
    # main()'s build: the Run, then m2m.config leaves the heap (about 9 KB of a 64-bit heap; the run
    # keeps the validated dict, a /cmd "set" imports the module again). Not done by Run itself:
    # code that holds the module (tests) would be left with one that no longer finds itself.
    r = Run(cfg, b, outbox_path)
    loop.drop("m2m.config")
    gc.collect()
    return r


def main(cfg):
    # What main.py runs: build, say what runs, loop until Ctrl-C. A config problem is one line and
    # the REPL; nothing here resets the device.
    try:
        r = start(cfg)
    except ValueError as e:  # ConfigError, a bad sensor entry or device id
        print("config: %s" % e)
        return None
    except Exception as e:  # e.g. the flash full or read-only: say so, stay at the REPL
        sys.print_exception(e)
        print("supervisor: could not start (%r); fix it and press Ctrl-D" % (e,))
        return None
    global current
    current = r
    what = ["sensors %d" % len(r.sense.sampler.sensors) if r.sense else "no sensors"]
    if cfg["mqtt"]["broker"]:
        what.append("mqtt %s" % cfg["mqtt"]["broker"])
    what.extend(s.name for s in r.services if s.name not in ("net", "sense", "mqtt", "events"))
    if r.net is None:
        what.append("no mqtt.broker: readings stay in the outbox")
    print("supervisor: %s as %s (Ctrl-C for the REPL)" % (", ".join(what), r.id))
    try:
        r.run()
    except KeyboardInterrupt:
        print("supervisor: stopped; the watchdog now waits %d s (Ctrl-D runs again)"
              % (STRETCH_MS // 1000) if r.wdt else "supervisor: stopped (Ctrl-D runs again)")
    return r

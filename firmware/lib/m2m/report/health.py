# The device's own health readings and the demo's reporting run, apart from m2m.report.mqtt so
# that a device with sensors never loads them.
#   Health(outbox, net, every_ms)   loop service: battery, free heap, signal as readings
#   run(broker, every_s)            bring the network up, report health to the broker (m2mkit demo)
import gc

from m2m import hal


class Health:
    # The device's own readings (battery, free heap, signal) every `every_ms`, appended to the
    # outbox as one telemetry record: what a board reports before any sensor is configured.
    def __init__(self, outbox, net=None, every_ms=10000, board=None):
        self.outbox = outbox
        self.net = net
        self.every = every_ms
        self.board = board
        self.due = hal.ticks_ms()
        self.made = 0

    def readings(self):
        t = hal.epoch()
        gc.collect()
        out = [("heap", gc.mem_free(), "B", t)]
        try:
            from m2m import board

            bat = board.battery(self.board) or {}
        except (OSError, ValueError):
            bat = {}
        if bat.get("battery_mv") is not None:
            out.append(("battery", bat["battery_mv"] / 1000, "V", t))
        n = self.net
        if n is not None and n.attached():
            try:
                s = n.read_signal()
                if s.get("rssi") is not None:
                    out.append(("rssi", s["rssi"] - 30, "dBW", t))  # SenML has no dBm (RFC 8428 12.1)
                if s.get("quality") is not None:
                    out.append(("signal", s["quality"] / 100, "/", t))  # quality 0..1
            except OSError:
                pass
        return out

    def step(self):
        now = hal.ticks_ms()
        left = hal.ticks_diff(self.due, now)
        if left > 0:
            return left
        self.due = hal.ticks_add(now, self.every)
        r = self.readings()
        from m2m.report.contract import pack_readings

        seq = self.outbox.append(1, pack_readings(r))  # outbox.TELEMETRY
        self.made += 1
        print("reading %d: %s" % (seq, " ".join("%s=%s%s" % (x[0], x[1], x[2]) for x in r)))
        return self.every


def _prose(d):
    # the board file's prose (notes, uncertain, sources) is for people: out of the held dict, as
    # m2m.supervisor_build does
    for k in ("notes", "uncertain", "sources"):
        d.pop(k, None)
    for v in d.values():
        if type(v) is dict:
            _prose(v)


class _Run:
    # what m2m.supervisor_mqtt.Mqtt reads and sets (as on the supervisor's Run)
    def __init__(self, net, ob, cfg, did):
        self.net, self.outbox, self.cfg, self.id = net, ob, cfg, did
        self.reporter = None


def run(broker=None, every_s=10, device_id=None, seconds=None):
    # Bring the board's network up and report its health readings to `broker` (mqtt://HOST:PORT)
    # until Ctrl-C (or `seconds`): what `m2mkit demo` types at the device's REPL.
    # As the supervisor does: the network comes up first, with nothing of the reporting side loaded
    # (its modules and their names), and the reporting side (the sockets, m2m.report.mqtt, its
    # contract, umqtt.simple) is built at the attach by the supervisor's MQTT service, after a
    # collection, once the bring-up modules have left the heap; it leaves again while the link is
    # down. Loaded before the bring-up, its ~250 names made MicroPython's next qstr pool (one block
    # of 1280 entries) fall in the SIM step, on a heap the bring-up had fragmented.
    from m2m import board, config, loop, outbox
    from m2m.net.network import Network

    cfg = config.load()
    config = None
    loop.drop("m2m.config")  # the dict stays; a /cmd "set" imports the module again
    if broker:
        cfg["mqtt"]["broker"] = broker
    if not cfg["mqtt"]["broker"]:
        raise ValueError("no broker: give run(\"mqtt://HOST:PORT\") or set mqtt.broker in the config")
    did = device_id or cfg["device"]["id"] or "m2m-" + "".join("%02x" % x for x in hal.unique_id()[-3:])
    b = board.load()
    _prose(b)
    # what the attached device holds for good (the AT driver, the modem and its dialect, the SIM's
    # state) loaded first, low in the young heap: the bring-up's own modules (m2m.net.netup,
    # m2m.modem.up, the dialect's scripts) then load above them and leave one free run when
    # dropped at the attach, where the reporting side is built (the holes the config's parse left
    # collected first, for these to fill)
    gc.collect()
    from m2m import at, modem
    from m2m.net import sim

    modem.model_class(b["modem"]["model"])
    at = modem = sim = None
    net = Network(b, cfg)
    print("network: coming up")
    if not net.up(600000):
        raise OSError("the network did not come up: check the SIM, APN and coverage")
    gc.collect()
    from m2m.report.mqtt import parse_url

    tls = None
    _, _, secure = parse_url(cfg["mqtt"]["broker"])
    if secure:  # the CA, client certificate and key files (mqtt.ca / cert / key)
        from m2m.report import tlsconf

        tls = tlsconf.tls(cfg["mqtt"])
        loop.drop("m2m.report.tlsconf")
    from m2m.supervisor_mqtt import Mqtt

    ob = outbox.from_config(cfg)  # write-back as configured (outbox.sync_every, outbox.sync_s)
    r = _Run(net, ob, cfg, did)
    mq = Mqtt(r, "tls" if secure else "tcp", tls)
    h = Health(ob, net, every_s * 1000, b)
    print("reporting as %s to %s every %d s (Ctrl-C stops)" % (did, cfg["mqtt"]["broker"], every_s))
    try:
        loop.run([net, h, mq], max_ms=seconds * 1000 if seconds else None)
    except KeyboardInterrupt:
        print("stopped")
    finally:
        if r.reporter is not None:  # None while the link is down
            r.reporter.client.close(clean=True)
    return r.reporter

# The device's own health readings and the demo's reporting run, apart from m2m.report.mqtt so
# that a device with sensors never loads them.
#   Health(outbox, net, every_ms)   loop service: battery, free heap, signal as readings
#   run(broker, every_s)            bring the network up, report health to the broker (m2mkit demo)
import gc

from m2m import hal
from m2m.report import contract
from m2m.report.mqtt import Reporter, parse_url


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
        seq = self.outbox.append(1, contract.pack_readings(r))  # outbox.TELEMETRY
        self.made += 1
        print("reading %d: %s" % (seq, " ".join("%s=%s%s" % (x[0], x[1], x[2]) for x in r)))
        return self.every


def run(broker=None, every_s=10, device_id=None, seconds=None):
    # Bring the board's network up and report its health readings to `broker` (mqtt://HOST:PORT)
    # until Ctrl-C (or `seconds`): what `m2mkit demo` types at the device's REPL.
    from m2m.report.mqtt import _umqtt

    _umqtt()  # first, while the heap is young: loaded after the bring-up it may find no room
    from m2m import board, config, loop, outbox
    from m2m.net import link_failed, sock
    from m2m.net.network import Network

    cfg = config.load()
    if broker:
        cfg["mqtt"]["broker"] = broker
    if not cfg["mqtt"]["broker"]:
        raise ValueError("no broker: give run(\"mqtt://HOST:PORT\") or set mqtt.broker in the config")
    did = device_id or cfg["device"]["id"] or "m2m-" + "".join("%02x" % x for x in hal.unique_id()[-3:])
    b = board.load()
    net = Network(b, cfg)
    print("network: coming up")
    for _ in range(3):
        # a MemoryError in a step reaches the caller (Network.step): the bring-up compiles its
        # modules (m2m.at, m2m.net.netup) on a heap already holding umqtt; collect and go on from
        # the step it left, as the supervisor's Guard does
        try:
            ok = net.up(600000)
            break
        except MemoryError as e:
            import sys

            sys.print_exception(e)  # where it came, each time
            gc.collect()
    else:
        raise MemoryError("the network's bring-up found no room: free heap %d" % gc.mem_free())
    if not ok:
        raise OSError("the network did not come up: check the SIM, APN and coverage")
    tls = None
    _, _, secure = parse_url(cfg["mqtt"]["broker"])
    if secure:  # the CA, client certificate and key files (mqtt.ca / cert / key)
        from m2m.report import tlsconf

        tls = tlsconf.tls(cfg["mqtt"])
        loop.drop("m2m.report.tlsconf")
    st = sock.Stack(net.modem, kind="tls" if secure else "tcp", timeout_ms=10000, tls=tls,
                    on_fail=link_failed)
    ob = outbox.from_config(cfg)  # write-back as configured (outbox.sync_every, outbox.sync_s)
    rep = Reporter(st, ob, cfg, did, up=net.attached)
    h = Health(ob, net, every_s * 1000, b)
    print("reporting as %s to %s every %d s (Ctrl-C stops)" % (did, cfg["mqtt"]["broker"], every_s))
    try:
        loop.run([net, h, rep], max_ms=seconds * 1000 if seconds else None)
    except KeyboardInterrupt:
        print("stopped")
    finally:
        rep.client.close(clean=True)
    return rep

# The supervisor's MQTT service (m2m.supervisor_build adds it when mqtt.broker is set; bench_mqtt.py's
# device runs it too, so that its heap figure is what main.py does). Imported only with a broker.
import gc

from micropython import const

from m2m import loop

# what a rebuilt Reporter and its client carry over (units: the status's map); private const()s take
# no names on the device (py/parse.c folds them away)
_KEEP = const(("sent", "failures", "answered", "memory_errors", "cmds", "units"))
_KEEP_CLIENT = const(("inflight", "connects", "dups"))


class Mqtt:
    # The MQTT reporter, built at the network's first attach: the sockets, m2m.report.mqtt, its
    # contract and umqtt.simple are imported then, after a collection, once the network's bring-up
    # modules (m2m.net.netup, m2m.modem.up, the dialect's scripts) have left the heap, so that the
    # two are never held at once (issue #9's heap: the peak is the larger, not their sum). When the
    # link fails (the network's recovery loads its bring-up code again) the reporting code leaves
    # the heap the same way and is built again at the next attach; what it must not forget (the
    # QoS 1 message in flight, for its resend with DUP; queued /cmd payloads; the counters) is kept
    # here meanwhile. A build cut short (a MemoryError; MicroPython takes a module whose load
    # failed out of sys.modules: py/builtinimport.c as m2m.net.sim cites it, and checked on the unix
    # port) is tried again after the Guard's back-off. The sockets follow the network's modem.
    MODULES = ("m2m.report.mqtt", "m2m.net.sock", "m2m.net.sockx", "umqtt.simple")

    def __init__(self, run, kind, tls, shared=()):
        # run: what it reads and sets (net, outbox, cfg, id, reporter; services, whose names in
        # `shared` are services that may hold the sockets: those stay while the link is down)
        self.run = run
        self.kind = kind  # "tcp" or "tls"
        self.tls = tls
        self.shared = shared
        self.st = None
        self.kept = None
        self.builds = 0

    def step(self):
        r = self.run
        net = r.net
        if self.st is None:
            if not net.attached():
                return 1000
            self._build(r, net)
        self.st.modem = net.modem
        w = r.reporter.step()
        if net.failed is not None or not net.attached():
            self._drop()  # before the network's next step loads its recovery code
        return w

    def _build(self, r, net):
        gc.collect()
        from m2m.net import link_failed, sock
        from m2m.report.mqtt import Reporter

        st = sock.Stack(net.modem, kind=self.kind, timeout_ms=10000, tls=self.tls, on_fail=link_failed)
        r.reporter = rep = Reporter(st, r.outbox, r.cfg, r.id, up=net.attached)
        k = self.kept
        if k is not None:
            self.kept = None
            for o, names, vals in ((rep, _KEEP, k[0]), (rep.client, _KEEP_CLIENT, k[1])):
                for n, v in zip(names, vals):
                    setattr(o, n, v)
        self.st = st
        self.builds += 1
        gc.collect()

    def _drop(self):
        r = self.run
        rep = r.reporter
        rep.client.close()
        self.kept = (tuple(getattr(rep, n) for n in _KEEP),
                     tuple(getattr(rep.client, n) for n in _KEEP_CLIENT))
        r.reporter = rep = None
        self.st = None
        # the sockets stay when a plugin that needs the network runs (it may hold them: dropped
        # from sys.modules, the next import would load a second copy)
        keep_sock = [g for g in getattr(r, "services", ()) if g.name in self.shared]
        for k in self.MODULES:
            if not (keep_sock and k.startswith("m2m.net.sock")):
                loop.drop(k)
        gc.collect()

    def close(self):
        rep = self.run.reporter
        if rep is not None:
            rep.client.close()

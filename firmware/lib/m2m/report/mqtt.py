# MQTT reporting over the modem's sockets with umqtt.simple, unmodified (frozen into MicroPython's
# ESP32 build: ports/esp32/boards/manifest.py require("umqtt.simple")). Contract: docs/CONTRACTS.md
# "MQTT reporting"; topics and payloads: m2m.report.contract.
#
#   c = Client(stack, device_id, mqtt_cfg)   umqtt.simple around an m2m.net.sock.Stack
#   c.connect(st)      CONNECT with the last will <prefix>/<id>/status "offline" (retained), status
#                      st (retained: "online", or with the units, contract.status), /cmd subscribed
#                      again on every connect
#   c.publish(t, m)    QoS 1 returns after PUBACK; a publish cut by a lost link is sent again after
#                      the reconnect with the same packet id and the DUP flag
#   c.poll()           one non-blocking look for an incoming message (commands), PINGREQ on time
#   r = Reporter(stack, outbox, cfg, device_id, up=None)   the loop's service: step() -> ms
# Every call is bounded: the socket's timeout ends any read umqtt.simple waits on.
import gc

from micropython import const

from m2m import hal
from m2m.net.sock import _is_ip
from m2m.report import contract

_DUP = const(8)  # PUBLISH fixed-header DUP bit (MQTT 3.1.1 3.3.1.1); umqtt.simple ORs `retain` in
_BACKOFF_MIN = const(2000)
_BACKOFF_MAX = const(300000)
_POLL_MS = const(1000)


def parse_url(url):
    # "mqtt://host:port" / "mqtts://host:port" -> (host, port, tls)
    if not isinstance(url, str):
        raise ValueError("mqtt.broker: give mqtt://HOST:PORT or mqtts://HOST:PORT")
    tls = url.startswith("mqtts://")
    if not tls and not url.startswith("mqtt://"):
        raise ValueError("mqtt.broker %r: give mqtt://HOST:PORT or mqtts://HOST:PORT" % url)
    rest = url[8 if tls else 7:].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, str(8883 if tls else 1883)  # ints: no names interned for them
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("mqtt.broker %r: give mqtt://HOST:PORT with a port 1-65535" % url)
    return host, int(port), tls


def _umqtt():
    try:
        from umqtt import simple
    except ImportError:
        raise ImportError("umqtt.simple is missing: flash a MicroPython build that freezes it (the "
                          "ESP32 builds do) or mip install umqtt.simple")
    return simple


class Client:
    def __init__(self, stack, device_id, mcfg, on_msg=None):
        self.stack = stack
        self.id = device_id
        self.cfg = mcfg
        self.host, self.port, _ = parse_url(mcfg["broker"])
        self.prefix = mcfg.get("prefix") or "m2mkit"
        self.on_msg = on_msg
        self._topics = {}
        self.c = None
        self.inflight = None  # (pid, topic, msg, retain) of a QoS 1 publish without PUBACK
        self.last_io = hal.ticks_ms()
        self.connects = 0
        self.dups = 0

    def topic(self, leaf):
        t = self._topics.get(leaf)  # made once: a new string per publish is garbage
        if t is None:
            t = self._topics[leaf] = contract.topic(self.prefix, self.id, leaf)
        return t

    def connect(self, status=contract.ONLINE):
        simple = _umqtt()
        simple.socket = self.stack  # its socket() / getaddrinfo() go to the modem
        cfg = self.cfg
        # a user without a password (a client certificate's device: provision --cert) sends an empty
        # one: umqtt.simple 1.3.4 MQTTClient.connect sends user and password together, len(None) failed
        c = simple.MQTTClient(self.id, self.host, self.port, user=cfg.get("user"),
                              password=cfg.get("password") or "", keepalive=cfg.get("keepalive") or 0)
        c.set_last_will(self.topic(contract.STATUS), contract.OFFLINE, retain=True, qos=1)
        c.set_callback(self._msg)
        self.c = c
        try:
            # clean_session=False: the broker keeps the subscription and QoS 1 state across links
            c.connect(clean_session=False)
            c.publish(self.topic(contract.STATUS), status, retain=True, qos=1)
            c.subscribe(self.topic(contract.CMD), qos=1)
        except BaseException:
            self.close()
            raise
        self.connects += 1
        self.last_io = hal.ticks_ms()

    def connected(self):
        return self.c is not None

    def _msg(self, topic, msg):
        cb = self.on_msg
        if cb is not None:
            cb(topic, msg)

    def publish(self, topic, msg, retain=False, qos=1):
        c = self.c
        flags = 1 if retain else 0
        if qos:
            if c.pid >= 65535:
                c.pid = 0  # packet ids are 1..65535 (umqtt.simple only counts up)
            f = self.inflight
            if f is not None and f[1] == topic and f[2] == msg:
                # the same message again after a lost link: same packet id, DUP set (MQTT 3.1.1
                # 4.4); umqtt.simple takes pid + 1 and ORs `retain` into the fixed header
                c.pid = f[0] - 1
                flags |= _DUP
                self.dups += 1
            self.inflight = (c.pid + 1, topic, msg)
        c.publish(topic, msg, flags, qos)  # QoS 1: returns once the PUBACK came
        self.inflight = None
        self.last_io = hal.ticks_ms()

    def poll(self):
        # one non-blocking look for a message; PINGREQ when the keepalive is half gone
        c = self.c
        c.check_msg()
        ka = self.cfg.get("keepalive") or 0
        if ka and hal.ticks_diff(hal.ticks_ms(), self.last_io) >= ka * 500:
            c.ping()
            c.sock.flush()
            self.last_io = hal.ticks_ms()

    def close(self, clean=False):
        c = self.c
        self.c = None
        if c is None or c.sock is None:
            return
        try:
            if clean:
                c.disconnect()  # DISCONNECT: the broker drops the last will
            else:
                c.sock.close()
        except Exception:
            pass


class Reporter:
    # The loop's reporting service: drain the outbox while connected, answer /cmd.
    def __init__(self, stack, outbox, cfg, device_id, up=None, config_path="/config.json"):
        self.outbox = outbox
        self.cfg = cfg
        self.up = up  # up() -> True when the network is attached (None: always)
        self.client = Client(stack, device_id, cfg["mqtt"], self._cmd_in)
        self.batch = cfg["mqtt"].get("batch") or 8
        # mqtt.units "status": the readings' units in the retained status (name -> unit, learnt from
        # the records drained), telemetry without "u"; "each": None, a "u" in every record
        self.units = None if cfg["mqtt"].get("units") == "each" else {}
        self.cmds = []
        self.wait_until = hal.ticks_ms()
        self.backoff = _BACKOFF_MIN
        self.sent = 0
        self.failures = 0
        self.last_error = None
        self.report_now = False
        self.answered = 0  # /cmd payloads answered
        self.config_path = config_path  # where a /cmd "set" is saved
        self.memory_errors = 0
        self._mem_said = False  # the mqtt.memory event is posted once until a report goes out
        self._mem_why = None  # a MemoryError not said yet (saying it found no heap either)
        # umqtt.simple now, while the heap is young: imported at the first connect (after the
        # network's bring-up) its load needs blocks that fragmentation may no longer leave; the
        # same for the sockets' DNS and TLS part when the broker is a name or TLS
        _umqtt()
        c = self.client
        if stack is not None and (stack.kind == "tls" or not _is_ip(c.host)):
            import m2m.net.sockx  # noqa: F401

    def _cmd_in(self, topic, msg):
        if len(self.cmds) < 4:
            self.cmds.append(bytes(msg))

    def _fail(self, e):
        self.failures += 1
        self.client.close()
        if isinstance(e, MemoryError):
            # out of heap (often fragmentation: the free total is large, one block is not): the
            # connection is let go, the heap collected, mqtt.memory posted once, then as any failure
            self.memory_errors += 1
            gc.collect()
            if not self._mem_said:
                self._mem_said = True
                self._mem_why = e.args[0] if e.args else "memory allocation failed"
                self._say_memory()
        else:
            why = e.args[1] if len(e.args) > 1 else (e.args[0] if e.args else repr(e))
            if self.client.stack.last_error:
                why = self.client.stack.last_error
                self.client.stack.last_error = None
            if why != self.last_error:
                print("mqtt: %s" % why)
            self.last_error = why
        self.wait_until = hal.ticks_add(hal.ticks_ms(), self.backoff)
        self.backoff = min(self.backoff * 2, _BACKOFF_MAX)
        return self.backoff

    def _say_memory(self):
        # the event and the console line, or, when even they find no heap, at the next step
        why = self._mem_why
        try:
            from m2m import events

            events.post("mqtt.memory", error=why, free=gc.mem_free(), count=self.memory_errors)
            print("mqtt: out of memory (%s; %d bytes free after a collect): retrying" % (why, gc.mem_free()))
            self._mem_why = None
        except MemoryError:
            gc.collect()

    def step(self):
        self.outbox.sync_due()  # the outbox's write-back time bound, connected or not
        now = hal.ticks_ms()
        if hal.ticks_diff(self.wait_until, now) > 0:
            return hal.ticks_diff(self.wait_until, now)
        if self.up is not None and not self.up():
            self.client.close()
            return 2000
        cl = self.client
        if self._mem_why is not None:
            self._say_memory()
        try:
            if not cl.connected():
                if self.units == {}:  # after a reboot: the waiting records' units, before the status
                    for seq, kind, payload in self.outbox.peek(self.batch):
                        if kind == 1:
                            try:
                                contract.learn(self.units, contract.unpack_readings(payload))
                            except (ValueError, TypeError, IndexError):
                                pass
                cl.connect(contract.status(self.units))
                self.backoff = _BACKOFF_MIN
                self.last_error = None
                print("mqtt: connected to %s:%d" % (cl.host, cl.port))
            more = self._drain()
            cl.poll()
            self._commands()
        except Exception as e:  # OSError from the socket, MQTTException, umqtt's asserts
            return self._fail(e)
        return 0 if more else _POLL_MS

    def _drain(self):
        # one batch: telemetry records in one SenML message, alarms / events one message each;
        # acknowledged in the outbox only after the PUBACK. True when more is waiting.
        ob = self.outbox
        recs = ob.peek(self.batch)
        if not recs:
            return False
        cl = self.client
        senml = []
        n = 0
        last = None
        units = self.units
        fresh = False  # a reading name (or unit) the status did not carry yet
        for seq, kind, payload in recs:
            if kind != 1:  # outbox.TELEMETRY
                break
            try:
                rs = contract.unpack_readings(payload)
                g = contract.senml_records(cl.id, seq, rs, units)
                if units is not None and contract.learn(units, rs):
                    fresh = True
                    g = contract.senml_records(cl.id, seq, rs, units)
                senml.extend(g)
            except (ValueError, TypeError, IndexError):
                # a record that is no list of readings (or a reading SenML refuses) must not block
                # the outbox: it goes on its own to /events, as it is
                break
            n += 1
            last = seq
        if n:
            msg = contract.pack(senml)
            senml = g = rs = None
            if fresh:  # the units first: a receiver has them before the records that leave them out
                cl.publish(cl.topic(contract.STATUS), contract.status(units), retain=True, qos=1)
            cl.publish(cl.topic(contract.TELEMETRY), msg, qos=1)
        else:
            seq, kind, payload = recs[0]
            if kind == 1:
                print("mqtt: outbox record %d is not readings: sent to events" % seq)
            leaf = contract.RAW_TOPICS.get(kind)
            if leaf:
                cl.publish(cl.topic(leaf), payload, qos=1)
            else:
                cl.publish(cl.topic(contract.EVENTS), _event(seq, kind, payload), qos=1)
            last = seq
        ob.ack(last)
        self._mem_said = False  # a report went out: the next MemoryError is news again
        self.sent += n or 1
        more = len(recs) > (n or 1)
        recs = msg = senml = None
        gc.collect()
        return more

    def _commands(self):
        while self.cmds:
            # a MemoryError (loading the /cmd code) leaves the payload queued for the next try after
            # the Reporter's back-off; anything else takes it off, so it cannot block the queue
            try:
                res, action = contract.handle_cmd(self.cmds[0], self.cfg)
            except MemoryError:
                raise
            except BaseException:
                self.cmds.pop(0)
                raise
            self.cmds.pop(0)
            cl = self.client
            cl.publish(cl.topic(contract.CMD_RES), res, qos=1)
            self.answered += 1
            if action == "report":
                self.report_now = True
            elif action == "set":
                from m2m import config

                config.save(self.cfg, self.config_path)
            elif action == "reboot":
                from m2m import loop  # resident: the Reporter is one of its services

                cl.close(clean=False)
                loop.reset()  # the loop's hooks first (a PCNT pulse count into RTC memory)


def _event(seq, kind, payload):
    import json

    try:
        d = json.loads(payload)
    except ValueError:
        d = {"data": bytes(payload).decode("utf-8", "replace") if kind == 1 else payload.decode()}
    if kind == 1:
        d = {"kind": "bad_record", "data": d}
    if type(d) is not dict:
        d = {"data": d}
    k = d.pop("kind", "alarm" if kind == 2 else "event")
    t = d.pop("t", 0)
    return contract.event(seq, k, t, d)

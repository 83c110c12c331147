# The LwM2M client: client-initiated bootstrap, registration (Register / Update / Deregister,
# lifetime, binding, queue mode), the server's operations (Read, Write replace / partial, Execute,
# Create, Delete, Discover, Write-Attributes, Observe / cancel: m2m.lwm2m.ops, loaded per request),
# the notifier, Send of telemetry from the outbox and the firmware pull. Interfaces: OMA-TS-LightweightM2M_Transport-V1_1 6 (the
# CoAP mapping: POST /bs, POST /rd, POST /rd/<loc>, DELETE /rd/<loc>, POST /dp, GET / PUT / POST /
# DELETE on /oid/iid/rid) and OMA-TS-LightweightM2M_Core-V1_1 (operations and attributes).
#
#   c = Client(cfg, network=None, sampler=None, outbox=None, stack=None)
#   loop.run([c])  or  ms = c.step();  c.close() deregisters
from micropython import const

from m2m import coap, hal, loop
from m2m.lwm2m import TEXT
from m2m.lwm2m.model import Err

try:
    from m2m.events import post as _post
except ImportError:
    _post = None

_IDLE = const(0)
_BOOTSTRAP = const(1)  # POST /bs sent or bootstrap server writing
_REGISTER = const(2)  # POST /rd to send
_REGISTERING = const(3)
_REGISTERED = const(4)
_SLEEP = const(5)  # queue mode: radio off, nothing read
_CLOSED = const(6)
NAMES = ("idle", "bootstrap", "register", "registering", "registered", "sleep", "closed")


def _bs():
    # the bootstrap's code (m2m.lwm2m.bs): loaded when lwm2m.bootstrap is set, dropped once registered
    from m2m.lwm2m import bs

    return bs


def _event(kind, **f):
    if _post is not None:
        _post(kind, **f)


class Client:
    def __init__(self, cfg, network=None, sampler=None, outbox=None, stack=None, name=None, state=None):
        # built by m2m.lwm2m.objects (the objects, the accounts, the state), whose building code is
        # dropped after (heap); the module's globals stay, read by the resources' lambdas
        from m2m.lwm2m import objects

        try:
            objects.init(self, cfg, network, sampler, outbox, stack, name, state)
        finally:
            del objects.init, objects.build, objects._psk, objects._account, objects._digital, objects._sensor
            loop.drop("m2m.lwm2m.objects")

    # ---- the transport ----
    def _open(self, bootstrap):
        # a new transport and endpoint to the bootstrap or the LwM2M server (m2m.lwm2m.reg)
        self._reg("open_ep", bootstrap)

    def _close_ep(self):
        if self.tr is not None:
            self.tx_bytes += self.tr.tx_bytes
            self.rx_bytes += self.tr.rx_bytes
            self.tr.close()
        self.tr = self.ep = None

    def registered(self):
        return self.state in (_REGISTERED, _SLEEP)

    # ---- the loop ----
    def step(self):
        try:
            return self._step()
        except Exception as e:  # a bug or MemoryError: told, and the client goes on next step
            print("lwm2m: step failed (%r): going on" % (e,))
            _event("lwm2m.error", error=repr(e))
            return 1000

    def _step(self):
        st = self.state
        now = hal.ticks_ms()
        if st == _CLOSED:
            return 60000
        if self._after is not None:
            f, self._after = self._after, None
            f()
        try:
            if self.ep is None and st != _SLEEP:
                self._open(st == _BOOTSTRAP)
                if st == _BOOTSTRAP:
                    _bs().request(self)
            wait = self.ep.step() if st != _SLEEP else 60000
            if self.ep.failed is not None:
                raise self.ep.failed
        except OSError as e:
            print("lwm2m: transport failed (%s): trying again" % e)
            self._close_ep()
            self.sending = None
            if st in (_REGISTERED, _SLEEP) and self.loc:
                # still registered: a new socket and an Update (the server learns the new port)
                self._retry(_REGISTERED)
            else:
                self._retry(_BOOTSTRAP if st == _BOOTSTRAP else _REGISTER)
            return 1000
        st = self.state
        left = hal.ticks_diff(self.due, now)
        if st == _REGISTER and left <= 0 and self.pending is None:
            self._register()
        elif st == _REGISTERED:
            if left <= 0 and self.pending is None:
                self._update()
            else:
                wait = min(wait, self._notify(now), max(left, 0))
                self._send_step()
                if self.fw_job is not None:
                    self._fw_step()
                    wait = min(wait, 5)
                if self.queue and self.wake is not None and not self.ep.busy() \
                        and hal.ticks_diff(now, self.wake) >= self.awake_ms and self.fw_job is None:
                    self._sleep()
        elif st == _SLEEP:
            w = self._wake_due(now)
            if w <= 0:
                self._wake()
                return 0
            wait = min(wait, w)
        if st in (_REGISTER, _REGISTERED) and left > 0:
            wait = min(wait, left)
        if self.ep is not None:
            wait = min(wait, self.ep.next_ms())
        return max(0, min(wait, 60000))

    def _retry(self, state):
        self.tries += 1
        self.state = state
        self.pending = None
        self.due = hal.ticks_add(hal.ticks_ms(), min(5000 << min(self.tries, 6), 300000))

    # ---- registration (OMA transport 6.2) ----
    def _reg(self, fn, *a):
        # the registration interface's code (m2m.lwm2m.reg) is loaded for each Register, Update,
        # Deregister and Disable and dropped after (heap): an Update comes once a lifetime
        from m2m.lwm2m import reg

        try:
            return getattr(reg, fn)(self, *a)
        finally:
            loop.drop("m2m.lwm2m.reg")

    def _links(self):
        return self._reg("object_links")

    def _register(self):
        self._reg("register")

    def _update(self, links=False):
        self._reg("update", links)

    def _lifetime(self):
        srv = self.model.objs[1].inst
        return srv[min(srv)].get(1, self.lifetime) if srv else self.lifetime

    def _binding(self):
        srv = self.model.objs[1].inst
        return srv[min(srv)].get(7, "U") if srv else "U"

    def _update_trigger(self, arg):
        self.due = hal.ticks_ms()

    def _server_written(self, iid, rid):
        if rid in (1, 7) and self.state == _REGISTERED:  # lifetime or binding: tell the server now
            self.due = hal.ticks_ms()

    def _disable(self, arg):
        # Disable (/1/0/4): deregister once the answer is out, register again after the Disable
        # Timeout (resource 5, 86400 s when not set)
        self._after = self._disabled

    def _disabled(self):
        self._reg("disabled")

    def close(self, timeout_ms=10000):
        # Deregister (DELETE /rd/<loc>) and wait for its answer a bounded time
        self._reg("close", timeout_ms)

    # ---- queue mode (OMA core 6.5: the client listens only for a while after it sent) ----
    def _sleep(self):
        # the socket stays open (the same port: the server's observations still match) but is not
        # read: what arrives meanwhile is dropped at the wake, as a radio asleep never hears it
        _event("lwm2m.sleep")
        self.state = _SLEEP

    def _wake_due(self, now):
        w = hal.ticks_diff(self.due, now)
        if self.obs:
            w = min(w, self._notify(now, dry=True))
        if self.send_telemetry and self.outbox is not None and self.outbox.pending():
            w = 0
        return w

    def _wake(self):
        # back on air: an Update tells the server we listen (it then delivers what it queued)
        if self.ep is None:
            self._open(False)
        lost = 0
        while lost < 32 and self.tr.recv():
            lost += 1
        self.state = _REGISTERED
        _event("lwm2m.wake", dropped=lost)
        self._update()

    # ---- the server's requests ----
    def _handle(self, m):
        # the operations' code (m2m.lwm2m.ops) is loaded for each request and dropped after (heap;
        # a few ms a request: ASSUMED docs/ASSUMED.md#A-LWM2M-LOAD-MS)
        self.wake = hal.ticks_ms()
        from m2m.lwm2m import ops

        try:
            return ops.op(self, m)
        except Err as e:
            return e.code, str(e).encode() if str(e) else None, TEXT if str(e) else None, None
        finally:
            loop.drop("m2m.lwm2m.ops")

    # ---- observe and notify (RFC 7641; OMA core 6.4): m2m.lwm2m.notify, imported at first use ----
    def _observe(self, path, tok, fmt, payload):
        from m2m.lwm2m import notify

        return notify.observe(self, path, tok, fmt, payload)

    def _cancel(self, tok):
        for o in self.obs:
            if o.tok == tok:
                self.obs.remove(o)
                return

    def _reset(self, tok):
        self._cancel(tok)

    def _attrs(self):
        if self.attrs is None:
            from m2m.lwm2m.notify import Attrs

            self.attrs = Attrs()
        return self.attrs

    def _notify(self, now, dry=False):
        if not self.obs:
            return 60000
        from m2m.lwm2m import notify

        return notify.due(self, now, dry)

    # ---- Send (OMA core 6.4.3 / transport 6.4: POST /dp) of outbox telemetry: m2m.lwm2m.send ----
    def _send_step(self):
        # the Send's code (m2m.lwm2m.send, with the CBOR encoder) is loaded when telemetry waits, and
        # dropped once the Send is made (heap): a registered client holds none of it between Sends
        ob = self.outbox
        if self.send_telemetry and ob is not None and self.sending is None and not self.ep.busy():
            recs = ob.peek(8, kinds=(1,))
            if recs:
                from m2m.lwm2m import send

                try:
                    send.step(self, recs)
                finally:
                    loop.drop("m2m.lwm2m.send")
                    loop.drop("m2m.lwm2m.cbor")

    # ---- Device object actions ----
    def reboot(self, arg):
        _event("lwm2m.reboot")
        self._after = loop.reset  # the loop's hooks first (a PCNT pulse count into RTC memory)

    def factory_reset(self, arg):
        # back to the initial deployment (OMA 3.xml, resource 5): the next start bootstraps again
        if self.state_file:
            import os

            try:
                os.remove(self.state_file)
            except OSError:
                pass
        _event("lwm2m.factory_reset")

    def reset_errors(self, arg):
        self.errors = None

    def battery_level(self):
        if self.sampler is None:
            return None
        for n in self.sampler.names():
            if n.split(".")[-1] == "battery":
                r = self.sampler.latest(n)
                if r is not None:
                    # Li-ion 3.3 V empty .. 4.2 V full (ASSUMED docs/ASSUMED.md#A-LWM2M-BATTERY)
                    return max(0, min(100, int((r[0] - 3.3) * 100 / 0.9)))
        return None

    def device_written(self, iid, rid):
        # a server's Current Time: kept as an offset to the device clock, which goes on running
        ins = self.model.objs[3].inst[iid]
        if rid == 13 and isinstance(ins.get(13), int):
            self.clock_offset = ins[13] - int(hal.epoch())
            ins[13] = lambda: int(hal.epoch()) + self.clock_offset

    def traffic(self):
        # (bytes sent, bytes received) over the LwM2M transport since the statistics started
        tr = self.tr
        return (self.tx_bytes + (tr.tx_bytes if tr else 0), self.rx_bytes + (tr.rx_bytes if tr else 0))

    def stats_start(self, arg):
        tr = self.tr
        self.tx_bytes = -(tr.tx_bytes if tr else 0)
        self.rx_bytes = -(tr.rx_bytes if tr else 0)

    def stats_stop(self, arg):
        pass

    # ---- Firmware Update (object 5): in m2m.lwm2m.fw, imported when a server uses it ----
    def fw_written(self, iid, rid):
        from m2m.lwm2m import fw

        fw.written(self, iid, rid)

    def _fw_step(self):
        from m2m.lwm2m import fw

        fw.step(self)

    def fw_update(self, arg):
        from m2m.lwm2m import fw

        fw.update(self, arg)

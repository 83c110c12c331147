# The registration interface (OMA transport 6.2, core 6.2): Register (POST /rd with the object
# links), its answer, Update (POST /rd/<loc>, lt= / b= when changed), Deregister (DELETE) at
# close, and Disable; opening the transport to a server. Loaded by the Client for each of them and dropped after (heap: an Update
# comes once a lifetime); `self` is the Client.
from micropython import const

from m2m import coap, hal, loop
from m2m.lwm2m import LINK
from m2m.lwm2m.client import _bs, _event

_REGISTER = const(2)  # the Client's states (m2m.lwm2m.client NAMES)
_REGISTERING = const(3)
_REGISTERED = const(4)
_SLEEP = const(5)
_CLOSED = const(6)


def open_ep(self, bootstrap):
    # the account in /0 (the bootstrap server's or the server's): its transport and endpoint
    from m2m.lwm2m.transport import Udp, parse_uri

    sec = self.model.objs[0]
    for iid in sorted(sec.inst):
        ins = sec.inst[iid]
        if bool(ins.get(1)) == bootstrap:
            break
    else:
        raise ValueError("lwm2m: no %s account in /0" % ("bootstrap" if bootstrap else "server"))
    secure, host, port = parse_uri(ins[0])
    psk = (bytes(ins.get(3, b"")), bytes(ins.get(5, b""))) if ins.get(2) == 0 else None
    if secure and not psk:
        raise ValueError("lwm2m: %s needs a PSK (lwm2m.psk_key)" % ins[0])
    self._close_ep()
    self.tr = Udp(host, port, self.stack, psk if secure else None, self.dtls_modem)
    self.ep = coap.Endpoint(self.tr, self._handle, 512, secure=secure)  # 512-byte blocks (RFC 7959)
    self.ep.on_reset = self._reset


def object_links(self):
    # "</1/0>,</3/0>,...": every object and instance but Security (/0)
    parts = []
    for oid in sorted(self.model.objs):
        if oid == 0:
            continue
        o = self.model.objs[oid]
        if o.inst:
            parts += ["</%d/%d>" % (oid, i) for i in sorted(o.inst)]
        else:
            parts.append("</%d>" % oid)
    return ",".join(parts).encode()


def register(self):
    if self._close_later:
        self._close_later = False
        open_ep(self, False)
    q = ["ep=" + self.name, "lt=%d" % self._lifetime(), "lwm2m=1.1", "b=" + self._binding().replace("Q", "")]
    if self.queue:
        q.append("Q")
    self.state = _REGISTERING
    self.pending = self.ep.request(coap.POST, ("rd",), q, object_links(self), cf=LINK,
                                   on_done=lambda r: registered(self, r))


def registered(self, r):
    self.pending = None
    if r is None or r.code != coap.CREATED:
        why = coap.code_str(r.code) if r else "no answer"
        print("lwm2m: register refused (%s): trying again" % why)
        _event("lwm2m.register_failed", why=why)
        self._retry(_REGISTER)
        if self.bootstrapped:
            _bs().again(self, why if r else None)
        return
    self.loc = [v.decode() for n, v in r.opts if n == coap.LOCATION_PATH]
    self.reg = (self._lifetime(), self._binding())  # what the server was told
    self.tries = 0
    self.state = _REGISTERED
    loop.drop("m2m.lwm2m.bs")
    next_update(self)
    self.wake = hal.ticks_ms()
    _event("lwm2m.registered", loc="/".join(self.loc), lt=self._lifetime())


def next_update(self):
    # an Update well before the lifetime runs out: at 90 %, at least 2 s early
    lt = self._lifetime() * 1000
    self.due = hal.ticks_add(hal.ticks_ms(), max(1000, min(lt * 9 // 10, lt - 2000)))


def update(self, links=False):
    # an Update names the lifetime / binding only when the server's Write changed them
    q = []
    now = (self._lifetime(), self._binding())
    if now[0] != self.reg[0]:
        q.append("lt=%d" % now[0])
    if now[1] != self.reg[1]:
        q.append("b=" + now[1].replace("Q", ""))

    def done(r):
        self.pending = None
        if r is not None and r.code == coap.CHANGED:
            self.reg = now
            self.tries = 0
            next_update(self)
            _event("lwm2m.updated")
        elif r is not None and r.code >= 0x80:
            print("lwm2m: update refused (%s): registering again" % coap.code_str(r.code))
            self.state = _REGISTER
            self.due = hal.ticks_ms()
        else:
            self._retry(_REGISTER)

    self.wake = hal.ticks_ms()
    self.pending = self.ep.request(coap.POST, self.loc, q, object_links(self) if links else b"",
                                   cf=LINK if links else None, on_done=done)


def disabled(self):
    srv = self.model.objs[1].inst
    t = (srv[min(srv)].get(5) if srv else None) or 86400
    if self.loc and self.ep is not None:
        self.ep.request(coap.DELETE, self.loc)
    _event("lwm2m.disabled", s=t)
    self.loc = None
    self.state = _REGISTER
    self.pending = None
    self.due = hal.ticks_add(hal.ticks_ms(), t * 1000)


def close(self, timeout_ms=10000):
    # Deregister (DELETE /rd/<loc>) and wait for its answer a bounded time (a Register in
    # flight is waited for first: the server would keep that registration otherwise)
    end = hal.ticks_add(hal.ticks_ms(), timeout_ms)
    while self.state == _REGISTERING and self.ep is not None and hal.ticks_diff(end, hal.ticks_ms()) > 0:
        hal.sleep_ms(min(self.ep.step(), 20))
    if self.state in (_REGISTERED, _SLEEP) and self.loc:
        if self.ep is None:
            open_ep(self, False)
        done = []
        self.ep.request(coap.DELETE, self.loc, on_done=lambda r: done.append(r))
        end = hal.ticks_add(hal.ticks_ms(), timeout_ms)
        while not done and hal.ticks_diff(end, hal.ticks_ms()) > 0:
            hal.sleep_ms(min(self.ep.step(), 20))
        _event("lwm2m.deregistered", ok=bool(done and done[0]))
    self._close_ep()
    self.state = _CLOSED


# Client-initiated bootstrap (OMA core 6.1, transport 6.1: POST /bs, the bootstrap server's Writes
# and Deletes on /0 and /1, Bootstrap-Finish) and its result kept across reboots. `self` is the
# Client; imported only when lwm2m.bootstrap is set, dropped once registered (m2m.loop.drop).
from micropython import const

from m2m import coap, hal
from m2m.lwm2m.client import _event

_BOOTSTRAP = const(1)  # m2m.lwm2m.client's states
_REGISTER = const(2)


def request(self):
    def done(r):
        if r is None or r.code >= 0x80:
            print("lwm2m: bootstrap request refused (%s): trying again" % (coap.code_str(r.code) if r else "no answer"))
            self._close_ep()
            self._retry(_BOOTSTRAP)

    self.ep.request(coap.POST, ("bs",), ("ep=" + self.name,), on_done=done)
    _event("lwm2m.bootstrap", ep=self.name)


def finish(self):
    sec = self.model.objs[0]
    if not any(not i.get(1) for i in sec.inst.values()):
        return coap.NOT_ACCEPTABLE  # 4.06: no server account written (OMA core 6.1.7.6)
    for ins in self.model.objs[1].inst.values():  # the Server object's actions are ours
        ins.setdefault(4, self._disable)
        ins.setdefault(8, self._update_trigger)
    self.bootstrapped = True
    save(self)
    # after our answer, the next step registers with the server the bootstrap server wrote
    self.state = _REGISTER
    self.due = hal.ticks_add(hal.ticks_ms(), 100)
    self._close_later = True
    return coap.CHANGED


# The bootstrap's result, kept across reboots in state_file (CBOR: [bootstrap URI, {iid: {rid: v}}
# of /0, of /1]; the PSKs are in it and never printed): a device that bootstrapped registers with
# that server after a reboot and bootstraps again only when that registration fails.
def save(self):
    if not self.state_file:
        return
    from m2m.lwm2m import cbor

    objs = self.model.objs
    kept = [self.bs_uri] + [{i: {r: v for r, v in ins.items() if not callable(v)} for i, ins in objs[o].inst.items()}
                            for o in (0, 1)]
    try:
        with open(self.state_file + ".new", "wb") as f:
            f.write(cbor.dumps(kept))
        import os

        os.rename(self.state_file + ".new", self.state_file)
    except OSError as e:
        print("lwm2m: bootstrap result not kept (%s): the next boot bootstraps again" % e)


def load(self):
    from m2m.lwm2m import cbordec

    try:
        with open(self.state_file, "rb") as f:
            kept = cbordec.loads(f.read())
        if kept[0] != self.bs_uri:
            return False  # bootstrapped from another server than the one configured now
        sec, srv = kept[1], kept[2]
        if not any(not ins.get(1) for ins in sec.values()) or not srv:
            return False
    except (OSError, ValueError, TypeError, IndexError, KeyError, AttributeError):
        return False  # none yet, or not ours: bootstrap
    m = self.model
    m.objs[0].inst = sec
    m.objs[1].inst = srv
    for ins in srv.values():
        ins[4] = self._disable
        ins[8] = self._update_trigger
    self.bootstrapped = True
    return True


def again(self, why):
    # OMA Server object resource 16, Bootstrap on Registration Failure (true when absent):
    # registration refused, or failed Communication Retry Count (/1/x/17) times: 5 when absent,
    # ASSUMED docs/ASSUMED.md#A-LWM2M-RETRY-COUNT
    srv = self.model.objs[1].inst
    ins = srv[min(srv)] if srv else {}
    if ins.get(16) is False or (why is None and self.tries < (ins.get(17) or 5)):
        return False
    print("lwm2m: the bootstrapped server account fails (%s): bootstrapping again" % (why or "no answer"))
    self.bootstrapped = False
    self._close_ep()
    self._close_later = False
    self.tries = 0
    self.state = _BOOTSTRAP
    self.pending = None
    self.due = hal.ticks_ms()
    return True

# Replenishment orders: rules on a consumable level (a sensor reading) or a meter ask the host for
# supplies. One need is one order with a stable id, kept in a state file so a reboot never mints a
# second; the id carries the state file's epoch (random, made with the file), so a device whose state
# was lost (a new filesystem) never repeats an id the host already has for an older need; the request goes through the outbox (kind 5 -> <prefix>/<id>/orders) again, same id, until
# the host answers on /cmd ("order": confirmed / rejected / delivered). Contract: docs/CONTRACTS.md
# "Orders". Imported only when orders.rules is set:
#   o = Orders(outbox, cfg, device_id, level=sampler_level(sampler), meter=meter_level(meters))
#   contract.EXTRA["order"] = o.command                                         done by Orders
# The supervisor builds it from config through service(ctx) (m2m.supervisor.PLUGINS).
import json

from micropython import const

from m2m import hal
from m2m.events import post

ORDER = const(5)  # outbox kind (m2m.report.contract.RAW_TOPICS)
# one state entry per rule: [need number, armed, status, tries, need t, reason, supplier ref]
_N = const(0)
_ARMED = const(1)
_STATUS = const(2)
_TRIES = const(3)
_T = const(4)
_WHY = const(5)
_REF = const(6)
# a later status wins over an earlier one; rejected and delivered both end an order
_RANK = {"": -1, "open": 0, "confirmed": 1, "rejected": 2, "delivered": 2}


def _name_ok(s):
    if type(s) is not str or not 0 < len(s) <= 32:
        return False
    for c in s:
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "-_."):
            return False
    return True


def _num(x):
    return type(x) in (int, float) and type(x) is not bool


def check_rule(i, r):
    # What is wrong with orders.rules[i], as a ValueError that says what to write.
    w = "orders.rules[%d]" % i
    if type(r) is not dict:
        raise ValueError(w + ': give an object like {"item": "ink", "reading": "ink.level", "below": 15, "rearm": 50}')
    if not _name_ok(r.get("item")):
        raise ValueError(w + ": \"item\" must be 1-32 letters, digits, '-', '_' or '.'")
    src = [k for k in ("reading", "meter") if k in r]
    if len(src) != 1 or type(r[src[0]]) is not str:
        raise ValueError(w + ': give one source: "reading" (a sensor reading name) or "meter" (a meter name)')
    q = r.get("qty", 1)
    if type(q) is not int or not 0 < q <= 10000:
        raise ValueError(w + ': "qty" must be a whole number 1-10000')
    if src[0] == "meter":
        if not (_num(r.get("every")) and r["every"] > 0):
            raise ValueError(w + ': a meter rule needs "every": units per order (e.g. 500 running hours)')
        return
    lv = [k for k in ("below", "above") if k in r]
    if len(lv) != 1 or not _num(r[lv[0]]) or not _num(r.get("rearm")):
        raise ValueError(w + ': a reading rule needs "below" (or "above") and "rearm": the level that '
                         'ends the need (e.g. below 15, rearm 50)')
    if (lv[0] == "below") != (r["rearm"] > r[lv[0]]):
        raise ValueError(w + ': "rearm" must lie on the far side of "%s" (the refilled side)' % lv[0])


def new_epoch():
    # 8 hex digits: os.urandom (the ESP32 port: MICROPY_PY_OS_URANDOM, extmod/modos.c over
    # mp_hal_get_random = esp_random(); micropython ports/esp32/mpconfigport.h, mphalport.c) hashed
    # with the clock: without Wi-Fi / BT the RNG is only pseudo-random after boot, from a state the
    # bootloader seeded with noise (ESP-IDF docs "Random Number Generation"), so the clock goes in too
    import binascii
    import hashlib
    import os

    h = hashlib.sha256(os.urandom(8))
    h.update(("%d %d" % (hal.epoch(), hal.ticks_ms())).encode())
    return binascii.hexlify(h.digest()[:4]).decode()


def sampler_level(sampler):
    # level(name) -> the sampler's newest value of that reading, or None
    def level(name):
        x = sampler.latest(name)
        return None if x is None else x[0]
    return level


def meter_level(meters):
    # meter(name) -> an m2m.meter.Meters meter's reading in its unit (count x k), None if unknown
    def meter(name):
        c = meters.counters().get(name)
        for m in meters.meters:
            if m.name == name and c is not None:
                a, _, b = m.k.partition("/")
                return c * float(a) / float(b or 1)
        return None
    return meter


class Orders:
    def __init__(self, outbox, cfg, device_id, level=None, meter=None, path=None, register=True):
        oc = cfg["orders"]
        self.rules = oc["rules"] or ()
        for i, r in enumerate(self.rules):
            check_rule(i, r)
        self.outbox = outbox
        self.id = device_id
        self.level = level
        self.meter = meter
        self.path = path or oc["state"]
        self.check_ms = oc["check_s"] * 1000
        self.repeat_ms = oc["repeat_s"] * 1000
        self.state = self._load()
        self.due = hal.ticks_ms()
        self.resend = hal.ticks_ms()  # after a boot an open order's request goes out again at once
        self.last_seq = 0  # outbox seq of the newest request this boot
        self.requests = 0
        if register:
            from m2m.report import contract

            contract.EXTRA["order"] = self.command

    # ---- state on flash: {"@": epoch, item: [n, armed, status, tries, t, reason, ref]}, via a rename ----
    def _load(self):
        st = None
        try:
            with open(self.path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            pass
        if type(st) is not dict:
            st = {"@": new_epoch()}  # a new (or unreadable) state: a new epoch for its ids
        # a state without "@" was written before ids had an epoch: its ids stay as they were
        self.epoch = st.get("@") or ""
        for r in self.rules:
            if r["item"] not in st:
                st[r["item"]] = [0, 1, "", 0, 0, "", None]
        return st

    def _save(self):
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        import os

        os.rename(tmp, self.path)

    def order_id(self, item, n):
        # <device>:<item>:<epoch>-<n> (<device>:<item>:<n> for a state from before epochs)
        if self.epoch:
            return "%s:%s:%s-%d" % (self.id, item, self.epoch, n)
        return "%s:%s:%d" % (self.id, item, n)

    # ---- the loop's service ----
    def step(self):
        now = hal.ticks_ms()
        if hal.ticks_diff(self.due, now) <= 0:
            self.due = hal.ticks_add(now, self.check_ms)
            for r in self.rules:
                self._check(r)
        if hal.ticks_diff(self.resend, now) <= 0:
            # again only once the outbox has sent the previous copy (no pile-up during an outage)
            if self.last_seq <= self.outbox.acked:
                for r in self.rules:
                    if self.state[r["item"]][_STATUS] == "open":
                        self._request(r)
            self.resend = hal.ticks_add(now, self.repeat_ms)
        return max(0, min(hal.ticks_diff(self.due, now), hal.ticks_diff(self.resend, now)))

    def _check(self, r):
        s = self.state[r["item"]]
        if "meter" in r:
            v = self.meter(r["meter"]) if self.meter is not None else None
            if v is None:
                return
            k = int(v // r["every"])
            if k <= s[_N]:
                return
            s[_N] = k
            why = "%s %s reached %s" % (r["meter"], v, k * r["every"])
        else:
            v = self.level(r["reading"]) if self.level is not None else None
            if v is None:
                return
            low = "below" in r
            lim = r["below"] if low else r["above"]
            if not s[_ARMED]:
                if (v >= r["rearm"]) if low else (v <= r["rearm"]):
                    s[_ARMED] = 1  # refilled: the next shortage is a new need
                    self._save()
                return
            if not ((v < lim) if low else (v > lim)):
                return
            s[_N] += 1
            s[_ARMED] = 0
            why = "%s %s %s %s" % (r["reading"], v, "below" if low else "above", lim)
        # the new need is on flash before its first request leaves: a reboot sends the same id
        s[_STATUS] = "open"
        s[_TRIES] = 0
        s[_T] = hal.epoch()
        s[_WHY] = why
        s[_REF] = None
        self._save()
        post("order.need", order=self.order_id(r["item"], s[_N]), reason=why)
        self._request(r)

    def _request(self, r):
        s = self.state[r["item"]]
        s[_TRIES] += 1
        msg = {"order": self.order_id(r["item"], s[_N]), "item": r["item"], "qty": r.get("qty", 1),
               "reason": s[_WHY], "t": s[_T], "try": s[_TRIES]}
        self.last_seq = self.outbox.append(ORDER, json.dumps(msg).encode())
        self.requests += 1

    # ---- /cmd "order": {"order": id, "status": confirmed|rejected|delivered, "ref": ...} ----
    def command(self, args):
        oid = args.get("order")
        st = args.get("status")
        if st not in ("confirmed", "rejected", "delivered"):
            raise ValueError("order: \"status\" must be confirmed, rejected or delivered")
        for r in self.rules:
            s = self.state[r["item"]]
            if s[_N] and self.order_id(r["item"], s[_N]) == oid:
                if _RANK[st] > _RANK[s[_STATUS]]:
                    s[_STATUS] = st
                    ref = args.get("ref")
                    if ref is not None:
                        s[_REF] = str(ref)[:64]
                    self._save()
                    post("order." + st, order=oid, ref=s[_REF])
                return {"order": oid, "status": s[_STATUS]}
        raise ValueError("order %r is not this device's current order for any item" % (oid,))

    def status(self):
        # {item: (order id or None, status, tries, supplier ref)}
        out = {}
        for r in self.rules:
            s = self.state[r["item"]]
            out[r["item"]] = (self.order_id(r["item"], s[_N]) if s[_N] else None, s[_STATUS], s[_TRIES], s[_REF])
        return out


def service(ctx):
    # m2m.supervisor's plugin seam: ctx {"cfg", "id", "outbox", "sampler", ...; "meters" when run}
    sm = ctx.get("sampler")
    ms = ctx.get("meters")
    return Orders(ctx["outbox"], ctx["cfg"], ctx["id"], level=sampler_level(sm) if sm else None,
                  meter=meter_level(ms) if ms else None)

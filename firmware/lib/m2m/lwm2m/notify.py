# Observe and notify (RFC 7641; OMA core 5.1.2 attributes, 6.4 Information Reporting): the
# Write-Attributes store, the observations, and the notifier the client runs each step. `self` in
# the functions below is the Client; imported at the first Observe or Write-Attributes.
from micropython import const

from m2m import coap, hal
from m2m.lwm2m.client import _event
from m2m.lwm2m.model import Err

_ATTRS = ("pmin", "pmax", "gt", "lt", "st")
_OBSERVATIONS = const(8)  # at most
_CHECK_MS = const(500)  # how often observed values are read


class Attrs:
    # Write-Attributes (OMA core 5.1.2): path tuple -> {name: number}
    def __init__(self):
        self.by_path = {}

    def link(self, path):
        a = self.by_path.get(path)
        return "".join(";%s=%s" % (k, a[k]) for k in _ATTRS if k in a) if a else ""

    def set(self, path, query):
        new = dict(self.by_path.get(path, {}))
        for q in query:
            k, eq, v = q.partition("=")
            if k not in _ATTRS:
                if k in ("epmin", "epmax", "edge", "con", "hqmax"):
                    continue  # LwM2M 1.2 attributes: not kept
                raise Err(coap.BAD_REQUEST, "attribute %s" % k)
            if k in ("gt", "lt", "st") and len(path) < 3:
                raise Err(coap.BAD_REQUEST, "%s applies to a resource" % k)
            if not eq:
                new.pop(k, None)
                continue
            try:
                x = float(v) if k in ("gt", "lt", "st") else int(v)
            except ValueError:
                raise Err(coap.BAD_REQUEST, "%s=%s" % (k, v))
            if x < 0 and k in ("pmin", "pmax", "st"):
                raise Err(coap.BAD_REQUEST, "%s=%s" % (k, v))
            new[k] = x
        if "pmin" in new and "pmax" in new and new["pmax"] and new["pmax"] < new["pmin"]:
            raise Err(coap.BAD_REQUEST, "pmax below pmin")
        if "lt" in new and "gt" in new and new["lt"] >= new["gt"]:
            raise Err(coap.BAD_REQUEST, "lt must be below gt")
        if new:
            self.by_path[path] = new
        else:
            self.by_path.pop(path, None)

    def effective(self, path, defaults):
        # resource level over instance level over object level over the Server object's defaults
        out = dict(defaults)
        for n in range(1, len(path) + 1):
            a = self.by_path.get(path[:n])
            if a:
                out.update(a)
        return out


class Obs:
    def __init__(self, path, tok, fmt, payload, value, now):
        self.path = path
        self.tok = tok
        self.fmt = fmt
        self.last = payload  # bytes last sent
        self.value = value  # number last sent (gt / lt / st), or None
        self.t = now
        self.seq = 1


def observe(self, path, tok, fmt, payload):
    self._cancel(tok)
    for o in self.obs:
        if o.path == path:
            self.obs.remove(o)  # a new observation of the same path replaces the old
            break
    if len(self.obs) >= _OBSERVATIONS:
        raise Err(coap.SERVER_ERROR, "too many observations")
    ob = Obs(path, tok, fmt, payload, number(self, path), hal.ticks_ms())
    self.obs.append(ob)
    _event("lwm2m.observe", path="/" + "/".join(str(x) for x in path))
    return 0  # the first notification is the response; notifications count from 1


def number(self, path):
    if len(path) < 3:
        return None
    try:
        lv = self.model.leaves(path)
    except Err:
        return None
    if len(lv) == 1 and lv[0][4] in "iuf":
        return lv[0][5]
    return None


def defaults(self):
    srv = self.model.objs[1].inst
    s = srv[min(srv)] if srv else {}
    return {"pmin": s.get(2, 0) or 0, "pmax": s.get(3, 0) or 0}


def due(self, now, dry=False):
    # send what is due (dry: only say 0 when something is); ms until the next check
    wait = 60000
    d = defaults(self)
    for o in self.obs[:]:
        a = self._attrs().effective(o.path, d)
        age = hal.ticks_diff(now, o.t)
        pmin = int(a.get("pmin", 0)) * 1000
        pmax = int(a.get("pmax", 0)) * 1000
        if age < pmin:
            wait = min(wait, pmin - age)
            continue
        due = pmax and age >= pmax
        if not due:
            try:
                payload = self.model.read(o.path, o.fmt)
            except Err:
                payload = o.last
            if payload != o.last:
                due = crossed(self, o, a)
        if due and dry:
            return 0  # asleep (queue mode): time to wake and tell
        if due:
            if not in_flight(self, o.tok):
                send_note(self, o)
        elif pmax:
            wait = min(wait, pmax - age)
        wait = min(wait, _CHECK_MS)
    return wait


def crossed(self, o, a):
    if not ("gt" in a or "lt" in a or "st" in a):
        return True
    v = number(self, o.path)
    last = o.value
    if v is None or last is None:
        return True
    for k in ("gt", "lt"):
        if k in a and (v > a[k]) != (last > a[k]):
            return True
    return "st" in a and abs(v - last) >= a["st"]


def in_flight(self, tok):
    for x in self.ep.out:
        if x.msg.token == tok and x.msg.code >= 64:
            return True
    return False


def send_note(self, o):
    try:
        payload = self.model.read(o.path, o.fmt)
    except Err as e:
        self.ep.notify(o.tok, o.seq, e.code, None, None, True)
        self.obs.remove(o)
        return
    o.last = payload
    o.value = number(self, o.path)
    o.t = hal.ticks_ms()
    o.seq += 1
    self.wake = o.t
    self.ep.notify(o.tok, o.seq, coap.CONTENT, payload, o.fmt, True)

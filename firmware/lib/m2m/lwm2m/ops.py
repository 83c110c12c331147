# The server's requests to the client (OMA core 6.3 Device Management and Service Enablement, 6.4
# Information Reporting; transport 6.3 / 6.4): Read, Discover, Write (replace, partial),
# Write-Attributes, Execute, Create, Delete, Observe / cancel, and the bootstrap server's Writes,
# Deletes and Bootstrap-Finish. Loaded by the Client for each request and dropped after it (heap);
# `self` is the Client.
from micropython import const

from m2m import coap
from m2m.lwm2m import LINK, OPAQUE, SENML_CBOR, SENML_JSON, TEXT, TLV
from m2m.lwm2m.client import _bs, _event
from m2m.lwm2m.model import Err, parse_path

_BOOTSTRAP = const(1)  # the Client's state while bootstrapping (m2m.lwm2m.client NAMES)
_FORMATS = (TLV, SENML_JSON, SENML_CBOR, TEXT, OPAQUE)


def op(self, m):
    code = m.code
    p = m.path()
    bootstrapping = self.state == _BOOTSTRAP
    if p == ["bs"] and code == coap.POST:
        if not bootstrapping:
            raise Err(coap.NOT_ALLOWED)
        return _bs().finish(self), None, None, None
    try:
        path = parse_path("/".join(p))
    except ValueError:
        raise Err(coap.NOT_FOUND)
    model = self.model
    accept = m.uint(coap.ACCEPT)
    cf = m.uint(coap.CONTENT_FORMAT)
    if code == coap.GET:
        if not path:
            if accept == LINK and bootstrapping:
                return coap.CONTENT, self._links(), LINK, None
            raise Err(coap.NOT_ALLOWED)
        if accept == LINK:
            return coap.CONTENT, model.discover(path, self.attrs), LINK, None
        if path[0] == 0 and not bootstrapping:
            raise Err(coap.UNAUTHORIZED)
        fmt = _format(self, path, accept)
        payload = model.read(path, fmt)
        obs = m.uint(coap.OBSERVE)
        extra = None
        if obs == 0:
            extra = ((coap.OBSERVE, self._observe(path, m.token, fmt, payload)),)
        elif obs == 1:
            self._cancel(m.token)
        return coap.CONTENT, payload, fmt, extra
    if code == coap.PUT:
        if not m.payload and cf is None:  # Write-Attributes: a query, no content format
            if not path:
                raise Err(coap.BAD_REQUEST)
            model.obj(path[0])
            self._attrs().set(path, m.query())
            return coap.CHANGED, None, None, None
        if path and path[0] == 0 and not bootstrapping:
            raise Err(coap.UNAUTHORIZED)
        if len(path) < (1 if bootstrapping else 2):
            raise Err(coap.NOT_ALLOWED)
        vals = model.values_in(path, cf, m.payload)
        model.write(path, vals, True, bootstrapping)
        return coap.CHANGED, None, None, None
    if code == coap.POST:
        if len(path) == 3:
            o = model.obj(path[0])
            t, r, w, e, mu = o.spec(path[2])
            ins = o.inst.get(path[1])
            if ins is None or path[2] not in ins:
                raise Err(coap.NOT_FOUND)
            if not e:
                raise Err(coap.NOT_ALLOWED)
            arg = m.payload.decode() if m.payload else ""
            _event("lwm2m.execute", path="/%d/%d/%d" % path, arg=arg)
            ins[path[2]](arg)
            return coap.CHANGED, None, None, None
        if len(path) == 2:
            if path[1] not in model.obj(path[0]).inst:
                raise Err(coap.NOT_FOUND)
            vals = model.values_in(path, cf, m.payload)
            model.write(path, vals, False, bootstrapping)
            return coap.CHANGED, None, None, None
        if len(path) == 1:
            o = model.obj(path[0])
            if not o.creatable and not bootstrapping:
                raise Err(coap.NOT_ALLOWED)
            vals = model.values_in(path, cf, m.payload)
            iid = vals[0][1] if vals else max(list(o.inst) + [-1]) + 1
            if iid in o.inst:
                raise Err(coap.BAD_REQUEST, "instance exists")
            o.add(iid, {})
            model.write((path[0], iid), vals, True, True)
            return coap.CREATED, None, None, ((coap.LOCATION_PATH, str(path[0])), (coap.LOCATION_PATH, str(iid)))
        raise Err(coap.NOT_ALLOWED)
    if code == coap.DELETE:
        if bootstrapping and len(path) <= 2:
            for oid in ((path[0],) if path else (0, 1)):
                o = model.obj(oid)
                for iid in list(o.inst) if len(path) < 2 else [path[1]]:
                    if oid == 0 and o.inst.get(iid, {}).get(1):
                        continue  # the bootstrap account stays (OMA core 6.1.7.5)
                    o.inst.pop(iid, None)
            return coap.DELETED, None, None, None
        if len(path) != 2:
            raise Err(coap.NOT_ALLOWED)
        o = model.obj(path[0])
        if not o.creatable:
            raise Err(coap.NOT_ALLOWED)
        if o.inst.pop(path[1], None) is None:
            raise Err(coap.NOT_FOUND)
        return coap.DELETED, None, None, None
    raise Err(coap.NOT_ALLOWED)

def _format(self, path, accept):
    if accept is None:
        if len(path) >= 3:
            t = self.model.obj(path[0]).spec(path[2])
            if not t[4] or len(path) == 4:
                return OPAQUE if t[0] == "o" else TEXT
        return TLV
    if accept not in _FORMATS:
        raise Err(coap.NOT_ACCEPTABLE)
    return accept

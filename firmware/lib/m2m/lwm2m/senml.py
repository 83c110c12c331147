# SenML (RFC 8428) as LwM2M uses it (OMA core 7.4.4 JSON, 7.4.5 CBOR): records with the full path
# as base name + name ("bn": "/3/0/", "n": "0"), values in v / vs / vb / vd (base64url in JSON,
# bytes in CBOR) / vlo (object link "3:0"). CBOR labels (RFC 8428 6, IANA SenML labels registry):
# bn -2, bt -3, n 0, u 1, v 2, vs 3, vb 4, t 6, vd 8; "vlo" stays a text label (OMA core 7.4.5).
import json

from micropython import const

_LABELS = {"bn": -2, "bt": -3, "n": 0, "u": 1, "v": 2, "vs": 3, "vb": 4, "t": 6, "vd": 8}
_NAMES = {-2: "bn", -3: "bt", 0: "n", 1: "u", 2: "v", 3: "vs", 4: "vb", 6: "t", 8: "vd", "vlo": "vlo"}
_MAX = const(64)  # records in one payload


def _b64url(b):
    import binascii

    return binascii.b2a_base64(b).rstrip(b"\n=").replace(b"+", b"-").replace(b"/", b"_").decode()


def _unb64url(s):
    import binascii

    s = s.replace("-", "+").replace("_", "/")
    return binascii.a2b_base64(s + "=" * (-len(s) % 4))


def encode(records, as_cbor):
    # records: [dict with text labels]; bytes go as vd
    if as_cbor:
        from m2m.lwm2m import cbor

        out = []
        for r in records:
            d = {}
            for k in r:
                d[_LABELS.get(k, k)] = r[k]
            out.append(d)
        return bytes(cbor.dumps(out))
    out = []
    for r in records:
        if "vd" in r:
            r = dict(r)
            r["vd"] = _b64url(r["vd"])
        out.append(r)
    return json.dumps(out, separators=(",", ":")).encode()


def decode(b, as_cbor):
    # payload -> [(name, value, t)] with base name / base time applied; ValueError when malformed
    if as_cbor:
        from m2m.lwm2m import cbordec

        recs = cbordec.loads(b)
    else:
        try:
            recs = json.loads(b)
        except (ValueError, TypeError, UnicodeError):
            raise ValueError("senml: not JSON")
    if type(recs) is not list or len(recs) > _MAX:
        raise ValueError("senml: give an array of at most %d records" % _MAX)
    bn = ""
    bt = 0
    out = []
    for r in recs:
        if type(r) is not dict:
            raise ValueError("senml: a record is not a map")
        if as_cbor:
            r = {_NAMES.get(k, k): r[k] for k in r}
        if "bn" in r:
            bn = r["bn"]
            if type(bn) is not str:
                raise ValueError("senml: bn")
        if "bt" in r:
            bt = r["bt"]
            if type(bt) not in (int, float):
                raise ValueError("senml: bt")
        n = r.get("n", "")
        t = r.get("t", 0)
        if type(n) is not str or type(t) not in (int, float):
            raise ValueError("senml: n / t")
        v = None
        for k in ("v", "vs", "vb", "vd", "vlo"):
            if k in r:
                v = r[k]
                if k == "vd" and type(v) is str:
                    try:
                        v = _unb64url(v)
                    except Exception:
                        raise ValueError("senml: vd")
                elif k == "v" and type(v) not in (int, float):
                    raise ValueError("senml: v")
                elif k in ("vs", "vlo") and type(v) is not str:
                    raise ValueError("senml: " + k)
                elif k == "vb" and type(v) is not bool:
                    raise ValueError("senml: vb")
                elif k == "vd" and type(v) is not bytes:
                    raise ValueError("senml: vd")
                break
        out.append((bn + n, v, bt + t))
    return out


def _senml_rec(t, v):
    k = "vs" if t == "s" else "vb" if t == "b" else "vd" if t == "o" else "vlo" if t == "l" else "v"
    return k, v


def of(path, lv, as_cbor):
    # a read's leaves (m2m.lwm2m.model.Model.leaves) as SenML, the path as the base name
    recs = []
    bn = "/" + "/".join(str(x) for x in path) + ("/" if len(path) < 3 else "")
    for oid, iid, rid, ri, t, v in lv:
        full = (oid, iid, rid) if ri is None else (oid, iid, rid, ri)
        name = "/".join(str(x) for x in full[len(path):])
        if len(path) == 3 and ri is not None:
            name = "/" + name
        k, v = _senml_rec(t, v)
        r = {}
        if not recs:
            r["bn"] = bn
        if name:
            r["n"] = name
        r[k] = v
        recs.append(r)
    return encode(recs, as_cbor)

# Endpoint allowlist (issue #8): the socket layer calls check(host, port) before every connect.
# allow.hosts in config lists "host:port" or "host:*" entries (names compared without case); any
# other endpoint raises OSError(EACCES), is counted and posts "net.refused". allow.hosts unset (None)
# allows every endpoint; an empty list allows none. Contract: docs/CONTRACTS.md (SIM section).
from micropython import const

EACCES = const(13)

_rules = None  # tuple of (host, port or -1 for any), None: no allowlist
refused = 0


def parse(entries):
    # the rules of allow.hosts; ValueError names a bad entry
    from m2m.config import _endpoints

    why = _endpoints(entries)
    if why:
        raise ValueError("allow.hosts: " + why)
    out = []
    for e in entries:
        host, _, port = e.rpartition(":")
        out.append((host.lower(), -1 if port == "*" else int(port)))
    return tuple(out)


def setup(cfg):
    global _rules
    h = cfg["allow"]["hosts"]
    _rules = None if h is None else parse(h)


def allows(host, port):
    if _rules is None:
        return True
    h = host.lower()
    for rh, rp in _rules:
        if rh == h and (rp < 0 or rp == port):
            return True
    return False


def check(host, port):
    # raise OSError(EACCES) unless host:port is in the allowlist
    global refused
    if allows(host, port):
        return
    refused += 1
    from m2m import events

    events.post("net.refused", host=host, port=port, count=refused)
    raise OSError(EACCES, "%s:%d is not in allow.hosts: add it to the device config" % (host, port))

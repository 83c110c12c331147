# The device's one event stream: a bounded ring of (kind, t_ms, fields) that every layer posts to
# and the outbox / tests drain. Preallocated; when full the oldest entry is dropped and counted.
#   post(kind, **fields)   kind a short dotted string ("net.registered", "net.recovery", "alarm")
#   take()                 the oldest (kind, t_ms, fields) or None
#   log                    True: print "event: <kind> k=v ..." on the console for each post
# Posting is allowed from deadline hooks and URC handlers (it never blocks or does I/O but print).
from micropython import const

from m2m import hal

SIZE = const(32)

_ring = [None] * SIZE
_head = 0  # index of the oldest entry
_n = 0
dropped = 0
posted = 0
log = True


def post(kind, **fields):
    global _head, _n, dropped, posted
    if _n == SIZE:
        _head = (_head + 1) % SIZE
        _n -= 1
        dropped += 1
    _ring[(_head + _n) % SIZE] = (kind, hal.ticks_ms(), fields)
    _n += 1
    posted += 1
    if log:
        if fields:
            print("event:", kind, " ".join("%s=%s" % (k, fields[k]) for k in sorted(fields)))
        else:
            print("event:", kind)


def take():
    global _head, _n
    if not _n:
        return None
    e = _ring[_head]
    _ring[_head] = None
    _head = (_head + 1) % SIZE
    _n -= 1
    return e


def pending():
    return _n


def clear():
    global _head, _n, dropped
    while take() is not None:
        pass
    dropped = 0

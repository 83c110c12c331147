# Stand-in of the ESP32 port's `select`: the unix port's poll (uselect), plus what the ESP32 port does
# while the firmware waits in poll(): pending scheduled handlers run, so a Pin.irq handler runs when
# its edge comes, not after the wait. MicroPython v1.24.0 extmod/modselect.c
# poll_set_poll_until_ready_or_timeout calls mp_event_wait_ms between its checks of the objects
# (py/scheduler.c), which on ports/esp32 is MICROPY_EVENT_POLL_HOOK (mpconfigport.h):
# mp_handle_pending runs what machine_pin_isr_handler queued with mp_sched_schedule
# (ports/esp32/machine_pin.c). Here the bus wakes the wait for each edge (_m2m_sim.watch), the
# handlers run (_m2m_sim.poll_irqs), and the wait goes on until an object is ready or the timeout.
from uselect import POLLERR, POLLHUP, POLLIN, POLLOUT  # noqa: F401
import uselect as _s
import utime as _t

import _m2m_sim as _S


class _Poll:
    def __init__(self):
        self._p = _s.poll()
        self._w = None  # the bus's watch connection while it is registered here

    def register(self, obj, eventmask=POLLIN | POLLOUT):
        self._p.register(obj, eventmask)

    def unregister(self, obj):
        self._p.unregister(obj)

    def modify(self, obj, eventmask):
        self._p.modify(obj, eventmask)

    def _watch(self):
        w = _S.watch() if _S.irqs else None
        if w is not self._w:
            if self._w is not None:
                try:
                    self._p.unregister(self._w)
                except (OSError, KeyError):
                    pass
            if w is not None:
                self._p.register(w, POLLIN)
            self._w = w
        return w

    def poll(self, timeout=-1):
        w = self._watch()
        if w is None:
            return self._p.poll(timeout)
        start = _t.ticks_ms()
        while True:
            left = -1
            if timeout >= 0:
                left = timeout - _t.ticks_diff(_t.ticks_ms(), start)
                if left < 0:
                    left = 0
            r = self._p.poll(left)
            for e in r:
                if e[0] is w:
                    _S.watch_drain()
                    _S.poll_irqs()
                    r = [e for e in r if e[0] is not w]
                    w = self._watch()  # a hang-up closed it, or the last handler went
                    break
            if r or left == 0:
                return r
            if w is None:
                return self._p.poll(-1 if timeout < 0 else max(0, timeout - _t.ticks_diff(_t.ticks_ms(), start)))

    def ipoll(self, timeout=-1, flags=0):
        if flags or self._watch() is None:
            return self._p.ipoll(timeout, flags)
        return iter(self.poll(timeout))


def poll():
    return _Poll()

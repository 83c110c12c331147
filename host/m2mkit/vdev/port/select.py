# Stand-in of the ESP32 port's `select`: the unix port's poll (uselect), plus what the ESP32 port does
# while the firmware waits in poll(): pending scheduled handlers run, so a Pin.irq handler runs when
# its edge comes, not after the wait. MicroPython v1.24.0 extmod/modselect.c
# poll_set_poll_until_ready_or_timeout calls mp_event_wait_ms between its checks of the objects
# (py/scheduler.c), which on ports/esp32 is MICROPY_EVENT_POLL_HOOK (mpconfigport.h):
# mp_handle_pending runs what machine_pin_isr_handler queued with mp_sched_schedule
# (ports/esp32/machine_pin.c). Here the bus wakes the wait for each edge (_m2m_sim.watch), the
# handlers run (_m2m_sim.poll_irqs), and the wait goes on until an object is ready or the timeout.
from uselect import POLLERR, POLLHUP, POLLIN, POLLOUT  # noqa: F401

from _m2m_sim import Poll as poll  # noqa: F401

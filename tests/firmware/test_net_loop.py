# m2m.events (bounded ring) and m2m.loop (deadline hooks, guarded UART waits, run) on MicroPython.
from m2m import events, loop


def test_ring_is_bounded_drops_the_oldest_and_counts():
    events.clear()
    events.log = False
    for i in range(events.SIZE + 5):
        events.post("x", i=i)
    assert events.pending() == events.SIZE and events.dropped == 5
    k, t, f = events.take()
    assert k == "x" and f == {"i": 5}  # the five oldest were dropped
    n = 1
    while events.take() is not None:
        n += 1
    assert n == events.SIZE and events.take() is None
    events.log = True


class _Uart:
    def __init__(self):
        self.waited = 0
        self.out = []

    def readinto(self, b):
        return 0

    def read(self, n=-1):
        return None

    def any(self):
        return 0

    def write(self, b):
        self.out.append(b)
        return len(b)

    def wait(self, ms):
        self.waited += ms
        return False


def test_guarded_wait_runs_hooks_and_a_hook_cannot_write():
    u = _Uart()
    g = loop.Guarded(u)
    calls = []
    errors = []

    def hook():
        calls.append(1)
        try:
            g.write(b"AT\r")
        except RuntimeError as e:
            errors.append(e)

    loop.add_hook(hook)
    try:
        assert g.wait(1000) is False
    finally:
        loop.remove_hook(hook)
    assert u.waited == 1000 and len(calls) == 1000 // loop.SLICE_MS
    assert len(errors) == len(calls) and u.out == []  # every write from a hook refused
    assert g.write(b"AT\r") == 3  # outside hooks it writes


def test_run_steps_services_until_done():
    class S:
        n = 0

        def step(self):
            self.n += 1
            return 10

    s = S()
    assert loop.run((s,), lambda: s.n >= 3, 10000)
    assert s.n == 3
    assert not loop.run((s,), None, 50)  # max_ms ran out

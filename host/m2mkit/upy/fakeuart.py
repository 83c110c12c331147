# MicroPython side (runs inside the unix port, not CPython): a fake clock and a scripted fake
# modem UART for the AT drivers. Shipped so that `m2mkit bench` (host/m2mkit/bench_at.py) and the
# firmware tests (tests/firmware/transcript.py re-exports it) share one copy. Put this directory
# on MicroPython's sys.path and `import fakeuart`.

import io


class FakeHal:
    # device clock that only moves when the fake UART waits (sync driver); asleep_ms is real
    # asyncio time scaled down so async tests stay quick
    def __init__(self, scale=10):
        self.t = 0
        self.scale = scale

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, d):
        return a + d

    def sleep_ms(self, ms):
        self.t += ms

    def asleep_ms(self, ms):
        import asyncio

        self.t += ms
        return asyncio.sleep_ms(ms // self.scale if ms > 0 else 0)


class _Stream(io.IOBase):
    # what asyncio.StreamReader reads from: the fake modem's output queue
    def __init__(self, m):
        self.m = m

    def readinto(self, buf):
        n = self.m.readinto(buf)
        return n if n else None

    def write(self, buf):
        return self.m.write(buf)

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            r = 0
            if arg & 1 and self.m.any():
                r |= 1
            if arg & 4:
                r |= 4
            return r
        return -1


class FakeModem:
    # A UART with a scripted modem behind it. script: list of (expected_write, reply) consumed in
    # order, one per write(); expected None accepts anything; reply bytes, or a list of
    # (delay_ms, bytes) delivered that many fake ms later, or None (no answer).
    def __init__(self, script=(), hal=None, chunk=0):
        self.hal = hal or FakeHal()
        self.script = list(script)
        self.chunk = chunk
        self.rx = bytearray()
        self.timed = []
        self.writes = []
        self.mismatch = []

    def push(self, data):
        self.rx += data

    def later(self, ms, data):
        self.timed.append((self.hal.t + ms, data))
        self.timed.sort(key=lambda x: x[0])

    def _due(self):
        t = self.hal.t
        while self.timed and self.timed[0][0] <= t:
            self.rx += self.timed.pop(0)[1]

    def write(self, buf):
        b = bytes(buf)
        self.writes.append(b)
        if self.script:
            exp, reply = self.script.pop(0)
            if exp is not None and exp != b:
                self.mismatch.append((exp, b))
            if isinstance(reply, (bytes, bytearray)):
                self.rx += reply
            elif reply:
                for ms, data in reply:
                    self.later(ms, data)
        return len(b)

    def readinto(self, buf):
        self._due()
        n = len(self.rx)
        if n > len(buf):
            n = len(buf)
        if self.chunk and n > self.chunk:
            n = self.chunk
        if n:
            buf[0:n] = self.rx[0:n]
            self.rx = self.rx[n:]
        return n

    def any(self):
        self._due()
        return len(self.rx)

    def wait(self, timeout_ms):
        self._due()
        if self.rx:
            return True
        end = self.hal.t + timeout_ms
        if self.timed and self.timed[0][0] <= end:
            self.hal.t = self.timed[0][0]
            self._due()
            return True
        self.hal.t = end
        return False

    @property
    def stream(self):
        return _Stream(self)

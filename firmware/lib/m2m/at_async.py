# The asyncio AT driver (docs: m2m/at.py): start() runs a reader task that feeds the parser and
# dispatches URCs; cmd() is awaited. Apart from m2m.at so that the device's synchronous stack does not
# hold it; `from m2m.at import AsyncAT` loads it.
# A command whose task is cancelled after it went out (Task.cancel(), asyncio.wait_for's timeout)
# is finished by the next cmd() before its own (its payload once prompted, then its final, within its
# timeout), as m2m.at.AT finishes one left by Ctrl-C; meanwhile the reader still feeds it its answer.
from m2m.at import ATTimeout, _Driver


class AsyncAT(_Driver):
    # asyncio driver: start() runs a reader task that feeds the parser and dispatches URCs.

    def __init__(self, uart, **kw):
        super().__init__(uart, **kw)
        import asyncio

        self._asyncio = asyncio
        self._lock = asyncio.Lock()
        self._ev = asyncio.Event()
        self._expired = False
        self._task = None
        self._owed = None  # (command, timeout, payload still owed) of a cancelled command

    def reset(self):
        # after a power cycle: a cancelled command's answer will never come either
        super().reset()
        self._owed = None

    def start(self):
        if self._task is None:
            self._task = self._asyncio.create_task(self._reader())
        return self._task

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _reader(self):
        asyncio = self._asyncio
        hal = self._hal
        rx = self._rx
        feed = self.parser.feed
        while True:
            try:
                sr = asyncio.StreamReader(self._uart.stream)
            except OSError:
                await hal.asleep_ms(200)  # nothing attached yet
                continue
            while True:
                n = await sr.readinto(rx)
                if not n:
                    break  # link closed: let the UART reconnect, then read again
                feed(rx, n)
                if self._done or self._prompt:
                    self._ev.set()
                self._dispatch()
            self._uart.readinto(rx)
            await hal.asleep_ms(50)

    async def _timer(self, ms):
        await self._hal.asleep_ms(ms)
        self._expired = True
        self._ev.set()

    async def cmd(self, command, resp=None, timeout_ms=None, retries=0, data=None, payload=None,
                  finals=None, fails=None, idempotent=False, prompt=None):
        c = self._prepare(command, retries, payload, idempotent)
        tmo = timeout_ms or self.timeout_ms
        async with self._lock:
            if self._owed is not None:
                await self._settle()
            attempt = 0
            while True:
                try:
                    return await self._once(c, resp, tmo, data, payload, finals, fails, prompt)
                except ATTimeout:
                    if attempt >= retries:
                        raise
                    attempt += 1

    async def _settle(self):
        # a command whose task was cancelled (Task.cancel(), asyncio.wait_for's timeout) after it
        # went out: the parser kept it running (the reader still takes its answer), the modem may
        # still wait for its payload and its final result would be taken for the next command's.
        # Finished here first, as m2m.at.AT finishes one left by Ctrl-C: the payload once the
        # prompt is in, then its final, within its own timeout (then given up as a timeout is)
        c, tmo, payload = self._owed
        self._owed = None
        try:
            await self._wait(c, tmo, payload)
        except ATTimeout:
            pass

    async def _once(self, c, resp, tmo, data, payload, finals, fails, prompt):
        self._begin(c, resp, data, payload, finals, fails, prompt)
        return await self._wait(c, tmo, payload)

    async def _wait(self, c, tmo, payload):
        ev = self._ev
        ev.clear()
        self._expired = False
        r = self._resp
        timer = self._asyncio.create_task(self._timer(tmo))
        try:
            while not self._done:
                if self._prompt:
                    self._prompt = False
                    if payload is not None:  # None: a settled exchange whose payload went already
                        self._send_payload(payload)
                        payload = None
                    continue
                if self._expired:
                    raise self._timed_out(c)
                await ev.wait()
                ev.clear()
        except BaseException:
            # CancelledError (a BaseException in MicroPython's asyncio, extmod/asyncio/core.py):
            # the exchange is owed to the next cmd(); the timeout's own gave up already
            if self._resp is not None:
                self._owed = (c, tmo, payload)
            raise
        finally:
            timer.cancel()
        self._finish()
        return r

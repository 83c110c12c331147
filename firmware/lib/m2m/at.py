# AT command drivers over the sans-IO parser (m2m.atparse): a synchronous pump `AT` for blocking
# callers and an asyncio driver `AsyncAT`. Same command API on both:
#
#   r = at.cmd("AT+CEREG?")                       # AT: returns a Response
#   r = await aat.cmd("AT+CEREG?")                # AsyncAT: same arguments, awaited
#   cmd(command, resp=None, timeout_ms=None, retries=0, data=None, payload=None,
#       finals=None, fails=None, idempotent=False, prompt=None) -> Response
#     command     str or bytes, without the CR
#     resp        response prefix(es); None derives them from the command (AT+CEREG? -> +CEREG:,
#                 one per part of a joined command AT+CNMP?;+CFUN?)
#     timeout_ms  for the whole exchange (prompt and payload included); default: the driver's
#     retries     extra attempts after a timeout; only for queries (AT+X?), tests (AT+X=?) and
#                 commands marked idempotent=True; never with a payload (ValueError otherwise)
#     data        payload-length rule (prefix, field, inline[, query]), see m2m.atparse
#     payload     bytes to write after the prompt (the command then expects one)
#     prompt      the prompt word the payload waits for (b'DOWNLOAD'); None: '>' / '> '
#     finals      extra success finals (b'SEND OK'); fails: extra failure finals (b'SEND FAIL')
#   Response: ok, error (None | 'ERROR' | ('CME', code) | ('CMS', code) | 'SEND FAIL' ...),
#   lines (list of bytes), data (bytes or None), final (bytes), lost (bytes dropped by overflow)
#   No final result in time raises ATTimeout (an OSError, errno ETIMEDOUT); a payload cut short
#   by the timeout is counted in the driver's `overflows` and `lost` (bytes).
# The drivers read whatever the UART has (up to rx_size bytes a read) into one preallocated
# buffer and feed it to the parser as it is; the parser takes reads of any size.
#
# One command in flight at a time (AsyncAT: an asyncio.Lock). After `max_timeouts` consecutive
# timeouts the driver sets `unresponsive` and calls on_unresponsive(driver) once, so the modem layer
# can pulse the power key; any final result clears the count and the flag.
#
# URCs: at.urc(prefix, handler) registers handler(line: bytes) for lines starting with prefix (the
# prefix is also added to the parser's URC table); prefix b"" is the catch-all for lines no other
# handler takes. Handlers run on the driver's own path, never inside a command's write/wait path:
#   AT       queued while a command runs, dispatched after it returns (and by poll())
#   AsyncAT  dispatched by the reader task
# A handler must not block and must not send AT commands (AT raises RuntimeError if it tries): it
# posts work, e.g. sets a flag or appends to a bounded list that a task drains.
#
# Time comes from m2m.hal (ticks_ms, ticks_diff, ticks_add, asleep_ms); pass hal=... to use another
# clock (tests pass a fake one). The UART needs write, readinto (non-blocking, 0 when empty), any,
# wait(timeout_ms) and, for AsyncAT, stream.

from micropython import const

# ATParseError, resp_prefix and the EV_* kinds are re-exported: dialects import everything from m2m.at
from m2m.atparse import (  # noqa: F401
    ATParser, ATParseError, EV_FINAL, EV_LINE, EV_URC, EV_PROMPT, EV_DATA, EV_NOISE, EV_OVERFLOW,
    is_safe, resp_prefix, resp_prefixes,
)

_ETIMEDOUT = const(110)
_URCQ_MAX = const(16)


class ATTimeout(OSError):
    pass


class ATError(Exception):
    # raised by Response.check(); .response is the Response
    def __init__(self, response):
        super().__init__(response.cmd, response.error)
        self.response = response


class Response:
    def __init__(self, cmd):
        self.cmd = cmd
        self.ok = False
        self.error = None
        self.final = None
        self.lines = []
        self.data = None
        self.lost = 0

    def first(self, prefix=None):
        # first line (with prefix: the first starting with it, prefix and spaces removed)
        if prefix is None:
            return self.lines[0] if self.lines else None
        if isinstance(prefix, str):
            prefix = prefix.encode()
        for ln in self.lines:
            if ln.startswith(prefix):
                return ln[len(prefix):].lstrip()
        return None

    def check(self):
        if not self.ok:
            raise ATError(self)
        return self

    def __repr__(self):
        return "<Response %s ok=%s error=%r lines=%r data=%r>" % (
            self.cmd, self.ok, self.error, self.lines, self.data)


def _enc(x):
    return x.encode() if isinstance(x, str) else x


class _Driver:
    def __init__(self, uart, timeout_ms=5000, max_timeouts=3, on_unresponsive=None, hal=None,
                 line_max=512, data_max=1600, rx_size=256):
        if hal is None:
            from m2m import hal
        self._hal = hal
        self._uart = uart
        self.timeout_ms = timeout_ms
        self.max_timeouts = max_timeouts
        self.on_unresponsive = on_unresponsive
        self.parser = ATParser(self._event, line_max, data_max)
        self._rx = bytearray(rx_size)
        self._handlers = {}
        self._urcq = []
        self._resp = None
        self._done = False
        self._prompt = False
        self._in_urc = False
        self.timeouts = 0  # consecutive
        self.unresponsive = False
        self.urc_dropped = 0
        self.noise = 0
        self.overflows = 0
        self.lost = 0  # bytes dropped by overflows and cut payloads

    # ---- URC table ----
    def urc(self, prefix, handler):
        prefix = _enc(prefix)
        if handler is None:
            self._handlers.pop(prefix, None)
            self.parser.remove_urc(prefix)
            return
        self._handlers[prefix] = handler
        self.parser.add_urc(prefix)

    def _dispatch(self):
        q = self._urcq
        if not q or self._in_urc:
            return 0
        n = 0
        self._in_urc = True
        try:
            while q:
                line = q.pop(0)
                fn = None
                best = -1
                for p, h in self._handlers.items():
                    if len(p) > best and line.startswith(p):
                        fn = h
                        best = len(p)
                if fn is not None:
                    n += 1
                    try:
                        fn(line)
                    except Exception as e:  # a broken handler must not take the modem down
                        _report(e)
        finally:
            self._in_urc = False
        return n

    # ---- parser events ----
    def _event(self, ev):
        k = ev[0]
        if k == EV_URC:
            q = self._urcq
            if len(q) >= _URCQ_MAX:
                q.pop(0)
                self.urc_dropped += 1
            q.append(ev[1])
            return
        if k == EV_NOISE:
            self.noise += 1
            return
        if k == EV_OVERFLOW:
            self.overflows += 1
            self.lost += ev[1]
        r = self._resp
        if r is None:
            return
        if k == EV_LINE:
            r.lines.append(ev[1])
        elif k == EV_FINAL:
            r.ok = ev[1]
            r.error = ev[2]
            r.final = ev[3]
            self._done = True
        elif k == EV_PROMPT:
            self._prompt = True
        elif k == EV_DATA:
            r.data = ev[1]
        elif k == EV_OVERFLOW:
            r.lost += ev[1]

    # ---- shared command framing ----
    def _prepare(self, command, retries, payload, idempotent):
        if self._in_urc:
            raise RuntimeError("URC handlers must not send AT commands: post work instead")
        c = _enc(command)
        if retries and (payload is not None or not (idempotent or is_safe(c))):
            raise ValueError("retries only for queries, tests and idempotent commands")
        return c

    def _begin(self, c, resp, data, payload, finals, fails, prompt, write=True):
        r = Response(c)
        self._resp = r
        self._done = False
        self._prompt = False
        self.parser.begin(c, resp, data, finals, fails,
                          False if payload is None else (prompt or True))
        if write:
            self._uart.write(c + b"\r")
        return r

    def _finish(self):
        self._resp = None
        if self._done:
            self.timeouts = 0
            self.unresponsive = False

    def _send_payload(self, payload):
        payload = _enc(payload)
        self._prompt = False
        self.parser.payload_sent(payload)
        self._uart.write(payload)

    def _timed_out(self, c):
        # returns the exception to raise; calls on_unresponsive once per streak
        self.parser.abort()
        self._resp = None
        self.timeouts += 1
        if self.timeouts >= self.max_timeouts and not self.unresponsive:
            self.unresponsive = True
            cb = self.on_unresponsive
            if cb is not None:
                try:
                    cb(self)
                except Exception as e:
                    _report(e)
        return ATTimeout(_ETIMEDOUT, "no answer to " + c.decode())

    def reset(self):
        # after a power cycle: drop parser state, queued URCs and the timeout streak
        self.parser.reset()
        self._urcq = []
        self._resp = None
        self.timeouts = 0
        self.unresponsive = False


def _report(e):
    try:
        import sys

        sys.print_exception(e)
    except Exception:
        pass


class AT(_Driver):
    # Synchronous pump: cmd() blocks until the final result or the timeout.
    # A command left by an exception other than its timeout (Ctrl-C's KeyboardInterrupt, a UART
    # error) once it went out is given up as a timeout is (the parser would refuse every later
    # command) and finished by the next cmd() before its own: the payload if the modem still waits
    # for it (it would take the next command's bytes as them), then its final (which would be taken
    # for the next command's); poll() leaves the input to it meanwhile. reset() (a power cycle)
    # forgets it.
    _owed = None

    def reset(self):
        # after a power cycle: an interrupted command's answer will never come either (the next
        # command would wait out its timeout for it, counting one more)
        _Driver.reset(self)
        self._owed = None

    def _settle(self):
        a = self._owed
        self._owed = None
        try:
            self._once(*a)
        except ATTimeout:
            pass

    def cmd(self, command, resp=None, timeout_ms=None, retries=0, data=None, payload=None,
            finals=None, fails=None, idempotent=False, prompt=None):
        c = self._prepare(command, retries, payload, idempotent)
        tmo = timeout_ms or self.timeout_ms
        if self._owed is not None:
            self._settle()
        self._pump(0)  # take in what arrived before the command; dispatched after it
        attempt = 0
        try:
            while True:
                try:
                    return self._once(c, resp, tmo, data, payload, finals, fails, prompt)
                except ATTimeout:
                    if attempt >= retries:
                        raise
                    attempt += 1
        finally:
            self._dispatch()

    def _once(self, c, resp, tmo, data, payload, finals, fails, prompt, owed=None):
        # owed (True / False: its prompt seen) finishes an exchange the modem already has
        hal = self._hal
        uart = self._uart
        feed = self.parser.feed
        rx = self._rx
        r = None
        owe = payload  # until the prompt has had it
        try:
            r = self._begin(c, resp, data, payload, finals, fails, prompt, owed is None)
            if owed:
                self._prompt = True
            deadline = hal.ticks_add(hal.ticks_ms(), tmo)
            while not self._done:
                if self._prompt:
                    self._send_payload(payload)
                    owe = None
                n = uart.readinto(rx)
                if n:
                    feed(rx, n)
                    continue
                rem = hal.ticks_diff(deadline, hal.ticks_ms())
                if rem <= 0:
                    raise self._timed_out(c)
                uart.wait(rem)
        except BaseException:
            if self._resp is not None:  # not the timeout's (it gave up already)
                if r is not None:  # the command went out: its payload (owe) and final are owed
                    self._owed = (c, resp, tmo, data, owe, finals, fails, prompt, self._prompt)
                self.parser.abort()
                self._resp = None
            raise
        self._finish()
        return r

    def _pump(self, timeout_ms):
        # feed whatever arrives within timeout_ms (everything already waiting at least)
        hal = self._hal
        uart = self._uart
        rx = self._rx
        feed = self.parser.feed
        deadline = hal.ticks_add(hal.ticks_ms(), timeout_ms)
        got = False
        while True:
            n = uart.readinto(rx)
            if n:
                feed(rx, n)
                got = True
                continue
            if got:
                return
            rem = hal.ticks_diff(deadline, hal.ticks_ms())
            if rem <= 0 or not uart.wait(rem):
                return

    def poll(self, timeout_ms=0):
        # between commands: read what the modem sent (waiting up to timeout_ms for the first
        # bytes), dispatch the URCs; returns how many handlers ran
        if self._in_urc or self._owed is not None:
            return 0
        self._pump(timeout_ms)
        return self._dispatch()


def __getattr__(name):
    # AsyncAT lives in m2m.at_async, loaded by the code that asks for it (the device runs the
    # synchronous AT): `from m2m.at import AsyncAT` still works (a module __getattr__, PEP 562;
    # MicroPython's MICROPY_MODULE_GETATTR, on from its core feature level)
    if name == "AsyncAT":
        from m2m.at_async import AsyncAT

        return AsyncAT
    raise AttributeError(name)

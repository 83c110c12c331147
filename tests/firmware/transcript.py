# Test helpers (MicroPython): replay .atlog transcripts through the AT parser, and a fake modem
# UART + fake clock for the AT drivers.
#
# .atlog (docs/CONTRACTS.md): JSON lines; a header {"m2mkit_transcript": 1, "model": ...,
# "source": ..., "notes": ...} then {"t": ms, "d": ">" | "<", "b": latin-1 string} per chunk.
# Extra header keys used here:
#   "urcs":     [prefix, ...]  URC prefixes the dialect registers (besides atparse.URC_DEFAULT)
#   "cmd_opts": {command_prefix: {"resp": [...], "data": [prefix, field, inline],
#                "finals": [...], "fails": [...], "prompt": true}}  options of the commands
#               starting with that prefix (longest prefix wins)
#   "expect":   the exact event list the replay must produce, each event as a list:
#               ["final", line] ["line", line] ["urc", line] ["prompt"] ["data", latin-1 bytes]
#               ["noise", latin-1 bytes] ["overflow", n]
# A ">" chunk is a command (its CR/LF stripped) unless the last event was a prompt: then it is the
# payload written after the prompt.

import io
import json
import os

from m2m.atparse import (
    ATParser, URC_DEFAULT, EV_FINAL, EV_LINE, EV_URC, EV_PROMPT, EV_DATA, EV_NOISE, EV_OVERFLOW,
)


def latin1(b):
    return "".join(chr(c) for c in b)


def unlatin1(s):
    return bytes([ord(c) for c in s])


def repo():
    return os.getenv("M2M_REPO") or "."


def transcripts_dir():
    return repo() + "/tests/transcripts"


def list_atlogs(sub=""):
    d = transcripts_dir() + ("/" + sub if sub else "")
    out = []
    for name in sorted(os.listdir(d)):
        if name.endswith(".atlog"):
            out.append(d + "/" + name)
    return out


def load(path):
    with open(path) as f:
        lines = [ln for ln in f.read().split("\n") if ln.strip()]
    header = json.loads(lines[0])
    if header.get("m2mkit_transcript") != 1:
        raise ValueError(path + ": not an m2mkit transcript")
    chunks = []
    for ln in lines[1:]:
        o = json.loads(ln)
        chunks.append((o["t"], o["d"], unlatin1(o["b"])))
    return header, chunks


def norm(ev):
    k = ev[0]
    if k == EV_FINAL:
        return ["final", latin1(ev[3])]
    if k == EV_LINE:
        return ["line", latin1(ev[1])]
    if k == EV_URC:
        return ["urc", latin1(ev[1])]
    if k == EV_PROMPT:
        return ["prompt"]
    if k == EV_DATA:
        return ["data", latin1(ev[1])]
    if k == EV_NOISE:
        return ["noise", latin1(ev[1])]
    if k == EV_OVERFLOW:
        return ["overflow", ev[1]]
    return ["?", repr(ev)]


def _opts(header, cmd):
    best = None
    table = header.get("cmd_opts") or {}
    for k in table:
        kb = k.encode()
        if cmd.startswith(kb) and (best is None or len(kb) > len(best[0])):
            best = (kb, table[k])
    o = best[1] if best else {}
    kw = {}
    if "resp" in o:
        kw["resp"] = tuple(p.encode() for p in o["resp"])
    if "data" in o:
        d = o["data"]
        kw["data"] = (d[0].encode(), d[1], d[2])
    if "finals" in o:
        kw["finals"] = tuple(p.encode() for p in o["finals"])
    if "fails" in o:
        kw["fails"] = tuple(p.encode() for p in o["fails"])
    if o.get("prompt"):
        kw["prompt"] = True
    return kw


def replay(header, chunks, split=0, line_max=512, data_max=1600):
    # returns the parser's events (normalised lists). split=k re-cuts every "<" chunk into pieces of
    # k bytes (the parser must give the same events however the bytes arrive)
    events = []
    urcs = tuple(URC_DEFAULT) + tuple(p.encode() for p in header.get("urcs", ()))
    p = ATParser(events.append, line_max, data_max, urcs)
    for _t, d, b in chunks:
        if d == ">":
            if events and events[-1][0] == EV_PROMPT:
                p.payload_sent(b)
                continue
            cmd = b.rstrip(b"\r\n")
            if p.busy:
                p.abort()  # the log shows a command that never got its final result
            p.begin(cmd, **_opts(header, cmd))
        else:
            if split:
                for i in range(0, len(b), split):
                    p.feed(b[i:i + split])
            else:
                p.feed(b)
    return [norm(e) for e in events]


# ---- fake clock and fake modem UART for the drivers ----
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

# Test helpers (MicroPython): replay .atlog transcripts through the AT parser; the fake modem
# UART + fake clock for the AT drivers come from host/m2mkit/upy/fakeuart.py (shipped).
#
# .atlog (docs/CONTRACTS.md): JSON lines; a header {"m2mkit_transcript": 1, "model": ...,
# "source": ..., "notes": ...} then {"t": ms, "d": ">" | "<", "b": latin-1 string} per chunk.
# Extra header keys used here:
#   "urcs":     [prefix, ...]  URC prefixes the dialect registers (besides atparse.URC_DEFAULT)
#   "cmd_opts": {command_prefix: {"resp": [...], "data": [prefix, field, inline[, query]],
#                "finals": [...], "fails": [...], "prompt": true or a word}}  options of the
#               commands starting with that prefix (longest prefix wins)
#   "expect":   the exact event list the replay must produce, each event as a list:
#               ["final", line] ["line", line] ["urc", line] ["prompt"] ["data", latin-1 bytes]
#               ["noise", latin-1 bytes] ["overflow", n]
# A ">" chunk is a command (its CR/LF stripped) unless the last event was a prompt: then it is the
# payload written after the prompt.

import json
import os
import sys

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
        kw["data"] = (d[0].encode(), d[1], d[2]) + ((d[3].encode(),) if len(d) > 3 else ())
    if "finals" in o:
        kw["finals"] = tuple(p.encode() for p in o["finals"])
    if "fails" in o:
        kw["fails"] = tuple(p.encode() for p in o["fails"])
    if o.get("prompt"):
        pr = o["prompt"]
        kw["prompt"] = pr.encode() if isinstance(pr, str) else True
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


# ---- fake clock and fake modem UART for the drivers: shipped in host/m2mkit/upy/fakeuart.py
# (the bench uses it too), re-exported here for the tests ----
_UPY = repo() + "/host/m2mkit/upy"
if _UPY not in sys.path:
    sys.path.append(_UPY)
from fakeuart import FakeHal, FakeModem  # noqa: E402,F401

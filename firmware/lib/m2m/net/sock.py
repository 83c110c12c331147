# Sockets over the modem's own TCP/IP stack, shaped like MicroPython's (docs/CONTRACTS.md, "Modem
# sockets"). A Stack serves one modem; its socket() / getaddrinfo() make it a drop-in for the
# `socket` module of code written for MicroPython (umqtt.simple: `simple.socket = stack`).
#
#   st = Stack(modem, kind="tcp"|"udp"|"tls", timeout_ms=10000, tls=None, on_fail=None)
#   tls: {"ca": pem bytes, "cert": pem, "key": pem, "name": "m2m"} uploaded once per boot the
#        modem's own way (SIMCom AT+CFSWFILE, Quectel AT+QFUPL, Sequans AT+SQNSNVW); server
#        verification is on whenever a CA is given; the host name goes to the modem (SNI)
#   s = st.socket(); s.connect(st.getaddrinfo(host, port)[0][-1]); s.write(b); s.read(n) ...
#
# Writes are collected and go out as one send (one AT send command, one TCP segment) when a read
# starts, when flush() / send() is called, at close, or when the buffer holds MAX_SEND bytes.
# No read waits forever: a blocking socket waits at most its timeout (settimeout(None) and
# setblocking(True) mean the Stack's timeout_ms) and then raises OSError(ETIMEDOUT); a
# non-blocking one returns None when nothing is there. Waits go through the AT driver, whose UART
# waits call m2m.loop.idle(). A read never asks the modem for more than its buffer holds: the
# receive URC or a buffer query (SIMCom AT+CARECV?, Quectel AT+QIRD=<id>,0 / AT+QSSLRECV=<id>,0,
# Sequans AT+SQNSI=<id>, as TinyGSM's TinyGsmClientSIM7080.h / TinyGsmClientBG96.h /
# TinyGsmClientSequansMonarch.h modemGetAvailable do) says how much there is; a SIM7000 asked
# with AT+CARECV for more than it holds has been reported to freeze.
import sys

from micropython import const

from m2m import hal
from m2m.modem import ModemError, _fields

AF_INET = const(2)
SOCK_STREAM = const(1)
SOCK_DGRAM = const(2)
IPPROTO_TCP = const(6)
IPPROTO_UDP = const(17)

_ETIMEDOUT = const(110)
_ECONNRESET = const(104)
_ENOTCONN = const(107)
_EHOSTUNREACH = const(113)
_ECONNREFUSED = const(111)

MAX_SEND = const(1024)  # bytes a send command carries (below every dialect's limit)
MAX_READ = const(1024)  # bytes a receive command asks for at most
_REQUERY_MS = const(2000)  # a buffer query this often even without a receive URC (URCs get lost)
_IDLE_REQUERY_MS = const(10000)  # the same for non-blocking looks (a poll each loop step)


_SOCK_URCS = const(("sock_data", "sock_closed", "sock_sent"))


def _first(fields):
    return fields[0] if fields else None


def _ioerr(code, why):
    # OSError(errno, why): e.errno as MicroPython's sockets give it, e.args[1] says what happened
    return OSError(code, why)


class Stack:
    def __init__(self, modem, kind="tcp", timeout_ms=10000, tls=None, on_fail=None, connect_ms=60000):
        self.modem = modem
        self.kind = kind
        self.timeout_ms = timeout_ms
        self.connect_ms = connect_ms
        self.tls = tls
        self.on_fail = on_fail  # on_fail(reason) when a socket finds the link gone
        self._names = {}  # ip -> the name it was resolved from (TLS opens by name: SNI)
        self._creds = None
        self.last_error = None

    # ---- the socket module's functions ----
    def socket(self, af=AF_INET, type=SOCK_STREAM, proto=0):
        kind = self.kind
        if type == SOCK_DGRAM:
            kind = "udp"
        return Socket(self, kind)

    def getaddrinfo(self, host, port, af=0, type=0, proto=0, flags=0):
        ip = host
        if not _is_ip(host):
            from m2m.net.sockx import resolve  # DNS through the modem (a module apart: heap)

            ip = resolve(self.modem, host)
        if ip != host and len(self._names) < 8:
            self._names[ip] = host
        t = type or (SOCK_DGRAM if self.kind == "udp" else SOCK_STREAM)
        return [(AF_INET, t, IPPROTO_UDP if t == SOCK_DGRAM else IPPROTO_TCP, "", (ip, port))]

    # ---- ids ----
    def _sid(self):
        first, n = self.modem.SOCKET_IDS
        used = self.modem.socket_kinds
        for i in range(first, first + n):
            if i not in used:
                return i
        raise _ioerr(_EHOSTUNREACH, "all %d modem sockets are in use: close one" % n)

    def _fail(self, why):
        self.last_error = why
        cb = self.on_fail
        if cb is not None:
            cb(why)

    # ---- TLS credentials, uploaded once per Stack ----
    def _upload(self):
        if self._creds is not None or not self.tls:
            return self._creds
        from m2m.net.sockx import upload_credentials

        self._creds = upload_credentials(self.modem, self.tls)
        return self._creds


def _is_ip(s):
    p = s.split(".")
    if len(p) != 4:
        return False
    for x in p:
        if not x.isdigit() or int(x) > 255:
            return False
    return True


def _family(modem):
    t = modem.RECV if not isinstance(modem.RECV, dict) else modem.RECV["tcp"]
    if t.startswith("AT+CARECV"):
        return "simcom"
    if t.startswith("AT+QIRD"):
        return "quectel"
    return "sequans"


class Socket:
    def __init__(self, stack, kind):
        self.st = stack
        self.m = stack.modem
        self.kind = kind
        self.sid = None
        self.timeout_ms = stack.timeout_ms
        self._tx = bytearray()
        self._rx = b""  # bytes read from the modem, not yet given out
        self._avail = 0  # bytes the modem said it holds for us
        self._check = True  # ask the modem how much it holds (a URC came, or nothing known yet)
        self._asked = hal.ticks_ms()
        self._eof = False
        self.tx_bytes = 0
        self.rx_bytes = 0

    # ---- setup ----
    def settimeout(self, t):
        # seconds; None: the Stack's timeout (never forever); 0: non-blocking
        self.timeout_ms = self.st.timeout_ms if t is None else int(t * 1000)

    def setblocking(self, flag):
        self.timeout_ms = self.st.timeout_ms if flag else 0

    def connect(self, addr):
        host, port = addr[0], addr[1]
        host = self.st._names.get(host, host) if self.kind == "tls" else host
        allow = sys.modules.get("m2m.net.allow")  # rules exist only once allow.setup() ran
        if allow is not None:
            allow.check(host, port)  # OSError(EACCES) for an endpoint the allowlist does not name
        m = self.m
        sid = self.st._sid()
        kind = self.kind
        tmo = self.st.connect_ms
        m.socket_kinds[sid] = kind  # reserved now: a failure anywhere below gives it back
        try:
            def prepare():
                if kind == "tls":
                    from m2m.net.sockx import tls_script

                    refs = self.st._upload()
                    for c in tls_script(m, sid, kind, refs or {}):
                        m.at.cmd(c, timeout_ms=5000).check()
                self._urcs(sid)  # stale URCs of this id are forgotten

            m.sock_open(sid, kind, host, port, tmo, prepare)
        except BaseException as e:  # MemoryError and KeyboardInterrupt too: never leak the id
            self._give_back(sid)
            if not isinstance(e, (ModemError, OSError)):
                raise
            why = "connecting to %s:%d failed (%s)" % (host, port, _msg(e))
            if kind == "tls":  # either side may have refused the other's certificate
                why += ("; if the server's certificate is not from the CA given, the modem refuses it; a server "
                        "that requires a client certificate refuses %s" % (
                            "this one if not from its CA" if (self.st.tls or {}).get("cert") else "a device without one"))
            self.st.last_error = why
            raise _ioerr(_ECONNREFUSED, why)
        self.sid = sid
        self._check = False  # nothing can be waiting yet
        self._asked = hal.ticks_ms()

    def _give_back(self, sid):
        # close whatever the modem may have opened on sid (an error when nothing is open is fine)
        try:
            self.m.at.cmd(self.m.close_cmd(sid, self.kind), timeout_ms=10000)
        except Exception:
            pass
        self.m.socket_kinds.pop(sid, None)
        self._urcs(sid)  # stale URCs of this id are forgotten

    def _urcs(self, drop=None):
        # take this socket's receive / closed URCs from the modem's event list (drop: only remove
        # those of socket id `drop`)
        ev = self.m.events
        sid = self.sid if drop is None else drop
        i = 0
        while i < len(ev):
            n, line = ev[i]
            if n in _SOCK_URCS and _first(self.m.urc_fields(line)) == sid:
                ev.pop(i)
                if drop is not None:
                    continue
                if n == "sock_data":
                    self._check = True
                elif n == "sock_closed":
                    self._eof = True
                    self._check = True  # unread bytes may still be there
            else:
                i += 1

    # ---- sending ----
    def write(self, buf, n=None):
        if self.sid is None:
            raise _ioerr(_ENOTCONN, "socket not connected")
        if n is not None and n < len(buf):
            buf = memoryview(buf)[:n]
        self._tx.extend(buf)
        if len(self._tx) >= MAX_SEND:
            self.flush()
        return len(buf)

    def send(self, buf):
        n = self.write(buf)
        self.flush()
        return n

    sendall = send

    def flush(self):
        # the gathered bytes in send commands of at most MAX_SEND; the buffer is kept (cleared in
        # place: no new one per message), the modem is handed a copy (the parser may still compare
        # the payload's echo with it)
        tx = self._tx
        while tx:
            n = len(tx)
            if n > MAX_SEND:
                n = MAX_SEND
            part = bytes(tx) if n == len(tx) else bytes(memoryview(tx)[:n])
            # out of the buffer before the send: a send cut short by anything (Ctrl-C's
            # KeyboardInterrupt, a MemoryError) is not sent again by close()'s flush (the AT driver
            # finishes a payload the modem was owed; MQTT's QoS 1 resend covers a lost one)
            tx[:n] = b""
            try:
                self.m.sock_send(self.sid, part, timeout_ms=max(self.st.timeout_ms, 5000))
            except (ModemError, OSError) as e:
                tx[:] = b""
                self._dead("send failed (%s)" % _msg(e))
            self.tx_bytes += n
            _usage(n, 0)

    def _dead(self, why):
        # a send or receive failed: the link's fault (reported through on_fail, the one recovery
        # path) unless the modem said the peer closed the socket, which is the peer's business
        try:
            self.m.at.poll(0)
        except OSError:
            pass
        self._urcs()
        if self._eof:
            why = "closed by the peer (%s)" % why
        else:
            self._eof = True
            self.st._fail(why)
        raise _ioerr(_ECONNRESET, why)

    # ---- receiving ----
    def _query(self):
        # how many bytes the modem holds for this socket
        m = self.m
        fam = _family(m)
        sid = self.sid
        if fam == "simcom":
            r = m.at.cmd("AT+CARECV?", resp=b"+CARECV:", timeout_ms=3000)
            idx = 1
        elif fam == "quectel":
            q = "AT+QSSLRECV=%d,0" if self.kind in ("tls", "dtls") else "AT+QIRD=%d,0"
            r = m.at.cmd(q % sid, resp=(b"+QSSLRECV:", b"+QIRD:"), timeout_ms=3000)
            idx = 2
        else:
            r = m.at.cmd("AT+SQNSI=%d" % sid, resp=b"+SQNSI:", timeout_ms=3000)
            idx = 3
        self._asked = hal.ticks_ms()
        if not r.ok:
            # the modem no longer knows the socket: it is gone
            self._eof = True
            return 0
        n = 0
        for ln in r.lines:
            f = _fields(ln[ln.find(b":") + 1:])
            if fam == "simcom":
                if len(f) > 1 and f[0] == sid:
                    n = f[1]
            elif len(f) > idx:
                if fam == "quectel" or f[0] == sid:
                    n = f[idx]
        return n if isinstance(n, int) else 0

    def _fill(self, want):
        # one step: bring up to `want` bytes from the modem into self._rx; True if any came
        self._urcs()
        every = _REQUERY_MS if self.timeout_ms else _IDLE_REQUERY_MS
        if self._avail <= 0 and (self._check or hal.ticks_diff(hal.ticks_ms(), self._asked) >= every):
            self._check = False
            self._avail = self._query()
        if self._avail <= 0:
            return False
        # a stream takes all the modem holds (up to MAX_READ) in one receive command: umqtt.simple
        # reads a PUBACK as 1 + 1 + 2 bytes, which would otherwise be three commands
        n = min(want if self.kind == "udp" else self._avail, self._avail, MAX_READ)
        if n <= 0:
            return False
        m = self.m
        cmd, rule = m.recv_cmd(self.sid, self.kind, n)
        try:
            r = m.at.cmd(cmd, timeout_ms=5000, data=rule)
        except OSError as e:
            self._dead("receive failed (%s)" % _msg(e))
        if not r.ok:
            self._dead("receive failed (%s)" % (r.error,))
        data = r.data or b""
        self._avail -= len(data)
        if self._avail <= 0 or len(data) < n:
            # all the modem said it held is read (or it had less): ask again before the next read.
            # The data URC comes for the first unread data only (Quectel BG96 TCP/IP Application
            # Note 2.3.2: none "until all the received data has been retrieved"; SIMCom's manual is
            # silent, ASSUMED docs/ASSUMED.md#A-SIMCOM-CADATAIND): what came between the query and
            # this read, a second datagram or more of the stream, has had no URC of its own
            self._avail = 0
            self._check = True
        if data:
            self.rx_bytes += len(data)
            _usage(0, len(data))
            self._rx = self._rx + data if self._rx else data
            return True
        return False

    def _wait(self, want, whole):
        # bring bytes in until `want` are there (whole) or any are (not whole); the rest is the
        # caller's: returns False on a non-blocking socket with nothing there
        if self._tx:
            self.flush()
        tmo = self.timeout_ms
        deadline = hal.ticks_add(hal.ticks_ms(), tmo)
        while True:
            have = len(self._rx)
            if have >= want or (have and not whole):
                return True
            if self._fill(want - have):
                continue
            if self._eof and self._avail <= 0 and not self._check:
                return True
            if tmo <= 0:
                return have > 0
            rem = hal.ticks_diff(deadline, hal.ticks_ms())
            if rem <= 0:
                if have:
                    return True
                raise _ioerr(_ETIMEDOUT, "no data within %d ms" % tmo)
            # the receive URC (or the periodic query) ends the wait
            self.m.at.poll(rem if rem < 200 else 200)

    def _take(self, n):
        rx = self._rx
        if n >= len(rx):
            self._rx = b""
            return rx
        self._rx = rx[n:]
        return rx[:n]

    def read(self, n=-1):
        if self.sid is None:
            raise _ioerr(_ENOTCONN, "socket not connected")
        if n < 0:
            n = MAX_READ * 4
            whole = False
        else:
            whole = True
        if n == 0:
            return b""
        if not self._wait(n, whole):
            return None
        return self._take(n)

    def readinto(self, buf, n=None):
        n = len(buf) if n is None else min(n, len(buf))
        d = self.read(n)
        if d is None:
            return None
        buf[:len(d)] = d
        return len(d)

    def recv(self, n):
        if self.sid is None:
            raise _ioerr(_ENOTCONN, "socket not connected")
        if not self._wait(n, False):
            raise _ioerr(11, "no data")  # EAGAIN, as a non-blocking MicroPython socket
        return self._take(n)

    def readline(self):
        while True:
            i = self._rx.find(b"\n")
            if i >= 0:
                return self._take(i + 1)
            before = len(self._rx)
            if not self._wait(before + 1, True) or len(self._rx) == before:
                return self._take(len(self._rx))

    # ---- end ----
    def close(self):
        sid = self.sid
        if sid is None:
            return
        try:
            if self._tx and not self._eof:
                self.flush()
        except Exception:  # OSError, and MemoryError: the id is given back whatever happens
            pass
        self.sid = None
        self._tx = bytearray()
        self._rx = b""
        self._give_back(sid)

    # no __del__: closing needs AT commands, never from a finaliser (and a class with __del__ makes
    # every socket a finaliser-flagged heap block)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def _msg(e):
    a = e.args
    return a[1] if len(a) > 1 else (a[0] if a else repr(e))


def _usage(tx, rx):
    # the data-usage counters (m2m.net.usage), once the device has set them up (usage.setup() has
    # imported it: a device without data caps never loads it)
    usage = sys.modules.get("m2m.net.usage")
    if usage is not None and usage._cfg is not None:
        usage.count(tx, rx)

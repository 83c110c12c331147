# The modem layer: one engine (Modem) that runs a dialect's scripts, and a registry of dialects.
#
# A dialect (m2m.modem.simcom / quectel / sequans) is a Modem subclass made mostly of data: the
# AT+CGMM identity strings, boot banners, power-key timings, scripts, command templates and the URC
# table. A new modem subclasses its closest sibling and overrides only what differs (esptool's chip
# classes); the engine here is the only code that loops and waits (Zephyr's modem_chat scripts).
#
# A script is a tuple of steps; a step is a tuple
#     (command, resp, timeout_ms[, flags[, key]])
#   command     str; "{name}" fields are filled from the keyword arguments of run()
#   resp        the command's response prefix(es) for the AT driver (bytes or tuple; None derives
#               it from the command, () for a bare answer such as AT+CGSN's). With the URC flag:
#               the start of the unsolicited line that completes the step (b"+APP PDP: 0,ACTIVE")
#   timeout_ms  for the command (with URC: again for the line after OK); an error in BUSY (SIM
#               busy) repeats the command until this time has passed
#   flags       OPT: a failure does not stop the script; URC: see resp; USER: run only when a
#               user name is given (APN authentication)
#   key         store the answer (first field of the first line, quotes removed) in
#               self.<key> (imei, imsi, iccid, firmware): the identity reads
#
# Registry: MODELS maps a model name (board data's modem.model) to (module, class); modules are
# imported on first use so a device loads only its own dialect. detect(at) asks AT+CGMM (ATI as
# fallback) and compares the answer with each dialect's CGMM strings.
#
# Power (board data's modem.pwrkey / modem.reset override the dialect's PWRKEY_MS defaults):
#   power_on()           no-op when the modem already answers AT (the key toggles power, so a running
#                        or booting modem must never be pulsed); else it is given boot_ms to answer
#                        or print its ready banner (it may still be booting after an ESP32 reset),
#                        then PWRKEY (or RESET) is pulsed and it is waited for again. Where the board
#                        wires the modem's STATUS line (modem.status_pin) its level decides: low, one
#                        100 ms probe (a miswired line), the line watched for boot_ms, then the key;
#                        high, never pulse
#   power_off()          the dialect's power-down command, the key as fallback
#   ensure_responsive()  AT with short retries; if the modem stays silent (or the AT driver reported
#                        it unresponsive after consecutive timeouts), power-cycle it with the key
#
# URCs: every prefix in the dialect's URCS table is registered with the AT driver; handlers only
# append (name, line) to the engine's bounded queue self.events, which its own waits (wait_event,
# pending) and the network layer read with take_event(). What callers need to hear goes to the one
# event stream (m2m.events: modem.boot, modem.power_down, modem.unresponsive); a modem that stops
# answering is reported to the one recovery path, m2m.net.link_failed(). The device runs one
# synchronous loop (docs/CONTRACTS.md, "Concurrency model"): power, ping and sockets need the
# synchronous driver m2m.at.AT.

from micropython import const

from m2m import hal

OPT = const(1)
URC = const(2)
USER = const(4)

_EVENTS_MAX = const(16)
_PROBE_MS = const(300)
_BUSY_WAIT_MS = const(200)
# what a script step asks its driver loop for (see Modem._steps)
_IO_CMD = const(0)
_IO_SLEEP = const(1)
_IO_WAIT = const(2)

# model name -> (module in m2m.modem, class name, AT+CGMM answers, further ATI answers).
# Detection reads the identity strings here, so it imports only the dialect that matches; each
# dialect class takes its CGMM / ATI from this table. An answer matches a string it equals or
# starts with; the longest match wins.
MODELS = {
    # "SIMCOM_SIM7080" seen on the wire (LilyGO T-SIM7080G issue #44); other logs print
    # "SIMCOM_SIM7080G". SIM7070/SIM7090 share the manual: ASSUMED docs/ASSUMED.md#A-SIM70X0-CGMM.
    # ATI "<model> R<revision>" (sim7000g transcript: "SIM7000G R1529"): ASSUMED docs/ASSUMED.md#A-SIMCOM-ATI
    "sim7080g": ("simcom", "SIM7080G", ("SIMCOM_SIM7080", "SIMCOM_SIM7070", "SIMCOM_SIM7090"),
                 ("SIM7080", "SIM7070", "SIM7090")),
    # "SIMCOM_SIM7000G" (LilyGO T-SIM7000G); the prefix also takes SIM7000E / A / C / JC, which
    # LilyGO says share the AT commands
    "sim7000g": ("simcom", "SIM7000G", ("SIMCOM_SIM7000",), ("SIM7000",)),
    # "BG95-M3" (or -M1/-M2/-M4/-M5/-M6); the BG77 shares this AT manual (bg77 transcript: "BG77")
    "bg95": ("quectel", "BG95", ("BG95", "BG77"), ()),
    "bg96": ("quectel", "BG96", ("BG96",), ()),
    # "GM02SP" on Walter (GM02S without GNSS), ASSUMED docs/ASSUMED.md#A-GM02S-CGMM; the prefix
    # matches both.
    "gm02s": ("sequans", "GM02S", ("GM02S",), ()),
}


# the reason m2m.net.link_failed() hears when the modem restarted by itself
REBOOTED = "modem rebooted"


class ModemError(Exception):
    pass


def model_class(name):
    # the dialect class for a model name (board data's modem.model)
    try:
        mod, cls = MODELS[name][:2]
    except KeyError:
        raise ModemError("unknown modem model %r: known models are %s" % (name, ", ".join(sorted(MODELS))))
    m = __import__("m2m.modem." + mod, None, None, (cls,))
    return getattr(m, cls)


def _text(line):
    if isinstance(line, (bytes, bytearray)):
        line = bytes(line).decode()
    return line.strip()


def _up():
    # m2m.modem.up, the bring-up code (detection, identity checks, init, power, network settings):
    # loaded when first needed, dropped by the network once attached (a load cut short by a
    # MemoryError leaves nothing in sys.modules: the next call loads it again)
    from m2m.modem import up

    return up


def detect(at, timeout_ms=2000):
    # The dialect class of the modem on this AT driver, from its AT+CGMM answer (ATI as fallback).
    return _up().detect(at, timeout_ms)


def create(at, board=None, model=None):
    # A Modem for this AT driver: the model named, else the board's modem.model, else detected.
    # board: the board dict (m2m.board.load()) or its "modem" part.
    return _up().create(at, board, model)


def band_number(field):
    # b'"LTE BAND 20"' / b'EUTRAN-BAND20' -> 20; None without a number
    t = _text(field).strip('"')
    i = len(t)
    while i and t[i - 1].isdigit():
        i -= 1
    return int(t[i:]) if i < len(t) else None


def _fields(rest, ints=True):
    # b' 0,"abc",12' -> [0, 'abc', 12]  (ints where a field is a plain decimal, unless ints=False)
    out = []
    rest = _text(rest)
    if not rest:
        return out
    for f in rest.split(","):
        f = f.strip()
        if len(f) >= 2 and f[0] == '"' and f[-1] == '"':
            out.append(f[1:-1])
        elif ints and f and (f.isdigit() or (f[0] == "-" and f[1:].isdigit())):
            out.append(int(f))
        else:
            out.append(f)
    return out


class Modem:
    # ---- dialect data (each dialect overrides these) ----
    NAME = None
    CGMM = ()  # AT+CGMM answers that identify the model (exact, or as a prefix)
    ATI = ()  # further ATI lines that identify it, when they do not repeat the CGMM answer
    # power key defaults (ms): (on pulse, off pulse, boot); board data's modem.pwrkey overrides
    PWRKEY_MS = (1000, 1300, 5000)
    # after a hard power-off pulse, how long the modem takes to shut down
    OFF_MS = 3000
    # unsolicited lines meaning "booted" (the last one means "ready for AT")
    BANNERS = (b"RDY",)
    # the power-down command (command, line that confirms it, timeout_ms) or None
    POWER_OFF = None
    POWER_DOWN_URC = b"POWERED DOWN"
    # INIT (init script with the identity reads), RAT ({name: script}), BANDS and APN: bring-up
    # scripts, in m2m.modem.<module>_up (read through m2m.modem.up.data); a class of its own may
    # still carry them
    # errors that mean "not yet, ask again" (27.007 CME 14 "SIM busy" in the first seconds after
    # boot, numeric and verbose forms): a step retries them until its timeout has passed
    BUSY = (("CME", 14), ("CME", "SIM busy"))
    # prefix -> event name (registration, socket data, socket closed, PDP deactivated, ...)
    URCS = ()
    # socket templates: str or {kind: str}; kind is "tcp", "udp", "tls" or "dtls"
    SOCKET_IDS = (0, 6)  # first id, how many
    PROTO = {"tcp": "TCP", "udp": "UDP", "tls": "TCP", "dtls": "UDP"}
    # the modem's SSL / security context each secure kind uses: one TLS and one DTLS configuration
    # per device, shared by its sockets (Quectel has 6 contexts for 12 sockets, so a context can
    # never be the socket id); templates see it as {ssl_ctx}
    SSL_CTX = {"tls": 0, "dtls": 1}
    SOCKET_SETUP = None  # {kind: script} run before opening
    OPEN = None
    OPEN_TIMEOUT = 75000
    OPEN_RESULT = None  # prefix of the "<id>,<err>" line that reports the open (answer or URC)
    SEND = None
    SEND_FINALS = None
    SEND_FAILS = None
    RECV = None
    RECV_DATA = None  # payload-length rule for the AT driver: (prefix, field, inline)
    CLOSE = None

    def __init__(self, at, board=None):
        # board: the board's "modem" dict (or the whole board dict), or None for defaults
        if board is not None and "modem" in board:
            board = board["modem"]
        self.at = at
        self.board = board or {}
        self.events = []
        self.events_dropped = 0
        self.recovery_needed = False
        self._powering = False
        # set by init() once the modem is set up; cleared by the firmware's own restarts (power key,
        # RESET, supply, AT+CFUN=1,1) before they start: a first boot line seen while it is set is
        # a restart the firmware did not cause (see _urc)
        self.synced = False
        self.reboots = 0  # those restarts
        self._pin = None
        self._status = None
        self.cgmm = None
        self.imei = None
        self.imsi = None
        self.iccid = None
        self.firmware = None
        self.socket_kinds = {}
        for prefix, _ in self.URCS:
            at.urc(prefix, self._urc)
        for b in self.BANNERS:
            at.urc(b, self._urc)
        if self.POWER_DOWN_URC:
            at.urc(self.POWER_DOWN_URC, self._urc)
        at.on_unresponsive = self._unresponsive
        if self._held():
            self._power_pin()  # before any AT: an unheld RESET line may already be resetting it

    # ---- URCs ----
    def urc_name(self, line):
        # the event name of an unsolicited line (longest matching prefix), or None
        best = None
        n = -1
        for prefix, name in self.URCS:
            if line.startswith(prefix) and len(prefix) > n:
                best = name
                n = len(prefix)
        if best is None:
            if line == self.POWER_DOWN_URC:
                return "power_down"
            for b in self.BANNERS:
                if line == b:
                    return "boot"
        return best

    def _urc(self, line):
        # runs in the AT driver's dispatch: post the event, never block or send AT
        name = self.urc_name(line)
        if name is None:
            return
        ev = self.events
        if len(ev) >= _EVENTS_MAX:
            ev.pop(0)
            self.events_dropped += 1
        ev.append((name, line))
        if name == "boot" or name == "power_down":
            from m2m import events
            events.post("modem." + name, line=_text(line))
            if name == "boot" and line == self.BANNERS[0] and self.synced:
                # the first line of a boot (Quectel / SIMCom RDY, Sequans +SYSSTART) after init()
                # set the modem up, with no restart of the firmware's own under way: it restarted
                # by itself (brown-out, its watchdog, a crash) and forgot its volatile settings
                # (echo, URC modes, AT+COPS format, PDP contexts, sockets), as
                # ASSUMED docs/ASSUMED.md#A-REBOOT-BANNER says. The network (one recovery path)
                # closes the sockets and sets the modem up again (m2m.net.netup._rebooted)
                self.synced = False
                self.reboots += 1
                events.post("modem.rebooted", line=_text(line), count=self.reboots)
                from m2m import net
                net.link_failed(REBOOTED)

    def take_event(self, names=None, prefix=None):
        # remove and return the first (name, line) whose name is in names (all when None) and whose
        # line starts with prefix (when given); None when there is none
        ev = self.events
        for i in range(len(ev)):
            name, line = ev[i]
            if (names is None or name in names) and (prefix is None or line.startswith(prefix)):
                return ev.pop(i)
        return None

    def urc_fields(self, line):
        # the fields after the URC's prefix: b'+QIURC: "recv",0' -> [0] (the prefix holds "recv")
        best = b""
        for prefix, _ in self.URCS:
            if line.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return _fields(line[len(best):].lstrip(b","))

    def wait_event(self, names=None, timeout_ms=1000, prefix=None):
        # the engine's wait for an unsolicited line: (name, line) or None after timeout_ms
        at = self.at
        deadline = hal.ticks_add(hal.ticks_ms(), timeout_ms)
        while True:
            e = self.take_event(names, prefix)
            if e is not None:
                return e
            rem = hal.ticks_diff(deadline, hal.ticks_ms())
            if rem <= 0:
                return None
            at.poll(rem if rem < 200 else 200)

    def pending(self, names=None, timeout_ms=0):
        # True when an event named in names is queued (left queued), waiting up to timeout_ms
        e = self.wait_event(names, timeout_ms)
        if e is None:
            return False
        self.events.insert(0, e)
        return True


    # ---- the script engine ----
    def _step(self, step, params):
        # (command, driver resp, timeout, flags, key, expected URC) with the templates filled in
        cmd = step[0]
        flags = step[3] if len(step) > 3 else 0
        if params and "{" in cmd:
            cmd = cmd.format(**params)
        resp = step[1]
        urc = None
        if flags & URC:
            urc = resp
            resp = None
        return cmd, resp, step[2], flags, (step[4] if len(step) > 4 else None), urc

    def _skip(self, flags, params):
        return flags & USER and not (params and params.get("user"))

    def _done(self, cmd, r, flags, key):
        # after the command's final result: store the answer, or raise on a failure
        if not r.ok:
            if flags & OPT:
                return False
            raise ModemError("%s failed: %s" % (cmd, r.error))
        if key is not None:
            setattr(self, key, self.answer(r, key))
        return True


    # The script loop is written once, as a generator that yields the I/O it needs and is sent the
    # result back: run() performs it on the synchronous driver, arun() awaits it on AsyncAT.
    def _steps(self, script, params):
        ok = 0
        for step in script:
            cmd, resp, tmo, flags, key, urc = self._step(step, params)
            if self._skip(flags, params):
                continue
            deadline = hal.ticks_add(hal.ticks_ms(), tmo)
            while True:
                r = yield (_IO_CMD, cmd, resp, tmo)
                if not self._busy(r, deadline):
                    break
                yield (_IO_SLEEP, _BUSY_WAIT_MS)
            if not self._done(cmd, r, flags, key):
                continue
            if urc is not None and not self._urc_in(r, urc) and (yield (_IO_WAIT, urc, tmo)) is None:
                if flags & OPT:
                    continue
                raise ModemError("%s: no %s within %d ms" % (cmd, _text(urc), tmo))
            ok += 1
        return ok

    def run(self, script, **params):
        # run a script on the synchronous AT driver; returns how many steps succeeded
        g = self._steps(script, params)
        res = None
        try:
            while True:
                io = g.send(res)
                if io[0] == _IO_CMD:
                    res = self.at.cmd(io[1], resp=io[2], timeout_ms=io[3])
                elif io[0] == _IO_SLEEP:
                    res = hal.sleep_ms(io[1])
                else:
                    res = self.wait_event(None, io[2], io[1])
        except StopIteration as e:
            return e.value


    def _busy(self, r, deadline):
        # a "try again" error (SIM still starting) while the step's time lasts
        return not r.ok and r.error in self.BUSY and hal.ticks_diff(deadline, hal.ticks_ms()) > 0

    def _urc_in(self, r, urc):
        # the awaited line came before OK (as part of the answer)
        for ln in r.lines:
            if ln.startswith(urc):
                return True
        return False

    # ---- identity and init, power, network settings: the bodies are in m2m.modem.up ----
    def answer(self, r, key=None):
        # the first field of the command's first line; for an identity key (imei, iccid, imsi) the
        # first line whose value is a valid one, else None
        return _up().answer(self, r, key)

    def await_event(self, names=None, timeout_ms=1000, prefix=None):
        # wait_event for the asyncio driver (its reader task dispatches the URCs); awaitable
        return _up().await_event(self, names, timeout_ms, prefix)

    def arun(self, script, **params):
        # run() for the asyncio AT driver (AsyncAT); awaitable
        return _up().arun(self, script, **params)

    def init(self, **params):
        # the dialect's init script: echo off, error codes, registration URCs, identity reads
        return _up().init(self, **params)

    def identity(self):
        return _up().identity(self)

    def power_config(self):
        # (pin, active level, on pulse ms, off pulse ms, boot ms)
        return _up().power_config(self)

    def _held(self):
        return _up()._held(self)

    def _power_pin(self):
        return _up()._power_pin(self)

    def _pulse(self, ms):
        return _up()._pulse(self, ms)

    def wait_ready(self, boot_ms):
        return _up().wait_ready(self, boot_ms)

    def status(self):
        # the modem's STATUS output where the board wires it: True running, False off, None without
        return _up().status(self)

    def power_on(self, known_off=False):
        return _up().power_on(self, known_off)

    def power_off(self):
        return _up().power_off(self)

    def power_cycle(self):
        return _up().power_cycle(self)

    def set_rat(self, rat):
        return _up().set_rat(self, rat)

    def set_bands(self, bands):
        return _up().set_bands(self, bands)

    def set_apn(self, apn, user="", password="", auth=None):
        return _up().set_apn(self, apn, user, password, auth)

    # ---- power ----
    def _unresponsive(self, driver):
        # the AT driver's callback after consecutive timeouts: report it to the one recovery path
        # (m2m.net.link_failed), never act here; ensure_responsive() reads recovery_needed
        if not self._powering:
            self.recovery_needed = True
            from m2m import net
            net.link_failed("modem unresponsive")

    def _sync(self):
        if not hasattr(self.at, "poll"):
            raise ModemError("power, ping and sockets need the synchronous driver m2m.at.AT: the "
                             "device runs one synchronous loop (docs/CONTRACTS.md)")

    def ping(self, timeout_ms=_PROBE_MS, retries=0):
        # True when the modem answers AT
        self._sync()
        try:
            return self.at.cmd("AT", timeout_ms=timeout_ms, retries=retries).ok
        except OSError:
            return False

    def ensure_responsive(self, retries=2):
        # AT with short retries; a silent (or reported unresponsive) modem is power-cycled
        if not self.recovery_needed and self.ping(_PROBE_MS * 2, retries):
            return True
        return self.power_cycle()

    # ---- network settings (templates in each dialect) ----
    def band_args(self, bands):
        return {"bands": ",".join(str(b) for b in bands)}

    def pdp_up(self, **params):
        return self.run(self.PDP_UP, **params)

    def pdp_down(self):
        return self.run(self.PDP_DOWN)

    # ---- socket commands: format and parse (the transport layer drives them) ----
    def _tpl(self, table, kind):
        t = table.get(kind) if isinstance(table, dict) else table
        if t is None:
            raise ModemError("%s sockets are not supported by %s" % (kind, self.NAME))
        return t

    def _sock(self, sid, kind, **kw):
        kw["sid"] = sid
        kw["proto"] = self.PROTO[kind]
        kw["ssl_ctx"] = self.SSL_CTX.get(kind, 0)
        return kw

    def open_cmd(self, sid, kind, host, port):
        return self._tpl(self.OPEN, kind).format(**self._sock(sid, kind, host=host, port=port))

    def open_error(self, line):
        # the error code of an open report "+XOPEN: <id>,<err>" (0: connected)
        f = _fields(line[line.find(b":") + 1:])
        return f[1] if len(f) > 1 else f[0]

    def send_cmd(self, sid, kind, n):
        return self._tpl(self.SEND, kind).format(**self._sock(sid, kind, n=n))

    def recv_cmd(self, sid, kind, n):
        # (command, payload-length rule)
        return (self._tpl(self.RECV, kind).format(**self._sock(sid, kind, n=n)),
                self._tpl(self.RECV_DATA, kind))

    def close_cmd(self, sid, kind):
        return self._tpl(self.CLOSE, kind).format(**self._sock(sid, kind))

    # ---- socket operations on the synchronous driver (a minimal engine; the transport layer
    # shaped like MicroPython sockets comes later) ----
    def sock_open(self, sid, kind, host, port, timeout_ms=None, prepare=None):
        # prepare(): called after the dialect's socket setup, just before the open command (the
        # transport uploads TLS settings there)
        tmo = timeout_ms or self.OPEN_TIMEOUT
        setup = self.SOCKET_SETUP and self.SOCKET_SETUP.get(kind)
        if setup:
            self.run(setup, **self._sock(sid, kind))
        if prepare is not None:
            prepare()
        cmd = self.open_cmd(sid, kind, host, port)
        r = self.at.cmd(cmd, timeout_ms=tmo)
        if not r.ok:
            raise ModemError("%s failed: %s" % (cmd, r.error))
        res = self.OPEN_RESULT
        if isinstance(res, dict):
            res = res.get(kind)
        if res is not None:
            line = None
            for ln in r.lines:
                if ln.startswith(res):
                    line = ln
            if line is None:
                e = self.wait_event(None, tmo, res)
                if e is None:
                    raise ModemError("%s: no %s within %d ms" % (cmd, _text(res), tmo))
                line = e[1]
            err = self.open_error(line)
            if err != 0:
                raise ModemError("%s: error %s" % (cmd, err))
        self.socket_kinds[sid] = kind
        return sid

    def sock_send(self, sid, data, timeout_ms=10000):
        kind = self.socket_kinds[sid]
        r = self.at.cmd(self.send_cmd(sid, kind, len(data)), timeout_ms=timeout_ms, payload=data,
                        finals=self.SEND_FINALS, fails=self.SEND_FAILS)
        if not r.ok:
            raise ModemError("send on socket %d failed: %s" % (sid, r.error))
        return len(data)

    def sock_recv(self, sid, n, timeout_ms=5000):
        # bytes waiting in the modem (b"" when none)
        kind = self.socket_kinds[sid]
        cmd, rule = self.recv_cmd(sid, kind, n)
        r = self.at.cmd(cmd, timeout_ms=timeout_ms, data=rule)
        if not r.ok:
            raise ModemError("%s failed: %s" % (cmd, r.error))
        return r.data or b""

    def sock_close(self, sid, timeout_ms=10000):
        kind = self.socket_kinds.pop(sid, "tcp")
        r = self.at.cmd(self.close_cmd(sid, kind), timeout_ms=timeout_ms)
        return r.ok

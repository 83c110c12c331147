"""The core of the modem simulator: one engine that every dialect shares.

It owns the AT command line (echo, parsing, dispatch, final result codes), the SIM, registration
and its URCs, PDP contexts, signal, PSM / eDRX, sockets (see netsock.py), power and PWRKEY, faults
and the modem clock. A dialect (simcom.py, quectel.py, sequans.py) is a subclass that sets the class
tables below and adds ``at_<NAME>`` handlers for its own commands.

Handlers: ``at_CGMM(self, cmd)`` handles ``AT+CGMM``; ``at_E`` handles ``ATE<n>``; ``at_amp_F``
handles ``AT&F``. A handler appends information lines with ``self.info(...)`` and returns None for
OK, a string for another final line (``"SEND OK"``), or ``NO_FINAL``. It raises ``Malformed`` for a
syntax error (plain ``ERROR``, whatever AT+CMEE says) and ``CmeError(n)`` for a failure that obeys
AT+CMEE. Handlers may be coroutines; everything runs on the simulator's one asyncio loop.
"""

import asyncio
import inspect
import random
import ssl
import sys
import time
import traceback
import zlib

from .netsock import BridgedSocket, OpenError

NO_FINAL = object()

CME_TEXT = {
    3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
    11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy",
    16: "incorrect password", 30: "no network service", 50: "Incorrect parameters", 100: "unknown",
}

# Registration states of the timeline and the 3GPP <stat> each maps to.
REG_STATES = {"no_service": 0, "home": 1, "searching": 2, "denied": 3, "lost": 4, "roaming": 5}

DEFAULT_TIMELINE = [(0.0, "searching", {}), (8.0, "home", {})]

# Supply range (mV) a modem boots in, used when its supply is modelled (set_supply). The SIM7080's
# 2.7-4.8 V is ASSUMED docs/ASSUMED.md#A-SIM7080-VBAT (its Hardware Design's VBAT table was not found),
# an unverified figure; LilyGO's DC3 setting (3000 mV, Xinyuan-LilyGO/LilyGo-T-SIM7080G
# examples) lies inside it, DC3's lowest codes (0.5-1.5 V) do not. Other models: any mV above 0.
VBAT_RANGE_MV = {"sim7080g": (2700, 4800)}
# Rail voltage below which a UART level shifter carries nothing: LilyGO powers the T-SIM7080G-S3's
# shifter from BLDO1 at 3300 mV; 10 % below that, ASSUMED docs/ASSUMED.md#A-TSIM7080-SHIFTER.
LEVEL_SHIFTER_MIN_MV = 3000

# The simulated network: (status, long name, short name, numeric, AcT). 3 = forbidden.
DEFAULT_OPERATORS = [
    (1, "Test Network", "TEST", "00101", 7),
    (1, "Test Network", "TEST", "00101", 9),
    (3, "Other Network", "OTHER", "00102", 7),
    (2, "Partner Network", "PARTNER", "00103", 7),
]


class Malformed(Exception):
    pass


class CmeError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Cmd:
    """One command of a command line: name ('+CGMM', 'E', '&F'), kind and split arguments."""

    def __init__(self, name, kind, raw="", num=None):
        self.name = name
        self.kind = kind  # exec, read, test, set
        self.raw = raw
        self.num = num  # the digits of a basic command (ATE0 -> 0)
        self.args = split_args(raw) if kind == "set" else []

    def __len__(self):
        return len(self.args)

    def has(self, i):
        return i < len(self.args) and self.args[i] is not None

    def str(self, i, default=Malformed):
        if not self.has(i):
            if default is Malformed:
                raise Malformed("argument %d missing" % i)
            return default
        return self.args[i]

    def int(self, i, default=Malformed, lo=None, hi=None, base=10):
        if not self.has(i):
            if default is Malformed:
                raise Malformed("argument %d missing" % i)
            return default
        try:
            v = int(self.args[i], base)
        except ValueError:
            raise Malformed("argument %d not a number" % i)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise Malformed("argument %d out of range" % i)
        return v


def split_args(raw):
    """Split 'a,"b,c",,d' into ['a', 'b,c', None, 'd']; quotes are removed."""
    out, cur, quoted, inq, had = [], [], False, False, False
    for ch in raw:
        if inq:
            if ch == '"':
                inq = False
            else:
                cur.append(ch)
        elif ch == '"':
            inq = quoted = had = True
        elif ch == ",":
            out.append("".join(cur) if (cur or quoted) else None)
            cur, quoted = [], False
        elif ch in " \t" and not cur:
            continue
        else:
            cur.append(ch)
            had = True
    if inq:
        raise Malformed("unterminated string")
    if raw.strip() or out:
        out.append("".join(cur).rstrip() if (cur or quoted) else None)
    return out


def parse_line(body):
    """Parse what follows 'AT' into a list of Cmd. Raises Malformed."""
    cmds, i, n = [], 0, len(body)
    while i < n:
        c = body[i]
        if c in "; ":
            i += 1
            continue
        if c in "+^$%#*!":
            j = i + 1
            while j < n and (body[j].isalnum() or body[j] in "_"):
                j += 1
            name = body[i:j].upper()
            if len(name) < 2:
                raise Malformed("empty command name")
            # the rest up to an unquoted ';' belongs to this command
            k, inq = j, False
            while k < n and (inq or body[k] != ";"):
                if body[k] == '"':
                    inq = not inq
                k += 1
            rest = body[j:k].rstrip()
            i = k
            if rest == "":
                cmds.append(Cmd(name, "exec"))
            elif rest == "?":
                cmds.append(Cmd(name, "read"))
            elif rest == "=?":
                cmds.append(Cmd(name, "test"))
            elif rest.startswith("="):
                cmds.append(Cmd(name, "set", rest[1:]))
            else:
                raise Malformed("junk after command name")
            continue
        if c == "&" or c.isalpha():
            j = i + 1 if c != "&" else i + 2
            name = body[i:j].upper()
            if c == "&" and (j > n or not name[1:].isalpha()):
                raise Malformed("bad & command")
            if name == "S":
                k = j
                while k < n and body[k].isdigit():
                    k += 1
                reg = body[j:k]
                if not reg:
                    raise Malformed("S without register")
                if k < n and body[k] == "?":
                    cmds.append(Cmd("S", "read", num=int(reg)))
                    i = k + 1
                elif k < n and body[k] == "=":
                    m = k + 1
                    while m < n and body[m].isdigit():
                        m += 1
                    cmds.append(Cmd("S", "set", body[k + 1:m], num=int(reg)))
                    i = m
                else:
                    raise Malformed("bad S register command")
                continue
            k = j
            while k < n and body[k].isdigit():
                k += 1
            num = int(body[j:k]) if k > j else None
            cmds.append(Cmd(name, "exec", num=num))
            i = k
            continue
        raise Malformed("unexpected character %r" % c)
    return cmds


def handler_name(name):
    if name.startswith("&"):
        return "at_amp_" + name[1:]
    if name[0] in "+":
        return "at_" + name[1:]
    if name[0] == "^":
        return "at_caret_" + name[1:]
    if name[0] in "$%#*!":
        return None
    return "at_" + name


class Clock:
    """Modem time: modem seconds = real seconds * scale, counted from the simulator's start."""

    def __init__(self, scale):
        if scale <= 0:
            raise ValueError("time scale must be > 0")
        self.scale = float(scale)
        self.t0 = time.monotonic()
        self.wall0 = time.time()

    def now(self):
        return (time.monotonic() - self.t0) * self.scale

    def real(self, modem_s):
        return modem_s / self.scale

    async def sleep(self, modem_s):
        if modem_s > 0:
            await asyncio.sleep(modem_s / self.scale)

    async def sleep_until(self, modem_t):
        await self.sleep(modem_t - self.now())


class Card:
    """The SIM card: survives modem reboots, as a real card does."""

    def __init__(self, pin, puk, iccid, imsi):
        self.present = True
        self.pin_enabled = pin is not None
        self.pin = pin or "1234"
        self.puk = puk
        self.pin_left = 3
        self.puk_left = 10
        self.iccid = iccid
        self.imsi = imsi
        self.blocked = False

    def locked_state(self):
        """State right after power-up."""
        if not self.present:
            return "absent"
        if self.blocked:
            return "blocked"
        if self.pin_left == 0:
            return "puk"
        return "pin" if self.pin_enabled else "ready"


class Faults:
    """Modem-to-host byte faults: drop / garble (probability or the next N bytes), delay."""

    def __init__(self, seed=None):
        self.rng = random.Random(seed)
        self.clear()

    def clear(self):
        self.drop_p = 0.0
        self.drop_n = 0
        self.garble_p = 0.0
        self.garble_n = 0
        self.delay_s = 0.0
        self.delay_n = 0
        self.dup_urc = 0

    def apply(self, data):
        """Return (bytes to send, extra delay in modem seconds)."""
        delay = 0.0
        if self.delay_n > 0:
            delay = self.delay_s
            self.delay_n = max(0, self.delay_n - len(data))
        if not (self.drop_p or self.drop_n or self.garble_p or self.garble_n):
            return data, delay
        out = bytearray()
        for b in data:
            if self.drop_n > 0:
                self.drop_n -= 1
                continue
            if self.drop_p and self.rng.random() < self.drop_p:
                continue
            if self.garble_n > 0:
                self.garble_n -= 1
                b ^= self.rng.randrange(1, 256)
            elif self.garble_p and self.rng.random() < self.garble_p:
                b ^= self.rng.randrange(1, 256)
            out.append(b)
        return bytes(out), delay


def _luhn_digit(s):
    total = 0
    for i, ch in enumerate(reversed(s)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


class Modem:
    """The engine. Dialects subclass it and fill in the tables."""

    MODEL = ""
    MANUFACTURER = ""
    CGMM = ""
    CGMR = ""
    ATI = ()  # lines; "{imei}" is filled in
    TAC_BASE = "350000"  # IMEI type allocation code used for generated IMEIs
    # Power and boot: seconds of modem time (the delays: ASSUMED docs/ASSUMED.md#A-SIM-TIMING).
    BOOT_TIME = 3.0  # power-on to the first banner line (UART dead before it)
    BANNER = ()  # (delay after the previous line, line); "{cpin}" / "{cfun}" are filled in
    SIM_INIT_TIME = 1.0  # after the first banner line: SIM commands answer +CME ERROR: 14 before
    BOOT_CFUN = 1
    PWRKEY_ON_MIN = 1.0
    PWRKEY_OFF_MIN = 1.2
    PWRKEY_ACTIVE = 1
    PWRKEY_IS_RESET = False  # GM02S: the pin is RESET, any pulse reboots
    POWER_DOWN_DELAY = 1.0
    POWER_DOWN_URCS = ()
    # Command line (latencies: ASSUMED docs/ASSUMED.md#A-SIM-TIMING).
    MAX_LINE = 556
    DEFAULT_LATENCY = 0.02
    LATENCY = {"+CFUN": 1.0, "+COPS": 0.3, "+CGACT": 0.5, "+CPIN": 0.3}
    COPS_SCAN_TIME = 120.0  # AT+COPS=? on real modems takes minutes
    # Network.
    CREG_FOLLOWS_EPS = True
    CGREG_MAX_N = 2
    DEFAULT_ACT = 7  # 7 LTE-M (E-UTRAN), 9 NB-IoT
    NET_RTT = 0.2  # radio round trip, modem seconds, added to opens and sends
    CONNECT_TIMEOUT = 60.0
    # Sockets.
    PROMPT = b"\r\n> "
    ECHO_PAYLOAD = False
    # a data URC for the first unread data only (Quectel BG96 TCP/IP Application Note 2.3.2; SIMCom:
    # ASSUMED docs/ASSUMED.md#A-SIMCOM-CADATAIND)
    URC_EACH_PACKET = False
    SIM_REMOVED_URCS = ("+CPIN: NOT INSERTED",)
    LOGICAL_CHANNELS = True  # AT+CCHO / +CGLA / +CCHC (euicc.py; ASSUMED docs/ASSUMED.md#A-ESIM-CCHO)

    def __init__(self, clock, card, imei, operators=None, timeline=None, pwrkey_pin=None,
                 pwrkey_active=None, seed=None, signal=None, supply_mv=None, uart_mv=None,
                 require_flow=False, uart_pins=None, pin_float=None):
        self.clock = clock
        self.card = card
        self.imei = imei
        self.operators = list(operators or DEFAULT_OPERATORS)
        self.home_plmn = card.imsi[:5]
        self.timeline = [tuple(e) if len(e) == 3 else (e[0], e[1], {}) for e in (timeline or DEFAULT_TIMELINE)]
        self.pwrkey_pin = pwrkey_pin
        self.pwrkey_active = self.PWRKEY_ACTIVE if pwrkey_active is None else pwrkey_active
        self.faults = Faults(seed)
        self.signal = {"rssi": -71, "rsrp": -95, "rsrq": -10, "sinr": 12, "ber": 99}
        if signal:
            self.signal.update(signal)
        # persists across reboots (modem flash / NV)
        self.nv_files = {}
        self.nv = {"cgdcont": {1: ["IP", ""]}, "psm": {"mode": 0, "tau": "00000000", "active": "00000000"},
                   "edrx": {}}
        self.power = "off"  # off, booting, on, hung
        # Supply and UART wiring (see set_supply / uart_config): supply_mv None = a fixed supply that
        # is always there; uart_mv None = no level shifter to power; require_flow = the modem sends
        # nothing until the host has configured RTS (hardware flow control).
        self.supply_mv = supply_mv
        self.uart_mv = uart_mv
        self.require_flow = bool(require_flow)
        self.uart_pins = dict(uart_pins or {})
        self.host_uart = None  # the host's last UART announcement for this modem's pins
        # pin -> level the line takes when the MCU lets go of it (reset, deep sleep) unless held
        # (Walter's RESET falls low: ASSUMED docs/ASSUMED.md#A-WALTER-RESET-FLOAT)
        self.pin_float = {int(k): int(v) for k, v in (pin_float or {}).items()}
        self._held = set()
        self.tx_dropped = 0  # bytes the modem had to send while its UART could not carry them
        self.sockets_refused = False
        self.baud_mismatch = False
        self.uart_write = None  # set by the server: callable(bytes)
        self.recorder = None
        self.history = []  # counters of closed sockets
        self._tasks = set()
        self.internal_errors = []  # simulator bugs seen (a real modem has none): ModemSim.stop() reports them
        self._writer_task = None
        self._outq = None
        self._last_release = 0.0
        self._pin_since = {}
        self.boots = 0
        self._reset_state()

    # ---- state ----------------------------------------------------------------------------
    def _reset_state(self):
        self.echo = True
        self.cmee = 0
        self.cfun = self.BOOT_CFUN
        self.reg_n = {"+CEREG": 0, "+CGREG": 0, "+CREG": 0}
        self.cops_mode = 0
        self.cops_format = 0
        self.stat = 0
        self.coverage = True
        self.reject_cause = None
        self.serving = None  # (long, short, numeric, act)
        self.cell = {"tac": "1A2B", "ci": "01A2B3C4"}
        self.attached = False
        self.ip = None
        self.pdp_active = {}
        self.sim_state = "absent"
        self.sim_ready_at = 0.0
        self.sockets = {}
        self._reg_task = None
        self._inbuf = bytearray()
        self._in_event = asyncio.Event() if self._loop_running() else None
        self._mode = "cmd"
        self._last_line = b""
        self._info = []
        self.reset_dialect()

    @staticmethod
    def _loop_running():
        try:
            asyncio.get_running_loop()
            return True
        except RuntimeError:
            return False

    def reset_dialect(self):
        """Dialect state that a reboot clears."""

    # ---- tasks ----------------------------------------------------------------------------
    def spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t):
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            self.internal_error("a background task", t.exception())

    def internal_error(self, where, exc):
        """A bug in the simulator itself: say so loudly; tests fail on it when the simulator stops."""
        text = "".join(traceback.format_exception(exc))
        self.internal_errors.append("%s: %s" % (where, text))
        print("m2mkit modem simulator: internal error in %s (a simulator bug, not the firmware's):\n%s"
              % (where, text), file=sys.stderr)

    def _cancel_all(self):
        for t in list(self._tasks):
            t.cancel()
        self._tasks.clear()

    def start_io(self):
        """Called once on the loop: start the output writer."""
        self._outq = asyncio.Queue()
        self._in_event = asyncio.Event()
        self._writer_task = asyncio.ensure_future(self._writer())

    # ---- output ---------------------------------------------------------------------------
    def emit(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        if self.power not in ("on",) or not data:
            return
        if self.baud_mismatch:
            data = bytes((b * 7 + 0x55) & 0xFF for b in data)
        data, delay = self.faults.apply(data)
        if not data:
            return
        release = max(self.clock.now() + delay, self._last_release)
        self._last_release = release
        self._outq.put_nowait((release, data))

    async def _writer(self):
        while True:
            release, data = await self._outq.get()
            await self.clock.sleep_until(release)
            if not self.uart_tx_open():
                self.tx_dropped += len(data)
                continue
            if self.uart_write is not None:
                self.uart_write(data)
            if self.recorder is not None:
                self.recorder.chunk("<", data)

    def urc(self, line):
        data = b"\r\n" + (line.encode("latin-1") if isinstance(line, str) else line) + b"\r\n"
        self.emit(data)
        if self.faults.dup_urc > 0:
            self.faults.dup_urc -= 1
            self.emit(data)

    def info(self, line):
        self._info.append(line.encode("latin-1") if isinstance(line, str) else line)

    def flush_info(self):
        if self._info:
            self.emit(b"\r\n" + b"\r\n".join(self._info) + b"\r\n")
            self._info = []

    def final_ok(self):
        self.emit(b"\r\nOK\r\n")

    def final_error(self, code=None):
        if code is None or self.cmee == 0:
            self.emit(b"\r\nERROR\r\n")
        elif self.cmee == 1:
            self.emit(b"\r\n+CME ERROR: %d\r\n" % code)
        else:
            self.emit(("\r\n+CME ERROR: %s\r\n" % CME_TEXT.get(code, "unknown")).encode())

    # ---- input ----------------------------------------------------------------------------
    def feed(self, data):
        """Bytes from the host (the UART's RX)."""
        if self.recorder is not None:
            self.recorder.chunk(">", data)
        if self.power != "on" or self.baud_mismatch or not self.uart_powered():
            return
        if self._mode == "cmd" and self.echo:
            self.emit(data)  # the modem echoes as it receives, even while busy
        self._inbuf += data
        self._in_event.set()

    async def _wait_input(self):
        self._in_event.clear()
        await self._in_event.wait()

    async def _read_line(self):
        line = bytearray()
        while True:
            i = self._inbuf.find(b"\r")
            if i >= 0:
                line += self._inbuf[:i]
                del self._inbuf[: i + 1]
                out = bytearray()
                for b in line:
                    if b == 8:
                        if out:
                            out.pop()
                    else:
                        out.append(b)
                return bytes(out)
            if self._inbuf:
                line += self._inbuf
                self._inbuf.clear()
                # "A/" repeats the last command without a CR
                tail = bytes(line).lstrip(b"\n").upper()
                if tail.endswith(b"A/"):
                    return b"A/"
            await self._wait_input()

    async def read_payload(self, n=None, timeout=None, ctrl_z=False, max_len=1460):
        """Data after a '> ' prompt: exactly n bytes, or up to Ctrl-Z (None on ESC / timeout)."""
        self._mode = "data"
        try:
            deadline = None if timeout is None else self.clock.now() + timeout
            while True:
                if ctrl_z:
                    j = -1
                    for k, b in enumerate(self._inbuf):
                        if b in (0x1A, 0x1B):
                            j = k
                            break
                    if j >= 0:
                        data = bytes(self._inbuf[:j])
                        esc = self._inbuf[j] == 0x1B
                        del self._inbuf[: j + 1]
                        self._echo_payload(data)
                        if esc or len(data) > max_len:
                            return None
                        return data
                elif len(self._inbuf) >= n:
                    data = bytes(self._inbuf[:n])
                    del self._inbuf[:n]
                    self._echo_payload(data)
                    return data
                if deadline is None:
                    await self._wait_input()
                else:
                    left = deadline - self.clock.now()
                    if left <= 0:
                        self._inbuf.clear()
                        return None
                    try:
                        await asyncio.wait_for(self._wait_input(), self.clock.real(left))
                    except asyncio.TimeoutError:
                        pass
        finally:
            self._mode = "cmd"

    def _echo_payload(self, data):
        if self.ECHO_PAYLOAD and self.echo:
            self.emit(data)

    async def _at_loop(self):
        while True:
            raw = await self._read_line()
            if raw == b"A/":
                raw = self._last_line
            text = raw.decode("latin-1")
            up = text.upper()
            i = up.find("AT")
            if i < 0:
                continue  # modems ignore lines that do not start with AT
            self._last_line = raw
            await self.execute(text[i + 2:].rstrip(" \n"))

    async def execute(self, body):
        self._info = []
        if len(body) + 2 > self.MAX_LINE:
            self.final_error()
            return
        try:
            cmds = parse_line(body)
        except Malformed:
            self.final_error()
            return
        result = None
        for cmd in cmds:
            hname = handler_name(cmd.name)
            handler = getattr(self, hname, None) if hname else None
            if handler is None:
                self.flush_info()
                self.final_error()
                return
            await self.clock.sleep(self.LATENCY.get(cmd.name, self.DEFAULT_LATENCY))
            try:
                result = handler(cmd)
                if inspect.isawaitable(result):
                    result = await result
            except Malformed:
                self.flush_info()
                self.final_error()
                return
            except CmeError as e:
                self.flush_info()
                self.final_error(e.code)
                return
            except Exception as e:  # noqa: BLE001 - a simulator bug: answer, so the firmware can go on
                self.internal_error("AT%s" % cmd.name, e)
                self.flush_info()
                self.final_error()
                return
            self.flush_info()  # each command of a line answers in its own block
            if result is NO_FINAL:
                return
        if isinstance(result, str):
            self.emit(("\r\n%s\r\n" % result).encode("latin-1"))
        else:
            self.final_ok()

    # ---- supply and UART wiring ---------------------------------------------------------------
    def supply_ok(self):
        if self.supply_mv is None:
            return True
        lo, hi = VBAT_RANGE_MV.get(self.MODEL, (1, 10 ** 6))
        return lo <= self.supply_mv <= hi

    def uart_powered(self):
        """The level shifter between host and modem has power (boards without one: always)."""
        return self.uart_mv is None or self.uart_mv >= LEVEL_SHIFTER_MIN_MV

    def flow_ok(self):
        if not self.require_flow:
            return True
        u = self.host_uart
        if not u or "rts" not in (u.get("flow") or ()) or u.get("rts") is None:
            return False
        want = self.uart_pins.get("rts")
        return want is None or int(u["rts"]) == int(want)

    def uart_tx_open(self):
        """The modem's TX reaches the host: the shifter has power and (with flow control) the host's
        RTS, the modem's CTS input, is driven. With RTS floating the modem holds its output."""
        return self.uart_powered() and self.flow_ok()

    def set_supply(self, mv=None, uart_mv=None):
        """The modem's supply rail (mV, 0 = off) and its UART level shifter's rail. Outside the
        modem's VBAT range it is unpowered: it does not boot, and losing the supply cuts it off."""
        was = self.supply_ok()
        if mv is not None:
            self.supply_mv = int(mv)
        if uart_mv is not None:
            self.uart_mv = int(uart_mv)
        now = self.supply_ok()
        if was and not now and self.power != "off":
            self.power_off()  # a power cut: no goodbye lines
        elif now and not was and (self.pwrkey_pin is None or self.PWRKEY_IS_RESET):
            self.power_on()  # no power key to press: it starts when the supply comes

    def uart_config(self, cfg):
        """The host announced a UART's settings ({"id", "baudrate", "tx", "rx", "rts", "cts",
        "flow"}); announcements for pins that are not this modem's are ignored."""
        for k in ("tx", "rx"):
            mine = self.uart_pins.get(k)
            if mine is not None and cfg.get(k) is not None and int(cfg[k]) != int(mine):
                return False
        flow = cfg.get("flow") or []
        if not isinstance(flow, (list, tuple)) or any(f not in ("rts", "cts") for f in flow):
            raise ValueError('uart "flow" is a list drawn from "rts" and "cts", e.g. ["rts", "cts"]')
        self.host_uart = dict(cfg, flow=list(flow))
        return True

    # ---- power ----------------------------------------------------------------------------
    def power_on(self):
        if self.power != "off" or not self.supply_ok():
            return False
        self.power = "booting"
        self.spawn(self._boot())
        return True

    def power_off(self, urcs=()):
        """Cut power now (urcs: the goodbye lines, sent before the UART goes dead)."""
        for line in urcs:
            self.urc(line)
        self._cancel_all()
        self._close_all_sockets()
        self.power = "off"
        self._reset_state()

    def reboot(self):
        # a restart of its own: no goodbye line, the boot banner again, volatile settings gone
        # (ASSUMED docs/ASSUMED.md#A-REBOOT-BANNER)
        was = self.power
        self.power_off()
        if was != "off":
            self.power_on()

    def hang(self):
        if self.power in ("on", "booting"):
            self._cancel_all()
            self.power = "hung"

    async def power_down_later(self, urcs):
        """AT power-down: final answer first, then the goodbye lines, then off."""
        await self.clock.sleep(self.POWER_DOWN_DELAY)
        self.power_off(urcs)

    async def _boot(self):
        self._reset_state()
        self.boots += 1
        await self.clock.sleep(self.BOOT_TIME)
        self.power = "on"
        self.sim_ready_at = self.clock.now() + self.SIM_INIT_TIME
        self.sim_state = "busy" if self.card.present else "absent"
        self._sim_done = asyncio.Event()
        self.spawn(self._at_loop())
        self.spawn(self._sim_init())
        first = True
        for delay, line in self.BANNER:
            if not first:
                await self.clock.sleep(delay)
            first = False
            if "{cpin}" in line:
                await self._sim_done.wait()
                if not self.card.present:
                    line = line.replace("{cpin}", "NOT INSERTED")
                elif self.sim_state == "blocked":
                    continue
                else:
                    line = line.replace("{cpin}", self.cpin_word())
            if "{ready_only}" in line:
                if self.sim_state != "ready":
                    continue
                line = line.replace("{ready_only}", "")
            self.urc(line.replace("{cfun}", str(self.cfun)))
        self.on_booted()

    def on_booted(self):
        """Dialect hook after the banner."""

    async def _sim_init(self):
        await self.clock.sleep_until(self.sim_ready_at)
        if self.card.present:
            self.sim_state = self.card.locked_state()
        else:
            self.sim_state = "absent"
        self._sim_done.set()
        if self.sim_state == "ready":
            self.on_sim_ready(at_boot=True)
        self.maybe_start_registration()

    def pin_event(self, pin, value, hold=False):
        """A GPIO change from the host's machine.Pin (hold: the pad keeps it through resets and
        deep sleep, ESP-IDF gpio_hold_en)."""
        (self._held.add if hold else self._held.discard)(int(pin))
        if self.pwrkey_pin is None or int(pin) != int(self.pwrkey_pin):
            return
        active = int(value) == int(self.pwrkey_active)
        now = self.clock.now()
        if active:
            if pin not in self._pin_since and self.PWRKEY_IS_RESET and self.power != "off":
                self.power_off()  # held in reset until the line is released
            self._pin_since.setdefault(pin, now)
            return
        start = self._pin_since.pop(pin, None)
        if start is None:
            return
        self.pwrkey_pulse(now - start)

    def status_level(self):
        """The STATUS output: low while off (BG95 Series Hardware Design 3.6.2.1, Figure 9: VIL <= 0.45 V
        once OFF), high while running, hung included, and through the power-down procedure; raised at
        the end of the boot, with the UART (ASSUMED docs/ASSUMED.md#A-STATUS-RISE)."""
        return 1 if self.power in ("on", "hung") else 0

    def mcu_reset(self):
        """The MCU reset or went into deep sleep: its output pins that are not held float to the
        level their pulls give them (pin_float), which may assert the modem's RESET or PWRKEY."""
        for pin, level in self.pin_float.items():
            if pin not in self._held:
                self.pin_event(pin, level)

    def pwrkey_pulse(self, duration):
        """A pulse of `duration` modem seconds on PWRKEY (or RESET)."""
        if self.PWRKEY_IS_RESET:
            if duration >= self.PWRKEY_ON_MIN:
                if self.power == "off":
                    self.power_on()
                else:
                    self.power_off()
                    self.power_on()
            return
        if self.power == "off":
            if duration >= self.PWRKEY_ON_MIN:
                self.power_on()
        elif self.power == "hung":
            if duration >= self.PWRKEY_OFF_MIN:
                self.power_off()  # a hung modem cannot say goodbye
        elif duration >= self.PWRKEY_OFF_MIN:
            if self.power == "booting":
                self.power_off()
            else:
                self.spawn(self.power_down_later(self.POWER_DOWN_URCS))

    # ---- SIM ------------------------------------------------------------------------------
    def cpin_word(self):
        return {"ready": "READY", "pin": "SIM PIN", "puk": "SIM PUK"}.get(self.sim_state, "NOT READY")

    def require_sim(self, ready=True):
        """Raise the +CME ERROR a real modem gives when the SIM is not usable."""
        st = self.sim_state
        if st == "absent":
            raise CmeError(10)
        if st == "busy":
            raise CmeError(14)
        if st == "blocked":
            raise CmeError(13)
        if ready and st == "pin":
            raise CmeError(11)
        if ready and st == "puk":
            raise CmeError(12)

    def on_sim_ready(self, at_boot=False):
        """Dialect hook: the SIM became ready."""

    def sim_remove(self):
        self.card.present = False
        if self.power == "on":
            self.sim_state = "absent"
            for line in self.SIM_REMOVED_URCS:
                self.urc(line)
            self.stop_registration()

    def sim_insert(self):
        self.card.present = True
        # Like real modems, a hot-inserted SIM is only read at the next boot or CFUN cycle.

    def check_pin(self, given):
        card = self.card
        if given == card.pin:
            card.pin_left = 3
            return True
        card.pin_left -= 1
        if card.pin_left <= 0:
            card.pin_left = 0
            self.sim_state = "puk"
        return False

    def enter_puk(self, puk, newpin):
        card = self.card
        if puk == card.puk:
            card.puk_left = 10
            card.pin_left = 3
            card.pin = newpin
            card.pin_enabled = True
            return True
        card.puk_left -= 1
        if card.puk_left <= 0:
            card.puk_left = 0
            card.blocked = True
            self.sim_state = "blocked"
        return False

    def sim_unlocked(self):
        self.sim_state = "ready"
        self.on_sim_ready()
        self.maybe_start_registration()

    # ---- registration ---------------------------------------------------------------------
    def maybe_start_registration(self):
        if (self.power == "on" and self.cfun == 1 and self.sim_state == "ready"
                and self._reg_task is None and self.cops_mode != 2):
            eu = getattr(self.card, "euicc", None)  # a profile's network may deny (euicc.py)
            tl = eu.timeline(self.card.iccid, self.timeline) if eu is not None else self.timeline
            self._reg_task = self.spawn(self._run_timeline(list(tl)))

    async def _run_timeline(self, tl):
        t0 = self.clock.now()
        for at, state, extra in sorted(tl, key=lambda e: e[0]):
            await self.clock.sleep_until(t0 + float(at))
            self.apply_registration(state, **(extra or {}))

    def stop_registration(self):
        if self._reg_task is not None:
            self._reg_task.cancel()
            self._reg_task = None
        self.apply_registration("no_service")

    def set_registration(self, state, **extra):
        """Force a registration state now (cancels the timeline)."""
        if self._reg_task is not None:
            self._reg_task.cancel()
            self._reg_task = None
        self.apply_registration(state, **extra)
        self._reg_task = self.spawn(asyncio.sleep(0))  # sticky: no timeline until CFUN cycles

    def registered(self):
        return self.stat in (1, 5)

    def act(self):
        return self.DEFAULT_ACT

    def apply_registration(self, state, reject_cause=None, tac=None, ci=None, act=None,
                           operator=None, **_ignored):
        if state not in REG_STATES:
            raise ValueError("unknown registration state %r: use one of %s" % (state, ", ".join(REG_STATES)))
        stat = REG_STATES[state]
        self.coverage = state not in ("no_service", "lost")
        old = (self.stat, dict(self.cell), self.reject_cause)
        if tac:
            self.cell["tac"] = tac
        if ci:
            self.cell["ci"] = ci
        self._act_override = act
        self.reject_cause = reject_cause if stat == 3 else None
        if stat == 3 and self.reject_cause is None:
            self.reject_cause = 15
        self.stat = stat
        if stat == 1:
            op = self._find_op(operator or self.home_plmn)
            self.serving = op
        elif stat == 5:
            op = self._find_op(operator) if operator else None
            if op is None:
                # the first visited network that is not forbidden, shaped like _find_op's answer
                visited = next((o for o in self.operators if o[3] != self.home_plmn and o[0] != 3), None)
                op = self._find_op(visited[3]) if visited else None
            self.serving = op
        else:
            self.serving = None
        if (self.stat, self.cell, self.reject_cause) != old:
            self.emit_reg_urcs()
        if self.registered() and not self.attached:
            self.attached = True
            self.ip = self._ip_for()
            self.pdp_active[1] = True
            self.on_registered()
        elif not self.registered() and self.attached:
            self.attached = False
            self.pdp_active = {}
            self.on_network_lost()

    def _find_op(self, plmn):
        for o in self.operators:
            if o[3] == plmn:
                return (o[1], o[2], o[3], o[4])
        return ("Test Network", "TEST", plmn, 7) if plmn else None

    def _ip_for(self):
        h = zlib.crc32(self.card.imsi.encode())
        return "10.%d.%d.%d" % ((h >> 16) & 0xFF, (h >> 8) & 0xFF, max(2, h & 0xFE))

    def current_act(self):
        if getattr(self, "_act_override", None) is not None:
            return int(self._act_override)
        if self.serving is not None and self.serving[3] is not None and self.serving[3] != 7:
            return self.serving[3]
        return self.act()

    def on_registered(self):
        """Dialect hook: attached (default bearer up)."""

    def on_network_lost(self):
        """Dialect hook: detached; PDP contexts are gone."""
        self.pdp_deactivated()

    def pdp_deactivated(self):
        """Sockets die with the bearer."""
        for sid, s in list(self.sockets.items()):
            if s.state == "open":
                s.far_end_close()

    def reg_fields(self, name, n, stat):
        """The part after '<stat>' of +CEREG / +CGREG / +CREG for a given n."""
        if n < 2 or stat in (0, 2, 4):
            if name == "+CEREG" and n in (3, 5) and stat == 3:
                pass
            else:
                return ""
        f = ',"%s","%s",%d' % (self.cell["tac"], self.cell["ci"], self.current_act())
        if name != "+CEREG":
            return f
        psm = self.nv["psm"]
        psm_on = psm["mode"] == 1 and self.registered()
        if n == 3:
            if stat == 3:
                f += ",0,%d" % self.reject_cause
        elif n == 4:
            if psm_on:
                f += ',,,"%s","%s"' % (psm["active"], psm["tau"])
        elif n == 5:
            cause = ",0,%d" % self.reject_cause if stat == 3 else ",,"
            if psm_on:
                f += cause + ',"%s","%s"' % (psm["active"], psm["tau"])
            elif stat == 3:
                f += cause
        return f

    def reg_stat_for(self, name):
        if name == "+CREG" and not self.CREG_FOLLOWS_EPS:
            return 0
        return self.stat

    def emit_reg_urcs(self):
        for name in ("+CREG", "+CGREG", "+CEREG"):
            n = self.reg_n[name]
            if n == 0:
                continue
            stat = self.reg_stat_for(name)
            self.urc("%s: %d%s" % (name, stat, self.reg_fields(name, n, stat)))

    def _reg_cmd(self, cmd, max_n):
        name = cmd.name
        if cmd.kind == "read":
            n = self.reg_n[name]
            stat = self.reg_stat_for(name)
            self.info("%s: %d,%d%s" % (name, n, stat, self.reg_fields(name, n, stat)))
        elif cmd.kind == "test":
            self.info("%s: (0-%d)" % (name, max_n))
        elif cmd.kind == "set":
            self.reg_n[name] = cmd.int(0, lo=0, hi=max_n)
        else:
            self.reg_n[name] = 0

    def at_CEREG(self, cmd):
        self._reg_cmd(cmd, 5)

    def at_CGREG(self, cmd):
        self._reg_cmd(cmd, self.CGREG_MAX_N)

    def at_CREG(self, cmd):
        self._reg_cmd(cmd, 2)

    # ---- sockets (dialects call these) ------------------------------------------------------
    async def sock_open(self, conn_id, proto, host, port, tls_context=None, server_hostname=None):
        """Open a bridged socket; returns it, or raises OpenError."""
        if not self.registered() or not self.attached:
            raise OpenError("no_pdp")
        from .dns import resolver

        ip = resolver(self).resolve(host)  # the modem's DNS (dns.py); TLS keeps the name for SNI
        if ip is None:
            raise OpenError("dns", "unknown host %s" % host)
        s = BridgedSocket(self, conn_id, proto, ip, port, tls_context, server_hostname)
        self.sockets[conn_id] = s
        await self.clock.sleep(self.NET_RTT)
        if self.sockets_refused:
            s.state = "closed"
            s.c["tx_air"] += 40
            s.c["rx_air"] += 40
            s.c["round_trips"] += 1
            self.sockets.pop(conn_id, None)
            self.history.append(s.counters())
            raise OpenError("refused", "sockets_refused fault")
        try:
            await s.open(self.clock.real(self.CONNECT_TIMEOUT))
        except OpenError:
            self.sockets.pop(conn_id, None)
            self.history.append(s.counters())
            raise
        return s

    async def sock_send(self, s, data):
        await self.clock.sleep(self.NET_RTT / 2)
        await s.send(data)

    def sock_read(self, s, n):
        data = s.read(n)
        if s.available() == 0:
            s.urc_armed = True
        return data

    async def sock_close(self, conn_id):
        s = self.sockets.pop(conn_id, None)
        if s is not None:
            await s.close()
            self.history.append(s.counters())
        return s

    def _close_all_sockets(self):
        for s in list(self.sockets.values()):
            s.state = "closed"
            s._close_transport()
            self.history.append(s.counters())
        self.sockets.clear()

    def sock_data_arrived(self, s, n):
        if self.power != "on" or s.state != "open":
            return
        if self.URC_EACH_PACKET or s.urc_armed:
            s.urc_armed = False
            self.on_sock_data(s, n)

    def sock_peer_closed(self, s):
        if self.power == "on":
            self.on_sock_closed(s)

    def on_sock_data(self, s, n):
        """Dialect hook: data arrived on socket s."""

    def on_sock_closed(self, s):
        """Dialect hook: the far end closed socket s."""

    def tls_context(self, ca_pem, verify=True, client=None):
        """A client context that verifies the server against the CA the host uploaded.

        Hostname checking is off: these modems verify the chain; their host name checks are
        optional per profile and are not modeled. `client`: (certificate PEM, key PEM) the profile
        points at, presented when the server asks for one; a pair that does not load is presented
        as none (the server then refuses the handshake).
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        if client and client[0] and client[1]:
            import os
            import tempfile

            fd, path = tempfile.mkstemp(suffix=".pem")  # ssl loads a certificate chain from a file only
            try:
                os.write(fd, client[1] + b"\n" + client[0])
                os.close(fd)
                ctx.load_cert_chain(path)
            except (ssl.SSLError, ValueError):
                pass
            finally:
                os.unlink(path)
        if not verify:
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx.verify_mode = ssl.CERT_REQUIRED
        if ca_pem:
            try:
                ctx.load_verify_locations(cadata=ca_pem.decode("latin-1"))
            except (ssl.SSLError, ValueError):
                pass  # an unusable CA file: every handshake fails verification
        return ctx

    @staticmethod
    def valid_pem_cert(data):
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=data.decode("latin-1"))
            return True
        except (ssl.SSLError, ValueError, UnicodeDecodeError):
            return False

    def counters(self):
        def key(i):
            return "".join(str(x) for x in i) if isinstance(i, tuple) else str(i)
        out = {}
        for c in self.history:
            out[key(c["id"])] = c
        for s in self.sockets.values():
            out[key(s.conn_id)] = s.counters()
        return out

    # ---- common 3GPP / V.25ter commands -----------------------------------------------------
    def at_E(self, cmd):
        if cmd.num not in (None, 0, 1):
            raise Malformed("E")
        self.echo = bool(cmd.num)

    def at_V(self, cmd):
        # Numeric result codes (ATV0) are not modeled: refused rather than silently ignored.
        if cmd.num not in (None, 1):
            raise Malformed("V0 not modeled")

    def at_Q(self, cmd):
        if cmd.num not in (None, 0):
            raise Malformed("Q1 not modeled")

    def at_S(self, cmd):
        if cmd.kind == "read":
            self.info("%03d" % {3: 13, 4: 10, 5: 8}.get(cmd.num, 0))

    def at_Z(self, cmd):
        self.echo, self.cmee = True, 0

    def at_amp_F(self, cmd):
        self.echo, self.cmee = True, 0

    def at_amp_W(self, cmd):
        pass  # accepted; settings are not stored across reboots (echo is on again after boot)

    def at_amp_D(self, cmd):
        pass

    def at_amp_C(self, cmd):
        pass

    def at_I(self, cmd):
        for line in self.ATI:
            self.info(line.format(imei=self.imei))

    def _ident(self, cmd, value):
        if cmd.kind == "test":
            return
        if cmd.kind != "exec":
            raise Malformed("ident")
        self.info(value)

    def at_CGMI(self, cmd):
        self._ident(cmd, self.MANUFACTURER)

    def at_GMI(self, cmd):
        self._ident(cmd, self.MANUFACTURER)

    def at_CGMM(self, cmd):
        self._ident(cmd, self.CGMM)

    def at_GMM(self, cmd):
        self._ident(cmd, self.CGMM)

    def at_CGMR(self, cmd):
        self._ident(cmd, self.CGMR)

    def at_GMR(self, cmd):
        self._ident(cmd, self.CGMR)

    def at_CGSN(self, cmd):
        if cmd.kind == "set":
            if cmd.int(0, lo=0, hi=3) != 1:
                raise CmeError(4)
            self.info('+CGSN: "%s"' % self.imei)
            return
        self._ident(cmd, self.imei)

    def at_GSN(self, cmd):
        self._ident(cmd, self.imei)

    def at_CIMI(self, cmd):
        if cmd.kind == "test":
            return
        self.require_sim()
        self.info(self.card.imsi)

    def at_CMEE(self, cmd):
        if cmd.kind == "read":
            self.info("+CMEE: %d" % self.cmee)
        elif cmd.kind == "test":
            self.info("+CMEE: (0-2)")
        elif cmd.kind == "set":
            self.cmee = cmd.int(0, lo=0, hi=2)
        else:
            self.cmee = 0

    def at_IPR(self, cmd):
        if cmd.kind == "read":
            self.info("+IPR: 115200")
        elif cmd.kind == "test":
            self.info("+IPR: (),(0,9600,19200,38400,57600,115200,230400,460800,921600)")
        elif cmd.kind == "set":
            rate = cmd.int(0)
            if rate not in (0, 115200):
                # The modem switches after the OK; the host keeps talking at 115200 and from then on
                # both sides read noise, until a power cycle.
                self.final_ok()
                self.baud_mismatch = True
                return NO_FINAL

    def at_CPIN(self, cmd):
        if cmd.kind == "test":
            return
        if cmd.kind == "read":
            self.require_sim(ready=False)
            self.info("+CPIN: %s" % self.cpin_word())
            return
        if cmd.kind != "set":
            raise Malformed("CPIN")
        self.require_sim(ready=False)
        code = cmd.str(0)
        if self.sim_state == "ready":
            raise CmeError(3)
        if self.sim_state == "pin":
            if cmd.has(1):
                raise CmeError(3)
            if not self.check_pin(code):
                raise CmeError(16)
            self.sim_unlocked()
            return
        # PUK state: AT+CPIN="<puk>","<new pin>"
        newpin = cmd.str(1, None)
        if newpin is None:
            raise CmeError(12)
        if not (newpin.isdigit() and 4 <= len(newpin) <= 8):
            raise CmeError(16)
        if not self.enter_puk(code, newpin):
            raise CmeError(16)
        self.sim_unlocked()

    def at_CNUM(self, cmd):
        from .card import at_CNUM  # SIM-card behaviour lives in card.py

        return at_CNUM(self, cmd)

    def at_CCHO(self, cmd):
        from .euicc import at_CCHO  # logical channels and the eUICC live in euicc.py
        return at_CCHO(self, cmd)

    def at_CGLA(self, cmd):
        from .euicc import at_CGLA
        return at_CGLA(self, cmd)

    def at_CCHC(self, cmd):
        from .euicc import at_CCHC
        return at_CCHC(self, cmd)

    def at_CLCK(self, cmd):
        if cmd.kind == "test":
            self.info('+CLCK: ("SC","AO","OI","AI","PN")')
            return
        fac = cmd.str(0).upper()
        mode = cmd.int(1, lo=0, hi=2)
        if fac != "SC":
            raise CmeError(4)
        self.require_sim()
        if mode == 2:
            self.info("+CLCK: %d" % int(self.card.pin_enabled))
            return
        if not self.check_pin(cmd.str(2)):
            raise CmeError(12 if self.sim_state == "puk" else 16)
        self.card.pin_enabled = mode == 1

    def at_CPWD(self, cmd):
        if cmd.kind == "test":
            self.info('+CPWD: ("SC",8),("P2",8)')
            return
        if cmd.str(0).upper() != "SC":
            raise CmeError(4)
        self.require_sim()
        new = cmd.str(2)
        if not (new.isdigit() and 4 <= len(new) <= 8):
            raise CmeError(16)
        if not self.check_pin(cmd.str(1)):
            raise CmeError(12 if self.sim_state == "puk" else 16)
        self.card.pin = new

    def at_CFUN(self, cmd):
        if cmd.kind == "read":
            self.info("+CFUN: %d" % self.cfun)
            return
        if cmd.kind == "test":
            self.info("+CFUN: (0,1,4),(0-1)")
            return
        if cmd.kind != "set":
            raise Malformed("CFUN")
        fun = cmd.int(0)
        if fun not in (0, 1, 4):
            raise CmeError(50) if fun < 128 else Malformed("CFUN")
        rst = cmd.int(1, 0, lo=0, hi=1)
        if rst == 1:
            self.spawn(self._reset_after_ok())
            return
        if fun == self.cfun:
            return
        self.cfun = fun
        if fun == 1:
            if self.sim_state == "absent" and self.card.present:
                self.sim_state = self.card.locked_state()
            self._reg_task = None
            self.maybe_start_registration()
        else:
            if self._reg_task is not None:
                self._reg_task.cancel()
            self._reg_task = None
            self.apply_registration("no_service")

    async def _reset_after_ok(self):
        await self.clock.sleep(0.3)
        self.power_off(self.reset_urcs())
        self.power_on()

    def reset_urcs(self):
        return ()

    def csq(self):
        # Signal is measured on the camped cell even while searching or without a SIM (the
        # transcript sim7080g_cops-scan shows +CSQ: 29,99 while stat is 2); none without coverage.
        if self.cfun != 1 or not self.coverage or self.signal["rssi"] is None:
            return 99, 99
        rssi = self.signal["rssi"]
        return max(0, min(31, (rssi + 113) // 2)), self.signal.get("ber", 99)

    def at_CSQ(self, cmd):
        if cmd.kind == "test":
            self.info("+CSQ: (0-31,99),(0-7,99)")
            return
        self.info("+CSQ: %d,%d" % self.csq())

    def cesq(self):
        if self.csq()[0] == 99:
            return 255, 255
        rsrq = max(0, min(34, int((self.signal["rsrq"] + 20) * 2)))
        rsrp = max(0, min(97, int(self.signal["rsrp"] + 141)))
        return rsrq, rsrp

    def at_CESQ(self, cmd):
        if cmd.kind == "test":
            self.info("+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)")
            return
        self.info("+CESQ: 99,99,255,255,%d,%d" % self.cesq())

    def _op_name(self, op, fmt=None):
        fmt = self.cops_format if fmt is None else fmt
        return op[fmt] if fmt in (0, 1) else op[2]

    async def at_COPS(self, cmd):
        if cmd.kind == "read":
            if self.serving is not None and self.registered():
                self.info('+COPS: %d,%d,"%s",%d' % (self.cops_mode, self.cops_format,
                                                    self._op_name(self.serving), self.current_act()))
            else:
                self.info("+COPS: %d" % self.cops_mode)
            return
        if cmd.kind == "test":
            if self.cfun != 1:
                raise CmeError(3)
            self.require_sim()
            await self.clock.sleep(self.COPS_SCAN_TIME)
            ops = ",".join('(%d,"%s","%s","%s",%d)' % o for o in self.operators)
            self.info("+COPS: %s,,(0,1,2,3,4),(0,1,2)" % ops)
            return
        if cmd.kind != "set":
            raise Malformed("COPS")
        mode = cmd.int(0, lo=0, hi=4)
        if mode == 3:
            self.cops_format = cmd.int(1, lo=0, hi=2)
            return
        if mode == 2:
            self.cops_mode = 2
            if self._reg_task is not None:
                self._reg_task.cancel()
            self._reg_task = None
            self.apply_registration("no_service")
            return
        self.require_sim()
        if mode in (1, 4):
            fmt = cmd.int(1, lo=0, hi=2)
            name = cmd.str(2)
            op = next((o for o in self.operators if o[1 + fmt] == name), None)
            if fmt != 0 and op is None:
                op = next((o for o in self.operators if o[3] == name), None)
            self.cops_format = fmt
            if op is None or op[0] == 3:
                await self.clock.sleep(10.0)
                if mode == 1:
                    raise CmeError(30)
                op = None
            self.cops_mode = mode if op is not None else 0
            if op is not None:
                await self.clock.sleep(3.0)
                if self._reg_task is not None:
                    self._reg_task.cancel()
                self._reg_task = None
                self.apply_registration("home" if op[3] == self.home_plmn else "roaming", operator=op[3])
                self._reg_task = self.spawn(asyncio.sleep(0))
            return
        self.cops_mode = 0
        if not self.registered() and self._reg_task is None:
            self.maybe_start_registration()

    def at_CGDCONT(self, cmd):
        ctx = self.nv["cgdcont"]
        if cmd.kind == "read":
            for cid in sorted(ctx):
                self.info('+CGDCONT: %d,"%s","%s","0.0.0.0",0,0' % (cid, ctx[cid][0], ctx[cid][1]))
            return
        if cmd.kind == "test":
            self.info('+CGDCONT: (1-15),"IP",,,(0-2),(0-4)')
            self.info('+CGDCONT: (1-15),"IPV6",,,(0-2),(0-4)')
            self.info('+CGDCONT: (1-15),"IPV4V6",,,(0-2),(0-4)')
            return
        cid = cmd.int(0, lo=1, hi=15)
        if len(cmd) == 1:
            ctx.pop(cid, None)
            return
        ptype = cmd.str(1, "IP").upper()
        if ptype not in ("IP", "IPV6", "IPV4V6", "NON-IP"):
            raise CmeError(50)
        ctx[cid] = [ptype, cmd.str(2, "")]

    def at_CGAUTH(self, cmd):
        # 27.007 10.1.31: AT+CGAUTH=<cid>[,<auth_prot>[,<userid>[,<password>]]]; 0 none, 1 PAP,
        # 2 CHAP (3 "PAP or CHAP" is a vendor extension the GM02S and BG95 accept; taken for all:
        # ASSUMED docs/ASSUMED.md#A-CGAUTH-3). The read form prints the user, not the password.
        auth = self.nv.setdefault("cgauth", {})
        if cmd.kind == "read":
            for cid in sorted(auth):
                self.info('+CGAUTH: %d,%d,"%s"' % (cid, auth[cid][0], auth[cid][1]))
            return
        if cmd.kind == "test":
            self.info("+CGAUTH: (1-15),(0-3),,")
            return
        if cmd.kind != "set":
            raise Malformed("CGAUTH")
        cid = cmd.int(0, lo=1, hi=15)
        prot = cmd.int(1, 0, lo=0, hi=3)
        if prot and not cmd.str(2, ""):
            raise CmeError(50)  # PAP / CHAP without a user name
        auth[cid] = (prot, cmd.str(2, ""), cmd.str(3, ""))

    def at_CGACT(self, cmd):
        if cmd.kind == "read":
            for cid in sorted(self.nv["cgdcont"]):
                self.info("+CGACT: %d,%d" % (cid, int(self.pdp_active.get(cid, False))))
            return
        if cmd.kind == "test":
            self.info("+CGACT: (0,1)")
            return
        state = cmd.int(0, lo=0, hi=1)
        cids = [cmd.int(i, lo=1, hi=15) for i in range(1, len(cmd))] or sorted(self.nv["cgdcont"])
        for cid in cids:
            if state == 1:
                if not self.registered():
                    raise CmeError(30)
                self.pdp_active[cid] = True
            else:
                self.pdp_active.pop(cid, None)

    def at_CGATT(self, cmd):
        if cmd.kind == "read":
            self.info("+CGATT: %d" % int(self.attached))
        elif cmd.kind == "test":
            self.info("+CGATT: (0,1)")
        elif cmd.kind == "set":
            if cmd.int(0, lo=0, hi=1) == 0:
                self.apply_registration("no_service")
            elif not self.registered():
                raise CmeError(30)

    def at_CGPADDR(self, cmd):
        if cmd.kind == "test":
            self.info("+CGPADDR: (%s)" % ",".join(str(c) for c in sorted(self.nv["cgdcont"])))
            return
        cids = [cmd.int(i, lo=1, hi=15) for i in range(len(cmd))] or sorted(self.nv["cgdcont"])
        for cid in cids:
            if self.pdp_active.get(cid) and self.ip:
                self.info('+CGPADDR: %d,"%s"' % (cid, self.ip))
            else:
                self.info("+CGPADDR: %d" % cid)

    def at_CGEREP(self, cmd):
        if cmd.kind == "read":
            self.info("+CGEREP: 0,0")

    def at_CTZR(self, cmd):
        if cmd.kind == "read":
            self.info("+CTZR: 0")

    def at_CTZU(self, cmd):
        if cmd.kind == "read":
            self.info("+CTZU: 1")

    @staticmethod
    def _bits(s, n):
        if s is None or len(s) != n or any(ch not in "01" for ch in s):
            raise Malformed("timer")
        return s

    def at_CPSMS(self, cmd):
        psm = self.nv["psm"]
        if cmd.kind == "read":
            self.info('+CPSMS: %d,,,"%s","%s"' % (psm["mode"], psm["tau"], psm["active"]))
            return
        if cmd.kind == "test":
            self.info('+CPSMS: (0-2),,,("00000000"-"11111111"),("00000000"-"11111111")')
            return
        if cmd.kind == "exec":
            psm["mode"] = 0
            return
        mode = cmd.int(0, lo=0, hi=2)
        if mode == 2:
            psm.update(mode=0, tau="00000000", active="00000000")
            return
        if cmd.has(3):
            psm["tau"] = self._bits(cmd.str(3), 8)
        if cmd.has(4):
            psm["active"] = self._bits(cmd.str(4), 8)
        changed = psm["mode"] != mode
        psm["mode"] = mode
        if changed and self.registered() and self.reg_n["+CEREG"] >= 4:
            # the network answers the new request in a TAU: the URC shows the granted timers
            self.spawn(self._later(2.0, self.emit_reg_urcs))

    async def _later(self, delay, fn, *args):
        await self.clock.sleep(delay)
        fn(*args)

    def at_CEDRXS(self, cmd):
        edrx = self.nv["edrx"]
        if cmd.kind == "read":
            for act in sorted(edrx):
                self.info('+CEDRXS: %d,"%s"' % (act, edrx[act]))
            if not edrx:
                self.info("+CEDRXS:")
            return
        if cmd.kind == "test":
            self.info('+CEDRXS: (0-3),(4,5),("0000"-"1111")')
            return
        if cmd.kind == "exec":
            edrx.clear()
            return
        mode = cmd.int(0, lo=0, hi=3)
        act = cmd.int(1, 4, lo=1, hi=5)
        if act not in (4, 5):
            raise CmeError(4)
        if mode == 3:
            edrx.clear()
        elif mode == 0:
            edrx.pop(act, None)
        else:
            edrx[act] = self._bits(cmd.str(2, "0010"), 4)

    def at_CEDRXRDP(self, cmd):
        act = 4 if self.current_act() == 7 else 5
        val = self.nv["edrx"].get(act)
        if not self.registered() or val is None:
            self.info("+CEDRXRDP: 0")
        else:
            self.info('+CEDRXRDP: %d,"%s","%s","0011"' % (act, val, val))

    def modem_time(self):
        """(struct_time, synced) of the modem's clock."""
        if self.registered() or getattr(self, "_nitz", False):
            self._nitz = True
            t = self.clock.wall0 + self.clock.now()
            return time.gmtime(t), True
        return time.gmtime(315964800 + self.clock.now()), False  # 80/01/06 until network time

    def at_CCLK(self, cmd):
        if cmd.kind == "read":
            tm, _ = self.modem_time()
            self.info('+CCLK: "%s+00"' % time.strftime("%y/%m/%d,%H:%M:%S", tm))
        elif cmd.kind == "set":
            cmd.str(0)

    # ---- control-side helpers -----------------------------------------------------------------
    def status(self):
        return {
            "model": self.MODEL, "power": self.power, "cfun": self.cfun, "sim": self.sim_state,
            "stat": self.stat, "reject_cause": self.reject_cause, "echo": self.echo, "cmee": self.cmee,
            "operator": self.serving[2] if self.serving else None, "act": self.current_act(),
            "ip": self.ip if self.attached else None, "signal": dict(self.signal),
            "psm": dict(self.nv["psm"]), "edrx": {str(k): v for k, v in self.nv["edrx"].items()},
            "sockets": {str(k): s.state for k, s in self.sockets.items()},
            "pin_left": self.card.pin_left, "puk_left": self.card.puk_left, "boots": self.boots,
            "modem_time": round(self.clock.now(), 3),
            "supply_mv": self.supply_mv, "uart_mv": self.uart_mv, "uart_tx_open": self.uart_tx_open(),
            "tx_dropped": self.tx_dropped,
        }

    def fault(self, kind, **kw):
        f = self.faults
        if kind == "clear":
            f.clear()
            self.sockets_refused = False
        elif kind in ("drop", "garble"):
            p = float(kw.get("probability", 0.0))
            n = int(kw.get("count", 0))
            if not (0 <= p <= 1) or n < 0 or (p == 0 and n == 0):
                raise ValueError("%s needs probability (0..1) or count (>0)" % kind)
            setattr(f, kind + "_p", p)
            setattr(f, kind + "_n", n)
        elif kind == "delay":
            f.delay_s = float(kw.get("seconds", 1.0))
            f.delay_n = int(kw.get("count", 1))
        elif kind == "duplicate_urc":
            f.dup_urc = int(kw.get("count", 1))
        elif kind == "reboot":
            self.reboot()
        elif kind == "hang":
            self.hang()
        elif kind == "lose_registration":
            duration = float(kw.get("duration", 30.0))
            state = kw.get("state", "searching")
            if self._reg_task is not None:
                self._reg_task.cancel()
            self.apply_registration(state)
            back = kw.get("back", "home")
            self._reg_task = self.spawn(self._later(duration, self.apply_registration, back))
        elif kind == "far_end_close":
            sid = kw.get("socket")
            hit = 0
            for k, s in list(self.sockets.items()):
                if sid is None or str(k) == str(sid):
                    hit += int(s.far_end_close())
            if hit == 0:
                raise ValueError("no open socket %s: open one first or omit 'socket'" %
                                 ("" if sid is None else sid))
        elif kind == "sockets_refused":
            self.sockets_refused = bool(kw.get("enable", True))
        elif kind == "sim_removed":
            self.sim_remove()
        elif kind == "sim_inserted":
            self.sim_insert()
        else:
            raise ValueError("unknown fault %r: use drop, garble, delay, duplicate_urc, reboot, hang, "
                             "lose_registration, far_end_close, sockets_refused, sim_removed, "
                             "sim_inserted or clear" % kind)


def make_imei(tac, seed):
    body = (tac + "%08d" % (zlib.crc32(seed.encode()) % 10 ** 8))[:14]
    return body + _luhn_digit(body)


def make_iccid(seed):
    body = "8900101" + "%011d" % (zlib.crc32(("iccid" + seed).encode()) % 10 ** 11)
    return body + _luhn_digit(body)

# Registration lines: +CEREG (EPS), +CGREG (GPRS), +CREG (CS), 3GPP TS 27.007 10.1.22 / 10.1.20 /
# 7.2, in both forms:
#   solicited (answer to AT+CEREG?)  +CEREG: <n>,<stat>[,...]
#   unsolicited (URC)                +CEREG: <stat>[,...]
# Fields after <stat>, by command (empty fields allowed; trailing groups may be missing):
#   +CEREG  tac, ci, AcT, cause_type, reject_cause, Active-Time (T3324), Periodic-TAU (T3412 ext)
#   +CGREG  lac, ci, AcT, rac, cause_type, reject_cause, Active-Time (T3324), Periodic-RAU (T3312
#           ext), GPRS-READY-timer (T3314)
#   +CREG   lac, ci, AcT, cause_type, reject_cause
# n=2 adds the location (tac/lac, ci, AcT [, rac]); n=3 adds cause_type, reject_cause; n=4 adds the
# PSM timers with the cause fields left empty (",,"); n=5 both. tac/lac/ci/rac are hex strings and
# come back as ints; the timers come back as the 8-bit strings the modem sent ("00100100") and, via
# the *_s properties, in seconds (None when absent or "deactivated").
#
# parse(line, solicited) -- the caller knows whether it asked (AT+CEREG?) or got a URC; pass
# solicited=True/False. solicited=None decides by shape:
#   one field                                   -> URC (+CEREG: 2)
#   2nd field quoted, empty or not a decimal    -> URC (it is tac/lac: +CEREG: 1,"9FC5",...)
#   2nd field an unquoted decimal               -> solicited (+CEREG: 0,1 / +CEREG: 3,1,"9FC5",...)
#   +CEREG only: 4, 6 or 8 fields with an unquoted decimal 2nd field -> URC (a solicited +CEREG
#   has 2, 5, 7 or 9 fields, a URC 1, 4, 6 or 8)
# Ambiguous, so decided by the rules above and possibly wrong: modems that print tac/lac/ci without
# quotes as plain digits, and +CGREG/+CREG lines from older firmware that drop AcT or rac (their
# field counts overlap). Pass solicited= explicitly wherever the caller knows.
# Returns a Reg, or None for a line that is not a registration line or is malformed.

from micropython import const

# <stat> (3GPP TS 27.007 7.2 / 10.1.22). The public ones are the network's; a private const() takes
# no name on the device (py/parse.c folds it away), where a public one is a module global
_NOT_REGISTERED = const(0)
_HOME = const(1)
SEARCHING = const(2)
DENIED = const(3)
_UNKNOWN = const(4)
ROAMING = const(5)
_SMS_ONLY_HOME = const(6)
_SMS_ONLY_ROAMING = const(7)
_EMERGENCY_ONLY = const(8)

_LAYOUT = {
    b"+CEREG:": ("tac", "ci", "act", "cause_type", "reject_cause", "active_time", "periodic_tau"),
    b"+CGREG:": ("tac", "ci", "act", "rac", "cause_type", "reject_cause", "active_time",
                 "periodic_tau", "ready_timer"),
    b"+CREG:": ("tac", "ci", "act", "cause_type", "reject_cause"),
}
_HEX = const(("tac", "ci", "rac"))
_BITS = const(("active_time", "periodic_tau", "ready_timer"))


class Reg:
    # kind: 'CEREG' | 'CGREG' | 'CREG'; n: the <n> of a solicited line, None for a URC.
    # tac holds the lac for +CGREG / +CREG. Absent fields are None.
    def __init__(self, kind):
        self.kind = kind
        self.solicited = False
        self.n = None
        self.stat = None
        self.tac = None
        self.ci = None
        self.act = None
        self.rac = None
        self.cause_type = None
        self.reject_cause = None
        self.active_time = None
        self.periodic_tau = None
        self.ready_timer = None

    @property
    def registered(self):
        return self.stat == _HOME or self.stat == ROAMING

    @property
    def roaming(self):
        return self.stat == ROAMING

    @property
    def active_time_s(self):
        return t3324_s(self.active_time)

    @property
    def periodic_tau_s(self):
        return t3412_s(self.periodic_tau)

    @property
    def ready_timer_s(self):
        return gprs_timer_s(self.ready_timer)

    def __repr__(self):
        return "<Reg %s n=%s stat=%s tac=%s ci=%s act=%s cause=%s/%s psm=%s/%s>" % (
            self.kind, self.n, self.stat, self.tac, self.ci, self.act, self.cause_type,
            self.reject_cause, self.active_time, self.periodic_tau)


def _unq(f):
    f = f.strip()
    if len(f) >= 2 and f[0] == 34 and f[-1] == 34:
        return f[1:-1], True
    return f, False


def parse(line, solicited=None):
    if isinstance(line, str):
        line = line.encode()
    line = line.strip()
    for prefix in _LAYOUT:
        if line.startswith(prefix):
            break
    else:
        return None
    layout = _LAYOUT[prefix]
    fields = line[len(prefix):].split(b",")
    if solicited is None:
        if len(fields) == 1:
            solicited = False
        else:
            f1, quoted = _unq(fields[1])
            if quoted or not f1 or not f1.isdigit():
                solicited = False
            elif prefix == b"+CEREG:" and len(fields) in (4, 6, 8):
                solicited = False
            else:
                solicited = True
    r = Reg(prefix[1:-1].decode())
    r.solicited = solicited
    try:
        if solicited:
            if len(fields) < 2:
                return None
            r.n = int(fields.pop(0))
        r.stat = int(fields[0])
        for i in range(1, len(fields)):
            if i > len(layout):
                break
            v, _ = _unq(fields[i])
            if not v:
                continue
            name = layout[i - 1]
            if name in _HEX:
                v = int(v, 16)
            elif name in _BITS:
                v = v.decode()
            else:
                v = int(v)
            setattr(r, name, v)
    except ValueError:
        return None
    return r


# ---- GPRS timer IEs (3GPP TS 24.008 10.5.7.3, 10.5.7.4, 10.5.7.4a): bits 8-6 unit, 5-1 value ----
# GPRS Timer / Timer 2: 000 2 s, 001 1 min, 010 decihours; other values "shall be interpreted as
# multiples of 1 minute"; 111 off
_T2_UNITS = const((2, 60, 360, 60, 60, 60, 60))
_T3_UNITS = const((600, 3600, 36000, 2, 30, 60, 1152000))  # Timer 3: 10 min, 1 h, 10 h, 2 s, 30 s, 1 min, 320 h


def _octet(bits):
    if bits is None:
        return None
    if isinstance(bits, int):
        return bits & 0xFF
    if isinstance(bits, bytes):
        bits = bits.decode()
    bits = bits.strip().strip('"')
    if len(bits) != 8:
        return None
    try:
        return int(bits, 2)
    except ValueError:
        return None


def _timer_s(bits, units):
    # seconds of a 3GPP timer octet (3-bit unit, 5-bit value); None if off (unit 111) or absent
    o = _octet(bits)
    if o is None or o >> 5 == 7:
        return None
    return (o & 31) * units[o >> 5]


def gprs_timer_s(bits):
    # GPRS Timer / GPRS Timer 2 (T3314 READY, T3324 Active-Time)
    return _timer_s(bits, _T2_UNITS)


t3324_s = gprs_timer_s


def t3412_s(bits):
    # GPRS Timer 3 (T3412 extended periodic TAU, T3312 extended periodic RAU)
    return _timer_s(bits, _T3_UNITS)


def _encode(seconds, units, codes):
    # the smallest unit whose 5-bit multiple covers seconds (rounded up)
    for i in range(len(units)):
        u = units[i]
        v = (seconds + u - 1) // u
        if v <= 31:
            o = (codes[i] << 5) | v
            s = ""
            for b in range(7, -1, -1):
                s += "1" if o >> b & 1 else "0"
            return s
    raise ValueError("timer too long")


def encode_t3324(seconds):
    # Active-Time for AT+CPSMS; None -> "11100000" (deactivated)
    if seconds is None:
        return "11100000"
    return _encode(seconds, (2, 60, 360), (0, 1, 2))


def encode_t3412(seconds):
    # extended periodic TAU for AT+CPSMS; None -> "11100000" (deactivated)
    if seconds is None:
        return "11100000"
    return _encode(seconds, (2, 30, 60, 600, 3600, 36000, 1152000), (3, 4, 5, 0, 1, 2, 6))

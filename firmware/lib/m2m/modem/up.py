# The modem's bring-up code: detection, identity checks, the init script, power on / off / cycle
# and the network settings (RAT, bands, APN). Loaded by m2m.modem's methods when first needed and
# dropped once the network is attached (m2m.net.network), so that an attached, reporting device does
# not hold it; the recovery path (power cycle, a new attach) loads it again. Functions take the Modem
# as their first argument `m`; docs of the engine and the power rules: m2m/modem/__init__.py.
from micropython import const

from m2m import hal
from m2m.modem import MODELS, ModemError, _fields, _text, model_class

_PROBE_MS = const(300)
_STATUS_PROBE_MS = const(100)  # STATUS says off: the check that it is not miswired
_PROBE_EVERY_MS = const(500)
_IO_CMD = const(0)
_IO_SLEEP = const(1)


def scripts(cls):
    # the class holding a dialect class's bring-up scripts (INIT, RAT, BANDS, APN): the class of the
    # same name in m2m.modem.<module>_up, found through the registry by the dialect's NAME
    e = MODELS.get(cls.NAME)
    if e is None:
        return None
    return getattr(__import__("m2m.modem.%s_up" % e[0], None, None, (e[1],)), e[1])


def data(m, name):
    # a bring-up script of this modem: its class's own (a class that carries it), else its
    # dialect's in m2m.modem.<module>_up; a modem without one (the generic Modem) has no INIT
    v = getattr(m, name, None)
    if v is None:
        s = scripts(type(m))
        v = getattr(s, name, None) if s is not None else None
        if v is None:
            if name == "INIT":
                return ()
            raise ModemError("%s has no %s script" % (m.NAME, name))
    return v


def _match(answer, ati=False):
    # the model whose CGMM string (or ATI string, for the ATI fallback) equals the answer or is
    # its longest prefix
    best = None
    n = -1
    for name, entry in MODELS.items():
        for ident in (entry[2] + entry[3] if ati else entry[2]):
            if (answer == ident or answer.startswith(ident)) and len(ident) > n:
                best = name
                n = len(ident)
    return best


def detect(at, timeout_ms=2000):
    # The dialect class of the modem on this AT driver, from its AT+CGMM answer (ATI as fallback).
    answers = []
    for cmd in ("AT+CGMM", "ATI"):
        try:
            r = at.cmd(cmd, resp=(), timeout_ms=timeout_ms, retries=1, idempotent=True)
        except OSError:
            continue
        if not r.ok:
            continue
        for ln in r.lines:
            t = _text(ln)
            if t.startswith("+CGMM:"):
                t = t[6:].strip()
            if not t:
                continue
            answers.append(t)
            name = _match(t, cmd == "ATI")
            if name is not None:
                return model_class(name)
    if not answers:
        raise ModemError("no answer to AT+CGMM or ATI: check the modem's power, UART pins and baud rate")
    known = []
    for name in sorted(MODELS):
        known.append("%s (%s)" % (name, "/".join(MODELS[name][2])))
    raise ModemError("unknown modem %r: known models are %s; add a dialect to m2m.modem.MODELS"
                     % (" | ".join(answers), ", ".join(known)))


def create(at, board=None, model=None):
    # A Modem for this AT driver: the model named, else the board's modem.model, else detected.
    # board: the board dict (m2m.board.load()) or its "modem" part.
    if board is not None and "modem" in board:
        board = board["modem"]
    if model is None and board:
        model = board.get("model")
    cls = model_class(model) if model else detect(at)
    return cls(at, board)


def luhn_ok(s):
    # the Luhn check digit (3GPP TS 23.003 Annex B, the IMEI's check digit)
    t = 0
    n = len(s)
    for i in range(n):
        d = ord(s[n - 1 - i]) - 48
        if i & 1:
            d += d
            if d > 9:
                d -= 9
        t += d
    return t % 10 == 0


def valid_imei(s):
    # 15 digits, the last a Luhn check digit (3GPP TS 23.003 6.2.1 and Annex B)
    return len(s) == 15 and s.isdigit() and luhn_ok(s)


def valid_iccid(s):
    # ITU-T E.118: the telecom major industry identifier 89, then digits; 18-22 long as modems
    # print it. A 19-digit ICCID keeps the SIM's BCD padding nibble as a trailing F: public
    # embedded-Rust SIMCom drivers decode AT+CCID as 20 characters whose last is a hex digit
    # (their example "8901260862291477114f") and reject a first pair other than 89 ("MII").
    if s and s[-1] in "Ff":
        s = s[:-1]
    return 18 <= len(s) <= 22 and s.isdigit() and s.startswith("89")


def valid_imsi(s):
    # 15 digits: MCC (3) + MNC (2-3) + MSIN (3GPP TS 23.003 2.2 allows at most 15; in practice
    # every IMSI is 15 long)
    return len(s) == 15 and s.isdigit()


_VALID = {"imei": valid_imei, "iccid": valid_iccid, "imsi": valid_imsi}


def answer(m, r, key=None):
    # the first field of the command's first line (its prefix removed, quotes stripped); for
    # an identity key (imei, iccid, imsi) the first line whose value is a valid one, else None
    # (an out-of-sync modem must never leave an echo or a stray line stored as an identity)
    check = _VALID.get(key)
    for ln in r.lines:
        t = _text(ln)
        p = t.find(":")
        if p > 0 and (t[0] == "+" or t.startswith("Revision:")):
            # "+QCCID: 8944..." / "+SQNCCID: "8944...","" / SIMCom's "Revision:1951B16SIM7080"
            t = t[p + 1:]
        f = _fields(t, False)  # identities keep their leading zeros: strings, never ints
        v = f[0] if f and f[0] else None
        if check is None:
            return v
        if v is not None and check(v):
            return v
    return None


async def await_event(m, names=None, timeout_ms=1000, prefix=None):
    # wait_event for the asyncio driver (its reader task dispatches the URCs)
    deadline = hal.ticks_add(hal.ticks_ms(), timeout_ms)
    while True:
        e = m.take_event(names, prefix)
        if e is not None:
            return e
        if hal.ticks_diff(deadline, hal.ticks_ms()) <= 0:
            return None
        await hal.asleep_ms(20)


async def arun(m, script, **params):
    # run() for the asyncio AT driver (AsyncAT)
    g = m._steps(script, params)
    res = None
    try:
        while True:
            io = g.send(res)
            if io[0] == _IO_CMD:
                res = await m.at.cmd(io[1], resp=io[2], timeout_ms=io[3])
            elif io[0] == _IO_SLEEP:
                res = await hal.asleep_ms(io[1])
            else:
                res = await m.await_event(None, io[2], io[1])
    except StopIteration as e:
        return e.value


def init(m, **params):
    # the dialect's init script: echo off, error codes, registration URCs, identity reads
    m.run(data(m, "INIT"), **params)
    m.synced = True  # from now on a boot line the firmware did not cause is a reboot (Modem._urc)
    return m.identity()


def identity(m):
    return {"model": m.NAME, "cgmm": m.cgmm, "imei": m.imei, "imsi": m.imsi,
            "iccid": m.iccid, "firmware": m.firmware}


def power_config(m):
    # (pin, active level, on pulse ms, off pulse ms, boot ms); pin None when the board has no
    # PWRKEY or RESET line (then only the AT power-down command and waiting are possible)
    b = m.board
    on, off, boot = m.PWRKEY_MS
    pk = b.get("pwrkey")
    if pk:
        return (pk["pin"], pk.get("active", 0), pk.get("on_pulse_ms", on),
                pk.get("off_pulse_ms", off), pk.get("boot_ms", boot))
    rs = b.get("reset")
    if rs:
        # a RESET line (Walter): the same pulse restarts the modem; it cannot switch it off
        p = rs.get("pulse_ms", 100)
        return (rs["pin"], rs.get("active", 0), p, p, rs.get("boot_ms", boot))
    return (None, 0, on, off, boot)


def _held(m):
    # a RESET line (no PWRKEY) with modem.reset.hold_in_sleep: Walter's GPIO45 is a strapping
    # pin with a weak pull-down and the reset is active low, so the line is driven inactive and
    # pad-held through ESP32 resets and deep sleep (walter-micropython walter_modem/core.py:
    # Pin(45, Pin.OUT, value=1, hold=True); hold=False / True around its reset pulse). hold= is
    # the ESP32 port's Pin keyword (ports/esp32/machine_pin.c, gpio_hold_en / gpio_hold_dis).
    b = m.board
    return not b.get("pwrkey") and bool((b.get("reset") or {}).get("hold_in_sleep"))


def _power_pin(m):
    # the PWRKEY / RESET pin, driven inactive when first used (held when _held()); None if none
    if m._pin is None:
        pin, active = m.power_config()[:2]
        if pin is None:
            return None
        if m._held():
            m._pin = hal.Pin(pin, hal.Pin.OUT, value=1 - active, hold=True)
            # a digital (non-RTC) pad such as Walter's GPIO45 keeps its hold through deep sleep
            # only with this (MicroPython docs/esp32/quickref.rst, "pad hold in deep-sleep")
            hal.gpio_deep_sleep_hold(True)
        else:
            m._pin = hal.Pin(pin, hal.Pin.OUT, value=1 - active)
    return m._pin


def _pulse(m, ms):
    p = m._power_pin()
    if p is None:
        return False
    m.synced = False  # a key or RESET pulse: the boot that may follow is the firmware's own
    active = m.power_config()[1]
    held = m._held()
    if held:
        p.init(hold=False)  # a held pad ignores level changes
    p.value(active)
    hal.sleep_ms(ms)
    p.value(1 - active)
    if held:
        p.init(hold=True)
    return True


def wait_ready(m, boot_ms):
    # after a power-on pulse: the ready banner, or an answer to AT, within boot_ms
    m._powering = True
    m.synced = False  # this boot is the firmware's own (or already known): no reboot to report
    try:
        deadline = hal.ticks_add(hal.ticks_ms(), boot_ms)
        ready = m.BANNERS[-1]
        while hal.ticks_diff(deadline, hal.ticks_ms()) > 0:
            if m.wait_event(("boot",), _PROBE_EVERY_MS, ready) is not None:
                # banner seen; the first AT after it may still be early on some modems
                if m.ping(1000, 2):
                    return True
            elif m.ping():
                return True
        return m.ping(1000)
    finally:
        _settled(m)


def _settled(m):
    m._powering = False
    m.at.reset()  # drop the timeout streak and half-read lines from the boot
    m.recovery_needed = False


def status(m):
    # the modem's STATUS output where the board wires it (modem.status_pin): True running, False
    # off, None without the pin. BG95: STATUS is at VIL <= 0.45 V once the module is OFF (BG95
    # Series Hardware Design 3.6.2.1, Figure 9 power-off timing) and high while it runs; Quectel
    # examples read it the same way (mbed pimco01 BG96_Modem_PowerOFF: STATUS 0 = "Module Power
    # Off"). Its rise at the end of the boot and a level shifter that keeps its sense:
    # ASSUMED docs/ASSUMED.md#A-STATUS-RISE
    pin = m.board.get("status_pin")
    if pin is None:
        return None
    if m._status is None:
        m._status = hal.Pin(pin, hal.Pin.IN)
    return bool(m._status.value())


def power_on(m, known_off=False):
    # switch the modem on (no pulse when it runs or is booting); True when it answers AT.
    # The key toggles the modem: a pulse given to a modem that runs, or is still booting, switches it
    # off; a booting modem answers nothing (nor raises STATUS) until its boot ends. known_off: the
    # caller has just cut the modem's supply (a PMU cold cycle): no probe, the key at once.
    # After the ESP32's own power-on one probe is enough (a modem sharing its supply was off too; one
    # on a supply of its own still answers it) and after a deep-sleep wake one with a retry (the
    # firmware sleeps with the modem settled). Any other restart (watchdog; machine.reset() or a
    # panic, HARD_RESET; a soft reset: ports/esp32/modmachine.c) may have cut into a boot the
    # firmware had just started with its on-pulse, the modem keeping its power: before a pulse the
    # modem then gets the boot time (board modem.pwrkey.boot_ms, the dialect's PWRKEY_MS) to answer
    # AT or print its ready banner, as vendor code waits before it pulses (LilyGO T-SIM7080G
    # examples: testAT(1000) 7 to 16 times, then the key; STMicroelectronics' BG96
    # at_custom_sysctrl.c, after BG96 Hardware Design V1.4: running 4.8 s after the pulse). A modem
    # that is off then costs the boot time once more. A board that wires the STATUS line says it
    # with the level: high, the modem runs and is never pulsed, only waited for if it does not
    # answer yet (a hung one goes to recovery); low, one 100 ms probe (a line wired wrong), after
    # such a restart the line watched for the boot time, then the key.
    _, _, on_ms, _, boot = m.power_config()
    cause = hal.reset_cause()
    wait = cause != hal.PWRON_RESET and cause != hal.DEEPSLEEP_RESET
    st = None if known_off else m.status()
    if st is not None:
        m._sync()
        if st:
            return m.ping(_PROBE_MS, 1) or m.wait_ready(boot)
        # low: one short probe still, so that a line wired wrong (or not driven at all)
        # cannot get a running modem pulsed off
        if m.ping(_STATUS_PROBE_MS):
            from m2m import events
            events.post("modem.status_mismatch", pin=m.board.get("status_pin"))
            return True
        # then off, or still booting: STATUS rises at the end of the boot, with the UART (SIM7000
        # Hardware Design V1.07 table 8, Ton(status) = Ton(uart), at least 4.5 s; BG95:
        # ASSUMED docs/ASSUMED.md#A-STATUS-RISE). The line (and the boot banner, for a line that
        # reads low wrongly) is watched for the boot time, sending nothing
        deadline = hal.ticks_add(hal.ticks_ms(), boot if wait else 0)
        while hal.ticks_diff(deadline, hal.ticks_ms()) > 0:
            if m.status() or m.wait_event(("boot",), _STATUS_PROBE_MS) is not None:
                return m.wait_ready(boot)  # it was booting: its UART comes up with the line
        known_off = True
    if not known_off and m.ping(_PROBE_MS, 0 if cause == hal.PWRON_RESET else 1):
        return True
    if not known_off and (wait or not m.board.get("pwrkey")) and m.wait_ready(boot):
        # still booting after a restart; or a modem on a fixed supply (a RESET line at most, e.g.
        # Walter) that was booting with the ESP32: a reset pulse would only start its boot again
        return True
    m.events = []
    # without a key or reset line (a modem on a plain supply) there is nothing to pulse: wait
    m._pulse(on_ms)
    return m.wait_ready(boot)


def power_off(m):
    # the power-down command, then the key; True when the modem confirmed or was pulsed off
    m.synced = False  # its next boot is the firmware's own
    po = m.POWER_OFF
    if po is not None:
        m.events = []
        try:
            # some modems answer with the goodbye line instead of OK (SIM7080: AT+CPOWD=1)
            r = m.at.cmd(po[0], timeout_ms=po[2], finals=(po[1],))
            if r.ok and (r.final == po[1] or m._urc_in(r, po[1]) or
                         m.wait_event(("power_down",), po[2]) is not None):
                _settled(m)
                return True
        except OSError:
            pass
    pin, _, _, off_ms, _ = m.power_config()
    if m.board.get("pwrkey") and m._pulse(off_ms):
        m.wait_event(("power_down",), m.OFF_MS)
        _settled(m)
        return True
    return False


def power_cycle(m):
    # a hung modem: hard off with the key (or a reset pulse), then on; True when it answers
    m._powering = True
    m.synced = False  # the restart is the firmware's own: its boot line is no reboot to report
    try:
        pin, _, on_ms, off_ms, boot = m.power_config()
        if pin is None:
            return False
        m.events = []
        # the key toggles: a modem that is already off (one a pulse met while it booted, or one
        # powered down) is started by the off-pulse, and the on-pulse would meet it at the end of
        # its boot and switch it off again. STATUS low (where wired) skips the off-pulse; else the
        # wait after it also takes the modem's ready banner (or, silent, an answer to AT)
        if m.board.get("pwrkey") and m.status() is not False:
            m._pulse(off_ms)
            # the power-down line, if the hung firmware still prints it, ends the wait early
            e = m.wait_event(("power_down", "boot"), boot if boot > m.OFF_MS else m.OFF_MS)
            if (e is None and m.ping()) or (e is not None and e[0] == "boot"):
                return m.wait_ready(boot)
            hal.sleep_ms(500)
            m.at.reset()
        m._pulse(on_ms)
        return m.wait_ready(boot)
    finally:
        _settled(m)


def set_rat(m, rat):
    # rat: "lte-m", "nb-iot" or "auto"
    try:
        script = data(m, "RAT")[rat]
    except KeyError:
        raise ModemError("unknown RAT %r: use one of %s" % (rat, ", ".join(sorted(data(m, "RAT")))))
    return m.run(script)


def set_bands(m, bands):
    # bands: LTE band numbers, applied to LTE-M and NB-IoT alike
    return m.run(data(m, "BANDS"), **m.band_args(bands))


def set_apn(m, apn, user="", password="", auth=None):
    # auth: 0 none, 1 PAP, 2 CHAP, 3 PAP or CHAP (3GPP numbering); default PAP/CHAP with a user
    if auth is None:
        auth = 3 if user else 0
    return m.run(data(m, "APN"), apn=apn, user=user, password=password, auth=auth)

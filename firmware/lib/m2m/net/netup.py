# The network's bring-up and recovery steps (m2m.net.network): the modem opened and powered, the AT
# sync with the identity, the SIM step, the registration wait, the PDP context, and the recovery
# ladder. Loaded by Network.step() for these states and dropped once attached (with the modem's
# bring-up code): an attached, reporting device holds only the attached state's code; a lost
# registration or a failure loads it again. Functions take the Network as `n`.
from micropython import const

from m2m import creg, events, hal, loop

# the network's states (the same numbers as in m2m.net.network)
_SYNC = const(2)
_SIM = const(3)
_CONFIG = const(4)
_REGISTER = const(5)
_PDP = const(6)
_ATTACHED = const(7)
_RECOVER = const(8)
_WAIT_SIM = const(9)
_STEPS = ("reselect", "radio", "powerkey", "hardreset")  # the recovery ladder

_SIM_MS = const(20000)  # a SIM not ready within this (after boot) counts as absent
_SIM_RETRY_MS = const(900000)
_POLL_MS = const(5000)  # AT+CEREG? while waiting for registration (URCs end the wait sooner)
# AcT of +CEREG / +COPS (27.007 7.3): 0 GSM, 7 E-UTRAN (LTE-M), 9 E-UTRAN NB-S1
_ACT = {0: "gsm", 3: "gsm", 7: "lte-m", 8: "lte-m", 9: "nb-iot"}

# eDRX cycle codes, WB-S1 mode (3GPP TS 24.008 table 10.5.5.32): code -> seconds
_EDRX = (5.12, 10.24, 20.48, 40.96, 61.44, 81.92, 102.4, 122.88, 143.36, 163.84, 327.68, 655.36,
         1310.72, 2621.44, 5242.88, 10485.76)


def _open(n):
    # the board's modem: supply rails, UART (guarded: the loop's hooks run while AT waits),
    # then the dialect named by the board or detected
    from m2m import board, modem
    from m2m.at import AT
    b = n._board
    # a cold boot of a PMU board cuts the modem's supply first: then it is known to be off
    n._known_off = board.modem_supply(b)
    at = AT(loop.Guarded(board.modem_uart(b)), timeout_ms=5000)
    mb = b.get("modem") or {}
    if mb.get("model"):
        n.modem = modem.create(at, mb)
    else:
        n.modem = modem.Modem(at, mb)


def _power(n):
    n.rebooted = False  # the firmware starts the modem itself now: an earlier restart is moot
    if n.modem is None:
        _open(n)
    m = n.modem
    off = n._known_off
    n._known_off = False
    if not m.power_on(off):
        n._go(_RECOVER, reason="no answer after power-on")
        n.level = 2
        return n._recover("no answer after power-on")
    if m.NAME is None:  # a generic Modem: now detect the dialect
        from m2m import modem
        n.modem = m = modem.detect(m.at)(m.at, m.board)
    n._go(_SYNC, model=m.NAME)
    return 0


def _sync(n):
    m = n.modem
    n.rebooted = False  # the init script below sets a restarted modem up again
    ident = m.init()
    events.post("net.modem", model=ident["model"], imei=ident["imei"], iccid=ident["iccid"])
    n._sim_t0 = hal.ticks_ms()
    n._go(_SIM)
    return 0


def _rebooted(n):
    # the modem restarted by itself (its boot line, m2m.modem's Modem._urc): wait for its ready
    # line or an answer to AT, then set it up again from the AT sync on (echo off, error codes,
    # registration URCs, identity), the SIM, and CONFIG (RAT, bands, APN, PSM / eDRX, +CEREG n,
    # AT+COPS=3,2, operator) before registration; no power cycle. A modem that does not answer
    # goes to the power key as a silent one does
    m = n.modem
    n.counts["rebooted"] += 1
    # the sockets the modem had are gone: each hears its close URC (its owner sees the connection
    # end and builds it again; the id stays reserved until the owner closes it)
    for p, k in m.URCS:
        if k == "sock_closed":
            for sid in m.socket_kinds:
                m._urc(p + b" " + str(sid).encode())
            break
    if not m.wait_ready(m.power_config()[4]):
        n.level = 2 if n.level < 2 else n.level
        return n._recover("no answer after the modem's own restart")
    n._go(_SYNC, after="reboot")
    return 0


def _sim(n):
    m = n.modem
    try:
        from m2m.net import sim
    except ImportError:
        sim = None
    if sim is not None:
        st = sim.check(m, n.cfg)
    else:
        st = _cpin(n)
    n.sim_state = st
    if st == "ready":
        n._sim_waits = 0
        n._go(_CONFIG, imsi=m.imsi)
        return 0
    if st == "busy":
        if hal.ticks_diff(hal.ticks_ms(), n._sim_t0) < _SIM_MS:
            # +CPIN: READY (or Quectel's +QUSIM) ends the wait early
            m.pending(("sim",), 1000)
            return 0
        st = "absent"
    if st == "tamper":  # N2's binding alarm: register anyway, the reporters refuse telemetry
        n._go(_CONFIG, imsi=m.imsi, sim="tamper")
        return 0
    # a refused PIN, a missing or blocked card: asked again later (sim.check never retries a
    # refused PIN), after 1, 2, 4 ... minutes up to 15, so a transient answer costs little
    k = n._sim_waits
    n._sim_waits = k + 1
    w = _SIM_RETRY_MS if k >= 4 else 60000 << k
    n._go(_WAIT_SIM, sim=st, retry_s=w // 1000)
    n._sim_t0 = hal.ticks_add(hal.ticks_ms(), w)
    return w


def _cpin(n):
    # without m2m.net.sim: READY, busy while the SIM starts, or the state it reports
    r = n.modem.at.cmd("AT+CPIN?", timeout_ms=5000)
    if r.ok:
        for ln in r.lines:
            if b"READY" in ln:
                if n.modem.imsi is None:
                    n.modem.run((("AT+CIMI", (), 2000, 1, "imsi"),))
                return "ready"
        return "pin_required"
    if r.error in n.modem.BUSY or r.error == ("CME", 14):
        return "busy"
    if r.error in (("CME", 10), ("CME", "SIM not inserted")):
        return "absent"
    return "busy"


def _register(n):
    m = n.modem
    reg = n._reg_now()
    if reg is None:
        now = hal.ticks_ms()
        if hal.ticks_diff(now, n._t_check) >= _POLL_MS:
            n._t_check = now
            reg = n._ask_reg()
    if reg is not None:
        n.reg = reg
        if reg.registered:
            return _registered(n, reg)
        if reg.stat == creg.DENIED:
            n.counts["denied"] += 1
            events.post("net.denied", cause=reg.reject_cause, profile=n.profile)
            if len(n.profiles) > 1:
                return n._next_profile("denied")
    now = hal.ticks_ms()
    if (len(n.profiles) > 1 and hal.ticks_diff(now, n._t_profile)
            >= n.ncfg["profile_after_s"] * 1000):
        return n._next_profile("no registration")
    if hal.ticks_diff(n.deadline, now) <= 0:
        return n._recover("registration stalled")
    m.pending(("reg",), 1000)  # a registration URC ends the wait; the next step reads it
    return 0


def _next_profile(n, why):
    n.profile = (n.profile + 1) % len(n.profiles)
    n.counts["profile"] += 1
    events.post("net.profile", index=n.profile, reason=why)
    if n.esim is not None and n.esim.fallback(n.profile, why):
        return 0  # the eUICC enables the profile's ICCID; its refresh leads back to resim()
    n.modem.at.cmd("AT+CFUN=0", timeout_ms=20000)
    n._go(_CONFIG)
    return 0


def _registered(n, reg):
    m = n.modem
    n.t_registered = hal.ticks_ms()
    n.level = 0
    n.wait_s = 0
    n.counts["registered"] += 1
    n.rat = _ACT.get(reg.act, n.rat)
    n.plmn = None
    for again in (0, 1):
        r = m.at.cmd("AT+COPS?", timeout_ms=5000)
        for ln in r.lines:
            f = ln.split(b",")
            if len(f) >= 3:
                n.plmn = f[2].strip(b'"').decode()
                if len(f) >= 4 and n.rat is None:
                    n.rat = _ACT.get(int(f[3]))
        if n.plmn is None or n.plmn.isdigit() or again:
            break
        # a name, not the numeric PLMN: the modem restarted and forgot AT+COPS=3,2 (27.007 7.3:
        # <format> is not kept across a restart); ask for numeric again, never compare a name's
        # first letters with the IMSI's MCC
        n.plmn = None
        m.at.cmd("AT+COPS=3,2", timeout_ms=5000)
    if n.plmn is not None and not n.plmn.isdigit():
        n.plmn = None
    n.roaming = reg.stat == creg.ROAMING or bool(
        n.plmn and m.imsi and n.plmn[:3] != m.imsi[:3])
    n.psm = (reg.active_time_s, reg.periodic_tau_s) if reg.periodic_tau else None
    if n.ncfg["edrx_s"]:
        _edrx_read(n)
    n._go(_PDP, rat=n.rat, plmn=n.plmn, roaming=n.roaming, tac=reg.tac, ci=reg.ci)
    if n.psm:
        events.post("net.psm", active_s=n.psm[0], tau_s=n.psm[1])
    return 0


def _edrx_read(n):
    r = n.modem.at.cmd("AT+CEDRXRDP", timeout_ms=5000)
    for ln in r.lines:
        f = ln.split(b",")
        if len(f) >= 3:
            try:
                n.edrx = _EDRX[int(f[2].strip(b'" '), 2)]
            except (ValueError, IndexError):
                pass
    if n.edrx:
        events.post("net.edrx", cycle_s=n.edrx)


def _pdp(n):
    m = n.modem
    if n.apn is None:
        # registered without a CONFIG step that ran to its end (a recovery after it failed):
        # configure now, then register again
        n._go(_CONFIG, after="pdp")
        return 0
    m.pdp_up(apn=n.apn)
    # the modem's bring-up code (detection, init, power, settings), its dialect's bring-up
    # scripts and this module leave the heap: an attached device does not need them; recovery loads them again
    import sys

    for k in [k for k in sys.modules if k.startswith("m2m.modem.") and k.endswith("up")]:
        loop.drop(k)
    loop.drop("m2m.net.netup")
    n._go(_ATTACHED, rat=n.rat, plmn=n.plmn, profile=n.profile)
    n._t_check = hal.ticks_ms()
    n.read_signal()
    n._roam_tick()
    return 0


def _recover(n, reason):
    m = n.modem
    k = n.level
    step = _STEPS[k if k < 3 else 3]
    n.level = k + 1
    n.counts["recovery"] += 1
    n.counts[step] += 1
    wait_s = n.ncfg["reg_timeout_s"] << (k if k < 10 else 10)
    cap = n.ncfg["recovery_max_s"]
    if wait_s > cap:
        wait_s = cap
    events.post("net.recovery", step=step, level=k, reason=reason, wait_s=wait_s,
                count=n.counts["recovery"])
    n.state = _RECOVER
    try:
        if step == "reselect":
            m.at.cmd("AT+COPS=2", timeout_ms=30000)
            n._select(n.profiles[n.profile]["operator"])
        elif step == "radio":
            m.at.cmd("AT+CFUN=0", timeout_ms=30000)
            m.at.cmd("AT+CFUN=1", timeout_ms=30000)
        else:
            # the modem is set up again, here or (if that fails) from SYNC on: either way CONFIG
            # gives registration this step's wait, not net.reg_timeout_s
            n.wait_s = wait_s
            if step == "hardreset":
                _hard_reset(n)
            elif not m.power_cycle():
                raise OSError(110, "no answer after the power-key cycle")
            m.at.reset()
            m.init()
            n._go(_CONFIG, after=step)
            n._config()
    except MemoryError:
        raise  # the heap's: the state stays RECOVER, which Network._step leaves for SYNC
    except Exception as e:
        # the step itself failed (OSError: a silent modem; ModemError: a command of the restarted
        # modem's setup refused): the next step, after a short pause
        events.post("net.recovery_failed", step=step, error=str(e))
        if n.level < 2:
            n.level = 2
        if k >= 2:
            # the modem was restarted but not set up again: from the AT sync on, with the
            # next step of the ladder if that fails too
            n._go(_SYNC, after=step)
            return 0
        n.deadline = hal.ticks_add(hal.ticks_ms(), 5000)
        n.state = _REGISTER
        return 5000
    n.state = _REGISTER
    n.deadline = hal.ticks_add(hal.ticks_ms(), wait_s * 1000)
    return 0


def _hard_reset(n):
    # the supply rail (PMU boards) or the RESET line; a plain power-key cycle otherwise
    m = n.modem
    b = n._board
    pe = (b.get("modem") or {}).get("power_enable") if b is not None else None
    if pe:
        from m2m import board
        m.synced = False  # the supply cycle's boot is the firmware's own: no reboot to report
        # a PMU's first rail, the modem's main supply, held off (m2m.boardpmu): the modem is off
        # now, so the key goes at once, without the probes and the boot-time wait for a modem that
        # may be booting (up.power_on known_off); nothing cut (no PMU, no rails): not known
        off = board.modem_supply(b, cold=True)
        m.at.reset()
        if not m.power_on(off):
            raise OSError(110, "no answer after the supply cycle")
        return
    if not m.power_cycle():
        raise OSError(110, "no answer after the hard reset")

# Network: the registration state machine, from power-off to attached and back (issue #8).
#
#   n = Network(modem_or_board, cfg)   cfg: m2m.config.load() (its "net" section is used)
#   loop.run([n, ...])                 step() does a bounded amount of work, returns ms to sleep
#   n.up(timeout_ms)                   step() until attached or timeout (tests, demo)
#   n.link_failed(reason)              anyone who sees the link fail (sockets, MQTT) calls this
#   n.status()                         state, profile, rat, plmn, roaming, signal, psm, counters
#
# States: OFF -> POWER (key pulse, banner) -> SYNC (AT, init script) -> SIM (N2's sim.check) ->
# CONFIG (RAT, bands, APN, PSM / eDRX, operator) -> REGISTER (wait for +CEREG stat 1 / 5, a
# deadline, never a loop) -> PDP -> ATTACHED (URCs, a periodic AT+CEREG?, signal, roaming days).
# Every transition posts an event (m2m.events). Recovery (RECOVER) escalates when registration
# stalls or the modem stops answering: re-select the operator, radio off / on (AT+CFUN), power-key
# cycle, hard reset (RESET line or the PMU's supply rail); each step waits longer (doubling from
# net.reg_timeout_s, capped at net.recovery_max_s <= 15 min) for registration before the next.
# Fallback profiles (net.profiles): after net.profile_after_s without registration, or at once on
# "registration denied", the next profile (APN, operator, RAT set) is configured.
# A modem that restarts by itself (its boot line seen after it was set up: m2m.modem, "modem
# rebooted" through link_failed) is waited for and set up again from the AT sync on (echo, URC
# modes, SIM, RAT, bands, APN, PSM, operator), without a power cycle and without a recovery step.
from micropython import const

from m2m import events, hal, loop
from m2m import creg

_OFF = const(0)
_POWER = const(1)
_SYNC = const(2)
_SIM = const(3)
_CONFIG = const(4)
_REGISTER = const(5)
_PDP = const(6)
_ATTACHED = const(7)
_RECOVER = const(8)
_WAIT_SIM = const(9)  # the SIM refused / absent: retried after a long wait

NAMES = ("off", "power", "sync", "sim", "config", "register", "pdp", "attached", "recover", "wait_sim")

_DAY = const(86400)


def quality(sig):
    # 0-100 from RSRP (-140 dBm -> 0, -80 dBm -> 100) weighted 70 % with RSRQ (-20 dB -> 0, -5 dB
    # -> 100) 30 %; RSRP alone when RSRQ is missing; from RSSI (-113 dBm -> 0, -63 dBm -> 100) when
    # the modem gives no LTE measurement; None without any
    def lin(v, lo, hi):
        if v is None:
            return None
        q = int((v - lo) * 100 // (hi - lo))
        return 0 if q < 0 else 100 if q > 100 else q
    p = lin(sig.get("rsrp"), -140, -80)
    q = lin(sig.get("rsrq"), -20, -5)
    if p is not None:
        return p if q is None else (p * 7 + q * 3) // 10
    return lin(sig.get("rssi"), -113, -63)


def _up():
    # m2m.net.netup: the bring-up and recovery steps, loaded for them and dropped once attached
    from m2m.net import netup

    return netup


class Network:
    def __init__(self, modem_or_board, cfg=None, state_dir="/"):
        if cfg is None:
            from m2m import config
            cfg = config.load()
        self.cfg = cfg
        n = cfg["net"]
        self.ncfg = n
        self._board = None
        if hasattr(modem_or_board, "at"):
            self.modem = modem_or_board
        else:
            self._board = modem_or_board
            self.modem = None
        self.profiles = self._profiles(n)
        self.profile = 0
        self.state = _OFF
        self.want = True
        self.deadline = 0
        self.level = 0  # recovery steps taken since the last registration
        self.wait_s = 0  # a power-key / hard-reset step's registration wait, for the next CONFIG
        self.counts = {"registered": 0, "lost": 0, "recovery": 0, "powerkey": 0, "hardreset": 0,
                       "reselect": 0, "radio": 0, "profile": 0, "denied": 0, "rebooted": 0}
        self.failed = None  # link_failed() reason, handled at the next step
        self.rebooted = False  # the modem restarted by itself: set it up again at the next step
        self.rat = None
        self.plmn = None
        self.roaming = None
        self.reg = None  # the last creg.Reg
        self.signal = {}
        self.psm = None
        self.edrx = None
        self.apn = None  # set by the CONFIG step (m2m.net.netcfg); None: not configured yet
        self.sim_state = None
        self._t_profile = hal.ticks_ms()
        self._t_check = 0
        self._sim_t0 = 0
        self._known_off = False
        self._sim_waits = 0
        self._slot = None  # the SIM slot this Network selected (None: the modem's own)
        self.t_registered = None  # ticks_ms when registration was last seen
        from m2m.net import roam
        self.roam = roam.Guard(state_dir + "net_roam.json", n["roam_days_limit"])
        from m2m import net
        net._active = self
        self.esim = None
        if (cfg.get("esim") or {}).get("enabled"):  # eSIM profiles (issue #13), only when enabled
            from m2m.net import esim
            self.esim = esim.Manager(self)

    # ---- config ----
    def _profiles(self, n):
        base = {"apn": n["apn"], "operator": n["operator"], "rat": n["rat"], "sim_slot": n["sim_slot"]}
        out = [base]
        for p in n["profiles"] or ():
            q = dict(base)
            q.update(p)
            out.append(q)
        return out

    # ---- events and transitions ----
    def _go(self, state, **fields):
        self.state = state
        events.post("net." + NAMES[state], **fields)

    def link_failed(self, reason):
        # the one recovery path: anything that saw the link fail reports it here
        if reason == "modem rebooted":  # m2m.modem.REBOOTED (the modem posted modem.rebooted)
            self.rebooted = True
            return
        if self.failed is None:
            self.failed = reason
        events.post("net.link_failed", reason=reason)

    def attached(self):
        return self.state == _ATTACHED

    # ---- the loop's interface ----
    def up(self, timeout_ms=300000):
        return loop.run((self,), self.attached, timeout_ms)

    def step(self):
        try:
            return self._step()
        except OSError as e:
            # an AT timeout. One is retried (the state runs again); the driver's streak of
            # consecutive timeouts (Modem._unresponsive -> link_failed) is what calls for the key
            m = self.modem
            if m is not None and m.at.unresponsive:
                self.link_failed("no answer: %s" % (e.args[-1] if e.args else e))
                return 0
            events.post("net.at_timeout", state=NAMES[self.state], error=e.args[-1] if e.args else e)
            return 1000
        except MemoryError:
            # the heap, not the link: no recovery (its steps would skip what this one did not
            # finish, e.g. the APN of CONFIG); the Guard retries this state after its back-off
            raise
        except Exception as e:  # ModemError: a command refused
            if self.state in (_SYNC, _CONFIG, _PDP):
                self.link_failed("%s: %s" % (NAMES[self.state], e))
                return 0
            raise

    def _step(self):
        if self.esim is not None:
            w = self.esim.step()  # a wait for the SIM refresh after a profile switch, else None
            if w is not None:
                return w
        if self.rebooted and self.state not in (_OFF, _POWER):
            # what failed since was the reboot's doing: no recovery step for it
            self.rebooted = False
            self.failed = None
            return _up()._rebooted(self)
        if self.failed is not None and self.state not in (_OFF, _POWER):
            reason = self.failed
            self.failed = None
            m = self.modem
            if m is not None and (m.at.unresponsive or reason.startswith("no answer")):
                self.level = 2 if self.level < 2 else self.level  # straight to the power key
            return self._recover(reason)
        st = self.state
        if st == _OFF:
            if not self.want:
                return 60000
            self._go(_POWER)
            return 0
        if st == _POWER:
            return _up()._power(self)
        if st == _SYNC:
            return _up()._sync(self)
        if st == _WAIT_SIM:
            left = hal.ticks_diff(self._sim_t0, hal.ticks_ms())
            if left > 0:
                return left
            self._sim_t0 = hal.ticks_ms()
            return _up()._sim(self)
        if st == _SIM:
            return _up()._sim(self)
        if st == _CONFIG:
            return self._config()
        if st == _REGISTER:
            return _up()._register(self)
        if st == _PDP:
            return _up()._pdp(self)
        if st == _ATTACHED:
            return self._attached()
        if st == _RECOVER:
            # a recovery step cut short by a MemoryError (stepped again by the caller): the modem
            # may be half set up; from the AT sync on (a silent modem leads to the next step)
            self._go(_SYNC, after="recover")
        return 0

    # ---- power-off to responsive ----


    # ---- configuration of the current profile ----
    def _rat_name(self, rats):
        # the dialect's RAT key: "lte-m", "nb-iot", "auto" (both), with "+gsm" (or "gsm" alone)
        # when the list has "gsm" and net.gsm allows it
        lte = "auto" if "lte-m" in rats and "nb-iot" in rats else "nb-iot" if "nb-iot" in rats else (
            "lte-m" if "lte-m" in rats else None)
        if "gsm" in rats and self.ncfg["gsm"]:
            return lte + "+gsm" if lte else "gsm"
        return lte or "lte-m"

    def _gsm(self):
        # GSM allowed for the current profile: its registration is read from +CGREG as well
        return "gsm" in self._rat_name(self.profiles[self.profile]["rat"] or ["lte-m"])

    def _config(self):
        # the current profile's settings, in m2m.net.netcfg: loaded for this step and dropped again
        try:
            from m2m.net import netcfg

            return netcfg.configure(self)
        finally:
            loop.drop("m2m.net.netcfg")

    def _select(self, op):
        try:
            from m2m.net import netcfg

            return netcfg.select(self, op)
        finally:
            loop.drop("m2m.net.netcfg")

    # ---- registration ----
    def _reg_now(self):
        # the latest registration: URCs first, else AT+CEREG?. With GSM allowed a +CGREG counts
        # too, and of one burst a registered line wins (on GSM the EPS line says "not registered")
        m = self.modem
        gsm = self._gsm()
        reg = None
        while True:
            e = m.take_event(("reg",))
            if e is None:
                break
            # by its shape: the late answer to an AT+CEREG? that timed out comes here as well, and
            # its "+CEREG: <n>,<stat>" read as a URC's "<stat>,<tac>" (27.007 10.1.22) made n=5
            # "registered, roaming" (a PDP step with no coverage, recovery after recovery)
            g = creg.parse(e[1], None)
            if g is not None and (g.kind == "CEREG" or gsm and g.kind == "CGREG") and (
                    reg is None or g.registered or not reg.registered):
                reg = g
        return reg

    def _ask(self, cmd):
        r = self.modem.at.cmd(cmd, timeout_ms=5000)
        for ln in r.lines:
            g = creg.parse(ln, True)
            if g is not None:
                return g
        return None

    def _ask_reg(self):
        g = self._ask("AT+CEREG?")
        if self._gsm() and (g is None or not g.registered):
            h = self._ask("AT+CGREG?")  # GPRS registration (27.007 10.1.20): on GSM
            if h is not None and (h.registered or g is None):
                return h
        return g


    def resim(self, profile=None, **why):
        # the SIM was refreshed (another eSIM profile): read it again from the SIM step, then
        # configure `profile` (its APN and RAT) and register
        if profile is not None:
            self.profile = profile
        self._sim_t0 = hal.ticks_ms()
        self._go(_SIM, **why)


    # ---- bring-up and recovery: the bodies are in m2m.net.netup ----
    def _next_profile(self, why):
        return _up()._next_profile(self, why)

    def _recover(self, reason):
        return _up()._recover(self, reason)

    # ---- attached ----
    def _attached(self):
        reg = self._reg_now()
        now = hal.ticks_ms()
        if reg is None and hal.ticks_diff(now, self._t_check) >= self.ncfg["check_s"] * 1000:
            self._t_check = now
            reg = self._ask_reg()
            self.read_signal()
            self._roam_tick()
        if reg is not None:
            self.reg = reg
            if not reg.registered:
                self.counts["lost"] += 1
                self._go(_REGISTER, stat=reg.stat)
                self.deadline = hal.ticks_add(now, self.ncfg["reg_timeout_s"] * 1000)
                self._t_profile = now
                return 0
        left = self.ncfg["check_s"] * 1000 - hal.ticks_diff(now, self._t_check)
        # sleep until the next check, but read URCs (a lost registration) at least each second
        self.modem.pending(("reg",), 1000 if left > 1000 else max(left, 0))
        return 0

    def _roam_tick(self):
        act = self.roam.tick(self.roaming, int(hal.epoch()) // _DAY)
        if act:
            events.post("net.roaming", days=self.roam.days, limit=self.roam.limit,
                        policy=self.ncfg["roam_policy"])
            if act == 2 and self.ncfg["roam_policy"] == "next_profile" and len(self.profiles) > 1:
                self._next_profile("permanent roaming")

    # ---- recovery ----


    # ---- signal and cell ----
    def read_signal(self):
        # RSSI from AT+CSQ, RSRP / RSRQ from AT+CESQ (3GPP TS 27.007 8.5 / 8.69), and the dialect's
        # own read (SINR, band) where it has one; quality 0-100 (see quality())
        at = self.modem.at
        s = {"rssi": None, "rsrp": None, "rsrq": None, "sinr": None, "band": None}
        r = at.cmd("AT+CSQ", timeout_ms=5000)
        for ln in r.lines:
            v = int(ln[5:].split(b",")[0])
            if v != 99:
                s["rssi"] = -113 + 2 * v
        r = at.cmd("AT+CESQ", timeout_ms=5000)
        for ln in r.lines:
            f = ln[6:].split(b",")
            if len(f) >= 6:
                q, p = int(f[4]), int(f[5])
                if q != 255:
                    s["rsrq"] = q / 2 - 20  # 0: < -19.5 dB, steps of 0.5 dB
                if p != 255:
                    s["rsrp"] = p - 141  # 0: < -140 dBm, steps of 1 dB
        sig = getattr(self.modem, "signal", None)
        if sig is not None:
            try:
                for k, v in sig().items():
                    if v is not None:
                        s[k] = v
            except Exception:  # a timeout (counted by the driver) or a vendor answer in a shape we
                pass  # do not know: keep the 3GPP values
        s["rat"] = self.rat
        s["plmn"] = self.plmn
        if self.reg is not None:
            s["tac"] = self.reg.tac
            s["ci"] = self.reg.ci
        s["quality"] = quality(s)
        self.signal = s
        events.post("net.signal", quality=s["quality"], rsrp=s["rsrp"], rssi=s["rssi"])
        return s

    def status(self):
        return {"state": NAMES[self.state], "profile": self.profile, "rat": self.rat,
                "plmn": self.plmn, "roaming": self.roaming, "roam_days": self.roam.days,
                "signal": self.signal, "psm": self.psm, "edrx": self.edrx, "sim": self.sim_state,
                "level": self.level, "counts": self.counts,
                "esim": self.esim.status() if self.esim is not None else None}

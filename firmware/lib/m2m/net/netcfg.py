# The configuration step of m2m.net.network (CONFIG: the profile's SIM slot, RAT, bands, APN, PSM /
# eDRX, operator), loaded for the step and dropped afterwards (m2m.loop.drop): an attached device
# does not hold this code. Functions take the Network.
from micropython import const

from m2m import creg, events, hal

# the network's states (the same numbers as in m2m.net.network)
_SYNC = const(2)
_REGISTER = const(5)

# APN by the IMSI's MCC-MNC, for SIMs whose APN the config does not give. Small on purpose.
# ASSUMED docs/ASSUMED.md#A-APN-TABLE (carrier IoT pages not reachable from here)
_APNS = const((
    ("90140", "iot.1nce.net"),
))


def apn_for(imsi):
    if imsi:
        for p, apn in _APNS:
            if imsi.startswith(p):
                return apn
    return None


def edrx_code(seconds):
    # the 4-bit code of the shortest cycle >= seconds (the longest when above all)
    from m2m.net.netup import _EDRX  # the cycle table (m2m.net.netup: the bring-up steps)

    for i in range(len(_EDRX)):
        if _EDRX[i] >= seconds - 0.005:
            return "{:04b}".format(i)
    return "1111"


def configure(self):
    # the current profile: SIM slot, RAT, bands, APN, PSM / eDRX, +CEREG n, operator; then REGISTER
    m = self.modem
    at = m.at
    p = self.profiles[self.profile]
    n = self.ncfg
    self._t_profile = hal.ticks_ms()
    slot = p["sim_slot"]
    if slot is not None and slot != self._slot:
        sel = getattr(m, "select_slot", None)
        if sel is None:  # SIMCom / Sequans dialects: one SIM, README "SIM management"
            events.post("net.sim_slot_unsupported", model=m.NAME, slot=slot)
        else:
            self._slot = slot
            if sel(slot):  # another card: the modem restarts with it, then SIM again
                events.post("net.sim_slot", slot=slot, profile=self.profile)
                m.wait_ready(2000)
                self._go(_SYNC, after="sim_slot")
                return 0
    rat = self._rat_name(p["rat"] or ["lte-m"])
    from m2m.modem import ModemError, _up

    try:
        rats = _up().data(m, "RAT")  # the dialect's RAT scripts (m2m.modem.<module>_up)
    except ModemError:
        rats = None
    if rats:
        if rat not in rats and "gsm" in rat:  # a dialect without GSM scripts (SIM7080G, GM02S)
            events.post("net.rat_unsupported", rat=rat, model=m.NAME)
            rat = rat[:-4] or "lte-m"
        if rat in rats:
            m.set_rat(rat)
    if "gsm" in rat:
        at.cmd("AT+CGREG=2", timeout_ms=5000)  # GPRS registration URCs (27.007 10.1.20)
    if n["bands"]:
        m.set_bands(n["bands"])
    apn = p["apn"] or apn_for(m.imsi) or ""
    self.apn = apn
    m.set_apn(apn, n["apn_user"], n["apn_password"])
    psm_request(self)
    # +CEREG with the reject cause and the granted PSM timers (n=5), else the timers (n=4),
    # else the location (n=2) as the init script set it (27.007 10.1.22: n 0-5, optional ones)
    for k in (5, 4):
        if at.cmd("AT+CEREG=%d" % k, timeout_ms=5000).ok:
            break
    at.cmd("AT+COPS=3,2", timeout_ms=5000)  # numeric PLMN in AT+COPS? answers
    # the radio on (the GM02S boots with CFUN=0; a RAT change may have turned it off)
    r = at.cmd("AT+CFUN?", timeout_ms=5000)
    if r.ok and not any(b"+CFUN: 1" in ln for ln in r.lines):
        at.cmd("AT+CFUN=1", timeout_ms=20000)
    op = p["operator"]
    select(self, op)
    self._go(_REGISTER, profile=self.profile, apn=apn, rat=rat, operator=op or "auto")
    # the registration wait: a recovery step's own (m2m.net.netup._recover: a power-key or hard-reset
    # step whose setup failed comes here through SYNC), else net.reg_timeout_s
    w = self.wait_s or n["reg_timeout_s"]
    self.wait_s = 0
    self.deadline = hal.ticks_add(hal.ticks_ms(), w * 1000)
    return 0


def select(self, op):
    # automatic, a manual PLMN, or an allowlist in ranked order (the first the modem accepts)
    at = self.modem.at
    ops = (self.ncfg["operators"] or ()) if not op else (op,)
    for plmn in ops:
        r = at.cmd('AT+COPS=1,2,"%s"' % plmn, timeout_ms=180000)
        if r.ok:
            return plmn
        events.post("net.operator_refused", plmn=plmn, error=r.error)
    if op:
        return None
    at.cmd("AT+COPS=0", timeout_ms=180000)
    return None


def psm_request(self):
    n = self.ncfg
    m = self.modem
    at = m.at
    if n["psm_tau_s"]:
        t = n["psm_active_s"] or 0
        at.cmd('AT+CPSMS=1,,,"%s","%s"' % (creg.encode_t3412(n["psm_tau_s"]), creg.encode_t3324(t)),
               timeout_ms=5000)
    if n["edrx_s"]:
        act = 5 if self._rat_name(self.profiles[self.profile]["rat"] or ["lte-m"]) == "nb-iot" else 4
        at.cmd('AT+CEDRXS=2,%d,"%s"' % (act, edrx_code(n["edrx_s"])), timeout_ms=5000)
    if n["modem_sleep"]:
        sl = getattr(m, "SLEEP", None)
        if not sl or m.run(sl) < len(sl):
            events.post("net.sleep_refused", model=m.NAME)

# The SIM step (m2m.net.sim.check): state, PIN safety, identity reads, binding. Loaded for the step
# and dropped afterwards; what must outlive it (_tried, _tamper, _posted, info) is in m2m.net.sim.
from micropython import const

from m2m import hal
from m2m.net import sim as S

_TRYING = const(1)
_GOOD = const(2)
_REFUSED = const(3)
_NS = const("m2m")
_KEY = const("sim_pin")

# PIN1 tries left, by dialect family (m2m.modem.MODELS): (command, answer prefix, field)
#  simcom:  AT+SPIC -> +SPIC: <pin1>,... (SIM800/SIM900 series AT manual "Times remain to input SIM
#           PIN/PUK"; SIM70x0 ASSUMED docs/ASSUMED.md#A-SIMCOM-SPIC)
#  quectel: AT+QPINC="SC" -> +QPINC: "SC",<pin>,<puk> (Quectel BG95/BG96 AT Commands Manual, AT+QPINC)
#  sequans: no counter command found in public sources: unreadable (see the NVS rule above)
_TRIES = {
    "simcom": ("AT+SPIC", b"+SPIC:", 0),
    "quectel": ('AT+QPINC="SC"', b"+QPINC:", 1),
}

# +CPIN: <code> -> state; NOT READY: the card is still starting
_CPIN = {b"READY": "ready", b"SIM PIN": "pin", b"SIM PUK": "puk", b"NOT INSERTED": "absent",
         b"NOT READY": "busy"}

def _family(modem):
    from m2m.modem import MODELS

    e = MODELS.get(modem.NAME)
    return e[0] if e else None


def state(modem):
    # AT+CPIN? -> "ready", "pin", "puk", "absent", "busy" or "other" (3GPP TS 27.007 8.3; CME 10 SIM not
    # inserted, 13 SIM failure, 14 SIM busy, 27.007 9.2.1)
    try:
        r = modem.at.cmd("AT+CPIN?", timeout_ms=5000)
    except OSError:
        return "busy"
    if not r.ok:
        e = r.error[1] if r.error else None
        if e in (10, 13, "SIM not inserted", "SIM failure"):
            return "absent"
        return "busy"
    for ln in r.lines:
        t = bytes(ln)
        if t.startswith(b"+CPIN:"):
            # exact codes: "PH-SIM PIN" (the phone lock) must never be taken for the SIM PIN
            return _CPIN.get(t[6:].strip(), "other")
    return "other"


def pin_tries(modem):
    # PIN1 tries left on the card, or None when this modem cannot say
    spec = _TRIES.get(_family(modem))
    if spec is None:
        return None
    try:
        r = modem.at.cmd(spec[0], resp=spec[1], timeout_ms=3000)
    except OSError:
        return None
    if not r.ok:
        return None
    from m2m.modem import _fields

    for ln in r.lines:
        f = _fields(bytes(ln)[len(spec[1]):])
        if len(f) > spec[2] and type(f[spec[2]]) is int:
            return f[spec[2]]
    return None


def _read(modem, key):
    # an identity through the dialect's own validated read (its INIT step that stores `key`)
    if getattr(modem, key, None) is None:
        from m2m.modem import _up

        for step in _up().data(modem, "INIT"):
            if len(step) > 4 and step[4] == key:
                try:
                    modem.run((step,))
                except Exception:
                    pass
                break
    return getattr(modem, key, None)


def msisdn(modem):
    # AT+CNUM -> +CNUM: [<alpha>],<number>,<type> (27.007 7.1); None when the card holds none
    try:
        r = modem.at.cmd("AT+CNUM", timeout_ms=3000)
    except OSError:
        return None
    if r.ok:
        from m2m.modem import _fields

        for ln in r.lines:
            f = _fields(bytes(ln)[6:], False)
            if len(f) > 1 and f[1]:
                return f[1]
    return None


def _fp(iccid, pin):
    import hashlib

    return hashlib.sha256(("%s:%s" % (iccid or "", pin)).encode()).digest()[:8]


def _record():
    # (fingerprint, status) of the last PIN entry, or None
    try:
        buf = bytearray(9)
        if hal.NVS(_NS).get_blob(_KEY, buf) == 9:
            return bytes(buf[:8]), buf[8]
    except OSError:
        pass
    return None


def _remember(fp, status):
    n = hal.NVS(_NS)
    n.set_blob(_KEY, fp + bytes((status,)))
    n.commit()


def _refuse(reason, **f):
    S._post("sim.pin_refused", reason=reason, **f)
    return "pin_refused"


def _wait(modem, ms):
    # SIM state after a bounded wait for it to leave "busy" (first seconds after boot, or after a PIN)
    deadline = hal.ticks_add(hal.ticks_ms(), ms)
    while True:
        st = state(modem)
        if st != "busy" or hal.ticks_diff(deadline, hal.ticks_ms()) <= 0:
            return st
        modem.wait_event(("sim",), 200)


def enter_pin(modem, pin, iccid):
    # enter the configured PIN if and only if it is safe; "ready" or "pin_refused"
    if not pin:
        return _refuse("no_pin")
    left = pin_tries(modem)
    S.info["pin_left"] = left
    if left is not None and left < 3:
        return _refuse("tries_left", left=left)
    fp = _fp(iccid, pin)
    rec = _record()
    good = rec is not None and rec[0] == fp and rec[1] == _GOOD
    if rec is not None and rec[0] == fp:
        if rec[1] == _REFUSED or (rec[1] == _TRYING and left is None):
            return _refuse("refused_before")
    if S._tried and not good:
        return _refuse("once_per_boot")
    try:
        _remember(fp, _TRYING)
    except OSError:
        if left is None:
            return _refuse("no_record")  # neither a counter nor a record: do not risk the card
    S._tried = True
    try:
        r = modem.at.cmd('AT+CPIN="%s"' % pin, resp=(), timeout_ms=5000)
        ok = r.ok
    except OSError:
        # the record stays "trying": counted as refused unless the counter says otherwise
        return _refuse("no_answer")
    try:
        _remember(fp, _GOOD if ok else _REFUSED)
    except OSError:
        pass
    if not ok:
        left = pin_tries(modem)
        S.info["pin_left"] = left
        return _refuse("wrong_pin", left=left)
    return "ready"


def check(modem, cfg):
    # the SIM step of the network state machine: identity, PIN, binding; returns the SIM's state
    c = cfg["sim"]
    st = state(modem)  # "busy" goes back to the network's SIM state, which waits for it
    iccid = _read(modem, "iccid") if st != "absent" else None
    S.info["iccid"] = iccid
    S.info["imei"] = _read(modem, "imei")
    if st == "pin":
        st = enter_pin(modem, c["pin"], iccid)
        if st == "ready":
            st = _wait(modem, c["ready_ms"])
    elif st == "puk":
        S._post("sim.puk_needed", iccid=iccid)
        st = "puk_needed"
    elif st == "absent":
        S._post("sim.absent")
    S.info["state"] = st
    if st != "ready":
        return st
    for k in ("sim.pin_refused", "sim.puk_needed", "sim.absent"):
        if k in S._posted:
            S._posted.remove(k)
    S.info["imsi"] = _read(modem, "imsi")
    S.info["msisdn"] = msisdn(modem)
    # binding: a value that cannot be read does not satisfy it
    bad = None
    if c["bind_iccid"] and iccid != c["bind_iccid"]:
        bad = "iccid"
    elif c["bind_imei"] and S.info["imei"] != c["bind_imei"]:
        bad = "imei"
    S._tamper = bad is not None
    if not S._tamper and "sim.tamper" in S._posted:
        S._posted.remove("sim.tamper")
    if S._tamper:
        S._post("sim.tamper", field=bad, iccid=iccid, imei=S.info["imei"])
        st = S.info["state"] = "tamper"
    return st




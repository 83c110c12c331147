# eSIM profiles on an eUICC (issue #13): read the EID and the profile list, enable another profile
# (on command, or as a step of the network's fallback order), follow the SIM refresh, roll back when
# the new profile does not register in esim.switch_s, and notice a swap the network pushes.
# Imported only when the config's esim.enabled is true (by m2m.net.network). README "eSIM".
#
# Logical channels (3GPP TS 27.007 8.43 / 8.45 / 8.46, as the Nordic and Telit AT references quote
# them): AT+CCHO="<AID>" -> +CCHO: <sessionid> (some firmwares answer the bare number: lpac PR #445);
# AT+CGLA=<sessionid>,<length>,"<APDU hex>" -> +CGLA: <length>,"<response hex>" (<length> counts hex
# characters; the response ends with SW1 SW2); AT+CCHC=<sessionid>. The session id is a handle, not
# a channel number (a Sierra MC7455 answers 000000000385a7cf: lpac issue #138): it goes back as it
# came. The MT puts the channel number into the CLA byte (27.007 8.45 as quoted there; Telit ME310G1
# AT reference), so APDUs go with CLA 0x80. A modem that answers AT+CCHO=? with ERROR has no logical
# channels (lpac driver/apdu/at_etsi.c probes the same); a card without the ISD-R answers the open
# with a bare ERROR, a +CME ERROR is the card or modem busy (openpilot PR #37847, on its modems).
# Which of our modems have them is not decided here but probed: the SIM7080 (V1.05), SIM7000 (V1.06)
# and BG96 (V2.2) AT manuals list none of the three, so those report esim.unsupported; the BG95 and
# GM02S: ASSUMED docs/ASSUMED.md#A-ESIM-CCHO.
#
# ES10 (GSMA SGP.22; ASN.1 as in lpac's docs/asn1/rsp.asn): STORE DATA 80 E2 91 00 <Lc> <BER-TLV>
# to the ISD-R (AID A0000005591010FFFFFFFF8900000100); 61xx: GET RESPONSE 80 C0 00 00 xx for the
# rest (lpac euicc/euicc.c). GetEuiccData BF3E {5C '5A'} -> BF3E {5A <EID, 16 bytes>};
# GetProfilesInfo BF2D {5C <tags>} -> BF2D {A0 {E3 {5A iccid, 9F70 state, 90 nickname,
# 91 service provider, 95 class}...}} or BF2D {81 <error>}; EnableProfile BF31 {A0 {5A iccid},
# 81 refreshFlag} -> BF31 {80 <result>}. ICCIDs are coded as in EF_ICCID (BCD, nibbles swapped).
from micropython import const

from m2m import bertlv, events, hal

ISDR = "A0000005591010FFFFFFFF8900000100"
# the SIM back after an enable (+CPIN: NOT READY, then READY; ASSUMED docs/ASSUMED.md#A-ESIM-REFRESH);
# then the network reads it anyway
_REFRESH_MS = const(30000)
_MAX_CHUNKS = const(16)  # GET RESPONSE rounds (16 x 256 bytes)

# ETSI TS 102 221 10.2.1 status words, as osmocom pySim's pySim/ts_102_221.py names them
SW = {0x6700: "wrong length", 0x6A80: "incorrect data", 0x6A82: "not found", 0x6A86: "incorrect P1 P2",
      0x6A88: "reference data not found", 0x6985: "conditions of use not satisfied",
      0x6D00: "instruction not supported", 0x6E00: "class not supported", 0x6F00: "no precise diagnosis"}
# SGP.22 EnableProfileResponse enableResult
ENABLE = {1: "iccidOrAidNotFound", 2: "profileNotInDisabledState", 3: "disallowedByPolicy",
          4: "wrongProfileReenabling", 5: "catBusy", 127: "undefinedError"}
STATES = ("disabled", "enabled")
CLASSES = ("test", "provisioning", "operational")
_TAGS = b"\x5c\x06\x5a\x9f\x70\x90\x91\x95"  # the tagList of GetProfilesInfo: only what we report


class EsimError(ValueError):
    pass


class NotEuicc(EsimError):
    pass


def iccid_bcd(s):
    # "8944..." -> 10 bytes, nibble-swapped, F-padded (EF_ICCID, ETSI TS 102 221 13.2)
    if not s or len(s) > 20 or not s.isdigit():
        raise EsimError("an ICCID is up to 20 digits, not %r" % (s,))
    s = s + "F" * (20 - len(s))
    return bytes(int(s[i + 1] + s[i], 16) for i in range(0, 20, 2))


def iccid_str(b):
    out = []
    for x in b:
        for d in (x & 0xF, x >> 4):
            if d == 0xF:
                break
            if d > 9:
                raise EsimError("ICCID nibble %X" % d)
            out.append(chr(48 + d))
        else:
            continue
        break
    return "".join(out)


def _int(b):
    n = 0
    for x in b:
        n = (n << 8) | x
    return n


def _text(b):
    try:
        return bytes(b).decode()
    except UnicodeError:
        raise EsimError("a name that is not UTF-8")


# ---- parsers of the card's answers (pure: the in-process fuzz test feeds them) ----
def parse_eid(resp):
    r = bertlv.find(resp, 0, len(resp), 0xBF3E)
    if r is None:
        raise EsimError("GetEuiccData answered without BF3E")
    e = bertlv.find(resp, r[0], r[1], 0x5A)
    if e is None or e[1] - e[0] != 16:
        raise EsimError("GetEuiccData: no 16-byte EID")
    return "".join("%02X" % x for x in resp[e[0]:e[1]])


def parse_profiles(resp):
    r = bertlv.find(resp, 0, len(resp), 0xBF2D)
    if r is None:
        raise EsimError("GetProfilesInfo answered without BF2D")
    err = bertlv.find(resp, r[0], r[1], 0x81)
    if err is not None:
        raise EsimError("GetProfilesInfo error %d" % _int(resp[err[0]:err[1]]))
    ok = bertlv.find(resp, r[0], r[1], 0xA0)
    if ok is None:
        raise EsimError("GetProfilesInfo: neither a list nor an error")
    out = []
    for tag, vs, ve in bertlv.each(resp, ok[0], ok[1]):
        if tag != 0xE3:
            continue  # SGP.22 is extensible: another element is skipped
        p = {"iccid": None, "state": None, "nickname": None, "provider": None, "class": None}
        for t, s, e in bertlv.each(resp, vs, ve):
            v = resp[s:e]
            if t == 0x5A:
                if e - s != 10:
                    raise EsimError("ICCID of %d bytes" % (e - s))
                p["iccid"] = iccid_str(v)
            elif t == 0x9F70:
                n = _int(v)
                p["state"] = STATES[n] if e - s == 1 and n < 2 else "unknown"
            elif t == 0x90:
                p["nickname"] = _text(v)
            elif t == 0x91:
                p["provider"] = _text(v)
            elif t == 0x95:
                n = _int(v)
                p["class"] = CLASSES[n] if e - s == 1 and n < 3 else "unknown"
        if not p["iccid"]:
            raise EsimError("a profile without ICCID")
        out.append(p)
    return out


def parse_enable(resp):
    r = bertlv.find(resp, 0, len(resp), 0xBF31)
    if r is None:
        raise EsimError("EnableProfile answered without BF31")
    e = bertlv.find(resp, r[0], r[1], 0x80)
    if e is None or e[1] - e[0] != 1:
        raise EsimError("EnableProfile: no result")
    return resp[e[0]]


def enable_request(iccid):
    return bertlv.enc(0xBF31, bertlv.enc(0xA0, bertlv.enc(0x5A, iccid_bcd(iccid))) + b"\x81\x01\xff")


def parse_cgla(line):
    # b'+CGLA: 8,"BF3E9000"' -> (data, sw); EsimError for a wrong length or bad hex
    t = bytes(line)
    if t.startswith(b"+CGLA:"):
        t = t[6:]
    n, sep, h = t.strip().partition(b",")
    h = h.strip().strip(b'"')
    try:
        n = int(n)
    except ValueError:
        raise EsimError("+CGLA without a length")
    if not sep or n != len(h) or n < 4 or n % 2:
        raise EsimError("+CGLA length %d for %d hex characters" % (n, len(h)))
    try:
        b = bytes(int(h[i:i + 2], 16) for i in range(0, n, 2))
    except ValueError:
        raise EsimError("+CGLA answer is not hex")
    return b[:-2], (b[-2] << 8) | b[-1]


class Card:
    # one session with the ISD-R over a logical channel
    def __init__(self, modem):
        self.at = modem.at
        self.ch = None

    def supported(self):
        try:
            return self.at.cmd("AT+CCHO=?", timeout_ms=5000).ok
        except OSError:
            return False

    def open(self):
        r = self.at.cmd('AT+CCHO="%s"' % ISDR, resp=b"+CCHO:", timeout_ms=10000)
        if not r.ok:
            if r.error == "ERROR":
                raise NotEuicc("no ISD-R on the card: an ordinary UICC")
            raise EsimError("AT+CCHO refused: %s" % (r.error,))
        for ln in r.lines:
            t = bytes(ln)
            if t.startswith(b"+CCHO:"):
                t = t[6:]
            t = t.strip().strip(b'"')
            if t and len(t) <= 32 and all(48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102 for c in t):
                self.ch = t.decode()
                return self.ch
        raise EsimError("AT+CCHO answered without a session id")

    def close(self):
        if self.ch is not None:
            try:
                self.at.cmd("AT+CCHC=%s" % self.ch, timeout_ms=5000)
            except OSError:
                pass
            self.ch = None

    def apdu(self, b):
        h = "".join("%02X" % x for x in b)
        r = self.at.cmd('AT+CGLA=%s,%d,"%s"' % (self.ch, len(h), h), resp=b"+CGLA:", timeout_ms=10000)
        if not r.ok:
            raise EsimError("AT+CGLA refused: %s" % (r.error,))
        for ln in r.lines:
            if bytes(ln).startswith(b"+CGLA:"):
                return parse_cgla(ln)
        raise EsimError("AT+CGLA answered without +CGLA")

    def es10(self, req):
        if len(req) > 255:
            raise EsimError("request of %d bytes" % len(req))
        data, sw = self.apdu(bytes((0x80, 0xE2, 0x91, 0x00, len(req))) + req)
        out = bytearray(data)
        k = 0
        while sw >> 8 == 0x61 and k < _MAX_CHUNKS:
            data, sw = self.apdu(bytes((0x80, 0xC0, 0x00, 0x00, sw & 0xFF)))
            out += data
            k += 1
        if sw != 0x9000:
            raise EsimError("card answered %04X (%s)" % (sw, SW.get(sw, "error")))
        return out


def read(modem):
    # {"kind": "euicc", "eid", "profiles"}, or {"kind": "uicc" | "unsupported"}; EsimError for a
    # card whose answers make no sense
    c = Card(modem)
    if not c.supported():
        return {"kind": "unsupported"}
    try:
        c.open()
    except NotEuicc:
        return {"kind": "uicc"}
    try:
        eid = parse_eid(c.es10(b"\xbf\x3e\x03\x5c\x01\x5a"))
        profiles = parse_profiles(c.es10(bertlv.enc(0xBF2D, _TAGS)))
    finally:
        c.close()
    return {"kind": "euicc", "eid": eid, "profiles": profiles}


def enable(modem, iccid):
    c = Card(modem)
    c.open()
    try:
        res = parse_enable(c.es10(enable_request(iccid)))
    finally:
        c.close()
    if res:
        raise EsimError("enable %s refused: %s" % (iccid, ENABLE.get(res, res)))


def _post(kind, frm, to, **f):
    f["from"] = frm
    f["to"] = to
    events.post(kind, **f)


class Manager:
    # Driven by the network: Network.step() calls step() first (a wait in ms takes the step, None
    # lets the network run), Network._next_profile() calls fallback() for a profile with an "iccid".
    def __init__(self, net):
        self.net = net
        self.c = net.cfg["esim"]
        self.kind = None  # None (not read yet), "euicc", "uicc", "unsupported", "error"
        self.eid = None
        self.profiles = []
        self.active = None  # the ICCID the device last accepted
        self.p = None  # a switch in progress: [from, to, reason, t0, phase, rollback]
        self.refresh = None  # deadline of a refresh nobody here asked for (a network swap)
        self.switches = 0
        self.error = None
        from m2m.report import contract
        contract.EXTRA["esim"] = self.command

    # ---- the network's hooks ----
    def step(self):
        n = self.net
        m = n.modem
        if m is None:
            return None
        from m2m.net.network import NAMES

        st = NAMES[n.state]  # the network's states are private consts: compared by name
        p = self.p
        if p is not None and p[4] == 0:
            return self._wait_refresh(m, p)
        if self.refresh is not None:
            return self._wait_swap(m)
        if st == "config":
            self._identity(m)
        elif st in ("register", "pdp", "attached"):
            e = m.take_event(("sim",), b"+CPIN: NOT READY")
            if e is not None and p is None:
                # the card refreshed under us: a profile the network (an SM-DP+ / eIM) enabled
                self.refresh = hal.ticks_add(hal.ticks_ms(), _REFRESH_MS)
                return 0
        if p is not None and p[4] == 1:
            if st in ("pdp", "attached") and m.iccid == p[1]:
                self.p = None
                self.active = p[1]
                self._mark(p[1])
                _post("esim.switched", p[0], p[1], reason=p[2],
                      ms=hal.ticks_diff(hal.ticks_ms(), p[3]))
            elif hal.ticks_diff(hal.ticks_ms(), p[3]) >= self.c["switch_s"] * 1000:
                self._rollback("no registration in %d s" % self.c["switch_s"])
        return None

    def fallback(self, k, why):
        # the network's fallback order reached profile k, which names an ICCID: enable it. True
        # when a switch started (the network waits for it), False to go on without one
        if self.p is not None:
            self._rollback(why)
            return True
        to = self.net.profiles[k].get("iccid")
        if not to or to == self.active or self.kind != "euicc":
            return False
        try:
            self.switch(to, "fallback: " + why, k)
        except (EsimError, OSError) as e:
            events.post("esim.switch_failed", to=to, reason=why, error=str(e))
            return False
        return True

    # ---- switching ----
    def index_for(self, iccid):
        ps = self.net.profiles
        for i in range(len(ps)):
            if ps[i].get("iccid") == iccid:
                return i
        return 0

    def switch(self, to, reason, k=None, back=False):
        if self.kind != "euicc":
            raise EsimError("no eUICC to switch on (%s)" % (self.kind or "not read yet"))
        if self.p is not None and not back:
            raise EsimError("a switch to %s is in progress" % self.p[1])
        if not any(q["iccid"] == to for q in self.profiles):
            raise EsimError("no profile %s on the eUICC (it holds %s)"
                            % (to, ", ".join(q["iccid"] for q in self.profiles)))
        if to == self.active and not back:
            raise EsimError("profile %s is already enabled" % to)
        bound = self.c["iccids"]
        if bound and to not in bound:
            raise EsimError("profile %s is not in esim.iccids: add it to the device config" % to)
        m = self.net.modem
        enable(m, to)
        frm = self.active
        self.switches += 1
        self.p = [frm, to, reason, hal.ticks_ms(), 0, back, self.index_for(to) if k is None else k,
                  hal.ticks_add(hal.ticks_ms(), _REFRESH_MS), False]
        _post("esim.switch", frm, to, reason=reason)
        m.iccid = None  # read again once the card is back
        m.imsi = None

    def _wait_refresh(self, m, p):
        # the card refreshes after an enable: +CPIN: NOT READY, then READY (Quectel: +QUSIM)
        while True:
            e = m.take_event(("sim",))
            if e is None:
                break
            ln = e[1]
            if b"NOT READY" in ln:
                p[8] = True
            elif p[8] and (b"READY" in ln or b"+QUSIM" in ln):
                return self._refreshed(p)
        if hal.ticks_diff(p[7], hal.ticks_ms()) <= 0:
            return self._refreshed(p)
        m.pending(("sim",), 1000)
        return 0

    def _refreshed(self, p):
        p[4] = 1
        p[3] = hal.ticks_ms()  # esim.switch_s counts from the card's return
        self.net.resim(p[6], esim=p[1])
        return 0

    def _wait_swap(self, m):
        while True:
            e = m.take_event(("sim",))
            if e is None:
                break
            if b"NOT READY" not in e[1] and (b"READY" in e[1] or b"+QUSIM" in e[1]):
                self.refresh = hal.ticks_ms()
        if hal.ticks_diff(self.refresh, hal.ticks_ms()) > 0:
            m.pending(("sim",), 1000)
            return 0
        self.refresh = None
        m.iccid = None
        m.imsi = None
        self.net.resim(None, esim="refresh")
        return 0

    def _rollback(self, why):
        p = self.p
        self.p = None
        if p[5] or not p[0]:
            # a rollback that did not register either: the network's own recovery goes on
            _post("esim.rollback_failed", p[0], p[1], reason=why)
            return
        _post("esim.rollback", p[1], p[0], reason=why, tried=p[1], back=p[0],
              waited_s=hal.ticks_diff(hal.ticks_ms(), p[3]) // 1000)
        try:
            self.switch(p[0], "rollback", back=True)
        except (EsimError, OSError) as e:
            _post("esim.rollback_failed", p[1], p[0], reason=str(e))

    def _mark(self, iccid):
        for q in self.profiles:
            q["state"] = "enabled" if q["iccid"] == iccid else "disabled"

    # ---- identity: after every SIM step ----
    def _identity(self, m):
        while m.take_event(("sim",)) is not None:  # boot banners: not a refresh
            pass
        if self.kind is None or self.kind == "error":
            self.reload(m)  # again after an error: a busy card answers later
        iccid = m.iccid
        if iccid is None or iccid == self.active:
            self._bind(iccid)
            return
        p = self.p
        if self.active is not None and (p is None or iccid != p[1]):
            # the ICCID changed under the device: a profile the network enabled, or another card
            if self.kind == "euicc":
                self.reload(m)
            ok = self._bound(iccid) and any(q["iccid"] == iccid for q in self.profiles)
            _post("esim.swap", self.active, iccid, accepted=ok, alarm=not ok)
            if p is not None:
                self.p = None
        self.active = iccid
        self._mark(iccid)
        self.net.profile = self.index_for(iccid)
        self._bind(iccid)

    def _bound(self, iccid):
        b = self.c["iccids"]
        return not b or iccid in b

    def _bind(self, iccid):
        # binding: the EID and the allowed ICCIDs; a mismatch is the tamper case of m2m.net.sim
        field = None
        if self.c["eid"] and self.kind == "euicc" and self.eid != self.c["eid"]:
            field = "eid"
        elif iccid is not None and not self._bound(iccid):
            field = "iccid"
        if field is None:
            return
        from m2m.net import sim
        if not sim._tamper:
            sim._tamper = True
            sim._post("sim.tamper", field=field, iccid=iccid, eid=self.eid)

    def reload(self, m=None):
        m = m or self.net.modem
        try:
            r = read(m)
        except (EsimError, ValueError, OSError) as e:
            self.kind = "error"
            if str(e) != self.error:  # once per distinct error
                self.error = str(e)
                events.post("esim.error", error=self.error, alarm=True)
            return
        self.kind = r["kind"]
        self.error = None
        if self.kind != "euicc":
            events.post("esim." + self.kind, model=m.NAME)
            return
        self.eid = r["eid"]
        self.profiles = r["profiles"]
        for q in self.profiles:
            if q["state"] == "enabled" and self.active is None:
                self.active = q["iccid"]
        events.post("esim.read", eid=self.eid, profiles=len(self.profiles))

    def status(self):
        return {"kind": self.kind, "eid": self.eid, "iccid": self.active, "profiles": self.profiles,
                "switching": self.p[1] if self.p else None, "switches": self.switches, "error": self.error}

    # ---- the MQTT command: {"cmd": "esim", "args": {"action": "status" | "read" | "switch", "iccid"}}
    def command(self, args):
        try:
            return self._command(args)
        except OSError as e:  # an AT timeout: an error reply, never an exception in the reporter
            raise EsimError("the modem did not answer: %s" % (e,))

    def _command(self, args):
        a = args.get("action", "status")
        if a == "read":
            self.reload()
        elif a == "switch":
            to = args.get("iccid")
            if type(to) is not str:
                raise EsimError('switch needs "iccid": one of the profiles in the status')
            self.switch(to, "command")
            return {"switching": to, "from": self.active}
        elif a != "status":
            raise EsimError("unknown esim action %r: give status, read or switch" % (a,))
        return self.status()

"""An eUICC behind the simulated SIM (issue #13): an EID and operator profiles (ICCID, IMSI, home
operator, APN), the ISD-R answering the GSMA SGP.22 ES10 functions of profile management, reached through
the 3GPP TS 27.007 logical-channel commands, and the SIM refresh that enabling a profile causes.

Sources (the firmware cites its own; nothing here is taken from the firmware):
- AT+CCHO / AT+CGLA / AT+CCHC: 3GPP TS 27.007 8.45 / 8.43 / 8.46 as Nordic's and Telit's AT references
  quote them (+CCHO: <sessionid>; +CGLA: <length>,"<hex>" with <length> in hex characters, the
  response ending in SW1 SW2). The MT puts the channel into the CLA byte (Telit ME310G1 reference).
- ES10: SGP.22's ASN.1 (lpac docs/asn1/rsp.asn): STORE DATA (INS E2, P1 91 = last block of BER-TLV
  data), GetEuiccData BF3E, GetProfilesInfo BF2D (tagList 5C), EnableProfile BF31 with its results.
- Status words: ETSI TS 102 221 10.2.1 as osmocom pySim's pySim/ts_102_221.py lists them (6A80
  incorrect parameters in the data field, 6A86 incorrect P1 P2, 6A88 referenced data not found,
  6985 conditions of use not satisfied, 6D00 / 6E00 instruction / class not supported), 6700 wrong
  length, 61xx more data for GET RESPONSE, 6Cxx wrong Le.
- Logical channels: channels 1-3 besides the basic channel 0, closed by a UICC reset, and a T=0
  card's 61xx for every ES10 answer (ASSUMED docs/ASSUMED.md#A-UICC-CHANNELS).
Which dialects implement the commands: each dialect's LOGICAL_CHANNELS (core.py); the SIM7080, SIM7000
and BG96 AT manuals list none of them (simcom.py, quectel.py cite the pages), so those answer ERROR.
Assumed (docs/ASSUMED.md): that the BG95 and GM02S have them (ASSUMED docs/ASSUMED.md#A-ESIM-CCHO),
the ERROR for an AID the card lacks, +CME ERROR for no free channel (ASSUMED docs/ASSUMED.md#A-ESIM-CCHO),
the URCs of a refresh and its duration (ASSUMED docs/ASSUMED.md#A-ESIM-REFRESH).

Control (`{"op": "euicc", "action": ...}` or the functions below): install (eid, profiles, enabled),
enable (a network-initiated swap: the SM-DP+ / eIM enabled another profile), delete (a disabled
profile), network (a profile's network: "ok", "denied" or "silent", i.e. never registers),
channels (on / off: a modem firmware without the commands; handles: session ids as hex handles), fault (the next ES10 answers: a status
word, or cut short), status.
"""

import asyncio

from .core import CmeError, Malformed

ISDR = bytes.fromhex("A0000005591010FFFFFFFF8900000100")
MAX_CHANNELS = 3  # channels 1-3 (ETSI TS 102 221 11.1.17)
REFRESH_TIME = 2.0  # modem seconds from the enable to the card being back (ASSUMED docs/ASSUMED.md#A-ESIM-REFRESH)
NETWORK = ("ok", "denied", "silent")


# ---- BER-TLV (an independent copy of the coding rules: X.690 8.1, ISO/IEC 7816-4 5.2) ----------
def tlv(tag, value=b""):
    t = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    n = len(value)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = bytes([0x81, n])
    else:
        ln = bytes([0x82]) + n.to_bytes(2, "big")
    return t + ln + value


def parse(buf):
    """[(tag, value)] of the TLVs in buf; ValueError for anything malformed."""
    out, i = [], 0
    while i < len(buf):
        tag = buf[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while True:
                if i >= len(buf):
                    raise ValueError("tag cut short")
                tag = (tag << 8) | buf[i]
                i += 1
                if not buf[i - 1] & 0x80:
                    break
        if i >= len(buf):
            raise ValueError("length missing")
        n = buf[i]
        i += 1
        if n == 0x80 or n > 0x83:
            raise ValueError("bad length byte")
        if n > 0x80:
            k = n & 0x7F
            if i + k > len(buf):
                raise ValueError("length cut short")
            n = int.from_bytes(buf[i:i + k], "big")
            i += k
        if i + n > len(buf):
            raise ValueError("value cut short")
        out.append((tag, bytes(buf[i:i + n])))
        i += n
    return out


def bcd(iccid):
    s = iccid + "F" * (20 - len(iccid))
    return bytes(int(s[i + 1] + s[i], 16) for i in range(0, 20, 2))


def unbcd(b):
    s = "".join("%X%X" % (x & 0xF, x >> 4) for x in b)
    return s.rstrip("F")


class Profile:
    def __init__(self, iccid, imsi, operator=None, apn="internet", nickname=None, provider=None,
                 cls=2):
        if not (str(imsi).isdigit() and len(str(imsi)) == 15):
            raise ValueError("an IMSI is 15 digits, not %r" % (imsi,))
        if not (str(iccid).isdigit() and 18 <= len(str(iccid)) <= 20):
            raise ValueError("an ICCID is 18-20 digits, not %r" % (iccid,))
        self.iccid = str(iccid)
        self.imsi = str(imsi)
        self.operator = operator or self.imsi[:5]  # the home PLMN
        self.apn = apn
        self.nickname = nickname
        self.provider = provider or "Operator %s" % self.operator
        self.cls = int(cls)
        self.network = "ok"

    def info(self, enabled, tags):
        parts = {0x5A: tlv(0x5A, bcd(self.iccid)), 0x9F70: tlv(0x9F70, bytes([int(enabled)])),
                 0x91: tlv(0x91, self.provider.encode()), 0x95: tlv(0x95, bytes([self.cls]))}
        if self.nickname is not None:
            parts[0x90] = tlv(0x90, self.nickname.encode())
        return tlv(0xE3, b"".join(v for t, v in parts.items() if tags is None or t in tags))

    def as_dict(self, enabled):
        return {"iccid": self.iccid, "imsi": self.imsi, "operator": self.operator, "apn": self.apn,
                "nickname": self.nickname, "provider": self.provider, "enabled": enabled,
                "network": self.network}


class EUICC:
    def __init__(self, eid, profiles, enabled=None):
        if not (len(eid) == 32 and all(c in "0123456789" for c in eid)):
            raise ValueError("an EID is 32 digits, not %r" % (eid,))
        self.eid = eid
        self.profiles = [p if isinstance(p, Profile) else Profile(**p) for p in profiles]
        if not self.profiles:
            raise ValueError("an eUICC needs at least one profile")
        self.enabled = enabled or self.profiles[0].iccid
        self.find(self.enabled)
        self.channels = {}  # session id -> pending GET RESPONSE bytes
        self.boot = None
        self.apdus = 0
        self.refreshes = 0
        self.after = None  # (iccid, refresh): an enable done once its answer has been read
        self.fault = None  # control "fault": {"sw": "6985"} or {"cut": n} for the next ES10 answers
        self.handles = False  # session ids as opaque hex handles (a Sierra MC7455, lpac issue #138)

    def find(self, iccid):
        for p in self.profiles:
            if p.iccid == iccid:
                return p
        raise ValueError("no profile %s on the eUICC" % iccid)

    def timeline(self, iccid, default):
        net = self.find(iccid).network if any(p.iccid == iccid for p in self.profiles) else "ok"
        if net == "denied":
            return [(0.0, "searching", {}), (3.0, "denied", {"reject_cause": 15})]
        if net == "silent":
            return [(0.0, "searching", {})]
        return default

    # ---- the card: APDUs on a logical channel ----
    def apdu(self, modem, ch, b):
        self.apdus += 1
        if len(b) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = b[0], b[1], b[2], b[3]
        if cla & 0xFC != 0x80 or cla & 0x03 != ch:
            return b"\x6e\x00"
        if ins == 0xC0:  # GET RESPONSE
            rest = self.channels.get(ch) or b""
            le = b[4] if len(b) == 5 else None
            if not rest:
                return b"\x69\x85"
            if le is None or (le or 256) > len(rest):
                return bytes([0x6C, len(rest) if len(rest) < 256 else 0])
            n = le or 256
            out, rest = rest[:n], rest[n:]
            self.channels[ch] = rest
            if rest:
                return out + bytes([0x61, min(len(rest), 255)])
            self.done(modem)
            return out + b"\x90\x00"
        if ins != 0xE2:
            return b"\x6d\x00"
        if p1 != 0x91 or p2 != 0x00:
            return b"\x6a\x86"
        if len(b) < 5 or len(b) != 5 + b[4]:
            return b"\x67\x00"
        try:
            req = parse(b[5:])
        except ValueError:
            return b"\x6a\x80"
        if len(req) != 1:
            return b"\x6a\x80"
        tag, body = req[0]
        f = self.fault
        if f is not None:
            if f.get("sw"):
                return bytes.fromhex(f["sw"])
            resp = self.es10(modem, tag, body)[:int(f.get("cut", 0))]  # an answer cut short
            self.channels[ch] = resp
            return bytes([0x61, len(resp)]) if resp else b"\x90\x00"
        try:
            resp = self.es10(modem, tag, body)
        except ValueError:
            return b"\x6a\x80"
        if resp is None:
            return b"\x6a\x88"
        # a case 4 command over T=0: the answer waits for GET RESPONSE (61xx)
        self.channels[ch] = resp
        return bytes([0x61, min(len(resp), 255)])

    def es10(self, modem, tag, body):
        inner = dict(parse(body))
        if tag == 0xBF3E:  # GetEuiccData
            if inner.get(0x5C) != b"\x5a":
                raise ValueError("tagList must be 5A")
            return tlv(0xBF3E, tlv(0x5A, bytes.fromhex(self.eid)))
        if tag == 0xBF2D:  # GetProfilesInfo
            tags = None
            if 0x5C in inner:
                tags, i, tl = set(), 0, inner[0x5C]
                while i < len(tl):
                    t = tl[i]
                    i += 1
                    if t & 0x1F == 0x1F:
                        while True:
                            t = (t << 8) | tl[i]
                            i += 1
                            if not tl[i - 1] & 0x80:
                                break
                    tags.add(t)
            if set(inner) - {0x5C, 0xA0}:
                return tlv(0xBF2D, tlv(0x81, b"\x01"))  # incorrectInputValues
            return tlv(0xBF2D, tlv(0xA0, b"".join(p.info(p.iccid == self.enabled, tags)
                                                  for p in self.profiles)))
        if tag == 0xBF31:  # EnableProfile
            ident = dict(parse(inner.get(0xA0, b"")))
            if 0x5A not in ident or 0x81 not in inner:
                raise ValueError("EnableProfile needs an ICCID and refreshFlag")
            iccid = unbcd(ident[0x5A])
            if not any(p.iccid == iccid for p in self.profiles):
                return tlv(0xBF31, tlv(0x80, b"\x01"))  # iccidOrAidNotFound
            if iccid == self.enabled:
                return tlv(0xBF31, tlv(0x80, b"\x02"))  # profileNotInDisabledState
            # the card's REFRESH follows the whole answer (ASSUMED docs/ASSUMED.md#A-ESIM-REFRESH)
            self.after = (iccid, inner[0x81] != b"\x00")
            return tlv(0xBF31, tlv(0x80, b"\x00"))
        return None

    def done(self, modem):
        if self.after is not None:
            iccid, refresh = self.after
            self.after = None
            self.switch(modem, iccid, refresh)

    # ---- enabling: the card's REFRESH, as the modem shows it ----
    def switch(self, modem, iccid, refresh=True):
        p = self.find(iccid)
        self.enabled = iccid
        card = modem.card
        card.iccid, card.imsi = p.iccid, p.imsi
        modem.home_plmn = p.imsi[:5]
        if refresh and modem.power == "on":
            modem.spawn(self._refresh(modem))

    async def _refresh(self, modem):
        await asyncio.sleep(0)  # after the answer to the command that asked for it
        self.refreshes += 1
        self.channels.clear()
        modem.sim_state = "busy"
        modem.urc("+CPIN: NOT READY")
        modem.stop_registration()
        await modem.clock.sleep(REFRESH_TIME)
        if modem.power != "on":
            return
        modem.sim_state = modem.card.locked_state()
        modem.urc("+CPIN: %s" % modem.cpin_word())
        if type(modem).__module__.endswith("quectel"):
            modem.urc("+QUSIM: 1")
        if modem.sim_state == "ready":
            modem.on_sim_ready()  # SIMCom: SMS Ready
            modem.maybe_start_registration()


# ---- the modem's commands (core.Modem.at_CCHO / at_CGLA / at_CCHC delegate here) ---------------
def _euicc(modem):
    eu = getattr(modem.card, "euicc", None)
    if eu is not None and eu.boot != modem.boots:
        eu.boot = modem.boots  # a reboot resets the card: every channel closed
        eu.channels.clear()
    return eu


def _session(eu, text):
    # the channel a session id names (a number, or a handle when eu.handles), or None
    for ch in eu.channels:
        if text == (("%016x" % (0x385A7C0 + ch)) if eu.handles else str(ch)):
            return ch
    return None


def _supported(modem):
    if not getattr(modem, "LOGICAL_CHANNELS", True):
        raise Malformed("no logical channels on this modem")  # plain ERROR, as an unknown command


def at_CCHO(modem, cmd):
    _supported(modem)
    if cmd.kind == "test":
        return
    if cmd.kind != "set":
        raise Malformed("CCHO")
    modem.require_sim()
    try:
        aid = bytes.fromhex(cmd.str(0))
    except ValueError:
        raise Malformed("CCHO dfname")
    eu = _euicc(modem)
    if eu is None or aid != ISDR:
        # no application with this AID: a bare ERROR (ASSUMED docs/ASSUMED.md#A-ESIM-CCHO)
        raise Malformed("no such application")
    free = [c for c in range(1, MAX_CHANNELS + 1) if c not in eu.channels]
    if not free:
        raise CmeError(100)  # MANAGE CHANNEL refused: every channel in use (ASSUMED docs/ASSUMED.md#A-ESIM-CCHO)
    eu.channels[free[0]] = b""
    modem.info("+CCHO: %s" % (("%016x" % (0x385A7C0 + free[0])) if eu.handles else free[0]))


def at_CCHC(modem, cmd):
    _supported(modem)
    if cmd.kind == "test":
        return
    eu = _euicc(modem)
    ch = _session(eu, cmd.str(0)) if eu is not None else None
    if ch is None:
        raise CmeError(50)
    del eu.channels[ch]
    eu.done(modem)


def at_CGLA(modem, cmd):
    _supported(modem)
    if cmd.kind == "test":
        return
    modem.require_sim()
    eu = _euicc(modem)
    ch = _session(eu, cmd.str(0)) if eu is not None else None
    n = cmd.int(1)
    h = cmd.str(2)
    if ch is None:
        raise CmeError(50)
    if n != len(h) or n % 2 or n < 8:
        raise CmeError(50)
    try:
        apdu = bytearray.fromhex(h)
    except ValueError:
        raise CmeError(50)
    apdu[0] = (apdu[0] & 0xFC) | (ch & 0x03)  # the MT sets the channel in CLA
    resp = eu.apdu(modem, ch, bytes(apdu))
    modem.info('+CGLA: %d,"%s"' % (len(resp) * 2, resp.hex().upper()))


# ---- control ----------------------------------------------------------------------------------
def install(modem, eid, profiles, enabled=None):
    """Put an eUICC in the modem's card slot (the card keeps its PIN state): its enabled profile
    gives the card's ICCID and IMSI."""
    eu = EUICC(eid, profiles, enabled)
    card = modem.card
    card.euicc = eu
    p = eu.find(eu.enabled)
    card.iccid, card.imsi = p.iccid, p.imsi
    modem.home_plmn = p.imsi[:5]
    return eu


def status(modem):
    eu = getattr(modem.card, "euicc", None)
    if eu is None:
        return {"ok": True, "euicc": None, "iccid": modem.card.iccid}
    return {"ok": True, "eid": eu.eid, "enabled": eu.enabled, "iccid": modem.card.iccid,
            "profiles": [p.as_dict(p.iccid == eu.enabled) for p in eu.profiles],
            "channels": sorted(eu.channels), "apdus": eu.apdus, "refreshes": eu.refreshes, "handles": eu.handles,
            "logical_channels": getattr(modem, "LOGICAL_CHANNELS", True)}


def control(modem, kw):
    """{"op": "euicc", "action": ...}: install, enable, delete, network, channels, status."""
    a = kw.get("action")
    if a == "install":
        install(modem, kw.get("eid", ""), kw.get("profiles") or [], kw.get("enabled"))
    elif a in ("enable", "delete", "network"):
        eu = getattr(modem.card, "euicc", None)
        if eu is None:
            raise ValueError('no eUICC in this modem: {"op": "euicc", "action": "install", ...} first')
        p = eu.find(kw.get("iccid"))
        if a == "enable":  # network-initiated: the SM-DP+ / eIM enabled another profile
            if p.iccid == eu.enabled:
                raise ValueError("profile %s is already enabled" % p.iccid)
            eu.switch(modem, p.iccid)
        elif a == "delete":
            if p.iccid == eu.enabled:
                raise ValueError("profile %s is enabled: SGP.22 deletes only a disabled profile" % p.iccid)
            eu.profiles.remove(p)
        else:
            if kw.get("state") not in NETWORK:
                raise ValueError("network needs \"state\": one of %s" % ", ".join(NETWORK))
            p.network = kw["state"]
    elif a == "channels":
        modem.LOGICAL_CHANNELS = bool(kw.get("on"))
        if "handles" in kw:
            eu = _euicc(modem)
            if eu is None:
                raise ValueError("no eUICC in this modem")
            eu.handles = bool(kw["handles"])
    elif a == "fault":  # the ISD-R's next ES10 answers: a status word, or cut after n bytes; none clears
        eu = getattr(modem.card, "euicc", None)
        if eu is None:
            raise ValueError("no eUICC in this modem")
        sw, cut = kw.get("sw"), kw.get("cut")
        if sw is not None and not (isinstance(sw, str) and len(sw) == 4 and all(c in "0123456789abcdefABCDEF" for c in sw)):
            raise ValueError('fault "sw" is a status word in 4 hex digits, e.g. "6985"')
        eu.fault = {"sw": sw} if sw else ({"cut": int(cut)} if cut is not None else None)
    elif a != "status":
        raise ValueError('euicc needs "action": install, enable, delete, network, channels, fault or status')
    return status(modem)

# Sequans dialect: Monarch 2 GM02S / GM02SP (the DPTechnics Walter board).
#
# Sources (facts, not text): the Sequans GM02S / Monarch AT command references as used by the Walter
# MicroPython and Arduino libraries (AT+SQNSD / SQNSSENDEXT / SQNSRECV / SQNSH, SQNSCFG / SQNSCFGEXT,
# SQNSSCFG / SQNSPCFG security profiles, +SQNSRING / +SQNSH URCs, +SQNCCID, +SYSSTART, CEREG n=5),
# TinyGSM's Sequans Monarch client (AT+SQNCCID), the gm02s and monarch transcripts in
# shared/at-transcripts and the dptechnics-walter board file. The rest cites docs/ASSUMED.md.

from m2m.modem import MODELS, Modem, OPT

_T = 1000


# downlink EARFCN ranges (first, last, band) of the GM02S's LTE bands up to 20, as Pycom's Sequans
# AT command page lists them (3GPP TS 36.101 table 5.7.3-1); other bands read None
_EARFCN = (0, 599, 1, 600, 1199, 2, 1200, 1949, 3, 1950, 2399, 4, 2400, 2649, 5, 3450, 3799, 8,
           5010, 5179, 12, 5180, 5279, 13, 5730, 5849, 17, 5850, 5999, 18, 6000, 6149, 19,
           6150, 6449, 20)


def band_of(earfcn):
    t = _EARFCN
    for i in range(0, len(t), 3):
        if t[i] <= earfcn <= t[i + 1]:
            return t[i + 2]
    return None


class GM02S(Modem):
    NAME = "gm02s"
    CGMM, ATI = MODELS[NAME][2:]  # identity strings: see the registry in m2m.modem
    # Walter has no PWRKEY: board data gives the active-low RESET line (100 ms pulse, vendor
    # library). These defaults only apply to a board that names neither.
    PWRKEY_MS = (100, 100, 5000)
    BANNERS = (b"+SYSSTART",)  # gm02s transcript; CR and LF may arrive in separate chunks
    # AT+SQNSSHDN: OK, then "+SQNSSHDN" when the modem may lose power
    POWER_OFF = ("AT+SQNSSHDN", b"+SQNSSHDN", 10000)
    POWER_DOWN_URC = b"+SQNSSHDN"

    URCS = (
        (b"+CEREG:", "reg"),
        (b"+CPIN:", "sim"),
        (b"+SQNSRING:", "sock_data"),  # +SQNSRING: <connId>[,<recData>] (SQNSCFGEXT srMode 1)
        (b"+SQNSH:", "sock_closed"),  # +SQNSH: <connId>: closed by the peer or the network
        (b"+CGEV: NW PDN DEACT", "pdp_down"),  # 3GPP 27.007 +CGEV packet-domain events
        (b"+CGEV: ME PDN DEACT", "pdp_down"),
        (b"+CGEV:", "pdp"),
        (b"+CTZE:", "time"),
        (b"+CTZV:", "time"),
    )

    def signal(self):
        # AT+SQNMONI=9, the serving cell with its CINR (walter-micropython's SQNMONI report types:
        # SERVING_CELL_WITH_CINR = 9): "+SQNMONI: <operator> Cc:<mcc> Nc:<mnc> RSRP:<dBm> CINR:<dB>
        # RSRQ:<dB> TAC:<n> Id:<pci> EARFCN:<n> PWR:<dBm> PAGING:<n>" (Pycom's Sequans AT command
        # page examples; newer firmware adds CID:, BAND:, BW:, which walter-micropython's parser
        # reads). An error when there is no serving cell. The band: BAND:, else from the EARFCN
        out = {}
        r = self.at.cmd("AT+SQNMONI=9", timeout_ms=_T)
        if not r.ok:
            return out
        earfcn = None
        for ln in r.lines:
            for part in ln.split(b" "):
                k, _, v = part.partition(b":")
                if not v:
                    continue
                if k == b"CINR":
                    out["sinr"] = float(v)
                elif k == b"BAND":
                    out["band"] = int(v)
                elif k == b"EARFCN":
                    earfcn = int(v)
        if "band" not in out and earfcn is not None:
            out["band"] = band_of(earfcn)
        return out

    # the modem's own sleep, governed by the RTS line: AT+SQNIPSCFG=1 (TinyGSM
    # TinyGsmClientSequansMonarch.h sleepEnableImpl); optional, the network reports a refusal
    SLEEP = (("AT+SQNIPSCFG=1", (), _T, OPT),)

    # the default bearer comes up with the attach; AT+CFUN=1 starts it, AT+CGACT makes sure
    PDP_UP = (("AT+CFUN=1", (), 15000), ("AT+CGACT=1,1", (), 150000, OPT))
    PDP_DOWN = (("AT+CGACT=0,1", (), 40000),)

    # ---- sockets: connId 1..6, command mode, raw bytes ----
    SOCKET_IDS = (1, 6)
    PROTO = {"tcp": "0", "udp": "1", "tls": "0", "dtls": "1"}
    # AT+SQNSCFG=<connId>,<cid>,<pktSz>,<maxTo s>,<connTo 100 ms>,<txTo 100 ms>;
    # AT+SQNSCFGEXT=<connId>,<srMode 1: +SQNSRING with the byte count>,<recvDataMode 0: raw>,
    # <keepalive>; AT+SQNSSCFG=<connId>,<enable>,<spId>; security profile spId = connId with
    # AT+SQNSPCFG=<spId>,<version 2: TLS 1.2>,<ciphers "">,<certValidLevel 0: none> (until the
    # credentials issue sets level and CA)
    _CFG = (("AT+SQNSCFG={sid},1,300,90,600,50", (), _T),
            ("AT+SQNSCFGEXT={sid},1,0,0", (), _T))
    SOCKET_SETUP = {
        "tcp": _CFG + (("AT+SQNSSCFG={sid},0", (), _T, OPT),),
        "udp": _CFG + (("AT+SQNSSCFG={sid},0", (), _T, OPT),),
        "tls": _CFG + (('AT+SQNSPCFG={sid},2,"",0', (), _T), ("AT+SQNSSCFG={sid},1,{sid}", (), _T)),
        # a security profile on a UDP socket is DTLS: ASSUMED docs/ASSUMED.md#A-GM02S-DTLS
        "dtls": _CFG + (('AT+SQNSPCFG={sid},2,"",0', (), _T), ("AT+SQNSSCFG={sid},1,{sid}", (), _T)),
    }
    # AT+SQNSD=<connId>,<txProt 0 TCP | 1 UDP>,<rPort>,<IPaddr>,<closureType 0>,<lPort 0>,
    # <connMode 1: command mode>: OK once connected, +CME ERROR otherwise (no open URC)
    OPEN = 'AT+SQNSD={sid},{proto},{port},"{host}",0,0,1'
    OPEN_TIMEOUT = 65000  # connTo 600 x 100 ms, plus margin
    # AT+SQNSSENDEXT=<connId>,<len>: "> " prompt, payload, OK
    SEND = "AT+SQNSSENDEXT={sid},{n}"
    # AT+SQNSRECV=<connId>,<maxBytes> -> +SQNSRECV: <connId>,<len> CR LF <bytes> CR LF OK
    RECV = "AT+SQNSRECV={sid},{n}"
    RECV_DATA = (b"+SQNSRECV:", 1, False)
    CLOSE = "AT+SQNSH={sid}"

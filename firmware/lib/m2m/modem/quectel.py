# Quectel dialects: BG95 (BG95&BG77&BG600L series AT manual, TCP/IP and SSL application notes) and
# BG96, which differs in identity, boot banner and DTLS.
#
# Sources (facts, not text): the Quectel manuals as quoted in public drivers and issue threads,
# the bg77 / bg96 transcripts in shared/at-transcripts (RDY then APP RDY; "+QIOPEN: 0,0" after OK;
# "> " prompt, "SEND OK"; '+QIURC: "recv",0'; "+QIRD: <len>" CR LF <bytes>; '+QIURC: "pdpdeact",1';
# ATI "Quectel / BG96 / Revision: ..."), and the esp32-devkitc-bg95 board notes (PWRKEY windows).
# Behaviour not taken from a source cites its entry in docs/ASSUMED.md.

from m2m.modem import MODELS, Modem, OPT, band_number

_T = 1000


class BG95(Modem):
    NAME = "bg95"
    CGMM, ATI = MODELS[NAME][2:]  # identity strings: see the registry in m2m.modem
    # PWRKEY: >= 500 ms on (500-1000 ms window on some revisions), 650-1500 ms off (BG95 Series
    # Hardware Design 3.6.2.1); boot time ASSUMED docs/ASSUMED.md#A-BG95-BOOT
    PWRKEY_MS = (750, 1000, 5000)
    OFF_MS = 3000
    BANNERS = (b"RDY", b"APP RDY")  # "APP RDY": the application core takes AT commands
    POWER_OFF = ("AT+QPOWD=1", b"POWERED DOWN", 5000)  # OK, then POWERED DOWN
    POWER_DOWN_URC = b"POWERED DOWN"

    URCS = (
        (b"+CEREG:", "reg"),
        (b"+CGREG:", "reg"),
        (b"+CPIN:", "sim"),
        (b'+QIURC: "recv"', "sock_data"),  # +QIURC: "recv",<connectID> (buffer access mode)
        (b'+QIURC: "closed"', "sock_closed"),
        (b'+QIURC: "pdpdeact"', "pdp_down"),  # +QIURC: "pdpdeact",<contextID>
        (b'+QSSLURC: "recv"', "sock_data"),
        (b'+QSSLURC: "closed"', "sock_closed"),
        (b"+QIOPEN:", "sock_open"),  # +QIOPEN: <connectID>,<err> after OK
        (b"+QSSLOPEN:", "sock_open"),
        (b"+QIND:", "ind"),  # +QIND: SMS DONE, "csq", ...
        (b"+QUSIM:", "sim"),
        (b"+CTZV:", "time"),
        (b"+CTZE:", "time"),
    )

    def select_slot(self, slot):
        # the SIM slot (0 or 1): AT+QDSIM? / AT+QDSIM=<slot> (Particle device-os's Quectel client
        # selects slot 1 with AT+QDSIM=0); the card is read at the next start, so a change restarts
        # the module (AT+CFUN=1,1). True when it restarts. ASSUMED docs/ASSUMED.md#A-QDSIM-RESTART
        r = self.at.cmd("AT+QDSIM?", timeout_ms=_T)
        for ln in r.lines:
            if ln[ln.find(b":") + 1:].strip() == str(slot).encode():
                return False
        self.at.cmd("AT+QDSIM=%d" % slot, timeout_ms=_T)
        self.events = []
        self.synced = False  # the restart below is the firmware's own: no reboot to report
        self.at.cmd("AT+CFUN=1,1", timeout_ms=15000)
        # the restart's ready banner (bg96 transcript: OK, POWERED DOWN, ... RDY), then AT
        self.wait_event(("boot",), self.power_config()[4], self.BANNERS[-1])
        return True

    PDP_UP = (("AT+QIACT=1", (), 150000),)  # up to 150 s (TCP/IP AN maximum response time)
    PDP_DOWN = (("AT+QIDEACT=1", (), 40000),)

    # the modem's own sleep (UART sleep controlled by DTR): AT+QSCLK=1 (TinyGSM
    # TinyGsmClientBG96.h sleepEnableImpl); optional, the network reports a refusal
    SLEEP = (("AT+QSCLK=1", (), _T, OPT),)

    def signal(self):
        # the band: +QNWINFO: <act>,<oper>,<band>,<channel>, e.g. "LTE BAND 20" ("No Service" when
        # not registered); layout ASSUMED docs/ASSUMED.md#A-BAND-READS
        out = {}
        r = self.at.cmd("AT+QNWINFO", timeout_ms=_T)
        for ln in r.lines:
            f = ln.split(b",")
            if len(f) >= 3:
                out["band"] = band_number(f[2])
        # SINR: +QCSQ: <sysmode>,<lte_rssi>,<lte_rsrp>,<lte_sinr>,<lte_rsrq> on eMTC / NB-IoT
        # ("GSM" gives one value, "NOSERVICE" none); <lte_sinr> is in 1/5 dB from 0 (-20 dB) to 250
        # (+30 dB): dB = value / 5 - 20 (BG96 AT manual as quoted by Quectel's support, forum
        # thread 54722 "AT+QCSQ command conversion", with the BG96 answer "CAT-M1",-91,-129,67,-20)
        r = self.at.cmd("AT+QCSQ", timeout_ms=_T)
        for ln in r.lines:
            f = ln.split(b",")
            if len(f) >= 5:
                out["sinr"] = int(f[3]) / 5 - 20
        return out

    def band_args(self, bands):
        m = 0
        for b in bands:
            m |= 1 << (b - 1)
        return {"mask": "%x" % m}

    # ---- sockets: QI* for TCP/UDP, QSSL* for TLS (SSL context {ssl_ctx}, see Modem.SSL_CTX) ----
    SOCKET_IDS = (0, 12)  # connectID 0..11; SSL clientID 0..11, SSL context 0..5
    # sslversion 3 = TLS 1.2, seclevel 0 = no server check (until the credentials issue sets
    # cacert / seclevel 1); ciphersuite 0xFFFF = all
    SOCKET_SETUP = {
        "tls": (('AT+QSSLCFG="sslversion",{ssl_ctx},3', (), _T),
                ('AT+QSSLCFG="ciphersuite",{ssl_ctx},0xFFFF', (), _T),
                ('AT+QSSLCFG="seclevel",{ssl_ctx},0', (), _T)),
        # BG95 firmware with DTLS takes it per SSL context ("dtls" / "dtlsversion"; both names in a
        # BG95-M3's AT+QSSLCFG=? answer); the version numbering, the open and any PSK setting
        # ASSUMED docs/ASSUMED.md#A-BG95-DTLS (not used by LwM2M: no PSK_TABLE)
        "dtls": (('AT+QSSLCFG="dtls",{ssl_ctx},1', (), _T),
                 ('AT+QSSLCFG="dtlsversion",{ssl_ctx},2', (), _T),
                 ('AT+QSSLCFG="seclevel",{ssl_ctx},0', (), _T)),
    }
    # AT+QIOPEN=<contextID>,<connectID>,"TCP"|"UDP",<host>,<port>,<local port 0>,<access mode 0
    # = buffer>: OK, then +QIOPEN: <connectID>,<err> (0 = connected)
    OPEN = {
        "tcp": 'AT+QIOPEN=1,{sid},"{proto}","{host}",{port},0,0',
        "udp": 'AT+QIOPEN=1,{sid},"{proto}","{host}",{port},0,0',
        "tls": 'AT+QSSLOPEN=1,{ssl_ctx},{sid},"{host}",{port},0',
        "dtls": 'AT+QSSLOPEN=1,{ssl_ctx},{sid},"{host}",{port},0',
    }
    OPEN_TIMEOUT = 150000
    OPEN_RESULT = {"tcp": b"+QIOPEN:", "udp": b"+QIOPEN:", "tls": b"+QSSLOPEN:", "dtls": b"+QSSLOPEN:"}
    # "> " prompt, payload, then SEND OK / SEND FAIL
    SEND = {"tcp": "AT+QISEND={sid},{n}", "udp": "AT+QISEND={sid},{n}",
            "tls": "AT+QSSLSEND={sid},{n}", "dtls": "AT+QSSLSEND={sid},{n}"}
    SEND_FINALS = (b"SEND OK",)
    SEND_FAILS = (b"SEND FAIL",)
    # +QIRD: <len>[,<remote ip>,<port>] CR LF <bytes> CR LF OK ("+QIRD: 0" when empty).
    # AT+QIRD=<connectID>,0 is the query form: +QIRD: <total_receive_length>,<have_read_length>,
    # <unread_length> then OK, no payload (BG96 TCP/IP Application Note, AT+QIRD; BG95&BG77&BG600L
    # TCP/IP Application Note 2.3.8 and its example "AT+QIRD=0,0 / +QIRD: 5,5,0 / OK"; TinyGSM's
    # TinyGsmClientBG96.h modemGetAvailable reads it the same way): the rule names that form
    RECV = {"tcp": "AT+QIRD={sid},{n}", "udp": "AT+QIRD={sid},{n}",
            "tls": "AT+QSSLRECV={sid},{n}", "dtls": "AT+QSSLRECV={sid},{n}"}
    RECV_DATA = {"tcp": (b"+QIRD:", 0, False, b",0"), "udp": (b"+QIRD:", 0, False, b",0"),
                 "tls": (b"+QSSLRECV:", 0, False), "dtls": (b"+QSSLRECV:", 0, False)}
    CLOSE = {"tcp": "AT+QICLOSE={sid}", "udp": "AT+QICLOSE={sid}",
             "tls": "AT+QSSLCLOSE={sid}", "dtls": "AT+QSSLCLOSE={sid}"}


class BG96(BG95):
    NAME = "bg96"
    CGMM, ATI = MODELS[NAME][2:]
    # bg96 transcript: only "RDY" before the first answer to AT (no APP RDY)
    BANNERS = (b"RDY",)
    # PWRKEY: the BG96 turns on with a shorter pulse (>= 100 ms, ASSUMED docs/ASSUMED.md#A-BG96-PWRKEY);
    # the BG95 defaults satisfy both
    # no DTLS in the BG96 SSL command set: BG96 SSL AT Commands Manual V1.0 (2017-11-07),
    # AT+QSSLCFG's settings are sslversion (SSL3.0..TLS1.2), ciphersuite (no PSK), certificates,
    # seclevel, ignorelocaltime, negotiatetime
    SOCKET_SETUP = {"tls": BG95.SOCKET_SETUP["tls"]}
    OPEN = {"tcp": BG95.OPEN["tcp"], "udp": BG95.OPEN["udp"], "tls": BG95.OPEN["tls"]}

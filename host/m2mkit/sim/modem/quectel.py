"""Quectel dialects: BG95 (BG95-M3), and BG96 as its sibling.

Sources: Quectel BG95&BG77&BG600L Series AT Commands Manual, BG95&BG77&BG600L TCP/IP Application
Note, BG96 TCP/IP AT Commands Manual, BG96 SSL Application Note; the transcripts
bg77_udp-qiopen-qisend-qird-dotted, bg96_qiopen-qisend-qiurc-recv and bg96_boot-rdy-pdpdeact-echo
for the exact bytes. Unsourced facts cite their entry in docs/ASSUMED.md.
"""

from . import dns
from .core import NO_FINAL, Card, CmeError, Malformed, Modem
from .netsock import OpenError


def qfupl_checksum(data):
    """The 16-bit XOR of the data taken as big-endian words (an odd last byte is the high byte)."""
    c = 0
    for i in range(0, len(data), 2):
        c ^= (data[i] << 8) | (data[i + 1] if i + 1 < len(data) else 0)
    return c


class BG95(Modem):
    MODEL = "bg95"
    MANUFACTURER = "Quectel"
    CGMM = "BG95-M3"
    CGMR = "BG95M3LAR02A03"
    ATI = ("Quectel", "BG95-M3", "Revision: BG95M3LAR02A03")
    TAC_BASE = "866349"
    BOOT_TIME = 4.0  # ASSUMED docs/ASSUMED.md#A-BG95-BOOT
    # bg77 transcript: "\r\nRDY\r\n\r\nAPP RDY\r\n"
    BANNER = ((0, "RDY"), (1.5, "APP RDY"))
    SIM_INIT_TIME = 1.0
    PWRKEY_ON_MIN = 0.5  # 500-1000 ms turns it on
    PWRKEY_OFF_MIN = 0.65  # 650-1500 ms turns it off (BG95 Series Hardware Design 3.6.2.1)
    POWER_DOWN_URCS = ("POWERED DOWN",)
    CREG_FOLLOWS_EPS = True  # bg77 transcript: +CREG: 0,5 and +CEREG: 0,5
    ECHO_PAYLOAD = True  # bg77 transcript: the payload after "> " comes back before SEND OK
    LATENCY = dict(Modem.LATENCY, **{"+QIACT": 0.5, "+QICLOSE": 0.2, "+QSSLCLOSE": 0.2})
    MAX_SEND = 1460
    MAX_READ = 1500
    # +QIOPEN <err> (TCP/IP AN): 561 open PDP context failed, 563 identity used, 565 DNS parse
    # failed, 566 socket connect failed, 569 timeout.
    QIOPEN_ERR = {"refused": 566, "timeout": 569, "dns": 565, "no_pdp": 561, "tls": 566}
    # A TLS handshake that fails verification: +QSSLOPEN: <id>,-1 (the SSL AN lists only "non-zero
    # = failed"): ASSUMED docs/ASSUMED.md#A-QUECTEL-QSSLOPEN-ERR
    QSSLOPEN_TLS_ERR = -1

    def reset_dialect(self):
        self.qcfg = {"nwscanseq": "020301", "iotopmode": "2", "nwscanmode": "0",
                     "band": "0xf,0x100002000000000f0e189f,0x10004200000000090e189f"}
        self.qicsgp = {1: ["1", "", "", "", "0"]}
        self.qiact = set()
        self.ssl = {}  # ssl ctx -> dict
        # default "uart1", ASSUMED docs/ASSUMED.md#A-QUECTEL-URCPORT (the BG95 AT manual lists usbat /
        # usbmodem / uart1); URCs reach the simulated UART whatever the setting: routing them to a
        # USB port is not modelled
        self.urcport = "uart1"
        # two SIM slots where the test gives slot_cards {0: Card, 1: Card | None}: the card of the
        # slot AT+QDSIM selected (kept in NV) is the one read at each start
        cards = getattr(self, "slot_cards", None)
        if cards:
            c = cards.get(self.nv.get("qdsim", 0))
            if c is None:
                c = Card(None, "12345678", "", "")
                c.present = False
            self.card = c
            self.home_plmn = c.imsi[:5]

    def act(self):
        # "nwscanmode" 1: GSM only (mbed-os QUECTEL_BG96_CellularNetwork.cpp); else LTE by iotopmode
        if self.qcfg["nwscanmode"] == "1":
            return 0
        return 9 if self.qcfg["iotopmode"] == "1" else 7

    def apply_registration(self, state, act=None, **kw):
        # a cell of a RAT the scan mode leaves out is not found: a GSM-only network (act 0) while
        # "nwscanmode" is 3 (LTE only), an LTE one while it is 1 (GSM only)
        gsm_cell = act is not None and int(act) in (0, 3)
        mode = self.qcfg["nwscanmode"]
        if state in ("home", "roaming") and (gsm_cell and mode == "3" or not gsm_cell and mode == "1"):
            state, act = "searching", None
        super().apply_registration(state, act=act, **kw)

    def reg_stat_for(self, name):
        # registered on GSM: the EPS registration (+CEREG) is not (ASSUMED docs/ASSUMED.md#A-QUECTEL-GSM-CEREG)
        if name == "+CEREG" and self.registered() and self.current_act() in (0, 3):
            return 0
        return super().reg_stat_for(name)

    def at_QDSIM(self, cmd):
        # the SIM slot, 0 or 1, used from the next start (AT+CFUN=1,1): Particle device-os selects
        # slot 1 with AT+QDSIM=0; ASSUMED docs/ASSUMED.md#A-QDSIM-RESTART
        if cmd.kind == "read":
            self.info("+QDSIM: %d" % self.nv.get("qdsim", 0))
        elif cmd.kind == "test":
            self.info("+QDSIM: (0,1)")
        elif cmd.kind == "set":
            self.nv["qdsim"] = cmd.int(0, lo=0, hi=1)
        else:
            raise Malformed("QDSIM")

    def reset_urcs(self):
        return ("POWERED DOWN",)  # bg96 transcript: AT+CFUN=1,1 -> OK, POWERED DOWN, ... RDY

    def on_network_lost(self):
        for ctx in sorted(self.qiact):
            self.urc('+QIURC: "pdpdeact",%d' % ctx)
        self.qiact.clear()
        # the sockets of the context are dead; the host must still AT+QICLOSE them
        for s in list(self.sockets.values()):
            if s.state == "open":
                s.state = "peer_closed"
                s._close_transport()

    # ---- identity / power -------------------------------------------------------------------
    def at_QCCID(self, cmd):
        self.require_sim(ready=False)
        self.info("+QCCID: %s" % self.card.iccid)

    def at_QPOWD(self, cmd):
        if cmd.kind == "set":
            cmd.int(0, lo=0, hi=1)
        self.final_ok()
        self.spawn(self.power_down_later(self.POWER_DOWN_URCS))
        return NO_FINAL

    def at_QPINC(self, cmd):
        if cmd.kind in ("read", "set"):
            self.require_sim(ready=False)
            self.info('+QPINC: "SC",%d,%d' % (self.card.pin_left, self.card.puk_left))
            if cmd.kind == "read":
                self.info('+QPINC: "P2",3,10')

    def at_QCFG(self, cmd):
        if cmd.kind == "test":
            for k in self.qcfg:
                self.info('+QCFG: "%s"' % k)
            return
        if cmd.kind != "set":
            raise Malformed("QCFG")
        key = cmd.str(0).lower()
        if key not in self.qcfg:
            raise CmeError(50)
        if len(cmd) == 1:
            self.info('+QCFG: "%s",%s' % (key, self.qcfg[key]))
            return
        if key == "band":
            self.qcfg[key] = ",".join(cmd.str(i) for i in range(1, min(len(cmd), 4)))
        elif key == "nwscanseq":
            v = cmd.str(1)
            if not v.isdigit() or len(v) % 2:
                raise CmeError(50)
            self.qcfg[key] = v
        else:
            v = cmd.int(1, lo=0, hi=3)
            self.qcfg[key] = str(v)

    def at_QURCCFG(self, cmd):
        # AT+QURCCFG="urcport"[,"usbat"|"usbmodem"|"uart1"]
        if cmd.kind == "test":
            self.info('+QURCCFG: "urcport",("usbat","usbmodem","uart1")')
            return
        if cmd.kind != "set" or cmd.str(0).lower() != "urcport":
            raise Malformed("QURCCFG")
        if len(cmd) == 1:
            self.info('+QURCCFG: "urcport","%s"' % self.urcport)
            return
        port = cmd.str(1).lower()
        if port not in ("usbat", "usbmodem", "uart1"):
            raise CmeError(50)
        self.urcport = port

    def at_QNWINFO(self, cmd):
        if not self.registered():
            self.info("+QNWINFO: No Service")
            return
        rat = "eMTC" if self.current_act() == 7 else "NBIoT"
        self.info('+QNWINFO: "%s","%s","LTE BAND 20",6200' % (rat, self.serving[2]))

    def at_QCSQ(self, cmd):
        if self.csq()[0] == 99:
            self.info('+QCSQ: "NOSERVICE"')
            return
        s = self.signal
        rat = "eMTC" if self.current_act() == 7 else "NBIoT"
        # <lte_sinr> in 1/5 dB from 0 (-20 dB) to 250 (+30 dB) (BG96 AT manual as quoted on Quectel's
        # forum, thread 54722 "AT+QCSQ command conversion": dB = value / 5 - 20)
        sinr = max(0, min(250, int(round((s["sinr"] + 20) * 5))))
        self.info('+QCSQ: "%s",%d,%d,%d,%d' % (rat, s["rssi"], s["rsrp"], sinr, s["rsrq"]))

    # ---- PDP ---------------------------------------------------------------------------------
    def at_QICSGP(self, cmd):
        if cmd.kind != "set":
            if cmd.kind == "test":
                self.info('+QICSGP: (1-16),(1-3),<APN>,<username>,<password>,(0-3)')
                return
            raise Malformed("QICSGP")
        ctx = cmd.int(0, lo=1, hi=16)
        if len(cmd) == 1:
            v = self.qicsgp.get(ctx, ["1", "", "", "", "0"])
            self.info('+QICSGP: %s,"%s","%s","%s",%s' % tuple(v))
            return
        self.qicsgp[ctx] = [str(cmd.int(1, lo=1, hi=3)), cmd.str(2, ""), cmd.str(3, ""), cmd.str(4, ""),
                            str(cmd.int(5, 0, lo=0, hi=3))]

    async def at_QIACT(self, cmd):
        if cmd.kind == "read":
            for ctx in sorted(self.qiact):
                self.info('+QIACT: %d,1,1,"%s"' % (ctx, self.ip))
            return
        if cmd.kind == "test":
            self.info("+QIACT: (1-16)")
            return
        if cmd.kind != "set":
            raise Malformed("QIACT")
        ctx = cmd.int(0, lo=1, hi=16)
        if ctx in self.qiact:
            return
        if not self.registered():
            # real modems try for up to 150 s before giving up
            await self.clock.sleep(min(150.0, 10.0))
            if not self.registered():
                raise Malformed("no network")  # Quectel answers plain ERROR
        await self.clock.sleep(self.NET_RTT * 2)
        self.qiact.add(ctx)

    async def at_QIDEACT(self, cmd):
        ctx = cmd.int(0, lo=1, hi=16)
        for cid, s in list(self.sockets.items()):
            if s.extra.get("ctx") == ctx:
                await self.sock_close(cid)
        self.qiact.discard(ctx)

    # ---- file upload (CA certificate) ------------------------------------------------------------
    async def at_QFUPL(self, cmd):
        if cmd.kind != "set":
            raise Malformed("QFUPL")
        name = cmd.str(0)
        size = cmd.int(1, lo=1, hi=1 << 20)
        timeout = cmd.int(2, 5, lo=1, hi=600)
        cmd.int(3, 0, lo=0, hi=1)
        if name in self.nv_files:
            raise CmeError(407)  # file already exists
        self.info("CONNECT")
        self.flush_info()
        data = await self.read_payload(size, timeout=float(timeout))
        if data is None:
            raise CmeError(409)  # fail to write the file: ASSUMED docs/ASSUMED.md#A-QUECTEL-QFUPL-TIMEOUT
        self.nv_files[name] = data
        self.info("+QFUPL: %d,%x" % (len(data), qfupl_checksum(data)))

    def at_QFDEL(self, cmd):
        name = cmd.str(0)
        if name == "*":
            self.nv_files.clear()
        elif self.nv_files.pop(name, None) is None:
            raise CmeError(405)  # file not found

    def at_QFLST(self, cmd):
        for name, data in sorted(self.nv_files.items()):
            self.info('+QFLST: "%s",%d' % (name, len(data)))

    # ---- SSL configuration ------------------------------------------------------------------------
    # BG95 firmware with DTLS configures it per SSL context ("dtls" on/off, "dtlsversion"):
    # ASSUMED docs/ASSUMED.md#A-BG95-DTLS; the settings are stored and read back, DTLS sockets are
    # not modelled
    DTLS_KEYS = ("dtls", "dtlsversion")

    def at_QSSLCFG(self, cmd):
        if cmd.kind != "set":
            raise Malformed("QSSLCFG")
        what = cmd.str(0).lower()
        ctx = cmd.int(1, lo=0, hi=5)
        c = self.ssl.setdefault(ctx, {"sslversion": "4", "seclevel": "0", "cacert": "",
                                      "ciphersuite": "0xFFFF", "ignorelocaltime": "1"})
        if what not in ("sslversion", "seclevel", "cacert", "ciphersuite", "ignorelocaltime",
                        "clientcert", "clientkey", "negotiatetime", "sni", "checkhost") + self.DTLS_KEYS:
            raise CmeError(50)
        if len(cmd) == 2:
            v = c.get(what, "")
            q = '"%s"' % v if what in ("cacert", "clientcert", "clientkey") else v
            self.info('+QSSLCFG: "%s",%d,%s' % (what, ctx, q))
            return
        if what == "seclevel":
            c[what] = str(cmd.int(2, lo=0, hi=2))
        else:
            c[what] = cmd.str(2)

    def _tls_for(self, ctx):
        c = self.ssl.get(ctx, {"seclevel": "0", "cacert": ""})
        if c.get("seclevel", "0") == "0":
            t = self.tls_context(None, verify=False)
        else:
            # seclevel 2: server and client authentication, the client presenting "clientcert" with
            # "clientkey" (Quectel MQTT application note, "Example of MQTT Operation with SSL")
            client = None
            if c.get("seclevel") == "2":
                client = (self.nv_files.get(c.get("clientcert", "")), self.nv_files.get(c.get("clientkey", "")))
            t = self.tls_context(self.nv_files.get(c.get("cacert", "")) or b"", verify=True, client=client)
        if c.get("sslversion") == "3":  # TLS 1.2 only, ASSUMED docs/ASSUMED.md#A-MODEM-TLS12
            import ssl

            t.minimum_version = t.maximum_version = ssl.TLSVersion.TLSv1_2
        return t

    # ---- DNS (dns.py) ----
    async def at_QIDNSGIP(self, cmd):
        await dns.at_QIDNSGIP(self, cmd)

    # ---- sockets -------------------------------------------------------------------------------
    async def _open(self, urc, conn_id, ctx, proto, host, port, access, tls=None):
        if conn_id in self.sockets:
            self.spawn(self._later(0.01, self.urc, "%s: %d,563" % (urc, conn_id)))
            return
        if ctx not in self.qiact:
            self.spawn(self._later(0.05, self.urc, "%s: %d,%d" % (urc, conn_id, self.QIOPEN_ERR["no_pdp"])))
            return
        self.final_ok()
        try:
            s = await self.sock_open(conn_id, proto, host, port, tls_context=tls,
                                     server_hostname=None if host[:1].isdigit() else host)
        except OpenError as e:
            err = self.QIOPEN_ERR.get(e.reason, 566)
            if e.reason == "tls":
                err = self.QSSLOPEN_TLS_ERR
            self.urc("%s: %d,%d" % (urc, conn_id, err))
            return NO_FINAL
        s.extra.update(ctx=ctx, access=access, ssl=tls is not None)
        self.urc("%s: %d,0" % (urc, conn_id))
        return NO_FINAL

    async def at_QIOPEN(self, cmd):
        if cmd.kind != "set":
            raise Malformed("QIOPEN")
        ctx = cmd.int(0, lo=1, hi=16)
        conn_id = cmd.int(1, lo=0, hi=11)
        svc = cmd.str(2).upper()
        host = cmd.str(3)
        port = cmd.int(4, lo=0, hi=65535)
        cmd.int(5, 0, lo=0, hi=65535)
        access = cmd.int(6, 0, lo=0, hi=2)
        if svc not in ("TCP", "UDP"):
            # "TCP LISTENER" / "UDP SERVICE" are not modeled
            raise CmeError(4 if svc in ("TCP LISTENER", "UDP SERVICE", "TCP INCOMING") else 50)
        if access == 2:
            raise CmeError(4)  # transparent access mode is not modeled
        return await self._open("+QIOPEN", conn_id, ctx, svc.lower(), host, port, access)

    async def at_QSSLOPEN(self, cmd):
        if cmd.kind != "set":
            raise Malformed("QSSLOPEN")
        ctx = cmd.int(0, lo=1, hi=16)
        sslctx = cmd.int(1, lo=0, hi=5)
        conn_id = cmd.int(2, lo=0, hi=11)
        host = cmd.str(3)
        port = cmd.int(4, lo=1, hi=65535)
        access = cmd.int(5, 0, lo=0, hi=2)
        if access == 2:
            raise CmeError(4)
        if self.ssl.get(sslctx, {}).get("dtls") == "1":
            # DTLS sockets are not bridged by the simulator (not modelled): it says so, it does not pretend
            raise CmeError(4)
        return await self._open("+QSSLOPEN", conn_id, ctx, "tcp", host, port, access, tls=self._tls_for(sslctx))

    async def _send(self, cmd, ssl_cmd):
        if cmd.kind != "set":
            raise Malformed("send")
        conn_id = cmd.int(0, lo=0, hi=11)
        s = self.sockets.get(conn_id)
        if len(cmd) >= 2 and cmd.int(1) == 0 and not ssl_cmd:
            if s is None:
                raise CmeError(3)
            self.info("+QISEND: %d,%d,0" % (s.tx_total, s.tx_total))
            return
        n = cmd.int(1, None, lo=1, hi=self.MAX_SEND)
        if s is None or bool(s.extra.get("ssl")) != ssl_cmd:
            raise Malformed("no such socket")  # Quectel: ERROR
        if s.state != "open":
            raise Malformed("socket closed")
        self.emit(self.PROMPT)
        data = await self.read_payload(n, ctrl_z=n is None, max_len=self.MAX_SEND)
        if data is None:
            return "SEND FAIL" if n is None else NO_FINAL
        try:
            await self.sock_send(s, data)
        except (ConnectionError, OSError):
            return "SEND FAIL"
        return "SEND OK"

    async def at_QISEND(self, cmd):
        return await self._send(cmd, False)

    async def at_QSSLSEND(self, cmd):
        return await self._send(cmd, True)

    def _read(self, cmd, ssl_cmd, name):
        if cmd.kind != "set":
            raise Malformed("read")
        conn_id = cmd.int(0, lo=0, hi=11)
        s = self.sockets.get(conn_id)
        if s is None or bool(s.extra.get("ssl")) != ssl_cmd:
            raise Malformed("no such socket")  # bg96 transcript: QIRD on a closed id -> ERROR
        if s.extra.get("access") == 1:
            raise CmeError(3)
        n = cmd.int(1, self.MAX_READ, lo=0, hi=self.MAX_READ)
        if n == 0:
            # the query form, AT+QSSLRECV=<id>,0 too: total, read, unread (TinyGSM
            # TinyGsmClientBG96.h modemGetAvailable reads both commands this way)
            self.info("%s: %d,%d,%d" % (name, s.rx_total, s.rx_read, s.available()))
            return
        data = self.sock_read(s, n)
        if not data:
            self.info("%s: 0" % name)
        else:
            self.info(b"%s: %d\r\n" % (name.encode(), len(data)) + data)

    def at_QIRD(self, cmd):
        return self._read(cmd, False, "+QIRD")

    def at_QSSLRECV(self, cmd):
        return self._read(cmd, True, "+QSSLRECV")

    async def at_QICLOSE(self, cmd):
        conn_id = cmd.int(0, lo=0, hi=11)
        cmd.int(1, 10, lo=0, hi=65535)
        s = self.sockets.get(conn_id)
        if s is not None and not s.extra.get("ssl"):
            await self.sock_close(conn_id)
        # closing an unused id is OK on Quectel

    async def at_QSSLCLOSE(self, cmd):
        conn_id = cmd.int(0, lo=0, hi=11)
        s = self.sockets.get(conn_id)
        if s is not None and s.extra.get("ssl"):
            await self.sock_close(conn_id)

    def _state_line(self, name, s):
        st = {"opening": 1, "open": 2, "peer_closed": 4}.get(s.state, 4)
        svc = s.proto.upper() if name == "+QISTATE" else "SSL"
        return '%s: %d,"%s","%s",%d,%d,%d,%d,%d,%d,"uart1"' % (
            name, s.conn_id, svc, s.host, s.port, s.local_port, st, s.extra.get("ctx", 1),
            0 if name == "+QISTATE" else s.extra.get("ctx", 1), s.extra.get("access", 0))

    def at_QISTATE(self, cmd):
        sel = None
        if cmd.kind == "set":
            qtype = cmd.int(0, lo=0, hi=1)
            val = cmd.int(1)
            sel = (qtype, val)
        for cid in sorted(self.sockets):
            s = self.sockets[cid]
            if s.extra.get("ssl"):
                continue
            if sel and ((sel[0] == 1 and cid != sel[1]) or (sel[0] == 0 and s.extra.get("ctx") != sel[1])):
                continue
            self.info(self._state_line("+QISTATE", s))

    def at_QSSLSTATE(self, cmd):
        for cid in sorted(self.sockets):
            s = self.sockets[cid]
            if s.extra.get("ssl"):
                self.info(self._state_line("+QSSLSTATE", s))

    def on_sock_data(self, s, n):
        if s.extra.get("ssl"):
            self.urc('+QSSLURC: "recv",%d' % s.conn_id)
        elif s.extra.get("access") == 1:
            data = self.sock_read(s, 1 << 20)
            self.urc(b'+QIURC: "recv",%d,%d\r\n' % (s.conn_id, len(data)) + data)
        else:
            self.urc('+QIURC: "recv",%d' % s.conn_id)

    def on_sock_closed(self, s):
        self.urc('+%s: "closed",%d' % ("QSSLURC" if s.extra.get("ssl") else "QIURC", s.conn_id))


class BG96(BG95):
    """BG96: the BG95's elder sibling. Identity, banner and timing differ."""

    MODEL = "bg96"
    CGMM = "BG96"
    # no DTLS: BG96 SSL AT Commands Manual V1.0 (2017-11-07), AT+QSSLCFG's test answer has no
    # "dtls" / "dtlsversion" (wwxxyx/Quectel_BG96 BG96/Software/)
    DTLS_KEYS = ()
    CGMR = "BG96MAR02A07M1G"  # bg96 transcript
    ATI = ("Quectel", "BG96", "Revision: BG96MAR02A07M1G")
    BOOT_TIME = 4.9  # ASSUMED docs/ASSUMED.md#A-BG96-PWRKEY
    # No 3GPP TS 27.007 logical-channel commands: the BG96 AT Commands Manual V2.2 (2018-09-25;
    # wwxxyx/Quectel_BG96 BG96/Software/) lists in chapter 5 "(U)SIM Related Commands" AT+CIMI,
    # +CLCK, +CPIN, +CPWD, +CRSM, +QCCID, +QPINC, +QINISTAT, +QSIMDET, +QSIMSTAT, and AT+CCHO /
    # AT+CGLA / AT+CCHC nowhere (V2.1 also deleted AT+CSIM). Unknown commands answer ERROR
    # (euicc.py _supported): the firmware reports esim.unsupported.
    LOGICAL_CHANNELS = False
    # bg96 transcript shows RDY only before the first AT; BG96 also reports the SIM and
    # SMS init as URCs after it: ASSUMED docs/ASSUMED.md#A-BG96-BANNER
    BANNER = ((0, "RDY"), (1.0, "+CFUN: {cfun}"), (0.3, "+CPIN: {cpin}"), (0.2, "+QUSIM: 1"),
              (2.0, "+QIND: SMS DONE{ready_only}"))
    PWRKEY_ON_MIN = 0.1  # BG96: >= 100 ms turns it on, ASSUMED docs/ASSUMED.md#A-BG96-PWRKEY
    PWRKEY_OFF_MIN = 0.65  # >= 650 ms (BG95&BG96 Compatible Design 4.3.2)

    def reset_dialect(self):
        super().reset_dialect()
        self.qcfg["nwscanseq"] = "020301"
        self.qcfg["band"] = "0xf,0x400a0e189f,0xa0e189f"

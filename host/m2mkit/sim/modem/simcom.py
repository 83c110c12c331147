"""SIMCom dialects: SIM7080G, and SIM7000G as its sibling.

Sources: SIM7080 Series AT Command Manual and SIM7000 Series AT Command Manual (V1.06) for the
command set; the transcripts in shared/at-transcripts (sim7000e, sim7000g, sim7080g) and public
issue logs for the exact wording. Unsourced facts cite their entry in docs/ASSUMED.md.
"""

import ssl
import time

from . import card
from . import dns
from .core import NO_FINAL, CmeError, Malformed, Modem
from .netsock import DtlsPsk, OpenError


class SIM7080G(Modem):
    MODEL = "sim7080g"
    MANUFACTURER = "SIMCOM INCORPORATED"
    CGMM = "SIMCOM_SIM7080"  # on the wire (LilyGO T-SIM7080G issue #44; Zephyr's driver expects it exactly)
    CGMR = "Revision:1951B17SIM7080"  # as printed by a LilyGO T-SIM7080G (issue log)
    ATI = ("SIM7080 R1951.17",)  # ASSUMED docs/ASSUMED.md#A-SIMCOM-ATI
    TAC_BASE = "860016"
    BOOT_TIME = 3.5  # ASSUMED docs/ASSUMED.md#A-SIM7080-BOOT
    BANNER = ((0, "RDY"), (0.4, "+CFUN: {cfun}"), (0.3, "+CPIN: {cpin}"), (2.0, "SMS Ready{ready_only}"))
    SIM_INIT_TIME = 1.0
    PWRKEY_ON_MIN = 1.0  # PWRKEY low >= 1 s turns it on
    PWRKEY_OFF_MIN = 1.2  # >= 1.2 s turns it off
    POWER_DOWN_URCS = ("NORMAL POWER DOWN",)
    CREG_FOLLOWS_EPS = False  # sim7000e transcript: +CREG: 0,0 while +CGREG/+CEREG are 1
    LATENCY = dict(Modem.LATENCY, **{"+CNACT": 0.5, "+CACLOSE": 0.2})
    MAX_SOCKETS = 13  # <cid> 0..12
    MAX_SEND = 1460
    MAX_READ = 1460
    # +CAOPEN <result> codes (SIM7080 manual): 0 ok, 20 DNS, 21 network not active, 23 remote
    # refused, 27 connect failed. A failed TLS verification or DTLS handshake: 27,
    # ASSUMED docs/ASSUMED.md#A-SIMCOM-CAOPEN-TLS
    CAOPEN_RESULT = {"refused": 23, "timeout": 27, "dns": 20, "tls": 27, "no_pdp": 21}
    # No 3GPP TS 27.007 logical-channel commands: the SIM7070_SIM7080_SIM7090 Series AT Command
    # Manual V1.05 (2022-01-21; Xinyuan-LilyGO/LilyGO-T-SIM7000G docs/SIM7070/) lists in 3.1 its
    # 27.007 commands, of the SIM-access ones only AT+CRSM and AT+CSIM; AT+CCHO / AT+CGLA / AT+CCHC
    # appear nowhere in it. An unknown command answers a bare ERROR (euicc.py _supported), so the
    # firmware's AT+CCHO=? probe reports esim.unsupported.
    LOGICAL_CHANNELS = False

    def reset_dialect(self):
        self.cnmp = 2
        self.cmnb = 1
        self.bands = {"CAT-M": "1,2,3,4,5,8,12,13,14,18,19,20,25,26,27,28,66,85",
                      "NB-IOT": "1,2,3,4,5,8,12,13,18,19,20,25,26,28,66,71,85"}
        self.app_pdp = {}  # pdp index -> active
        self.cncfg = {}  # pdp index -> (ip type, apn, user, password, auth)
        self.cacid = 0
        self.ssl_cfg = {}  # cid -> {"ssl": 0/1, "ctx": n, "cacert": name, "cert": client cert name}
        self.client_certs = {}  # client certificate name -> (cert PEM, key PEM), from "convert",1
        self.ssl_ctx = {}  # ctx -> {"sslversion": n}
        self.fs_open = False
        self.converted = set()

    def act(self):
        return 9 if self.cmnb == 2 else 7

    def on_sim_ready(self, at_boot=False):
        if not at_boot:
            self.spawn(self._later(1.0, self.urc, "SMS Ready"))

    def on_registered(self):
        # NITZ arrives shortly after attach (the sim7000g transcript reacts to DST: and *PSUTTZ:).
        # Wording "*PSUTTZ: yy/MM/dd,hh:mm:ss","+tz",dst: ASSUMED docs/ASSUMED.md#A-SIMCOM-PSUTTZ
        def nitz():
            tm = time.gmtime(self.clock.wall0 + self.clock.now())
            self.urc('*PSUTTZ: %s","+00",0' % time.strftime("%y/%m/%d,%H:%M:%S", tm))
            self.urc("DST: 0")
        self.spawn(self._later(1.5, nitz))

    def on_network_lost(self):
        for idx in sorted(self.app_pdp):
            if self.app_pdp[idx]:
                self.urc(self.app_pdp_urc(idx, False))
        self.app_pdp = {}
        self.pdp_deactivated()

    def app_pdp_urc(self, idx, active):
        return "+APP PDP: %d,%s" % (idx, "ACTIVE" if active else "DEACTIVE")

    # ---- identity -----------------------------------------------------------------------------
    at_SPIC = card.at_SPIC  # PIN / PUK tries left

    def at_CCID(self, cmd):
        self.require_sim(ready=False)
        self.info(self.card.iccid)

    def at_CPOWD(self, cmd):
        if cmd.kind != "set" or cmd.int(0, lo=0, hi=1) not in (0, 1):
            raise Malformed("CPOWD")
        # no OK: the answer is the goodbye line
        self.spawn(self.power_down_later(self.POWER_DOWN_URCS))
        return NO_FINAL

    # ---- radio --------------------------------------------------------------------------------
    def at_CNMP(self, cmd):
        if cmd.kind == "read":
            self.info("+CNMP: %d" % self.cnmp)
        elif cmd.kind == "test":
            self.info("+CNMP: (2,13,38,51)")
        elif cmd.kind == "set":
            v = cmd.int(0)
            if v not in (2, 13, 38, 51):
                raise CmeError(50)
            self.cnmp = v
        else:
            raise Malformed("CNMP")

    def at_CMNB(self, cmd):
        if cmd.kind == "read":
            self.info("+CMNB: %d" % self.cmnb)
        elif cmd.kind == "test":
            self.info("+CMNB: (1-3)")
        elif cmd.kind == "set":
            self.cmnb = cmd.int(0, lo=1, hi=3)
        else:
            raise Malformed("CMNB")

    def at_CBANDCFG(self, cmd):
        if cmd.kind == "read":
            for mode, bands in self.bands.items():
                self.info('+CBANDCFG: "%s",%s' % (mode, bands))
        elif cmd.kind == "test":
            self.info('+CBANDCFG: "CAT-M","NB-IOT"')
        elif cmd.kind == "set":
            mode = cmd.str(0).upper()
            if mode not in self.bands or len(cmd) < 2:
                raise CmeError(50)
            self.bands[mode] = ",".join(str(cmd.int(i, lo=1, hi=88)) for i in range(1, len(cmd)))
        else:
            raise Malformed("CBANDCFG")

    def at_CPSI(self, cmd):
        if cmd.kind != "read":
            raise Malformed("CPSI")
        if self.cfun != 1 or not self.registered() or self.serving is None:
            self.info("+CPSI: NO SERVICE,Online")
            return
        plmn = self.serving[2]
        sysmode = "LTE NB-IOT" if self.current_act() == 9 else "LTE CAT-M1"
        s = self.signal
        # the last field is RSSNR: SINR dB = 2 x RSSNR - 20 (Zephyr's SIM7080 driver,
        # drivers/modem/simcom/sim7080/sim7080_meas.c)
        self.info("+CPSI: %s,Online,%s-%s,0x%s,%d,257,EUTRAN-BAND20,6300,3,3,%d,%d,%d,%d" % (
            sysmode, plmn[:3], plmn[3:], self.cell["tac"], int(self.cell["ci"], 16),
            s["rsrq"], s["rsrp"], s["rssi"], int(round((s["sinr"] + 20) / 2))))

    # ---- app network ----------------------------------------------------------------------------
    async def at_CNACT(self, cmd):
        if cmd.kind == "read":
            for idx in range(4):
                on = self.app_pdp.get(idx, False)
                self.info('+CNACT: %d,%d,"%s"' % (idx, int(on), self.ip if on else "0.0.0.0"))
            return
        if cmd.kind == "test":
            self.info("+CNACT: (0-3),(0-2)")
            return
        if cmd.kind != "set":
            raise Malformed("CNACT")
        idx = cmd.int(0, lo=0, hi=3)
        action = cmd.int(1, lo=0, hi=2)
        if action:
            if self.app_pdp.get(idx):
                raise CmeError(3)  # ASSUMED docs/ASSUMED.md#A-SIMCOM-CNACT-TWICE
            if not self.registered():
                raise CmeError(3)
            self.app_pdp[idx] = True
            self.spawn(self._later(self.NET_RTT * 2, self.urc, self.app_pdp_urc(idx, True)))
        else:
            if not self.app_pdp.get(idx):
                raise CmeError(3)
            self.app_pdp[idx] = False
            for cid, s in list(self.sockets.items()):
                if s.extra.get("pdp") == idx:
                    await self.sock_close(cid)
            self.spawn(self._later(self.NET_RTT, self.urc, self.app_pdp_urc(idx, False)))

    # ---- file system (certificate upload) -------------------------------------------------------
    def at_CNCFG(self, cmd):
        # AT+CNCFG=<pdpidx>,<ip_type>[,<APN>[,<user>,<password>[,<auth>]]]: the app network's
        # APN and credentials (SIM7080 manual; "if needed" before AT+CNACT)
        if cmd.kind == "read":
            for idx in sorted(self.cncfg):
                ip_type, apn, user, pw, auth = self.cncfg[idx]
                self.info('+CNCFG: %d,%d,"%s","%s","%s",%d' % (idx, ip_type, apn, user, pw, auth))
            return
        if cmd.kind != "set":
            raise Malformed("CNCFG")
        idx = cmd.int(0, lo=0, hi=3)
        self.cncfg[idx] = (cmd.int(1, lo=0, hi=3), cmd.str(2, ""), cmd.str(3, ""), cmd.str(4, ""),
                           cmd.int(5, 0, lo=0, hi=3))

    def at_CFSINIT(self, cmd):
        if self.fs_open:
            raise CmeError(3)
        self.fs_open = True

    def at_CFSTERM(self, cmd):
        self.fs_open = False

    async def at_CFSWFILE(self, cmd):
        if cmd.kind != "set":
            raise Malformed("CFSWFILE")
        if not self.fs_open:
            raise CmeError(3)
        cmd.int(0, lo=0, hi=4)
        name = cmd.str(1)
        mode = cmd.int(2, lo=0, hi=1)
        size = cmd.int(3, lo=1, hi=10240)
        timeout_ms = cmd.int(4, 10000, lo=100, hi=10000)
        self.info("DOWNLOAD")
        self.flush_info()
        data = await self.read_payload(size, timeout=timeout_ms / 1000.0)
        if data is None:
            raise CmeError(100)
        self.nv_files[name] = (self.nv_files.get(name, b"") if mode == 1 else b"") + data
        self.converted.discard(name)
        self.client_certs.pop(name, None)

    def at_CFSGFIS(self, cmd):
        name = cmd.str(1)
        if not self.fs_open or name not in self.nv_files:
            raise CmeError(3)
        self.info("+CFSGFIS: %d" % len(self.nv_files[name]))

    def at_CFSDFILE(self, cmd):
        name = cmd.str(1)
        if not self.fs_open or self.nv_files.pop(name, None) is None:
            raise CmeError(3)

    # ---- SSL configuration ------------------------------------------------------------------------
    def at_CSSLCFG(self, cmd):
        if cmd.kind == "test":
            self.info('+CSSLCFG: "SSLVERSION",(0-5),(0-5)')  # AT Command Manual V1.05 AT+CSSLCFG=?
            return
        if cmd.kind != "set":
            raise Malformed("CSSLCFG")
        what = cmd.str(0).lower()
        if what == "convert":
            kind = cmd.int(1, lo=1, hi=3)
            name = cmd.str(2)
            data = self.nv_files.get(name)
            if data is None or (kind == 2 and not self.valid_pem_cert(data)):
                raise CmeError(3)
            if kind == 3:
                # <ssltype> 3 = PSK table: lines "<Identity>:<psk_key>", the key a hex string (SSL
                # Application Note V1.00 4.4); kept in the modem's own store, so the file may be
                # deleted after (as the note does); a malformed table CME 3, ASSUMED docs/ASSUMED.md#A-SIMCOM-DTLS-PSK
                self.nv.setdefault("psk_tables", {})[name] = self._psk_table(data)
            if kind == 1:
                # "convert",1,<cert>,<key>: a client certificate and its key (SIM7080 drivers: Zephyr's
                # drivers/modem/simcom-sim7080, DFRobot_SIM7000 SSL_ConfigCert), kept by the cert's name
                key = self.nv_files.get(cmd.str(3, ""))
                if key is None:
                    raise CmeError(3)
                self.client_certs[name] = (data, key)
            self.converted.add(name)
        elif what == "ctxindex":
            ctx = cmd.int(1, lo=0, hi=5)
            c = self.ssl_ctx.setdefault(ctx, {"sslversion": 3})
            self.info('+CSSLCFG: %d,%d,0x0000,0x0000,0x0000,0x0000,0x0000,0x0000,0x0000,0x0000,0,1,""'
                      % (ctx, c["sslversion"]))
        elif what in ("sslversion", "ciphersuite", "ignorertctime", "protocol", "sni", "ctxindex",
                      "maxfragmentlen", "emaxfragmentlen"):
            ctx = cmd.int(1, lo=0, hi=5)
            c = self.ssl_ctx.setdefault(ctx, {"sslversion": 3})
            if len(cmd) < 3:
                raise Malformed("CSSLCFG value")
            c[what] = cmd.str(2)
        else:
            raise CmeError(50)

    @staticmethod
    def _psk_table(data):
        rows = []
        for line in data.decode("latin-1").splitlines():
            if not line.strip():
                continue
            ident, sep, hexkey = line.strip().rpartition(":")
            try:
                key = bytes.fromhex(hexkey)
            except ValueError:
                raise CmeError(3)
            if not sep or not ident or not key:
                raise CmeError(3)
            rows.append((ident, key))
        if not rows:
            raise CmeError(3)
        return rows

    def at_CACID(self, cmd):
        if cmd.kind == "read":
            self.info("+CACID: %d" % self.cacid)
        elif cmd.kind == "set":
            self.cacid = cmd.int(0, lo=0, hi=self.MAX_SOCKETS - 1)
        elif cmd.kind == "test":
            self.info("+CACID: (0-%d)" % (self.MAX_SOCKETS - 1))
        else:
            raise Malformed("CACID")

    def at_CASSLCFG(self, cmd):
        if cmd.kind == "read":
            for cid in sorted(self.ssl_cfg):
                c = self.ssl_cfg[cid]
                self.info('+CASSLCFG: %d,"SSL",%d,"CRINDEX",%d,"CACERT","%s"'
                          % (cid, c.get("ssl", 0), c.get("ctx", 0), c.get("cacert", "")))
            return
        if cmd.kind != "set":
            raise Malformed("CASSLCFG")
        cid = cmd.int(0, lo=0, hi=self.MAX_SOCKETS - 1)
        what = cmd.str(1).upper()
        c = self.ssl_cfg.setdefault(cid, {"ssl": 0, "ctx": 0, "cacert": "", "protocol": 0})
        if what == "SSL":
            c["ssl"] = cmd.int(2, lo=0, hi=1)
        elif what == "CRINDEX":
            c["ctx"] = cmd.int(2, lo=0, hi=5)
        elif what == "CACERT":
            c["cacert"] = cmd.str(2)
        elif what == "PROTOCOL":
            c["protocol"] = cmd.int(2, lo=0, hi=1)
        elif what == "PSKTABLE":
            c["psktable"] = cmd.str(2)  # a table converted with AT+CSSLCFG (AT Command Manual 12.2.2)
        elif what == "CERT":
            # a client certificate converted with "convert",1, which keeps its key under the
            # certificate's name (TinyGSM's SIM70xx client: AT+CASSLCFG=<mux>,"cert",<name>)
            c["cert"] = cmd.str(2)
        elif what == "SNI":
            cmd.str(2)
        else:
            raise CmeError(50)

    # ---- DNS (dns.py) ----
    async def at_CDNSGIP(self, cmd):
        await dns.at_CDNSGIP(self, cmd)

    # ---- CA* sockets ---------------------------------------------------------------------------
    def _tls_for(self, cid):
        c = self.ssl_cfg.get(cid)
        if not c or not c.get("ssl"):
            return None
        name = c.get("cacert")
        client = self.client_certs.get(c.get("cert"))
        if not name:
            # no CA configured: no server check, ASSUMED docs/ASSUMED.md#A-SIMCOM-TLS-NOCA
            ctx = self.tls_context(None, verify=False, client=client)
        else:
            pem = self.nv_files.get(name) if name in self.converted else None
            ctx = self.tls_context(pem or b"", verify=True, client=client)
        if str(self.ssl_ctx.get(c.get("ctx", 0), {}).get("sslversion")) == "3":
            # sslversion 3 is TLS 1.2 only: a broker that refuses the client's certificate fails the
            # handshake itself (RFC 5246 7.4.6), ASSUMED docs/ASSUMED.md#A-MODEM-TLS12
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _dtls_for(self, cid):
        # SSL on a UDP connection is DTLS: sslversion 5 (DTLS 1.2) or 4 (1.0) in its CRINDEX context
        # and a PSK table (TCPUDP(S) Application Note V1.03 5.2.4; AT Command Manual V1.05 AT+CSSLCFG);
        # the table's first identity is offered, another version fails, ASSUMED docs/ASSUMED.md#A-SIMCOM-DTLS-PSK
        c = self.ssl_cfg.get(cid)
        if not c or not c.get("ssl"):
            return None
        version = {"4": "1.0", "5": "1.2"}.get(str(self.ssl_ctx.get(c.get("ctx", 0), {}).get("sslversion")))
        rows = self.nv.get("psk_tables", {}).get(c.get("psktable", ""))
        if version is None or not rows:
            raise OpenError("tls", "no DTLS version or PSK table for connection %d" % cid)
        return DtlsPsk(rows[0][0], rows[0][1], version)

    async def _caopen(self, cid, pdp, proto, host, port):
        if cid in self.sockets:
            raise CmeError(3)
        if pdp is not None and not self.app_pdp.get(pdp):
            self.info("+CAOPEN: %d,%d" % (cid, self.CAOPEN_RESULT["no_pdp"]))
            return
        try:
            tls = self._tls_for(cid) if proto == "tcp" else self._dtls_for(cid)
        except OpenError as e:
            self.info("+CAOPEN: %d,%d" % (cid, self.CAOPEN_RESULT.get(e.reason, 27)))
            return
        try:
            s = await self.sock_open(cid, proto, host, port, tls_context=tls,
                                     server_hostname=None if host[:1].isdigit() else host)
        except OpenError as e:
            self.info("+CAOPEN: %d,%d" % (cid, self.CAOPEN_RESULT.get(e.reason, 27)))
            return
        s.extra["pdp"] = pdp
        self.info("+CAOPEN: %d,0" % cid)

    async def at_CAOPEN(self, cmd):
        if cmd.kind == "read":
            for cid in self._ca_ids():
                s = self.sockets[cid]
                self.info('+CAOPEN: %d,%d,"%s","%s",%d' % (cid, s.extra.get("pdp") or 0,
                                                           s.proto.upper(), s.host, s.port))
            return
        if cmd.kind != "set":
            raise Malformed("CAOPEN")
        cid = cmd.int(0, lo=0, hi=self.MAX_SOCKETS - 1)
        pdp = cmd.int(1, lo=0, hi=3)
        proto = cmd.str(2).upper()
        if proto not in ("TCP", "UDP"):
            raise CmeError(50)
        host = cmd.str(3)
        port = cmd.int(4, lo=1, hi=65535)
        cmd.int(5, 0, lo=0, hi=1)  # recv_mode 0 = buffer (modeled); 1 = direct, not modeled
        await self._caopen(cid, pdp, proto.lower(), host, port)

    async def at_CASEND(self, cmd):
        if cmd.kind != "set":
            raise Malformed("CASEND")
        cid = cmd.int(0, lo=0, hi=self.MAX_SOCKETS - 1)
        n = cmd.int(1, lo=1, hi=self.MAX_SEND)
        input_ms = cmd.int(2, 5000, lo=1, hi=100000)
        s = self.sockets.get(cid)
        if s is None or s.state != "open":
            raise CmeError(3)
        self.emit(self.PROMPT)
        data = await self.read_payload(n, timeout=input_ms / 1000.0)
        if data is None:
            raise CmeError(100)
        try:
            await self.sock_send(s, data)
        except (ConnectionError, OSError):
            raise CmeError(3)
        # after the OK: +CASEND: <cid>,<result 0 = sent>,<sendlen> (SIMCom TCP/UDP application note)
        # (right after the OK: the data is with the radio before any answer to it can come back)
        self.spawn(self._later(0, self.urc, "+CASEND: %d,0,%d" % (cid, n)))

    def at_CARECV(self, cmd):
        if cmd.kind == "read":
            for cid in self._ca_ids():
                n = self.sockets[cid].available()
                if n:
                    self.info("+CARECV: %d,%d" % (cid, n))
            return
        if cmd.kind != "set":
            raise Malformed("CARECV")
        cid = cmd.int(0, lo=0, hi=self.MAX_SOCKETS - 1)
        n = cmd.int(1, lo=1, hi=self.MAX_READ)
        s = self.sockets.get(cid)
        if s is None:
            raise CmeError(3)
        data = self.sock_read(s, n)
        if not data:
            self.info("+CARECV: 0")
        else:
            self.info(b"+CARECV: %d," % len(data) + data)

    def _ca_ids(self):
        return sorted(k for k in self.sockets if isinstance(k, int))

    def at_CASTATE(self, cmd):
        if cmd.kind != "read":
            raise Malformed("CASTATE")
        for cid in self._ca_ids():
            self.info("+CASTATE: %d,%d" % (cid, 1 if self.sockets[cid].state == "open" else 0))

    async def at_CACLOSE(self, cmd):
        cid = cmd.int(0, lo=0, hi=self.MAX_SOCKETS - 1)
        if cid not in self.sockets:
            raise CmeError(3)
        await self.sock_close(cid)

    def on_sock_data(self, s, n):
        if "cip" in s.extra:
            return self.cip_data(s, n)
        self.urc("+CADATAIND: %d" % s.conn_id)

    def on_sock_closed(self, s):
        if "cip" in s.extra:
            return self.cip_closed(s)
        self.urc("+CASTATE: %d,0" % s.conn_id)
        # the socket stays listed until AT+CACLOSE; unread data can still be read


class SIM7000G(SIM7080G):
    """SIM7000G: the SIM7080's sibling. Differences per the SIM7000 Series AT Command Manual V1.06:
    AT+CNACT without a PDP index, AT+CAOPEN=<cid>,"<host>",<port> (TCP/UDP chosen with
    AT+CASSLCFG=<cid>,"PROTOCOL",<0|1>), and the older TCP/IP application command set
    (AT+CSTT / AT+CIICR / AT+CIFSR / AT+CIPSTART / AT+CIPSEND / AT+CIPRXGET / AT+CIPCLOSE /
    AT+CIPSHUT / AT+CIPSTATUS)."""

    MODEL = "sim7000g"
    CGMM = "SIMCOM_SIM7000G"
    CGMR = "Revision:1529B01SIM7000G"  # ASSUMED docs/ASSUMED.md#A-SIM7000-CGMR; ATI: sim7000g transcript
    ATI = ("SIM7000G R1529",)
    TAC_BASE = "869951"
    BOOT_TIME = 4.5  # ASSUMED docs/ASSUMED.md#A-SIM7000-BOOT
    PWRKEY_ON_MIN = 1.0
    PWRKEY_OFF_MIN = 1.2  # Toff >= 1.2 s (SIM7000 Hardware Design V1.04, table 9)
    MAX_SOCKETS = 8  # CA* <cid> 0..7: ASSUMED docs/ASSUMED.md#A-SIM7000-SOCKETS
    # SIM7000 Series AT Command Manual V1.06 (2020-07-28; Xinyuan-LilyGO/LilyGO-T-SIM7000G
    # docs/SIM7000/): its 27.007 list (3.1) has AT+CRSM and AT+CSIM, no AT+CCHO / AT+CGLA / AT+CCHC.
    LOGICAL_CHANNELS = False

    def reset_dialect(self):
        super().reset_dialect()
        self.cip_mux = 0
        self.cip_rxget = 0
        self.cip_state = "IP INITIAL"
        self.cip_apn = ""

    def app_pdp_urc(self, idx, active):
        return "+APP PDP: %s" % ("ACTIVE" if active else "DEACTIVE")

    # GSM fallback: AT+CNMP 2 automatic, 13 GSM only, 38 LTE only, 51 GSM and LTE (TinyGSM's SIM7000
    # examples / Adafruit FONA). A cell of a RAT the mode leaves out is not found.
    def act(self):
        return 0 if self.cnmp == 13 else super().act()

    def apply_registration(self, state, act=None, **kw):
        gsm_cell = act is not None and int(act) in (0, 3)
        if state in ("home", "roaming") and (gsm_cell and self.cnmp == 38 or not gsm_cell and self.cnmp == 13):
            state, act = "searching", None
        super().apply_registration(state, act=act, **kw)

    def reg_stat_for(self, name):
        # on GSM the EPS registration is not (ASSUMED docs/ASSUMED.md#A-QUECTEL-GSM-CEREG)
        if name == "+CEREG" and self.registered() and self.current_act() in (0, 3):
            return 0
        return super().reg_stat_for(name)

    async def at_CNACT(self, cmd):
        if cmd.kind == "read":
            on = self.app_pdp.get(0, False)
            self.info('+CNACT: %d,"%s"' % (int(on), self.ip if on else "0.0.0.0"))
            return
        if cmd.kind == "test":
            self.info("+CNACT: (0-2)")
            return
        if cmd.kind != "set":
            raise Malformed("CNACT")
        mode = cmd.int(0, lo=0, hi=2)
        cmd.str(1, "")
        if mode:
            if self.app_pdp.get(0) or not self.registered():
                raise CmeError(3)
            self.app_pdp[0] = True
            self.spawn(self._later(self.NET_RTT * 2, self.urc, self.app_pdp_urc(0, True)))
        else:
            if not self.app_pdp.get(0):
                raise CmeError(3)
            self.app_pdp[0] = False
            for cid, s in list(self.sockets.items()):
                if "cip" not in s.extra:
                    await self.sock_close(cid)
            self.spawn(self._later(self.NET_RTT, self.urc, self.app_pdp_urc(0, False)))

    async def at_CAOPEN(self, cmd):
        if cmd.kind != "set":
            raise Malformed("CAOPEN")
        cid = cmd.int(0, lo=0, hi=self.MAX_SOCKETS - 1)
        host = cmd.str(1)
        port = cmd.int(2, lo=1, hi=65535)
        proto = "udp" if self.ssl_cfg.get(cid, {}).get("protocol") == 1 else "tcp"
        await self._caopen(cid, 0, proto, host, port)

    def _dtls_for(self, cid):
        # SSL on a SIM7000 UDP connection: its manual lists the DTLS parts but no such connection
        # (ASSUMED docs/ASSUMED.md#A-SIM7000-NODTLS): not modelled, the open fails rather than pretend
        if self.ssl_cfg.get(cid, {}).get("ssl"):
            raise OpenError("tls", "DTLS on the SIM7000 is not modelled")
        return None

    # ---- TCP/IP application toolkit (CIP*) ------------------------------------------------------
    def at_CIPMUX(self, cmd):
        if cmd.kind == "read":
            self.info("+CIPMUX: %d" % self.cip_mux)
        elif cmd.kind == "set":
            if self.cip_state not in ("IP INITIAL",):
                raise CmeError(3)
            self.cip_mux = cmd.int(0, lo=0, hi=1)
        else:
            raise Malformed("CIPMUX")

    def at_CIPRXGET(self, cmd):
        if cmd.kind == "read":
            self.info("+CIPRXGET: %d" % self.cip_rxget)
            return
        if cmd.kind != "set":
            raise Malformed("CIPRXGET")
        mode = cmd.int(0, lo=0, hi=4)
        if mode in (0, 1):
            self.cip_rxget = mode
            return
        if not self.cip_rxget:
            raise CmeError(3)
        i = 1 if self.cip_mux else None
        cid = cmd.int(1, lo=0, hi=7) if self.cip_mux else 0
        s = self.sockets.get(("cip", cid))
        if s is None:
            raise CmeError(3)
        head = "+CIPRXGET: %d,%d," % (mode, cid) if self.cip_mux else "+CIPRXGET: %d," % mode
        if mode == 4:
            self.info(head + "%d" % s.available())
            return
        want = cmd.int(2 if i else 1, lo=1, hi=1460)
        data = self.sock_read(s, want)
        if mode == 3:
            payload = data.hex().upper().encode()
        else:
            payload = data
        self.info(b"%s%d,%d" % (head.encode(), len(data), s.available()))
        self.info(payload)

    def at_CSTT(self, cmd):
        if cmd.kind == "read":
            self.info('+CSTT: "%s","",""' % self.cip_apn)
            return
        if self.cip_state != "IP INITIAL":
            raise CmeError(3)
        self.cip_apn = cmd.str(0, "") if cmd.kind == "set" else ""
        self.cip_state = "IP START"

    async def at_CIICR(self, cmd):
        if self.cip_state != "IP START" or not self.registered():
            raise CmeError(3)
        await self.clock.sleep(self.NET_RTT * 3)
        self.cip_state = "IP GPRSACT"

    def at_CIFSR(self, cmd):
        if self.cip_state not in ("IP GPRSACT", "IP STATUS", "IP PROCESSING", "CONNECT OK", "IP CLOSE"):
            raise CmeError(3)
        if self.cip_state == "IP GPRSACT":
            self.cip_state = "IP STATUS"
        self.info(self.ip)
        return NO_FINAL_AFTER_INFO

    async def at_CIPSTART(self, cmd):
        if cmd.kind != "set":
            raise Malformed("CIPSTART")
        off = 1 if self.cip_mux else 0
        cid = cmd.int(0, lo=0, hi=7) if self.cip_mux else 0
        proto = cmd.str(off).upper()
        host = cmd.str(off + 1)
        port = cmd.int(off + 2, lo=1, hi=65535)
        if proto not in ("TCP", "UDP"):
            raise CmeError(50)
        if self.cip_state not in ("IP STATUS", "IP PROCESSING", "IP CLOSE", "CONNECT OK") or \
                (not self.cip_mux and self.cip_state == "CONNECT OK"):
            raise CmeError(3)
        prefix = "%d, " % cid if self.cip_mux else ""
        if ("cip", cid) in self.sockets:
            self.info(prefix + "ALREADY CONNECT")
            return
        self.final_ok()
        try:
            s = await self.sock_open(("cip", cid), proto.lower(), host, port)
        except OpenError:
            self.urc(prefix + "CONNECT FAIL")
            return NO_FINAL
        s.extra["cip"] = cid
        self.cip_state = "IP PROCESSING" if self.cip_mux else "CONNECT OK"
        self.urc(prefix + "CONNECT OK")
        return NO_FINAL

    async def at_CIPSEND(self, cmd):
        cid = 0
        n = None
        if cmd.kind == "set":
            if self.cip_mux:
                cid = cmd.int(0, lo=0, hi=7)
                n = cmd.int(1, None, lo=1, hi=1460)
            else:
                n = cmd.int(0, lo=1, hi=1460)
        elif cmd.kind != "exec" or self.cip_mux:
            raise Malformed("CIPSEND")
        s = self.sockets.get(("cip", cid))
        if s is None or s.state != "open":
            raise CmeError(3)
        self.emit(self.PROMPT)
        data = await self.read_payload(n, ctrl_z=n is None, timeout=None)
        if data is None:
            return NO_FINAL
        try:
            await self.sock_send(s, data)
        except (ConnectionError, OSError):
            return ("%d, SEND FAIL" % cid) if self.cip_mux else "SEND FAIL"
        return ("%d, SEND OK" % cid) if self.cip_mux else "SEND OK"

    async def at_CIPCLOSE(self, cmd):
        cid = cmd.int(0, lo=0, hi=7) if (self.cip_mux and cmd.kind == "set") else 0
        if ("cip", cid) not in self.sockets:
            raise CmeError(3)
        await self.sock_close(("cip", cid))
        if not any(k[0] == "cip" for k in self.sockets if isinstance(k, tuple)):
            self.cip_state = "IP CLOSE"
        return ("%d, CLOSE OK" % cid) if self.cip_mux else "CLOSE OK"

    async def at_CIPSHUT(self, cmd):
        for k in [k for k in self.sockets if isinstance(k, tuple)]:
            await self.sock_close(k)
        self.cip_state = "IP INITIAL"
        return "SHUT OK"

    def at_CIPSTATUS(self, cmd):
        self.info("STATE: %s" % self.cip_state)

    def cip_data(self, s, n):
        cid = s.extra["cip"]
        if self.cip_rxget:
            self.urc("+CIPRXGET: 1,%d" % cid if self.cip_mux else "+CIPRXGET: 1")
            return
        # push mode: the data goes out at once, like "+RECEIVE,<n>,<len>:" then the bytes
        data = self.sock_read(s, 1 << 20)
        head = b"+RECEIVE,%d,%d:" % (cid, len(data)) if self.cip_mux else b""
        self.emit(b"\r\n" + head + b"\r\n" + data if head else data)

    def cip_closed(self, s):
        cid = s.extra["cip"]
        self.sockets.pop(("cip", cid), None)
        self.history.append(s.counters())
        self.urc("%d, CLOSED" % cid if self.cip_mux else "CLOSED")

    def on_network_lost(self):
        if self.cip_state not in ("IP INITIAL",):
            self.cip_state = "PDP DEACT"
            self.urc("+PDP: DEACT")
        super().on_network_lost()


# AT+CIFSR answers the bare address with no OK (SIMCom TCP/IP toolkit).
NO_FINAL_AFTER_INFO = NO_FINAL

"""Sequans dialect: Monarch 2 GM02S (GM02SP on the DPTechnics Walter).

Sources: Sequans Monarch 2 GM02S AT Commands Reference for the socket (SQNS*) and security
profile (SQNSPCFG / SQNSNVW) commands; the gm02s_boot-sysstart-raw-chunks and
monarch_cereg-n3-raw transcripts for the exact bytes (+SYSSTART, +CFUN: 0 after boot, +CEREG: 3,2
without tac/ci). Unsourced facts cite their entry in docs/ASSUMED.md.
"""

import binascii

from . import dns
from .core import NO_FINAL, CmeError, Malformed, Modem
from .netsock import OpenError


class GM02S(Modem):
    MODEL = "gm02s"
    MANUFACTURER = "SEQUANS Communications"
    CGMM = "GM02SP"  # ASSUMED docs/ASSUMED.md#A-GM02S-CGMM
    CGMR = "UE8.0.5.2"  # ASSUMED docs/ASSUMED.md#A-GM02S-CGMR
    ATI = ("SEQUANS Communications", "GM02SP", "UE8.0.5.2")
    TAC_BASE = "351457"
    BOOT_TIME = 2.5  # ASSUMED docs/ASSUMED.md#A-GM02S-BOOT
    BANNER = ((0, "+SYSSTART"),)
    BOOT_CFUN = 0  # gm02s transcript: AT+CFUN? right after +SYSSTART answers +CFUN: 0
    SIM_INIT_TIME = 0.5
    # Walter has no PWRKEY: the configured pin is the active-low RESET; any pulse of at least
    # 1 ms reboots the modem (ASSUMED docs/ASSUMED.md#A-GM02S-RESET).
    PWRKEY_IS_RESET = True
    PWRKEY_ACTIVE = 0
    PWRKEY_ON_MIN = 0.001
    POWER_DOWN_URCS = ("+SQNSSHDN",)
    URC_EACH_PACKET = True  # +SQNSRING on every arrival: ASSUMED docs/ASSUMED.md#A-GM02S-SQNSRING
    MAX_SEND = 1500
    MAX_READ = 1500
    LATENCY = dict(Modem.LATENCY, **{"+CFUN": 2.0, "+SQNSH": 0.2})

    def reset_dialect(self):
        self.scfg = {i: [1, 300, 90, 600, 50] for i in range(1, 7)}
        self.scfgext = {i: [0, 0, 0, 0, 0] for i in range(1, 7)}  # srMode, recvDataMode, keepalive, listenAutoRsp, sendDataMode
        self.sscfg = {i: [0, 1] for i in range(1, 7)}  # enable, spId
        self.spcfg = {}
        self.mode_active = 1  # AT+SQNMODEACTIVE: 1 LTE-M, 2 NB-IoT

    def on_network_lost(self):
        for s in list(self.sockets.values()):
            if s.state == "open":
                s.far_end_close()

    # ---- identity / power -------------------------------------------------------------------
    def at_SQNCCID(self, cmd):
        self.require_sim(ready=False)
        self.info('+SQNCCID: "%s",""' % self.card.iccid)

    def at_SQNSSHDN(self, cmd):
        self.final_ok()
        self.spawn(self.power_down_later(self.POWER_DOWN_URCS))
        return NO_FINAL

    def at_SQNMODEACTIVE(self, cmd):
        # the RAT the GM02S camps on: 1 = LTE-M, 2 = NB-IoT (the module is dual-mode)
        if cmd.kind == "read":
            self.info("+SQNMODEACTIVE: %d" % self.mode_active)
        elif cmd.kind == "test":
            self.info("+SQNMODEACTIVE: (1,2)")
        elif cmd.kind == "set":
            self.mode_active = cmd.int(0, lo=1, hi=2)
        else:
            raise Malformed("SQNMODEACTIVE")

    def at_SQNBANDSEL(self, cmd):
        if cmd.kind == "read":
            self.info('+SQNBANDSEL: 0,standard,"1,2,3,4,5,8,12,13,17,18,19,20,25,26,28,66,71"')
        elif cmd.kind == "set":
            cmd.int(0, lo=0, hi=1)
            cmd.str(1)

    def at_SQNMONI(self, cmd):
        # the serving cell: AT+SQNMONI=0, and =9 with its CINR (walter-micropython's report types
        # SERVING_CELL = 0, SERVING_CELL_WITH_CINR = 9); the line as in Pycom's Sequans AT command
        # page ("+SQNMONI: NL KPN Cc:204 Nc:08 RSRP:-90.00 CINR:18.00 RSRQ:-7.70 TAC:64503 Id:176
        # EARFCN:6400 PWR:-74.52 PAGING:64"). Fails without a serving cell (a Sequans IMS2 driver's
        # note); the error code ASSUMED docs/ASSUMED.md#A-SQNMONI-ERR. The cell is on band 20
        # (EARFCN 6300, 3GPP TS 36.101 table 5.7.3-1), like the other dialects' simulated cell.
        if cmd.kind != "set":
            raise Malformed("SQNMONI")
        mode = cmd.int(0, lo=0, hi=9)
        if mode not in (0, 9):
            raise Malformed("SQNMONI")
        if self.cfun != 1 or not self.registered() or self.serving is None:
            raise CmeError(30)
        s = self.signal
        plmn = self.serving[2]
        cinr = " CINR:%.2f" % s["sinr"] if mode == 9 else ""
        self.info("+SQNMONI: %s Cc:%s Nc:%s RSRP:%.2f%s RSRQ:%.2f TAC:%d Id:257 EARFCN:6300 PWR:%.2f PAGING:128" % (
            self.serving[0], plmn[:3], plmn[3:], s["rsrp"], cinr, s["rsrq"], int(self.cell["tac"], 16), s["rssi"]))

    # ---- certificates and security profiles ------------------------------------------------------
    async def at_SQNSNVW(self, cmd):
        if cmd.kind != "set":
            raise Malformed("SQNSNVW")
        kind = cmd.str(0).lower()
        if kind not in ("certificate", "privatekey", "strid"):
            raise CmeError(50)
        index = cmd.int(1, lo=0, hi=19)
        size = cmd.int(2, lo=0, hi=16384)
        key = "%s:%d" % (kind, index)
        if size == 0:
            self.nv_files.pop(key, None)
            return
        self.emit(b"\r\n> ")
        data = await self.read_payload(size, timeout=30.0)
        if data is None:
            raise CmeError(100)
        if kind == "certificate" and not self.valid_pem_cert(data):
            raise CmeError(3)  # ASSUMED docs/ASSUMED.md#A-GM02S-PEM-CHECK
        self.nv_files[key] = data

    def at_SQNSPCFG(self, cmd):
        if cmd.kind == "read":
            for sp in sorted(self.spcfg):
                c = self.spcfg[sp]
                self.info('+SQNSPCFG: %d,%d,"%s",%d,%s,%s,%s,"",""' % (
                    sp, c["version"], c["ciphers"], c["level"], c["ca"], c["cert"], c["key"]))
            return
        if cmd.kind != "set":
            raise Malformed("SQNSPCFG")
        sp = cmd.int(0, lo=1, hi=6)
        self.spcfg[sp] = {
            "version": cmd.int(1, 2, lo=0, hi=3), "ciphers": cmd.str(2, ""),
            "level": cmd.int(3, 0, lo=0, hi=7, base=0),
            "ca": cmd.str(4, ""), "cert": cmd.str(5, ""), "key": cmd.str(6, ""),
        }

    def at_SQNSSCFG(self, cmd):
        if cmd.kind == "read":
            for i in range(1, 7):
                self.info("+SQNSSCFG: %d,%d,%d" % (i, *self.sscfg[i]))
            return
        if cmd.kind != "set":
            raise Malformed("SQNSSCFG")
        i = cmd.int(0, lo=1, hi=6)
        self.sscfg[i] = [cmd.int(1, lo=0, hi=1), cmd.int(2, 1, lo=1, hi=6)]

    def _tls_for(self, conn_id):
        enable, sp = self.sscfg[conn_id]
        if not enable:
            return None
        c = self.spcfg.get(sp)
        if c is None or not (c["level"] & 1):
            # certValidLevel bit 0 = verify the server's chain against caCertificateID
            return self.tls_context(None, verify=False)
        pem = self.nv_files.get("certificate:%s" % c["ca"]) if c["ca"] != "" else None
        # <clientCertificateID>, <clientPrivateKeyID>: the slots AT+SQNSNVW wrote (walter-micropython
        # walter_modem/mixins/tls_certs.py tls_config_profile), presented when the server asks
        client = None
        if c["cert"] != "" and c["key"] != "":
            client = (self.nv_files.get("certificate:%s" % c["cert"]), self.nv_files.get("privatekey:%s" % c["key"]))
        t = self.tls_context(pem or b"", verify=True, client=client)
        if c["version"] == 2:  # <version> 2: TLS 1.2 (WalterModemTlsVersion: 0 1.0, 1 1.1, 2 1.2, 3 1.3)
            import ssl

            t.minimum_version = t.maximum_version = ssl.TLSVersion.TLSv1_2
        return t

    # ---- DNS (dns.py) ----
    async def at_SQNDNSLKUP(self, cmd):
        await dns.at_SQNDNSLKUP(self, cmd)

    # ---- sockets -------------------------------------------------------------------------------
    def at_SQNSCFG(self, cmd):
        if cmd.kind == "read":
            for i in range(1, 7):
                self.info("+SQNSCFG: %d,%d,%d,%d,%d,%d" % (i, *self.scfg[i]))
            return
        if cmd.kind != "set":
            raise Malformed("SQNSCFG")
        i = cmd.int(0, lo=1, hi=6)
        self.scfg[i] = [cmd.int(1, lo=1, hi=6), cmd.int(2, 300, lo=0, hi=1500), cmd.int(3, 90, lo=0, hi=65535),
                        cmd.int(4, 600, lo=0, hi=1200), cmd.int(5, 50, lo=0, hi=255)]

    def at_SQNSCFGEXT(self, cmd):
        if cmd.kind == "read":
            for i in range(1, 7):
                self.info("+SQNSCFGEXT: %d,%d,%d,%d,%d,%d" % (i, *self.scfgext[i]))
            return
        if cmd.kind != "set":
            raise Malformed("SQNSCFGEXT")
        i = cmd.int(0, lo=1, hi=6)
        self.scfgext[i] = [cmd.int(1, lo=0, hi=2), cmd.int(2, 0, lo=0, hi=1), cmd.int(3, 0, lo=0, hi=240),
                           cmd.int(4, 0, lo=0, hi=1), cmd.int(5, 0, lo=0, hi=1)]

    async def at_SQNSD(self, cmd):
        if cmd.kind != "set":
            raise Malformed("SQNSD")
        conn_id = cmd.int(0, lo=1, hi=6)
        prot = cmd.int(1, lo=0, hi=1)
        port = cmd.int(2, lo=1, hi=65535)
        host = cmd.str(3)
        cmd.int(4, 0, lo=0, hi=255)
        cmd.int(5, 0, lo=0, hi=65535)
        conn_mode = cmd.int(6, 0, lo=0, hi=1)
        cmd.int(7, 0, lo=0, hi=2)
        if conn_mode == 0:
            raise CmeError(4)  # online (data) mode is not modeled; use command mode (connMode 1)
        if conn_id in self.sockets:
            raise CmeError(3)
        cid = self.scfg[conn_id][0]
        if not self.attached or cid not in (1,) and not self.pdp_active.get(cid):
            raise CmeError(3)
        tls = self._tls_for(conn_id) if prot == 0 else None
        try:
            await self.sock_open(conn_id, "udp" if prot else "tcp", host, port, tls_context=tls,
                                 server_hostname=None if host[:1].isdigit() else host)
        except OpenError:
            # a failed dial: +CME ERROR: 3, ASSUMED docs/ASSUMED.md#A-GM02S-DIAL-ERR
            raise CmeError(3)

    async def _sendext(self, conn_id, data):
        s = self.sockets.get(conn_id)
        try:
            await self.sock_send(s, data)
        except (ConnectionError, OSError):
            raise CmeError(3)

    async def at_SQNSSENDEXT(self, cmd):
        if cmd.kind != "set":
            raise Malformed("SQNSSENDEXT")
        conn_id = cmd.int(0, lo=1, hi=6)
        n = cmd.int(1, lo=1, hi=self.MAX_SEND)
        cmd.int(2, 0, lo=0, hi=2)
        s = self.sockets.get(conn_id)
        if s is None or s.state != "open":
            raise CmeError(3)
        hexmode = self.scfgext[conn_id][4] == 1
        self.emit(b"\r\n> ")
        data = await self.read_payload(2 * n if hexmode else n, timeout=None)
        if hexmode:
            try:
                data = binascii.unhexlify(data)
            except (binascii.Error, ValueError):
                raise CmeError(50)
        await self._sendext(conn_id, data)

    async def at_SQNSSEND(self, cmd):
        if cmd.kind != "set":
            raise Malformed("SQNSSEND")
        conn_id = cmd.int(0, lo=1, hi=6)
        s = self.sockets.get(conn_id)
        if s is None or s.state != "open":
            raise CmeError(3)
        self.emit(b"\r\n> ")
        data = await self.read_payload(ctrl_z=True, max_len=self.MAX_SEND)
        if data is None:
            return
        await self._sendext(conn_id, data)

    def at_SQNSRECV(self, cmd):
        if cmd.kind != "set":
            raise Malformed("SQNSRECV")
        conn_id = cmd.int(0, lo=1, hi=6)
        n = cmd.int(1, lo=1, hi=self.MAX_READ)
        s = self.sockets.get(conn_id)
        if s is None:
            raise CmeError(3)
        data = self.sock_read(s, n)
        if self.scfgext[conn_id][1] == 1:
            data = binascii.hexlify(data).upper()
            n_bytes = len(data) // 2
        else:
            n_bytes = len(data)
        self.info(b"+SQNSRECV: %d,%d\r\n" % (conn_id, n_bytes) + data)

    def at_SQNSI(self, cmd):
        ids = [cmd.int(0, lo=1, hi=6)] if cmd.kind == "set" else range(1, 7)
        for i in ids:
            s = self.sockets.get(i)
            if s is None:
                self.info("+SQNSI: %d,0,0,0,0" % i)
            else:
                self.info("+SQNSI: %d,%d,%d,%d,0" % (i, s.tx_total, s.rx_total, s.available()))

    def at_SQNSS(self, cmd):
        for i in range(1, 7):
            s = self.sockets.get(i)
            if s is None or s.state != "open":
                self.info("+SQNSS: %d,0" % i)
            else:
                st = 3 if s.available() else 2
                self.info('+SQNSS: %d,%d,"%s",%d,"%s",%d' % (i, st, self.ip, s.local_port, s.host, s.port))

    async def at_SQNSH(self, cmd):
        conn_id = cmd.int(0, lo=1, hi=6)
        if conn_id not in self.sockets:
            raise CmeError(3)
        await self.sock_close(conn_id)

    def on_sock_data(self, s, n):
        sr = self.scfgext[s.conn_id][0]
        if sr == 0:
            self.urc("+SQNSRING: %d" % s.conn_id)
        else:
            # srMode 2 (data in the URC) is reported like srMode 1 here: not modeled
            self.urc("+SQNSRING: %d,%d" % (s.conn_id, n))

    def on_sock_closed(self, s):
        # the socket keeps its unread data until AT+SQNSH
        self.urc("+SQNSH: %d" % s.conn_id)

# SIMCom dialects: SIM7080G (SIM7070/SIM7080/SIM7090 series AT manual) and SIM7000G, which differs
# only where its own manual does (identity, PDP activation, the CAOPEN form; no DTLS offered).
#
# Sources (facts, not text): SIM7070_SIM7080_SIM7090 Series AT Command Manual and TCP/UDP application
# note as quoted in public code and issue threads (TinyGSM's SIM7080 / SIM7000SSL clients, SIMCom's
# TCP/UDP example "AT+CAOPEN=0,0,"TCP",...  +CAOPEN: 0,0  OK"), LilyGO T-SIM7080G / T-SIM7000G boards
# and the transcripts in shared/at-transcripts. The rest cites docs/ASSUMED.md.

from m2m.modem import MODELS, Modem, ModemError, OPT, URC, band_number

_T = 1000  # plain settings answer at once

# unsolicited lines both models send (prefix -> event name)
_URCS = (
    (b"+CEREG:", "reg"),
    (b"+CGREG:", "reg"),
    (b"+CPIN:", "sim"),  # +CPIN: READY / NOT READY / NOT INSERTED
    (b"+CADATAIND:", "sock_data"),  # +CADATAIND: <cid>
    (b"+CASTATE:", "sock_closed"),  # +CASTATE: <cid>,0 when the peer or the network closed it
    (b"+CAOPEN:", "sock_open"),  # +CAOPEN: <cid>,<result> (normally before OK)
    # +CASEND: <cid>,<result>,<sendlen> after the send's OK (SIMCom TCP/UDP application note;
    # TinyGSM waits for it): a URC, or it would be read as the next command's answer
    (b"+CASEND:", "sock_sent"),
    (b"*PSUTTZ:", "time"),  # with AT+CLTS=1
    (b"DST:", "time"),
    (b"+CTZV:", "time"),
    (b"*PSNWID:", "operator"),
)


class SIM7080G(Modem):
    NAME = "sim7080g"
    CGMM, ATI = MODELS[NAME][2:]  # identity strings: see the registry in m2m.modem
    # PWRKEY low >= 1.0 s on, >= 1.2 s off (hardware design 3.4); boot within 5 s (we poll AT
    # anyway), ASSUMED docs/ASSUMED.md#A-SIM7080-BOOT
    PWRKEY_MS = (1000, 1300, 5000)
    OFF_MS = 3000
    # like the SIM7000 the module prints RDY, +CFUN: 1, +CPIN: READY, SMS Ready at boot (at a fixed
    # baud rate), ASSUMED docs/ASSUMED.md#A-SIM7080-BANNER; the engine also probes AT, so a silent
    # boot works too
    BANNERS = (b"RDY", b"SMS Ready")
    POWER_OFF = ("AT+CPOWD=1", b"NORMAL POWER DOWN", 5000)
    POWER_DOWN_URC = b"NORMAL POWER DOWN"

    URCS = _URCS + (
        (b"+APP PDP: 0,ACTIVE", "pdp_up"),  # bearer 0 of AT+CNACT=<pdpidx>,<action>
        (b"+APP PDP: 0,DEACTIVE", "pdp_down"),
    )

    # the modem's own sleep (UART sleep controlled by DTR): AT+CSCLK=1 (TinyGSM
    # TinyGsmClientSIM70xx.h sleepEnableImpl); optional, the network reports a refusal
    SLEEP = (("AT+CSCLK=1", (), _T, OPT),)

    def signal(self):
        # the band: +CPSI: <system mode>,<operation mode>,<MCC>-<MNC>,<TAC>,<SCellID>,<PCellID>,
        # <frequency band>,... ("EUTRAN-BAND20"; SIM7500/SIM7600 Series AT Command Manual V1.08 as
        # quoted in public code; the SIM7080's LTE form ASSUMED docs/ASSUMED.md#A-BAND-READS)
        # ... <earfcn>,<dlbw>,<ulbw>,<RSRQ>,<RSRP>,<RSSI>,<RSSNR> in the LTE form (14 fields, as in the
        # sim7000g / sim7000e transcripts); SINR dB = 2 x RSSNR - 20 (Zephyr's SIM7080 driver,
        # drivers/modem/simcom/sim7080/sim7080_meas.c cpsi_parse_lte)
        r = self.at.cmd("AT+CPSI?", timeout_ms=_T)
        for ln in r.lines:
            f = ln.split(b",")
            if len(f) >= 7:
                out = {"band": band_number(f[6])}
                if len(f) >= 14:
                    out["sinr"] = 2 * int(f[13]) - 20
                return out
        return {}

    # activation is confirmed by the URC "+APP PDP: 0,ACTIVE" (SIMCom TCP/UDP application note)
    PDP_UP = (("AT+CNACT=0,1", b"+APP PDP: 0,ACTIVE", 150000, URC),)
    PDP_DOWN = (("AT+CNACT=0,0", (), 40000),)

    # ---- sockets: AT+CAOPEN / CASEND / CARECV / CACLOSE on application bearer 0 ----
    SOCKET_IDS = (0, 13)  # <cid> 0..12
    # SSL on or off per connection id; AT+CSSLCFG="sslversion",<ctx>,<v>: 3 TLS 1.2, 5 DTLS 1.2.
    # no CA set: no certificate check (ASSUMED docs/ASSUMED.md#A-SIMCOM-TLS-NOCA) until the TLS
    # credentials issue adds CA names via CASSLCFG
    SOCKET_SETUP = {
        "tcp": (('AT+CASSLCFG={sid},"SSL",0', (), _T, OPT),),
        "udp": (('AT+CASSLCFG={sid},"SSL",0', (), _T, OPT),),
        "tls": (('AT+CSSLCFG="sslversion",{ssl_ctx},3', (), _T),
                ('AT+CASSLCFG={sid},"SSL",1', (), _T),
                ('AT+CASSLCFG={sid},"CRINDEX",{ssl_ctx}', (), _T)),
        # DTLS 1.2 with a pre-shared key: sslversion 5, SSL on, the SSL context, the PSK table, then
        # AT+CAOPEN with "UDP" (SIM7070_SIM7080_SIM7090 Series TCPUDP(S) Application Note V1.03
        # 5.2.4 "Build a PSK authentication SSL (DTLS) connection"); the table is written by
        # m2m.lwm2m.mdtls (SSL Application Note V1.00 4.4)
        "dtls": (('AT+CSSLCFG="sslversion",{ssl_ctx},5', (), _T),
                 ('AT+CASSLCFG={sid},"SSL",1', (), _T),
                 ('AT+CASSLCFG={sid},"CRINDEX",{ssl_ctx}', (), _T),
                 ('AT+CASSLCFG={sid},"PSKTABLE","m2mpsk.txt"', (), _T)),
    }
    # the PSK table's file ("<identity>:<key as hex>", converted with AT+CSSLCFG="CONVERT",3): a
    # dialect naming one and a SOCKET_SETUP["dtls"] offers the modem's DTLS-PSK to LwM2M
    # (lwm2m.dtls "modem")
    PSK_TABLE = "m2mpsk.txt"
    # AT+CAOPEN=<cid>,<pdp_index>,<conn_type>,<server>,<port> -> +CAOPEN: <cid>,<result>, OK
    OPEN = 'AT+CAOPEN={sid},0,"{proto}","{host}",{port}'
    OPEN_RESULT = b"+CAOPEN:"
    # AT+CASEND=<cid>,<len> -> ">" -> payload -> OK
    SEND = "AT+CASEND={sid},{n}"
    # AT+CARECV=<cid>,<len> -> +CARECV: <len>,<bytes> (inline; "+CARECV: 0" when empty)
    RECV = "AT+CARECV={sid},{n}"
    RECV_DATA = (b"+CARECV:", 0, True)
    CLOSE = "AT+CACLOSE={sid}"

    # ---- files (certificates) in the modem's file system ----
    # AT+CFSWFILE=<index>,<name>,<mode 0 overwrite>,<size>,<input time ms> answers DOWNLOAD, not
    # '>', then takes <size> bytes and answers OK; AT+CFSINIT / AT+CFSTERM allocate and free its
    # buffer. Index 3 is "/customer/"; size below 10240 bytes, input time at most 10000 ms
    # (SIM7070_SIM7080_SIM7090 AT Command Manual, file system commands, as mirrored at
    # momoiot.co.kr/catm-at/cmd/fs; the DOWNLOAD answer on the wire in
    # botletics/SIM7000-LTE-Shield issue #200 and #278)
    FILE_WRITE = ('AT+CFSWFILE=3,"{name}",0,{n},10000', b"DOWNLOAD")
    FILE_MAX = 10239

    def write_file(self, name, data, timeout_ms=15000):
        # store data as /customer/<name> (where the SSL commands look for certificates)
        if not data or len(data) > self.FILE_MAX:
            raise ValueError("a modem file holds 1..%d bytes, got %d: split it or use a smaller "
                             "certificate" % (self.FILE_MAX, len(data)))
        at = self.at
        at.cmd("AT+CFSTERM", timeout_ms=_T)  # a buffer left allocated makes CFSINIT fail
        at.cmd("AT+CFSINIT", timeout_ms=_T).check()
        try:
            tpl, word = self.FILE_WRITE
            r = at.cmd(tpl.format(name=name, n=len(data)), payload=data, prompt=word,
                       timeout_ms=timeout_ms)
        finally:
            at.cmd("AT+CFSTERM", timeout_ms=_T)
        if not r.ok:
            raise ModemError("writing %s failed: %s" % (name, r.error))
        return len(data)


class SIM7000G(SIM7080G):
    NAME = "sim7000g"
    CGMM, ATI = MODELS[NAME][2:]
    # board data (LilyGO: >= 1 s on; SIM7000 Hardware Design V1.04 table 9: Toff >= 1.2 s) is the
    # same as the SIM7080's

    URCS = _URCS + (
        # a single application bearer: "+APP PDP: ACTIVE" without an index (TinyGSM SIM7000SSL)
        (b"+APP PDP: ACTIVE", "pdp_up"),
        (b"+APP PDP: DEACTIVE", "pdp_down"),
    )

    PDP_UP = (('AT+CNACT=1,"{apn}"', b"+APP PDP: ACTIVE", 150000, URC),)
    PDP_DOWN = (("AT+CNACT=0", (), 40000),)

    # how many CA* connections the SIM7000 firmware has (TinyGSM's SIM7000SSL client uses 2, the
    # SIM7080 has 13): 8, ASSUMED docs/ASSUMED.md#A-SIM7000-SOCKETS
    SOCKET_IDS = (0, 8)
    # AT+CASSLCFG=<cid>,"PROTOCOL",<0 TCP | 1 UDP> picks the transport (TinyGSM SIM7000SSL sets
    # "protocol"), then "SSL" on or off
    SOCKET_SETUP = {
        "tcp": (('AT+CASSLCFG={sid},"PROTOCOL",0', (), _T), ('AT+CASSLCFG={sid},"SSL",0', (), _T, OPT)),
        "udp": (('AT+CASSLCFG={sid},"PROTOCOL",1', (), _T), ('AT+CASSLCFG={sid},"SSL",0', (), _T, OPT)),
        "tls": (('AT+CASSLCFG={sid},"PROTOCOL",0', (), _T),
                ('AT+CSSLCFG="sslversion",{ssl_ctx},3', (), _T),
                ('AT+CASSLCFG={sid},"SSL",1', (), _T)),
        # no DTLS for the SIM7000 (its manual has the parts, no DTLS connection in its CAOPEN
        # form): ASSUMED docs/ASSUMED.md#A-SIM7000-NODTLS; without SOCKET_SETUP["dtls"] the
        # inherited PSK_TABLE is not offered to LwM2M
    }
    # AT+CAOPEN=<cid>,<server>,<port> -> +CAOPEN: <cid>,<result>: no PDP index and no conn_type
    # (TinyGSM: '"TCP" can't be included' on this firmware)
    OPEN = {k: 'AT+CAOPEN={sid},"{host}",{port}' for k in ("tcp", "udp", "tls")}
    # +CASEND: <cid>,<result>,<sendlen> may follow the OK of CASEND; success is the OK
    # (ASSUMED docs/ASSUMED.md#A-SIMCOM-CASEND-OK)

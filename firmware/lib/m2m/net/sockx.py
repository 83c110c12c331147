# What m2m.net.sock needs only now and then, kept apart so that a device that connects by address
# without TLS never loads it: DNS through the modem (resolve) and the TLS credentials uploaded the
# modem's own way (upload_credentials, tls_script). Contract: docs/CONTRACTS.md "Modem sockets".
from micropython import const

from m2m import hal
from m2m.modem import ModemError, _fields
from m2m.net.sock import _family, _ioerr, _is_ip

_ETIMEDOUT = const(110)
_EHOSTUNREACH = const(113)
_DNS_MS = const(30000)


# ---- DNS through the modem ----
def resolve(modem, host, timeout_ms=_DNS_MS):
    # the IPv4 address of host, asked of the modem's DNS; a dotted quad comes back as it is
    if _is_ip(host):
        return host
    if not host or len(host) > 253 or '"' in host:
        raise _ioerr(_EHOSTUNREACH, "host name %r: give a DNS name or an IPv4 address" % (host,))
    fam = _family(modem)
    at = modem.at
    got = []
    if fam == "sequans":
        # AT+SQNDNSLKUP="<name>" -> +SQNDNSLKUP: <name>,<ip> OK (Renesas' RYZ014A driver, a Sequans
        # Monarch; quotes taken either way)
        r = at.cmd('AT+SQNDNSLKUP="%s"' % host, resp=b"+SQNDNSLKUP:", timeout_ms=timeout_ms)
        if r.ok:
            for ln in r.lines:
                f = _fields(ln[ln.find(b":") + 1:], False)
                if len(f) > 1 and _is_ip(f[-1]):
                    return f[-1]
        raise _ioerr(_EHOSTUNREACH, "DNS lookup of %s failed: %s" % (host, r.error or "no address"))
    if fam == "simcom":
        # AT+CDNSGIP="<name>",<retries>,<timeout ms>: OK, then +CDNSGIP: 1,"<name>","<ip>"[,...]
        # or +CDNSGIP: 0,<err> (Zephyr's SIMCom SIM7080 driver, its DNS part)
        prefix = b"+CDNSGIP:"
        cmd = 'AT+CDNSGIP="%s",1,10000' % host
    else:
        # AT+QIDNSGIP=<contextID>,"<name>": OK, then +QIURC: "dnsgip",<err>,<count>,<ttl> and one
        # +QIURC: "dnsgip","<ip>" per address; a failure +QIURC: "dnsgip",<err> (a public BG96
        # driver's getIpAddressByName_BG96; RT-Thread at_device's Quectel error table)
        prefix = b'+QIURC: "dnsgip"'
        cmd = 'AT+QIDNSGIP=1,"%s"' % host
    at.urc(prefix, got.append)
    try:
        r = at.cmd(cmd, timeout_ms=5000)
        if not r.ok:
            raise _ioerr(_EHOSTUNREACH, "DNS lookup of %s failed: %s" % (host, r.error))
        deadline = hal.ticks_add(hal.ticks_ms(), timeout_ms)
        while hal.ticks_diff(deadline, hal.ticks_ms()) > 0:
            for ln in got:
                f = _fields(ln[len(prefix):].lstrip(b","), False)
                if fam == "simcom":
                    if f and f[0] == "1" and len(f) > 2:
                        return f[2]
                    if f:
                        raise _ioerr(_EHOSTUNREACH, "DNS lookup of %s failed: error %s" % (host, f[-1]))
                elif len(f) == 1 and _is_ip(f[0]):
                    return f[0]
                elif f and f[0] != "0":  # +QIURC: "dnsgip",<err>[,...]: err 0 is the success header
                    raise _ioerr(_EHOSTUNREACH, "DNS lookup of %s failed: error %s" % (host, f[0]))
            at.poll(200)
        raise _ioerr(_ETIMEDOUT, "DNS lookup of %s: no answer within %d ms" % (host, timeout_ms))
    finally:
        at.urc(prefix, None)


# ---- TLS credentials ----
def upload_credentials(modem, tls):
    # store CA / client cert / key in the modem; returns {"ca": ref, "cert": ref, "key": ref}
    fam = _family(modem)
    name = tls.get("name", "m2m")
    refs = {}
    for i, part in enumerate(("ca", "cert", "key")):
        data = tls.get(part)
        if not data:
            continue
        if isinstance(data, str):
            data = data.encode()
        if fam == "simcom":
            fn = "%s_%s.pem" % (name, part)
            modem.write_file(fn, data)
            refs[part] = fn
        elif fam == "quectel":
            fn = "UFS:%s_%s.pem" % (name, part)
            at = modem.at
            at.cmd('AT+QFDEL="%s"' % fn, timeout_ms=2000)  # AT+QFUPL refuses an existing file
            # AT+QFUPL="UFS:<name>",<size>,<timeout s>: CONNECT, the bytes, +QFUPL: <size>,<checksum>
            # OK; an existing file is deleted first (public BG9x drivers upload CA files this way)
            r = at.cmd('AT+QFUPL="%s",%d,10' % (fn, len(data)), payload=data, prompt=b"CONNECT",
                       timeout_ms=15000)
            if not r.ok:
                raise ModemError("uploading %s failed: %s" % (fn, r.error))
            refs[part] = fn
        else:
            # AT+SQNSNVW=<"certificate"|"privatekey">,<index>,<size>: "> ", the bytes, OK
            # (walter-micropython walter_modem/mixins/tls_certs.py tls_write_credential)
            idx = 10 + i  # slots 10..12: ASSUMED docs/ASSUMED.md#A-GM02S-CERT-SLOTS
            what = "privatekey" if part == "key" else "certificate"
            r = modem.at.cmd('AT+SQNSNVW="%s",%d,%d' % (what, idx, len(data)), payload=data,
                             timeout_ms=15000)
            if not r.ok:
                raise ModemError("writing %s to slot %d failed: %s" % (part, idx, r.error))
            refs[part] = idx
    return refs


def tls_script(modem, sid, kind, refs):
    # the commands that point the socket's TLS at the uploaded credentials, verification on
    fam = _family(modem)
    ctx = modem.SSL_CTX.get(kind, 0)
    out = []
    if fam == "simcom":
        # AT+CSSLCFG="convert",2,"<ca>" then AT+CASSLCFG=<cid>,"CACERT","<ca>"; "convert",1 for a
        # client certificate and key (TinyGSM's SIM70xx clients; DFRobot_SIM7000 SSL_ConfigCert)
        if "ca" in refs:
            out.append('AT+CSSLCFG="convert",2,"%s"' % refs["ca"])
            out.append('AT+CASSLCFG=%d,"CACERT","%s"' % (sid, refs["ca"]))
        if "cert" in refs and "key" in refs:
            out.append('AT+CSSLCFG="convert",1,"%s","%s"' % (refs["cert"], refs["key"]))
            out.append('AT+CASSLCFG=%d,"CERT","%s"' % (sid, refs["cert"]))
    elif fam == "quectel":
        if "ca" in refs:
            out.append('AT+QSSLCFG="cacert",%d,"%s"' % (ctx, refs["ca"]))
        if "cert" in refs and "key" in refs:
            out.append('AT+QSSLCFG="clientcert",%d,"%s"' % (ctx, refs["cert"]))
            out.append('AT+QSSLCFG="clientkey",%d,"%s"' % (ctx, refs["key"]))
        if "ca" in refs:
            # seclevel 1: verify the server; 2: and present the client certificate
            out.append('AT+QSSLCFG="seclevel",%d,%d' % (ctx, 2 if "cert" in refs else 1))
    else:
        if "ca" in refs:
            # AT+SQNSPCFG=<spId>,<version 2>,<ciphers>,<certValidLevel 1: verify the chain>,
            # <caCertificateID>,<clientCertificateID>,<clientPrivateKeyID>, an absent id left empty
            # (walter-micropython walter_modem/mixins/tls_certs.py tls_config_profile)
            out.append('AT+SQNSPCFG=%d,2,"",1,%d,%s,%s' % (sid, refs["ca"], refs.get("cert", ""),
                                                         refs.get("key", "")))
    return out

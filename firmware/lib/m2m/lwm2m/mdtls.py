# The modem's own DTLS for m2m.lwm2m.transport (lwm2m.dtls "modem", a coaps:// server): the
# dialects whose DTLS with a pre-shared key is sourced name a PSK_TABLE and have a
# SOCKET_SETUP["dtls"] (today the SIM7080G); the others are refused with what to set. Loaded only
# then (MicroPython's own DTLS is m2m.lwm2m.dtls).


def modem_socket(stack, host, port, psk):
    # a socket of the modem (m2m.net.sock) whose DTLS the modem ends: the PSK table written the
    # modem's way, then a "dtls" socket (the dialect's SOCKET_SETUP["dtls"] names the table); the
    # CoAP datagrams go through it in plain
    m = stack.modem
    name = getattr(m, "PSK_TABLE", None)
    if not name or "dtls" not in (m.SOCKET_SETUP or {}):
        raise OSError(95, "lwm2m.dtls is \"modem\" but the %s's DTLS with a pre-shared key is not "
                         "confirmed (docs/ASSUMED.md): set lwm2m.dtls to \"device\"" % m.NAME)
    ident, key = psk
    if not ident or not key or b":" in ident or b"\n" in ident or b"\r" in ident:
        raise OSError(22, "lwm2m: the modem's PSK table takes an identity without ':' or line breaks "
                         "and a key: fix lwm2m.psk_identity / lwm2m.psk_key")
    import binascii

    # SIM7080: "<Identity>:<psk_key>", the key as a hex string, written to /customer/ with
    # AT+CFSWFILE, converted with AT+CSSLCFG="CONVERT",3,<name>, then the file deleted "because of
    # security considerations" (SIM7070_SIM7080_SIM7090 Series SSL Application Note V1.00 4.4)
    try:
        m.write_file(name, ident + b":" + binascii.hexlify(key))
    except Exception as e:  # ModemError, ValueError: the link's or the modem's, tried again
        raise OSError(5, "writing the PSK table to the modem failed (%s)" % (e,))
    at = m.at
    r = at.cmd('AT+CSSLCFG="CONVERT",3,"%s"' % name, timeout_ms=5000)
    at.cmd("AT+CFSINIT", timeout_ms=1000)
    at.cmd('AT+CFSDFILE=3,"%s"' % name, timeout_ms=1000)
    at.cmd("AT+CFSTERM", timeout_ms=1000)
    if not r.ok:
        raise OSError(5, "the modem refused the PSK table (%s): check lwm2m.psk_identity / psk_key"
                      % (r.error,))
    from m2m.net.sock import Socket

    ai = stack.getaddrinfo(host, port)[0][-1]
    s = Socket(stack, "dtls")
    try:
        s.connect(ai)
    except OSError as e:
        a = e.args
        raise OSError(a[0] if a else 111, "DTLS handshake with %s:%d in the modem failed (%s): check "
                      "lwm2m.psk_identity / lwm2m.psk_key and the server's PSK for them"
                      % (host, port, a[1] if len(a) > 1 else e))
    return s  # a datagram that came while the one before was read: sock.py asks again

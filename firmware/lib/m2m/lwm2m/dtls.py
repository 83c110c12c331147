# DTLS 1.2 with a pre-shared key for m2m.lwm2m.transport (coaps://): MicroPython's tls module
# (PROTOCOL_DTLS_CLIENT, SSLContext.psk_identity / psk_key where the port has them; the unix port
# here has both, ESP32 builds ASSUMED docs/ASSUMED.md#A-LWM2M-DTLS-PSK), or the modem's own DTLS
# (lwm2m.dtls "modem", modem_socket: the dialects whose DTLS-PSK is sourced name a PSK_TABLE).
# Loaded for a coaps:// server only.
from m2m.lwm2m.transport import _AGAIN


def _stream_base():
    import io

    return io.IOBase


class _Stream(_stream_base()):
    # a modem socket (m2m.net.sock) as the stream MicroPython's tls wraps: one datagram per read
    def __init__(self, s):
        self.s = s

    def readinto(self, buf):
        try:
            d = self.s.recv(len(buf))
        except OSError as e:
            if e.args and e.args[0] in _AGAIN:
                return None
            raise
        buf[:len(d)] = d
        return len(d)

    def write(self, b):
        self.s.send(bytes(b))
        return len(b)

    def ioctl(self, req, arg):
        if req == 4:  # MP_STREAM_CLOSE
            self.s.close()
        return 0

    def settimeout(self, t):
        self.s.settimeout(t)

    def setblocking(self, flag):
        self.s.setblocking(flag)

    def close(self):
        self.s.close()


def wrap(s, psk, modem):
    # s: a connected UDP socket; psk: (identity, key); modem: s is a modem socket (tls wraps only
    # streams: it goes in as one)
    import tls

    if not hasattr(tls, "PROTOCOL_DTLS_CLIENT"):
        raise OSError(95, "DTLS: this MicroPython has no tls.PROTOCOL_DTLS_CLIENT; use coap://")
    if modem:
        s = _Stream(s)
    ctx = tls.SSLContext(tls.PROTOCOL_DTLS_CLIENT)
    ctx.verify_mode = tls.CERT_NONE
    ident, key = psk
    ctx.psk_identity = ident
    ctx.psk_key = key
    s.settimeout(10)
    return ctx.wrap_socket(s)


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
    return _Datagrams(s)


class _Datagrams:
    # the modem's DTLS socket as the transport reads it: after each datagram the modem is asked
    # again how much it holds, since a modem's data URC comes for the first unread data only (a
    # datagram that came while the one before was being read would otherwise wait for the
    # socket's idle re-query, 10 s: longer than a Deregister's wait at close)
    def __init__(self, s):
        self.s = s

    def recv(self, n):
        d = self.s.recv(n)
        self.s._check = True
        return d

    def send(self, b):
        return self.s.send(b)

    def setblocking(self, flag):
        self.s.setblocking(flag)

    def close(self):
        self.s.close()

# DTLS 1.2 with a pre-shared key for m2m.lwm2m.transport (coaps://): MicroPython's tls module
# (PROTOCOL_DTLS_CLIENT, SSLContext.psk_identity / psk_key where the port has them; the unix port
# here has both, ESP32 builds ASSUMED docs/ASSUMED.md#A-LWM2M-DTLS-PSK). Loaded for a coaps://
# server only; the modem's own DTLS (lwm2m.dtls "modem") is m2m.lwm2m.mdtls.
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


# Datagram transports for m2m.coap.Endpoint: UDP over the modem's sockets (m2m.net.sock.Stack) or
# the platform's own socket module, NoSec or DTLS 1.2 with a pre-shared key (MicroPython's tls
# module: PROTOCOL_DTLS_CLIENT, SSLContext.psk_identity / psk_key where the port has them; the
# unix port here has both, ESP32 builds ASSUMED docs/ASSUMED.md#A-LWM2M-DTLS-PSK).
_AGAIN = (11, 110, 111, 113)  # EAGAIN, ETIMEDOUT, ECONNREFUSED (ICMP), EHOSTUNREACH: nothing now


def parse_uri(uri):
    # "coap://host:port" / "coaps://host" -> (secure, host, port); ValueError with what to give
    for scheme, port, sec in (("coap://", 5683, False), ("coaps://", 5684, True)):
        if uri.startswith(scheme):
            rest = uri[len(scheme):].split("/")[0]
            host, _, p = rest.rpartition(":") if ":" in rest else (rest, "", "")
            if not host:
                break
            return sec, host, int(p) if p else port
    raise ValueError("lwm2m server %r: give coap://HOST:PORT or coaps://HOST:PORT" % (uri,))


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


class Udp:
    def __init__(self, host, port, stack=None, psk=None):
        if stack is None:
            import socket as stack
        ai = stack.getaddrinfo(host, port)[0][-1]
        s = stack.socket(2, 2)  # AF_INET, SOCK_DGRAM
        s.connect(ai)
        if psk:
            if stack.__class__.__name__ == "Stack":  # a modem socket: tls wraps only streams
                s = _Stream(s)
            s = self._dtls(s, psk)
        s.setblocking(False)
        self.s = s
        self.tx_bytes = self.rx_bytes = 0

    @staticmethod
    def _dtls(s, psk):
        import tls

        if not hasattr(tls, "PROTOCOL_DTLS_CLIENT"):
            raise OSError(95, "DTLS: this MicroPython has no tls.PROTOCOL_DTLS_CLIENT; use coap://")
        ctx = tls.SSLContext(tls.PROTOCOL_DTLS_CLIENT)
        ctx.verify_mode = tls.CERT_NONE
        ident, key = psk
        ctx.psk_identity = ident
        ctx.psk_key = key
        s.settimeout(10)
        return ctx.wrap_socket(s)

    def send(self, b):
        self.tx_bytes += len(b)
        self.s.send(b) if hasattr(self.s, "send") else self.s.write(b)

    def recv(self):
        try:
            d = self.s.recv(1280) if hasattr(self.s, "recv") else self.s.read(1280)
        except OSError as e:
            if e.args and e.args[0] in _AGAIN:
                return None
            raise
        if d:
            self.rx_bytes += len(d)
        return d

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

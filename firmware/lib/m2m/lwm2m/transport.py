# Datagram transports for m2m.coap.Endpoint: UDP over the modem's sockets (m2m.net.sock.Stack) or
# the platform's own socket module, NoSec or DTLS 1.2 with a pre-shared key (m2m.lwm2m.dtls,
# loaded for a coaps:// server only), done by MicroPython's tls or by the modem (lwm2m.dtls).
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


class Udp:
    def __init__(self, host, port, stack=None, psk=None, modem_dtls=False):
        # modem_dtls (lwm2m.dtls "modem"): the modem ends the DTLS session (m2m.lwm2m.mdtls)
        if stack is None:
            import socket as stack
        modem = stack.__class__.__name__ == "Stack"
        if psk and modem_dtls:
            if not modem:
                raise OSError(95, "lwm2m.dtls \"modem\" needs the modem's sockets: set it to \"device\"")
            from m2m.lwm2m import mdtls  # loaded for the modem's DTLS only

            s = mdtls.modem_socket(stack, host, port, psk)
        else:
            ai = stack.getaddrinfo(host, port)[0][-1]
            s = stack.socket(2, 2)  # AF_INET, SOCK_DGRAM
            s.connect(ai)
            if psk:
                from m2m.lwm2m import dtls  # loaded for a coaps:// server only

                s = dtls.wrap(s, psk, modem)
        s.setblocking(False)
        self.s = s
        self.tx_bytes = self.rx_bytes = 0

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

# LwM2M 1.1 client (OMA-TS-LightweightM2M_Core-V1_1 and _Transport-V1_1) over m2m.coap. Imported
# only when config "lwm2m" names a server (README "LwM2M client (device)"). Modules: tlv, cbor,
# senml (content formats), model (objects, resources, values), objects (0 1 3 4 5 7 and IPSO),
# client (bootstrap, registration, the server's operations, notifier, Send), transport (UDP, DTLS).
from micropython import const

# content formats (OMA core 7.1, IANA CoAP Content-Formats)
TEXT = const(0)
LINK = const(40)
OPAQUE = const(42)
SENML_JSON = const(110)
SENML_CBOR = const(112)
TLV = const(11542)


def service(ctx):
    # m2m.supervisor's plugin seam (PLUGINS, config lwm2m.server or lwm2m.bootstrap): the client
    # over the modem's UDP sockets, built once the network has opened its modem and attached
    return _OnNet(ctx)


class _OnNet:
    def __init__(self, ctx):
        self.ctx = ctx
        self.client = None

    def step(self):
        c = self.client
        if c is None:
            net = self.ctx["net"]
            if net is None or net.modem is None or not net.attached():
                return 1000
            from m2m.lwm2m.client import Client
            from m2m.net import link_failed, sock

            st = sock.Stack(net.modem, kind="udp", timeout_ms=10000, on_fail=link_failed)
            c = self.client = Client(self.ctx["cfg"], network=net, sampler=self.ctx.get("sampler"),
                                     outbox=self.ctx.get("outbox"), stack=st, name=self.ctx.get("id"),
                                     state="/lwm2m_bs.cbor")
        c.stack.modem = self.ctx["net"].modem  # the network may have opened the modem again
        return c.step()

    def close(self):
        if self.client is not None:
            self.client.close()

# The LwM2M client's own reactions, in process with a socket that fails: a receive error from the
# transport (the modem socket gone) closes it, and the client comes back on a new socket with an
# Update while registered, or registers again before that.
from m2m import coap, hal

NOW = [5000]


class Dead:
    # a transport whose socket dies after `good` receives: then every receive fails (ENOTCONN)
    tx_bytes = rx_bytes = 0

    def __init__(self, good=0):
        self.closed = False
        self.sent = []
        self.good = good

    def send(self, b):
        self.sent.append(coap.decode(bytes(b)))

    def recv(self):
        if self.good is None or self.good > 0:
            if self.good:
                self.good -= 1
            return None
        raise OSError(107)

    def close(self):
        self.closed = True


def test_dead_socket_reopened_then_update():
    from m2m.lwm2m.client import NAMES, Client

    real = hal.ticks_ms
    hal.ticks_ms = lambda: NOW[0]
    try:
        c = Client({"device": {"id": "u"}, "lwm2m": {"server": "coap://127.0.0.1:9"}})
        opened = []

        def fake_open(bootstrap):  # stands in for the modem: the first socket dies, the next lives
            c.tr = Dead(0 if not opened else None)
            c.ep = coap.Endpoint(c.tr, c._handle)
            opened.append(c.tr)

        c._open = fake_open
        c.state = NAMES.index("registered")
        c.loc = ["rd", "7"]
        c.reg = (c._lifetime(), c._binding())
        c.due = NOW[0] + 10 ** 8
        fake_open(False)
        first = c.tr
        c.step()
        assert first.closed and c.ep is None
        assert NAMES[c.state] == "registered"  # still registered: no new Register
        NOW[0] += 11000  # past the 10 s back-off
        c.step()
        assert len(opened) == 2
        up = [m for m in opened[1].sent if m.code == coap.POST]
        assert up and up[0].path() == ["rd", "7"], [m.path() for m in opened[1].sent]  # an Update
    finally:
        hal.ticks_ms = real


def test_dead_socket_while_registering_registers_again():
    from m2m.lwm2m.client import NAMES, Client

    real = hal.ticks_ms
    hal.ticks_ms = lambda: NOW[0]
    try:
        c = Client({"device": {"id": "u"}, "lwm2m": {"server": "coap://127.0.0.1:9"}})
        opened = []

        def fake_open(bootstrap):  # each socket dies after its first receive
            c.tr = Dead(1)
            c.ep = coap.Endpoint(c.tr, c._handle)
            opened.append(c.tr)

        c._open = fake_open
        c.step()  # opens, sends the Register
        NOW[0] += 100
        c.step()  # finds the socket dead
        assert opened[0].closed and NAMES[c.state] == "register"
        assert [m.path() for m in opened[0].sent if m.code == coap.POST] == [["rd"]]
        NOW[0] += 11000
        c.step()
        assert len(opened) == 2
        assert [m.path() for m in opened[1].sent if m.code == coap.POST] == [["rd"]]  # Register again
    finally:
        hal.ticks_ms = real


def test_a_new_client_holds_no_per_operation_code():
    # what loads per operation (bootstrap, Write / Discover parsing, TLV, SenML, CBOR, the notifier,
    # the firmware pull) is not imported by building a client for a server
    import sys

    from m2m import loop

    for k in list(sys.modules):
        if k.startswith("m2m.lwm2m.") or k == "m2m.coap":
            loop.drop(k)
    from m2m.lwm2m.client import Client

    Client({"device": {"id": "u"}, "lwm2m": {"server": "coap://127.0.0.1:9"}})
    held = [k for k in sys.modules if k.startswith("m2m.lwm2m.")]
    for k in ("bs", "parse", "tlv", "senml", "cbor", "cbordec", "notify", "fw", "send", "objects", "ops", "reg",
              "dtls"):
        assert "m2m.lwm2m." + k not in held, held
    assert "m2m.coapblk" not in sys.modules
    import m2m.lwm2m

    assert not hasattr(m2m.lwm2m, "objects")  # the package does not keep the built objects' module

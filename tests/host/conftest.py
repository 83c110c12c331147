"""Host-test fixtures: a real Mosquitto broker for the whole session (plain and TLS listeners, a CA
made at start; see m2mkit.broker), and loopback TCP + UDP echo servers for the modem's sockets.

Under pytest-xdist every worker is its own session: it starts its own broker (free loopback ports,
its own mkdtemp folder), as every server a test starts takes a free port and a temporary folder;
nothing here is written to a fixed path."""

import socketserver
import threading

import pytest
from echo import Echo, EchoUDP

from m2mkit.broker import Broker
from m2mkit.errors import UserError


@pytest.fixture(scope="session")
def broker():
    """A started m2mkit.broker.Broker: .url, .tls_url, .ca_file, .other_ca_file, .log()."""
    try:
        b = Broker().start()
    except UserError as e:
        pytest.fail(str(e))  # mosquitto missing or not starting: say the apt line, never skip
    yield b
    b.stop()


@pytest.fixture
def subscriber(broker):
    """A factory of paho subscribers on the session broker, closed after the test:
    subscriber("m2mkit/#") (plain) or subscriber("m2mkit/#", tls=True)."""
    from m2mkit.broker import Subscriber

    made = []

    def make(*topics, tls=False, ca_file=None):
        s = Subscriber(broker.tls_url if tls else broker.url, topics=topics or ("#",),
                       ca_file=ca_file or (broker.ca_file if tls else None))
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def echo_port():
    """A port where a TCP and a UDP echo server listen on 127.0.0.1."""
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    tcp.daemon_threads = True
    tcp.socket.settimeout(1)  # an accept() after a client's reset must not block shutdown() (sim/bus.py)
    port = tcp.server_address[1]
    udp = socketserver.UDPServer(("127.0.0.1", port), EchoUDP)
    for s in (tcp, udp):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield port
    for s in (tcp, udp):
        s.shutdown()
        s.server_close()

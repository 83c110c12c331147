"""The LwM2M client over DTLS 1.2 with a pre-shared key (coaps://, lwm2m.psk_identity / psk_key):
MicroPython's own mbedTLS ends the DTLS session in a second interpreter (PROTOCOL_DTLS_SERVER with
server_psk_keys, the cookie exchange answered) and relays the plain datagrams to the aiocoap LwM2M
server; the client registers and answers a Read through it. A wrong key gets no registration."""

import subprocess
import time

from m2mkit import testing
from test_lwm2m_client import ACCEPT_TLV, Code, Server, config, free_port

# stands in for the server's DTLS endpoint: mbedTLS through MicroPython's tls module
RELAY = r"""
import socket, time, tls
UP = socket.getaddrinfo("127.0.0.1", %(up)d)[0][-1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(socket.getaddrinfo("127.0.0.1", %(port)d)[0][-1])
print("relay ready")
d, addr = s.recvfrom(2048, socket.MSG_PEEK)
s.connect(addr)
ctx = tls.SSLContext(tls.PROTOCOL_DTLS_SERVER)
ctx.verify_mode = tls.CERT_NONE
ctx.server_psk_keys = {b"dev-1": bytes.fromhex("00112233445566778899aabbccddeeff")}
while True:
    try:
        ss = ctx.wrap_socket(s, server_side=True, client_id=bytes(addr))
        break
    except OSError as e:
        if e.args[0] != -27264:  # MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED: the client comes back
            raise
print("relay handshake done")
ss.setblocking(False)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(UP)
u.setblocking(False)
n = 0
while True:
    try:
        x = ss.read(1280)
    except OSError:
        x = None
    if x:
        u.send(x)
        n += 1
    try:
        y = u.recv(1280)
    except OSError:
        y = None
    if y:
        ss.write(y)
    time.sleep_ms(2)
"""

DEVICE = r"""
import json, os
from m2m import hal
from m2m.lwm2m.client import Client
c = Client(json.loads(%(cfg)r))
end = hal.ticks_add(hal.ticks_ms(), 30000)
while hal.ticks_diff(end, hal.ticks_ms()) > 0:
    try:
        os.stat(%(stop)r)
        break
    except OSError:
        pass
    hal.sleep_ms(min(c.step(), 20))
c.close()
"""


def _run(tmp_path, key):
    server = Server()
    port = free_port()
    relay = subprocess.Popen([testing.micropython(), "-c", RELAY % {"up": server.port, "port": port}],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert relay.stdout.readline().strip() == "relay ready"
    cfg = config(server, psk_identity="dev-1", psk_key=key)
    cfg["lwm2m"]["server"] = "coaps://127.0.0.1:%d" % port
    stop = tmp_path / "stop"
    dev = subprocess.Popen([testing.micropython(), "-X", "heapsize=512K", "-c",
                            testing._prelude() + DEVICE % {"cfg": __import__("json").dumps(cfg), "stop": str(stop)}],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=testing.mpy_env())
    return server, relay, dev, stop


def _end(server, relay, dev, stop):
    stop.write_text("")
    out = dev.communicate(timeout=60)[0]
    relay.kill()
    rout = relay.communicate()[0]
    server.stop()
    return out, rout


def test_register_and_read_over_dtls_psk(tmp_path):
    server, relay, dev, stop = _run(tmp_path, "00112233445566778899aabbccddeeff")
    try:
        reg = server.wait("register", timeout=60)[0]
        assert reg["ep"] == "dev-1"
        r = server.request(Code.GET, "/3/0", accept=ACCEPT_TLV)
        assert r.code == Code.CONTENT and b"m2mkit" in r.payload
    finally:
        out, rout = _end(server, relay, dev, stop)
    assert "relay handshake done" in rout, rout
    assert "event: lwm2m.deregistered ok=True" in out, out


def test_wrong_psk_gets_no_registration(tmp_path):
    server, relay, dev, stop = _run(tmp_path, "ffffffffffffffffffffffffffffffff")
    try:
        time.sleep(4)
        assert not [d for w, d in server.log if w == "register"]
    finally:
        out, rout = _end(server, relay, dev, stop)
    assert "relay handshake done" not in rout
    assert "lwm2m: transport failed" in out, out


MODEM_DEVICE = r"""
import json, os
from m2m import hal
from m2m.at import AT
from m2m import modem
from m2m.net import sock
from m2m.lwm2m.client import Client
from simctl import attach
at = AT(hal.UART(1, 115200), timeout_ms=2000)
m = modem.create(at, {"model": "bg95"})
attach(m)
c = Client(json.loads(%(cfg)r), stack=sock.Stack(m, kind="udp", timeout_ms=5000))
while True:
    try:
        os.stat(%(stop)r)
        break
    except OSError:
        pass
    hal.sleep_ms(min(c.step(), 20))
c.close()
"""


def test_dtls_psk_over_the_modems_udp_socket(tmp_path):
    from m2mkit.sim.modem import ModemSim

    server = Server()
    port = free_port()
    relay = subprocess.Popen([testing.micropython(), "-c", RELAY % {"up": server.port, "port": port}],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop = tmp_path / "stop"
    try:
        assert relay.stdout.readline().strip() == "relay ready"
        cfg = config(server, psk_identity="dev-1", psk_key="00112233445566778899aabbccddeeff")
        cfg["lwm2m"]["server"] = "coaps://127.0.0.1:%d" % port
        with ModemSim(model="bg95", time_scale=10) as sim:
            env = testing.mpy_env({"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
                                   "M2M_GPIO": "%s:%d" % tuple(sim.control_address), "M2M_TIME_SCALE": "10"})
            dev = subprocess.Popen([testing.micropython(), "-X", "heapsize=512K", "-c", testing._prelude()
                                    + MODEM_DEVICE % {"cfg": __import__("json").dumps(cfg), "stop": str(stop)}],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            try:
                assert server.wait("register", timeout=120)[0]["ep"] == "dev-1"
                r = server.request(Code.GET, "/3/0/0", timeout=60)
                assert r.code == Code.CONTENT and r.payload == b"m2mkit"
            finally:
                stop.write_text("")
                out = dev.communicate(timeout=120)[0]
        assert "event: lwm2m.deregistered ok=True" in out, out
    finally:
        relay.kill()
        rout = relay.communicate()[0]
        server.stop()
    assert "relay handshake done" in rout, rout

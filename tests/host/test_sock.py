"""m2m.net.sock in the real MicroPython against the modem simulator, on every dialect: sockets shaped
like MicroPython's over the modem's TCP/UDP/TLS, DNS through the modem, reads bounded by what the
modem holds, timeouts, and TLS verified against the CA uploaded the modem's own way."""

import datetime
import json
import socketserver
import ssl
import threading

import pytest
from echo import Echo

from m2mkit.sim.modem import ModemSim
from m2mkit.testing import run_micropython

SCALE = 20
MODELS = ("sim7080g", "sim7000g", "bg95", "bg96", "gm02s")

UP = """
import json, os
from m2m import hal, creg
from m2m.at import AT
from m2m import modem
from m2m.net import sock
at = AT(hal.UART(1, 115200), timeout_ms=2000)
m = modem.create(at, {"model": os.getenv("MODEL")})
from simctl import attach
attach(m)
asked = []   # bytes each receive command asked for
real_cmd = at.cmd
def cmd(c, *a, **kw):
    r = real_cmd(c, *a, **kw)
    if kw.get("data") is not None:
        asked.append((c, len(r.data or b"")))
    return r
at.cmd = cmd
out = {}
"""

ECHO = UP + """
st = sock.Stack(m, timeout_ms=3000)
port = int(os.getenv("ECHO_PORT"))
ai = st.getaddrinfo("echo.test", port)
out["addr"] = ai[0][-1][0]
s = st.socket()
s.connect(ai[0][-1])
s.write(b"line one\\n")
s.write(b"line two\\n" + bytes(range(256)) + b"\\n")
out["l1"] = s.readline().decode()
out["l2"] = s.readline().decode()
out["bin"] = s.read(257) == bytes(range(256)) + b"\\n"
s.setblocking(False)
out["nb"] = repr(s.read(10))
s.settimeout(0.5)
try:
    s.read(1)
    out["timeout"] = "no"
except OSError as e:
    out["timeout"] = e.args[0]
s.settimeout(None)
s.send(b"x" * 3000)
got = b""
while len(got) < 3000:
    got += s.recv(3000)
out["big"] = got == b"x" * 3000
s.close()
u = st.socket(sock.AF_INET, sock.SOCK_DGRAM)
u.connect(("127.0.0.1", port))
u.send(b"datagram")
out["udp"] = u.recv(100).decode()
u.close()
try:
    st.getaddrinfo("no-such-host.invalid", 1)
    out["nx"] = "resolved"
except OSError as e:
    out["nx"] = e.args[0]
out["over"] = [a for a in asked if not a[0].endswith(",0") and int(a[0].rsplit(",", 1)[1]) > a[1]]
out["free"] = m.socket_kinds
print(json.dumps(out))
"""


def run(code, sim, **env):
    e = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
         "M2M_TIME_SCALE": str(SCALE)}
    e.update(env)
    rc, out, err = run_micropython(code, env=e, timeout=120)
    assert rc == 0, out + err
    return [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")][-1]


@pytest.mark.parametrize("model", MODELS)
def test_socket_like_micropython(model, echo_port):
    with ModemSim(model=model, time_scale=SCALE) as sim:
        r = run(ECHO, sim, MODEL=model, ECHO_PORT=str(echo_port))
    assert r["addr"] == "127.0.0.1"  # echo.test through the modem's DNS
    assert r["l1"] == "line one\n" and r["l2"] == "line two\n" and r["bin"]
    assert r["nb"] == "None"  # non-blocking, nothing there
    assert r["timeout"] == 110  # ETIMEDOUT, never a wait forever
    assert r["big"]
    assert r["udp"] == "datagram"
    assert r["nx"] == 113  # the modem's DNS failure, as EHOSTUNREACH
    assert r["over"] == []  # no receive command asked for more than the modem held
    assert r["free"] == {}  # every socket id given back


def _ca(tmp, name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name + " CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    srv = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
           .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
           .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp / f"{name}-ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp / f"{name}.pem").write_bytes(srv.public_bytes(pem))
    (tmp / f"{name}.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return tmp / f"{name}-ca.pem"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("ca")
    good = _ca(d, "good")
    other = _ca(d, "other")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "good.pem", d / "good.key")

    class TLSEcho(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

        def get_request(self):
            s, addr = super().get_request()
            return ctx.wrap_socket(s, server_side=True), addr

        def handle_error(self, request, client_address):
            pass  # a refused handshake is the point of one test

    srv = TLSEcho(("127.0.0.1", 0), Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], good.read_text(), other.read_text()
    srv.shutdown()
    srv.server_close()


TLS = UP + """
port = int(os.getenv("TLS_PORT"))
for label in ("good", "other"):
    st = sock.Stack(m, kind="tls", timeout_ms=5000, tls={"ca": os.getenv("CA_" + label.upper()), "name": label})
    s = st.socket()
    try:
        s.connect(st.getaddrinfo("localhost", port)[0][-1])
        s.write(b"secret\\n")
        out[label] = s.readline().decode()
        s.close()
    except OSError as e:
        out[label] = [e.args[0], e.args[1]]
print(json.dumps(out))
"""


@pytest.mark.parametrize("model", MODELS)
def test_tls_verified_against_the_uploaded_ca(model, tls_server):
    port, good, other = tls_server
    with ModemSim(model=model, time_scale=SCALE) as sim:
        r = run(TLS, sim, MODEL=model, TLS_PORT=str(port), CA_GOOD=good, CA_OTHER=other)
    assert r["good"] == "secret\n"
    code, why = r["other"]
    assert code == 111 and "certificate" in why, r  # refused, and the device says why


INTERRUPTED = UP + """
st = sock.Stack(m, timeout_ms=3000)
addr = ("127.0.0.1", int(os.getenv("ECHO_PORT")))
real = m.open_error
def boom(line):   # the heap runs out right after the modem opened the socket
    m.open_error = real
    raise MemoryError
m.open_error = boom
s = st.socket()
try:
    s.connect(addr)
except MemoryError:
    out["raised"] = True
out["ids"] = m.socket_kinds
s = st.socket()
s.connect(addr)   # the same id again: the modem must have been told to close it
s.write(b"again\\n")
out["echo"] = s.readline().decode()
s.close()
print(json.dumps(out))
"""


@pytest.mark.parametrize("model", ("sim7080g", "bg95"))
def test_an_open_cut_short_gives_the_socket_back(model, echo_port):
    with ModemSim(model=model, time_scale=SCALE) as sim:
        r = run(INTERRUPTED, sim, MODEL=model, ECHO_PORT=str(echo_port))
    assert r == {"raised": True, "ids": {}, "echo": "again\n"}


SEND_CUT_SHORT = UP + """
st = sock.Stack(m, timeout_ms=3000)
s = st.socket()
s.connect(st.getaddrinfo("echo.test", int(os.getenv("ECHO_PORT")))[0][-1])
real_send = m.sock_send
def cut_short(*a, **kw):
    # the payload reached the modem, then Ctrl-C came before the send returned
    real_send(*a, **kw)
    raise KeyboardInterrupt
m.sock_send = cut_short
try:
    s.send(b"once\\n")
    out["raised"] = False
except KeyboardInterrupt:
    out["raised"] = True
m.sock_send = real_send
s.send(b"two\\n")
out["lines"] = [s.readline().decode(), s.readline().decode()]
s.close()
print(json.dumps(out))
"""


@pytest.mark.parametrize("model", ("sim7080g", "bg95"))
def test_a_send_cut_short_is_not_sent_again(model, echo_port):
    # bytes handed to the modem by a send that an exception cut short are not sent again by the
    # next send or close()'s flush (the broker would get the MQTT message twice, without DUP)
    with ModemSim(model=model, time_scale=SCALE) as sim:
        r = run(SEND_CUT_SHORT, sim, MODEL=model, ECHO_PORT=str(echo_port))
    assert r == {"raised": True, "lines": ["once\n", "two\n"]}, r

"""The modem simulator, heard the way firmware hears it: raw bytes over its TCP 'UART'."""

import datetime
import json
import socket
import ssl
import threading
import time

import pytest

from m2mkit.sim.modem import MODELS, ModemSim

SCALE = 25.0  # modem seconds per real second
NEVER = [(0, "searching", {})]  # a timeline that never registers: keeps the byte stream quiet
FAST = [(0, "searching", {}), (1.0, "home", {})]
NITZ_URCS = (b"DST:", b"*PSUTTZ:", b"+CTZV:", b"+CTZE:", b"+CTZEU:")


def without_nitz(data):
    """An answer with the network-time URCs that may arrive in it taken out."""
    for prefix in NITZ_URCS:
        while (i := data.find(b"\r\n" + prefix)) >= 0:
            j = data.index(b"\r\n", i + 2)
            data = data[:i] + data[j + 2:]
    return data

PAYLOAD = b"ab\r\nOK\r\nc\x00\xff\x1a"  # binary, with an OK line and a Ctrl-Z inside

BANNERS = {
    "sim7080g": b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n",
    "sim7000g": b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n",
    "bg95": b"\r\nRDY\r\n\r\nAPP RDY\r\n",
    "bg96": b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n",
    "gm02s": b"\r\n+SYSSTART\r\n",
}
IDENT = {
    "sim7080g": (b"SIMCOM_SIM7080", b"AT+CCID", b"\r\n%s\r\n\r\nOK\r\n"),
    "sim7000g": (b"SIMCOM_SIM7000G", b"AT+CCID", b"\r\n%s\r\n\r\nOK\r\n"),
    "bg95": (b"BG95-M3", b"AT+QCCID", b"\r\n+QCCID: %s\r\n\r\nOK\r\n"),
    "bg96": (b"BG96", b"AT+QCCID", b"\r\n+QCCID: %s\r\n\r\nOK\r\n"),
    "gm02s": (b"GM02SP", b"AT+SQNCCID?", b'\r\n+SQNCCID: "%s",""\r\n\r\nOK\r\n'),
}
ALL = sorted(MODELS)


class Uart:
    """The host end of the wire."""

    def __init__(self, addr):
        self.s = socket.create_connection(addr)
        self.s.settimeout(0.02)
        self.buf = bytearray()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        try:
            data = self.s.recv(65536)
        except socket.timeout:
            return
        if not data:
            raise ConnectionError("simulator closed the UART")
        self.buf += data

    def expect(self, pattern, timeout=3.0):
        """Everything up to and including the first `pattern` (fails after `timeout`)."""
        end = time.monotonic() + timeout
        while pattern not in self.buf:
            if time.monotonic() > end:
                raise AssertionError("no %r within %.1fs; got %r" % (pattern, timeout, bytes(self.buf)))
            self._fill()
        i = self.buf.index(pattern) + len(pattern)
        out = bytes(self.buf[:i])
        del self.buf[:i]
        return out

    def quiet(self, t=0.15):
        """All bytes that arrive within t seconds."""
        end = time.monotonic() + t
        while time.monotonic() < end:
            self._fill()
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_exact(self, n, timeout=3.0):
        end = time.monotonic() + timeout
        while len(self.buf) < n:
            if time.monotonic() > end:
                raise AssertionError("wanted %d bytes, got %r" % (n, bytes(self.buf)))
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def payload_reply(self, line, head, n, tail=b"\r\n\r\nOK\r\n"):
        """A read command whose answer is head + n raw bytes + tail (the bytes may hold 'OK')."""
        self.send(line + b"\r")
        assert self.expect(head) == head
        data = self.read_exact(n)
        assert self.read_exact(len(tail)) == tail
        return data

    def cmd(self, line, final=b"\r\nOK\r\n", timeout=3.0):
        self.send(line + b"\r")
        return self.expect(final, timeout)

    def close(self):
        self.s.close()


def banner(model, pin_locked=False):
    """The boot banner; with a PIN the SIM reports SIM PIN and SMS init waits for it."""
    b = BANNERS[model]
    if pin_locked:
        b = b.replace(b"+CPIN: READY", b"+CPIN: SIM PIN")
        for ready_only in (b"\r\nSMS Ready\r\n", b"\r\n+QIND: SMS DONE\r\n"):
            b = b.replace(ready_only, b"")
    return b


def boot(model, timeline=NEVER, **kw):
    """A powered simulator and a UART that has read the whole banner, with echo turned off."""
    kw.setdefault("time_scale", SCALE)
    sim = ModemSim(model=model, timeline=timeline, **kw).start()
    u = Uart(sim.uart_address)
    u.expect(banner(model, kw.get("pin") is not None))
    u.quiet(0.05)
    assert u.cmd(b"ATE0") == b"ATE0\r\r\nOK\r\n"
    if model == "gm02s":
        assert u.cmd(b"AT+CFUN=1") == b"\r\nOK\r\n"
    return sim, u


def wait_registered(u, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = u.cmd(b"AT+CEREG?")
        if r in (b"\r\n+CEREG: 0,1\r\n\r\nOK\r\n", b"\r\n+CEREG: 0,5\r\n\r\nOK\r\n"):
            u.quiet(0.12)  # let attach-time URCs (NITZ) pass
            return
        time.sleep(0.05)
    raise AssertionError("never registered")


# ---- servers on loopback ------------------------------------------------------------------------
class EchoServer:
    """TCP (optionally TLS) or UDP echo server on 127.0.0.1."""

    def __init__(self, proto="tcp", tls=None):
        self.proto = proto
        self.tls = tls
        self.errors = []
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        if proto == "tcp":
            self.sock.listen(5)
        self.conns = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        if self.proto == "udp":
            while True:
                try:
                    data, addr = self.sock.recvfrom(65536)
                except OSError:
                    return
                self.sock.sendto(data, addr)
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.tls is not None:
                c = self.tls.wrap_socket(c, server_side=True)
            self.conns.append(c)
            while True:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)
        except (ssl.SSLError, OSError) as e:
            self.errors.append(e)
        finally:
            c.close()

    def close(self):
        self.sock.close()


def make_ca(tmp_path, name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / (name + ".crt")).write_bytes(cert.public_bytes(pem))
    (tmp_path / (name + ".key")).write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / (name + ".crt"), tmp_path / (name + ".key"))
    return ca.public_bytes(pem), ctx


# ---- one socket driver per dialect, written from the vendors' manuals ---------------------------------
class SimcomSock:
    cid = 0

    def setup(self, u):
        assert u.cmd(b"AT+CNACT=0,1") == b"\r\nOK\r\n"
        u.expect(b"\r\n+APP PDP: 0,ACTIVE\r\n")

    def upload_ca(self, u, pem):
        assert u.cmd(b"AT+CFSINIT") == b"\r\nOK\r\n"
        u.send(b'AT+CFSWFILE=3,"ca.crt",0,%d,5000\r' % len(pem))
        assert u.expect(b"\r\nDOWNLOAD\r\n") == b"\r\nDOWNLOAD\r\n"
        u.send(pem)
        assert u.expect(b"\r\nOK\r\n") == b"\r\nOK\r\n"
        assert u.cmd(b"AT+CFSTERM") == b"\r\nOK\r\n"
        assert u.cmd(b'AT+CSSLCFG="convert",2,"ca.crt"') == b"\r\nOK\r\n"

    def open(self, u, proto, port, tls=False):
        if tls:
            assert u.cmd(b'AT+CASSLCFG=0,"SSL",1') == b"\r\nOK\r\n"
            assert u.cmd(b'AT+CASSLCFG=0,"CACERT","ca.crt"') == b"\r\nOK\r\n"
        r = u.cmd(b'AT+CAOPEN=0,0,"%s","127.0.0.1",%d' % (proto.upper().encode(), port))
        return r

    OPEN_OK = b"\r\n+CAOPEN: 0,0\r\n\r\nOK\r\n"
    TLS_FAIL = b"\r\n+CAOPEN: 0,27\r\n\r\nOK\r\n"
    REFUSED = b"\r\n+CAOPEN: 0,23\r\n\r\nOK\r\n"
    DATA_URC = b"\r\n+CADATAIND: 0\r\n"
    CLOSED_URC = b"\r\n+CASTATE: 0,0\r\n"

    def send(self, u, data):
        u.send(b"AT+CASEND=0,%d\r" % len(data))
        assert u.expect(b"> ") == b"\r\n> "
        u.send(data)
        assert u.expect(b"\r\nOK\r\n") == b"\r\nOK\r\n"
        # then the transmission report (SIMCom TCP/UDP application note)
        assert u.expect(b"\r\n", 1) + u.expect(b"\r\n", 1) == b"\r\n+CASEND: 0,0,%d\r\n" % len(data)

    def read(self, u, n):
        return u.payload_reply(b"AT+CARECV=0,1460", b"\r\n+CARECV: %d," % n, n)

    def close(self, u):
        assert u.cmd(b"AT+CACLOSE=0") == b"\r\nOK\r\n"


class Sim7000Sock(SimcomSock):
    def setup(self, u):
        assert u.cmd(b'AT+CNACT=1,"iot"') == b"\r\nOK\r\n"
        u.expect(b"\r\n+APP PDP: ACTIVE\r\n")

    def open(self, u, proto, port, tls=False):
        if tls:
            assert u.cmd(b'AT+CASSLCFG=0,"SSL",1') == b"\r\nOK\r\n"
            assert u.cmd(b'AT+CASSLCFG=0,"CACERT","ca.crt"') == b"\r\nOK\r\n"
        assert u.cmd(b'AT+CASSLCFG=0,"PROTOCOL",%d' % (1 if proto == "udp" else 0)) == b"\r\nOK\r\n"
        return u.cmd(b'AT+CAOPEN=0,"127.0.0.1",%d' % port)


class QuectelSock:
    OPEN_OK = b"\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n"
    REFUSED = b"\r\nOK\r\n\r\n+QIOPEN: 0,566\r\n"

    @property
    def DATA_URC(self):
        return b'\r\n+%s: "recv",0\r\n' % (b"QSSLURC" if self.tls else b"QIURC")

    @property
    def CLOSED_URC(self):
        return b'\r\n+%s: "closed",0\r\n' % (b"QSSLURC" if self.tls else b"QIURC")

    def __init__(self):
        self.tls = False

    def setup(self, u):
        assert u.cmd(b'AT+QICSGP=1,1,"iot","","",1') == b"\r\nOK\r\n"
        assert u.cmd(b"AT+QIACT=1") == b"\r\nOK\r\n"

    def upload_ca(self, u, pem):
        u.send(b'AT+QFUPL="UFS:ca.pem",%d,10\r' % len(pem))
        assert u.expect(b"\r\nCONNECT\r\n") == b"\r\nCONNECT\r\n"
        u.send(pem)
        r = u.expect(b"\r\nOK\r\n")
        assert r.startswith(b"\r\n+QFUPL: %d," % len(pem))
        assert u.cmd(b'AT+QSSLCFG="cacert",1,"UFS:ca.pem"') == b"\r\nOK\r\n"
        assert u.cmd(b'AT+QSSLCFG="seclevel",1,1') == b"\r\nOK\r\n"

    def open(self, u, proto, port, tls=False):
        self.tls = tls
        if tls:
            u.send(b'AT+QSSLOPEN=1,1,0,"127.0.0.1",%d,0\r' % port)
            r = u.expect(b"\r\n+QSSLOPEN: 0,")
            return (r + u.expect(b"\r\n")).replace(b"+QSSLOPEN", b"+QIOPEN")
        u.send(b'AT+QIOPEN=1,0,"%s","127.0.0.1",%d,0,0\r' % (proto.upper().encode(), port))
        r = u.expect(b"\r\n+QIOPEN: 0,")
        return r + u.expect(b"\r\n")

    TLS_FAIL = b"\r\nOK\r\n\r\n+QIOPEN: 0,-1\r\n"

    def send(self, u, data):
        u.send(b"AT+%s=0,%d\r" % (b"QSSLSEND" if self.tls else b"QISEND", len(data)))
        assert u.expect(b"> ") == b"\r\n> "
        u.send(data)
        assert u.expect(b"\r\nSEND OK\r\n") == b"\r\nSEND OK\r\n"

    def read(self, u, n):
        name = b"QSSLRECV" if self.tls else b"QIRD"
        return u.payload_reply(b"AT+%s=0,1500" % name, b"\r\n+%s: %d\r\n" % (name, n), n)

    def close(self, u):
        assert u.cmd(b"AT+%s=0" % (b"QSSLCLOSE" if self.tls else b"QICLOSE")) == b"\r\nOK\r\n"


class SequansSock:
    OPEN_OK = b"\r\nOK\r\n"
    TLS_FAIL = b"\r\n+CME ERROR: 3\r\n"
    REFUSED = b"\r\n+CME ERROR: 3\r\n"
    CLOSED_URC = b"\r\n+SQNSH: 1\r\n"

    def __init__(self):
        self.n = None

    @property
    def DATA_URC(self):
        return b"\r\n+SQNSRING: 1,%d\r\n" % self.n

    def setup(self, u):
        assert u.cmd(b"AT+CMEE=1") == b"\r\nOK\r\n"
        assert u.cmd(b"AT+SQNSCFG=1,1,300,90,600,50") == b"\r\nOK\r\n"
        assert u.cmd(b"AT+SQNSCFGEXT=1,1,0,0") == b"\r\nOK\r\n"

    def upload_ca(self, u, pem):
        u.send(b'AT+SQNSNVW="certificate",1,%d\r' % len(pem))
        assert u.expect(b"> ") == b"\r\n> "
        u.send(pem)
        assert u.expect(b"\r\nOK\r\n") == b"\r\nOK\r\n"
        assert u.cmd(b'AT+SQNSPCFG=1,2,"",1,1') == b"\r\nOK\r\n"

    def open(self, u, proto, port, tls=False):
        assert u.cmd(b"AT+SQNSSCFG=1,%d,1" % int(tls)) == b"\r\nOK\r\n"
        u.send(b'AT+SQNSD=1,%d,%d,"127.0.0.1",0,0,1\r' % (1 if proto == "udp" else 0, port))
        return u.expect(b"\r\n", 3) + u.expect(b"\r\n", 3)

    def send(self, u, data):
        self.n = len(data)
        u.send(b"AT+SQNSSENDEXT=1,%d\r" % len(data))
        assert u.expect(b"> ") == b"\r\n> "
        u.send(data)
        assert u.expect(b"\r\nOK\r\n") == b"\r\nOK\r\n"

    def read(self, u, n):
        return u.payload_reply(b"AT+SQNSRECV=1,1500", b"\r\n+SQNSRECV: 1,%d\r\n" % n, n)

    def close(self, u):
        assert u.cmd(b"AT+SQNSH=1") == b"\r\nOK\r\n"


DRIVERS = {"sim7080g": SimcomSock, "sim7000g": Sim7000Sock, "bg95": QuectelSock, "bg96": QuectelSock,
           "gm02s": SequansSock}


@pytest.fixture
def sims():
    made = []
    yield made
    for s in made:
        s.stop()


def started(sims, model, **kw):
    sim, u = boot(model, **kw)
    sims.append(sim)
    return sim, u


# ---- boot, echo, identity -----------------------------------------------------------------------------
@pytest.mark.parametrize("model", ALL)
def test_boot_banner_then_echo(sims, model):
    sim = ModemSim(model=model, time_scale=SCALE, timeline=NEVER, power_on=False).start()
    sims.append(sim)
    u = Uart(sim.uart_address)
    u.send(b"AT\r")  # powered off: the wire is dead
    assert u.quiet(0.2) == b""
    t0 = time.monotonic()
    sim.power(True)
    assert u.expect(BANNERS[model]) == BANNERS[model]
    assert time.monotonic() - t0 >= MODELS[model].BOOT_TIME / SCALE * 0.9
    u.quiet(0.05)
    assert u.cmd(b"AT") == b"AT\r\r\nOK\r\n"  # echo is on after boot
    assert u.cmd(b"ATE0") == b"ATE0\r\r\nOK\r\n"
    assert u.cmd(b"AT") == b"\r\nOK\r\n"
    assert u.cmd(b"AT+NOSUCH", b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert u.cmd(b'AT+CGDCONT=1,"IP', b"ERROR\r\n") == b"\r\nERROR\r\n"  # unterminated string


@pytest.mark.parametrize("model", ALL)
def test_identity(sims, model):
    sim, u = started(sims, model)
    cgmm, ccid_cmd, ccid_fmt = IDENT[model]
    assert u.cmd(b"AT+CGMM") == b"\r\n%s\r\n\r\nOK\r\n" % cgmm
    assert u.cmd(b"AT+CGSN") == b"\r\n%s\r\n\r\nOK\r\n" % sim.imei.encode()
    assert u.cmd(b"AT+CIMI") == b"\r\n%s\r\n\r\nOK\r\n" % sim.card.imsi.encode()
    assert u.cmd(ccid_cmd) == ccid_fmt % sim.card.iccid.encode()
    ati = u.cmd(b"ATI")
    assert ati.startswith(b"\r\n") and ati.endswith(b"\r\n\r\nOK\r\n")
    assert b"\r\n".join(x.encode() for x in MODELS[model].ATI) in ati
    assert u.cmd(b"AT+CMEE=1;+CGMI") == b"\r\n%s\r\n\r\nOK\r\n" % MODELS[model].MANUFACTURER.encode()


# ---- SIM ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ALL)
def test_cmee_forms_and_pin_countdown_to_puk(sims, model):
    sim, u = started(sims, model, pin="1234", puk="87654321")
    assert u.cmd(b"AT+CPIN?") == b"\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n"
    assert u.cmd(b"AT+CMEE=0;+CIMI", b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert u.cmd(b"AT+CMEE=1") == b"\r\nOK\r\n"
    assert u.cmd(b"AT+CIMI", b"\r\n+CME ERROR: 11\r\n") == b"\r\n+CME ERROR: 11\r\n"
    assert u.cmd(b"AT+CMEE=2") == b"\r\nOK\r\n"
    assert u.cmd(b"AT+CIMI", b"required\r\n") == b"\r\n+CME ERROR: SIM PIN required\r\n"
    assert u.cmd(b"AT+CMEE=1") == b"\r\nOK\r\n"
    for _ in range(3):
        assert u.cmd(b'AT+CPIN="0000"', b"ERROR: 16\r\n") == b"\r\n+CME ERROR: 16\r\n"
    assert u.cmd(b"AT+CPIN?") == b"\r\n+CPIN: SIM PUK\r\n\r\nOK\r\n"
    assert u.cmd(b'AT+CPIN="1234"', b"ERROR: 12\r\n") == b"\r\n+CME ERROR: 12\r\n"  # PUK needed now
    assert u.cmd(b'AT+CPIN="11111111","4321"', b"ERROR: 16\r\n") == b"\r\n+CME ERROR: 16\r\n"
    assert sim.status()["puk_left"] == 9
    assert u.cmd(b'AT+CPIN="87654321","4321"') == b"\r\nOK\r\n"
    u.quiet(0.1)
    assert u.cmd(b"AT+CPIN?") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert u.cmd(b'AT+CLCK="SC",2') == b"\r\n+CLCK: 1\r\n\r\nOK\r\n"
    assert sim.status()["pin_left"] == 3 and sim.status()["puk_left"] == 10


def test_puk_exhausted_blocks_the_sim(sims):
    sim, u = started(sims, "bg95", pin="1234")
    assert u.cmd(b"AT+CMEE=2") == b"\r\nOK\r\n"
    for _ in range(3):
        u.cmd(b'AT+CPIN="9999"', b"password\r\n")
    for i in range(10):
        assert u.cmd(b'AT+CPIN="00000000","1111"', b"password\r\n") == b"\r\n+CME ERROR: incorrect password\r\n"
    assert u.cmd(b"AT+CPIN?", b"failure\r\n") == b"\r\n+CME ERROR: SIM failure\r\n"
    assert u.cmd(b"AT+CMEE=1;+CPIN?", b"13\r\n") == b"\r\n+CME ERROR: 13\r\n"
    sim.fault("reboot")  # the card keeps its counters across a reboot
    u.expect(BANNERS["bg95"])
    assert u.cmd(b"AT+CMEE=1;+CPIN?", b"13\r\n") == b"AT+CMEE=1;+CPIN?\r\r\n+CME ERROR: 13\r\n"


# ---- registration ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ALL)
def test_registration_timeline_urc_forms(sims, model):
    sim, u = started(sims, model)
    home = b'1,"1A2B","01A2B3C4",7'
    assert u.cmd(b'AT+CPSMS=1,,,"00100001","00000010"') == b"\r\nOK\r\n"
    expected = {
        0: [],
        1: [b"+CEREG: 2", b"+CEREG: 1"],
        2: [b"+CEREG: 2", b"+CEREG: " + home],
        3: [b"+CEREG: 2", b"+CEREG: " + home],
        4: [b"+CEREG: 2", b"+CEREG: " + home + b',,,"00000010","00100001"'],
        5: [b"+CEREG: 2", b"+CEREG: " + home + b',,,"00000010","00100001"'],
    }
    for n in range(6):
        assert u.cmd(b"AT+CEREG=%d" % n) == b"\r\nOK\r\n"
        sim.set_registration("no_service")
        u.quiet(0.05)
        t0 = time.monotonic()
        sim.set_timeline([(0, "searching"), (2.0, "home")])
        if not expected[n]:
            assert b"REG" not in u.quiet(2.5 / SCALE + 0.1)
        else:
            for want in expected[n]:
                pat = b"\r\n" + want + b"\r\n"
                got = u.expect(pat)
                # after attach the SIMCom modems also send NITZ time URCs; only those may come between
                others = [ln for ln in got[: -len(pat)].split(b"\r\n") if ln]
                assert all(ln.startswith(NITZ_URCS) for ln in others), (n, got)
            assert time.monotonic() - t0 >= 2.0 / SCALE * 0.9
        read = without_nitz(u.cmd(b"AT+CEREG?"))
        tail = expected[n][-1][len(b"+CEREG: "):] if n >= 2 else b"1"
        assert read == b"\r\n+CEREG: %d,%s\r\n\r\nOK\r\n" % (n, tail)
    # denied with a reject cause: n=3 and n=5 carry <cause_type>,<reject_cause>
    assert u.cmd(b"AT+CEREG=3") == b"\r\nOK\r\n"
    sim.set_registration("denied", reject_cause=15)
    assert u.expect(b"\r\n", 1) + u.expect(b"\r\n", 1) == b'\r\n+CEREG: 3,"1A2B","01A2B3C4",7,0,15\r\n'
    assert u.cmd(b"AT+CEREG=5") == b"\r\nOK\r\n"
    assert u.cmd(b"AT+CEREG?") == b'\r\n+CEREG: 5,3,"1A2B","01A2B3C4",7,0,15\r\n\r\nOK\r\n'
    assert u.cmd(b"AT+CSQ") == b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n"
    sim.set_signal(rssi=-53, rsrp=-80, rsrq=-7)
    assert u.cmd(b"AT+CSQ") == b"\r\n+CSQ: 30,99\r\n\r\nOK\r\n"
    assert u.cmd(b"AT+CESQ") == b"\r\n+CESQ: 99,99,255,255,26,61\r\n\r\nOK\r\n"


def test_default_timeline_searches_8s_then_home(sims):
    sim, u = started(sims, "bg95", timeline=None, time_scale=40)
    assert u.cmd(b"AT+CEREG=1;+CREG=1") == b"\r\nOK\r\n"
    assert u.cmd(b"AT+CEREG?") == b"\r\n+CEREG: 1,2\r\n\r\nOK\r\n"
    u.expect(b"\r\n+CEREG: 1\r\n", 1)
    assert sim.modem_time() >= 8.0
    assert u.cmd(b"AT+CREG?;+COPS?") == b'\r\n+CREG: 1,1\r\n\r\n+COPS: 0,0,"Test Network",7\r\n\r\nOK\r\n'


def test_cops_scan_is_slow_and_lists_operators(sims):
    sim, u = started(sims, "sim7080g", time_scale=600)
    t0 = time.monotonic()
    r = u.cmd(b"AT+COPS=?", timeout=2)
    assert time.monotonic() - t0 >= MODELS["sim7080g"].COPS_SCAN_TIME / 600 * 0.9
    assert r == (b'\r\n+COPS: (1,"Test Network","TEST","00101",7),(1,"Test Network","TEST","00101",9),'
                 b'(3,"Other Network","OTHER","00102",7),(2,"Partner Network","PARTNER","00103",7),'
                 b',(0,1,2,3,4),(0,1,2)\r\n\r\nOK\r\n')


@pytest.mark.parametrize("model", ALL)
def test_psm_and_edrx_read_back(sims, model):
    sim, u = started(sims, model)
    assert u.cmd(b'AT+CPSMS=1,,,"00000110","00000001"') == b"\r\nOK\r\n"
    assert u.cmd(b"AT+CPSMS?") == b'\r\n+CPSMS: 1,,,"00000110","00000001"\r\n\r\nOK\r\n'
    assert u.cmd(b'AT+CPSMS=1,,,"0110","00000001"', b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert u.cmd(b'AT+CEDRXS=1,4,"0101"') == b"\r\nOK\r\n"
    assert u.cmd(b"AT+CEDRXS?") == b'\r\n+CEDRXS: 4,"0101"\r\n\r\nOK\r\n'
    sim.set_registration("home")
    u.quiet(0.1)
    assert u.cmd(b"AT+CEREG=4;+CEREG?") == b'\r\n+CEREG: 4,1,"1A2B","01A2B3C4",7,,,"00000001","00000110"\r\n\r\nOK\r\n'


# ---- sockets ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ("tcp", "udp"))
@pytest.mark.parametrize("model", ALL)
def test_socket_roundtrip(sims, model, kind):
    srv = EchoServer(kind)
    sim, u = started(sims, model, timeline=FAST)
    wait_registered(u)
    d = DRIVERS[model]()
    d.setup(u)
    assert d.open(u, kind, srv.port) == d.OPEN_OK
    d.send(u, PAYLOAD)
    assert u.expect(d.DATA_URC) == d.DATA_URC
    assert d.read(u, len(PAYLOAD)) == PAYLOAD
    d.close(u)
    c = sim.counters()["0" if model != "gm02s" else "1"]
    assert c["tx_payload"] == len(PAYLOAD) and c["rx_payload"] == len(PAYLOAD)
    if kind == "udp":  # one datagram each way: payload + IPv4 20 + UDP 8, one radio round trip
        assert (c["tx_air"], c["rx_air"], c["round_trips"]) == (len(PAYLOAD) + 28, len(PAYLOAD) + 28, 1)
    srv.close()


@pytest.mark.parametrize("model", ALL)
def test_tls_verified_against_uploaded_ca_and_wrong_ca_refused(sims, model, tmp_path):
    ca_pem, server_ctx = make_ca(tmp_path, "goodca")
    other_pem, _ = make_ca(tmp_path, "otherca")
    srv = EchoServer("tcp", tls=server_ctx)
    sim, u = started(sims, model, timeline=FAST)
    wait_registered(u)
    d = DRIVERS[model]()
    d.setup(u)
    d.upload_ca(u, ca_pem)
    assert d.open(u, "tcp", srv.port, tls=True) == d.OPEN_OK
    d.send(u, PAYLOAD)
    assert u.expect(d.DATA_URC) == d.DATA_URC
    assert d.read(u, len(PAYLOAD)) == PAYLOAD
    d.close(u)
    u.quiet(0.1)
    # now the wrong CA: the modem must refuse the server
    sim2, u2 = started(sims, model, timeline=FAST)
    wait_registered(u2)
    d2 = DRIVERS[model]()
    d2.setup(u2)
    d2.upload_ca(u2, other_pem)
    assert d2.open(u2, "tcp", srv.port, tls=True) == d2.TLS_FAIL
    srv.close()


def test_send_with_ctrl_z_and_read_in_pieces(sims):
    srv = EchoServer("tcp")
    sim, u = started(sims, "bg95", timeline=FAST)
    wait_registered(u)
    d = QuectelSock()
    d.setup(u)
    assert d.open(u, "tcp", srv.port) == d.OPEN_OK
    assert u.cmd(b"ATE1") == b"\r\nOK\r\n"  # typed while echo was off: not echoed
    u.send(b"AT+QISEND=0\r")
    assert u.expect(b"> ") == b"AT+QISEND=0\r\r\n> "
    u.send(b"hello world\x1a")
    assert u.expect(b"SEND OK\r\n") == b"hello world\r\nSEND OK\r\n"  # BG95 echoes the payload
    u.expect(d.DATA_URC)
    assert u.cmd(b"ATE0") == b"ATE0\r\r\nOK\r\n"
    assert u.cmd(b"AT+QIRD=0,5") == b"\r\n+QIRD: 5\r\nhello\r\n\r\nOK\r\n"
    assert u.cmd(b"AT+QIRD=0,0") == b"\r\n+QIRD: 11,5,6\r\n\r\nOK\r\n"
    assert u.cmd(b"AT+QIRD=0,100") == b"\r\n+QIRD: 6\r\n world\r\n\r\nOK\r\n"
    assert u.cmd(b"AT+QIRD=0,100") == b"\r\n+QIRD: 0\r\n\r\nOK\r\n"
    srv.close()


# ---- faults ---------------------------------------------------------------------------------------------------------
def test_fault_garble_drop_delay(sims):
    sim, u = started(sims, "bg95", seed=1)
    sim.fault("garble", count=3)
    r = u.cmd(b"AT", b"K\r\n")
    assert len(r) == 6 and r[3:] == b"OK\r\n"[1:] and r[:3] != b"\r\nO"
    sim.fault("drop", count=2)
    assert u.cmd(b"AT", b"OK\r\n") == b"OK\r\n"
    sim.fault("delay", seconds=5.0, count=6)
    t0 = time.monotonic()
    assert u.cmd(b"AT") == b"\r\nOK\r\n"
    assert time.monotonic() - t0 >= 5.0 / SCALE * 0.9
    sim.fault("garble", probability=1.0)
    r = u.quiet(0.0) or b""
    u.send(b"AT\r")
    r = u.quiet(0.2)
    assert len(r) == 6 and r != b"\r\nOK\r\n"
    sim.fault("clear")
    assert u.cmd(b"AT") == b"\r\nOK\r\n"


def test_fault_duplicate_urc_and_lose_registration(sims):
    sim, u = started(sims, "bg95", timeline=FAST)
    wait_registered(u)
    assert u.cmd(b"AT+CEREG=1") == b"\r\nOK\r\n"
    sim.fault("duplicate_urc", count=1)
    sim.fault("lose_registration", duration=2.0)
    t0 = time.monotonic()
    assert u.expect(b"\r\n+CEREG: 1\r\n", 2) == b"\r\n+CEREG: 2\r\n\r\n+CEREG: 2\r\n\r\n+CEREG: 1\r\n"
    assert time.monotonic() - t0 >= 2.0 / SCALE * 0.9


def test_fault_far_end_close_and_sockets_refused(sims):
    srv = EchoServer("tcp")
    sim, u = started(sims, "bg95", timeline=FAST)
    wait_registered(u)
    d = QuectelSock()
    d.setup(u)
    assert d.open(u, "tcp", srv.port) == d.OPEN_OK
    sim.fault("far_end_close", socket=0)
    assert u.expect(d.CLOSED_URC) == d.CLOSED_URC
    assert u.cmd(b"AT+QISTATE=1,0") == (b'\r\n+QISTATE: 0,"TCP","127.0.0.1",%d,%d,4,1,0,0,"uart1"\r\n\r\nOK\r\n'
                                        % (srv.port, sim.status() and _local_port(sim, 0)))
    d.close(u)
    assert u.cmd(b"AT+QISTATE=1,0") == b"\r\nOK\r\n"
    sim.fault("sockets_refused")
    assert d.open(u, "tcp", srv.port) == d.REFUSED
    sim.fault("sockets_refused", enable=False)
    assert d.open(u, "tcp", srv.port) == d.OPEN_OK
    srv.close()


def test_sim7000_cip_command_set(sims):
    srv = EchoServer("tcp")
    sim, u = started(sims, "sim7000g", timeline=FAST)
    wait_registered(u)
    for line in (b"AT+CIPMUX=1", b"AT+CIPRXGET=1", b'AT+CSTT="iot"', b"AT+CIICR"):
        assert u.cmd(line) == b"\r\nOK\r\n"
    assert u.cmd(b"AT+CIFSR", b".") and u.expect(b"\r\n")  # bare address, no OK
    u.send(b'AT+CIPSTART=0,"TCP","127.0.0.1",%d\r' % srv.port)
    assert u.expect(b"CONNECT OK\r\n") == b"\r\nOK\r\n\r\n0, CONNECT OK\r\n"
    u.send(b"AT+CIPSEND=0,%d\r" % len(PAYLOAD))
    assert u.expect(b"> ") == b"\r\n> "
    u.send(PAYLOAD)
    assert u.expect(b"\r\n+CIPRXGET: 1,0\r\n") == b"\r\n0, SEND OK\r\n\r\n+CIPRXGET: 1,0\r\n"
    head = b"\r\n+CIPRXGET: 2,0,%d,0\r\n" % len(PAYLOAD)
    assert u.payload_reply(b"AT+CIPRXGET=2,0,1460", head, len(PAYLOAD)) == PAYLOAD
    assert u.cmd(b"AT+CIPCLOSE=0", b"CLOSE OK\r\n") == b"\r\n0, CLOSE OK\r\n"
    assert sim.counters()["cip0"]["rx_payload"] == len(PAYLOAD)
    srv.close()


def _local_port(sim, cid):
    return sim._call(lambda: sim.modem.sockets[cid].local_port)


def test_fault_sim_removed(sims):
    sim, u = started(sims, "sim7080g")
    assert u.cmd(b"AT+CMEE=1") == b"\r\nOK\r\n"
    sim.fault("sim_removed")
    assert u.expect(b"\r\n+CPIN: NOT INSERTED\r\n") == b"\r\n+CPIN: NOT INSERTED\r\n"
    assert u.cmd(b"AT+CPIN?", b"10\r\n") == b"\r\n+CME ERROR: 10\r\n"
    assert u.cmd(b"AT+CIMI", b"10\r\n") == b"\r\n+CME ERROR: 10\r\n"


@pytest.mark.parametrize("model", ALL)
def test_hang_then_pwrkey_power_cycle(sims, model):
    cls = MODELS[model]
    sim, u = started(sims, model, pwrkey_pin=7)
    active = cls.PWRKEY_ACTIVE
    sim.fault("hang")
    u.send(b"AT\r")
    assert u.quiet(0.2) == b""

    def pulse(modem_s):
        sim.pin(7, active)
        time.sleep(modem_s / SCALE)
        sim.pin(7, 1 - active)

    if cls.PWRKEY_IS_RESET:
        pulse(0.1)  # RESET: one pulse reboots
    else:
        pulse(cls.PWRKEY_OFF_MIN + 0.3)  # off (silently: a hung modem cannot say goodbye)
        assert u.quiet(0.1) == b""
        assert sim.status()["power"] == "off"
        pulse(cls.PWRKEY_ON_MIN + 0.2)
    assert u.expect(BANNERS[model]) == BANNERS[model]
    assert u.cmd(b"AT") == b"AT\r\r\nOK\r\n"


def test_reboot_fault_and_power_down_messages(sims):
    sim, u = started(sims, "sim7080g")
    sim.fault("reboot")
    assert u.expect(BANNERS["sim7080g"]) == BANNERS["sim7080g"]
    assert u.cmd(b"AT+CPOWD=1", b"DOWN\r\n") == b"AT+CPOWD=1\r\r\nNORMAL POWER DOWN\r\n"
    sim2, u2 = started(sims, "bg95")
    assert u2.cmd(b"AT+QPOWD", b"DOWN\r\n") == b"\r\nOK\r\n\r\nPOWERED DOWN\r\n"
    sim3, u3 = started(sims, "gm02s")
    assert u3.cmd(b"AT+SQNSSHDN", b"HDN\r\n") == b"\r\nOK\r\n\r\n+SQNSSHDN\r\n"
    time.sleep(0.05)
    assert sim3.status()["power"] == "off"
    u3.send(b"AT\r")
    assert u3.quiet(0.1) == b""


# ---- counters, control channel, recording, CLI -------------------------------------------------------------
def test_counters_model(sims):
    srv = EchoServer("tcp")
    sim, u = started(sims, "bg95", timeline=FAST)
    wait_registered(u)
    d = QuectelSock()
    d.setup(u)
    assert d.open(u, "tcp", srv.port) == d.OPEN_OK
    d.send(u, b"0123456789")
    u.expect(d.DATA_URC)
    time.sleep(0.1)  # past the modem's delayed ACK (200 ms of modem time)
    c = sim.counters()["0"]
    # handshake 80 up / 40 down; 10 bytes + 40 up; the echo, 10 + 40 down, carries the server's
    # ACK (delayed ACK, RFC 1122 4.2.3.2); the modem sends nothing back in time: its ACK, 40 up
    assert (c["tx_air"], c["rx_air"], c["round_trips"]) == (170, 90, 2)
    d.close(u)
    c = sim.counters()["0"]
    assert (c["tx_air"], c["rx_air"], c["round_trips"], c["state"]) == (250, 170, 3, "closed")
    srv.close()


def test_counters_a_pure_ack_only_when_nothing_goes_back_in_time(sims):
    # a server that never answers: its ACK goes alone after its delay (40 ms, Linux TCP_DELACK_MIN)
    quiet = socket.socket()
    quiet.bind(("127.0.0.1", 0))
    quiet.listen(1)  # the kernel accepts; nobody reads or writes
    sim, u = started(sims, "bg95", timeline=FAST)
    wait_registered(u)
    d = QuectelSock()
    d.setup(u)
    assert d.open(u, "tcp", quiet.getsockname()[1]) == d.OPEN_OK
    d.send(u, b"0123456789")
    time.sleep(0.2)
    c = sim.counters()["0"]
    assert (c["tx_air"], c["rx_air"]) == (80 + 50, 40 + 40)
    d.close(u)
    quiet.close()


def test_control_channel(sims):
    sim, u = started(sims, "bg95")
    c = socket.create_connection(sim.control_address)
    f = c.makefile("rwb")

    def req(obj):
        f.write((json.dumps(obj) + "\n").encode())
        f.flush()
        return json.loads(f.readline())

    st = req({"op": "status"})
    assert st["ok"] is True and st["model"] == "bg95" and st["power"] == "on" and st["stat"] == 2
    assert req({"op": "set_registration", "state": "roaming"}) == {"ok": True, "stat": 5}
    assert u.cmd(b"AT+CEREG?") == b"\r\n+CEREG: 0,5\r\n\r\nOK\r\n"
    assert req({"op": "signal", "rssi": -99})["signal"]["rssi"] == -99
    assert u.cmd(b"AT+CSQ") == b"\r\n+CSQ: 7,99\r\n\r\nOK\r\n"
    bad = req({"op": "fault", "kind": "nonsense"})
    assert bad["ok"] is False and "unknown fault" in bad["error"]
    assert req({"op": "frobnicate"})["ok"] is False
    assert req({"op": "fault", "kind": "garble", "count": 2}) == {"ok": True}
    assert req({"op": "fault", "kind": "clear"}) == {"ok": True}
    assert req({"op": "timeline", "timeline": [[0, "searching"], [1, "home"]]}) == {"ok": True}
    assert req({"op": "counters"}) == {"ok": True, "sockets": {}}
    assert req({"op": "sim", "action": "remove"})["present"] is False
    assert u.expect(b"\r\n+CPIN: NOT INSERTED\r\n")
    assert req({"op": "power", "state": "off"}) == {"ok": True, "power": "off"}
    # GPIO lines on the same port: no PWRKEY configured -> ignored
    assert req({"op": "pin", "pin": 3, "value": 1}) == {"ok": True, "power": "off"}
    c.close()


def test_recording(sims, tmp_path):
    path = tmp_path / "s.atlog"
    sim, u = started(sims, "gm02s", record=str(path))
    sim.stop()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["m2mkit_transcript"] == 1 and lines[0]["model"] == "gm02s"
    assert {"t", "d", "b"} <= set(lines[1])
    sent = "".join(x["b"] for x in lines[1:] if x["d"] == ">")
    got = "".join(x["b"] for x in lines[1:] if x["d"] == "<")
    assert sent == "ATE0\rAT+CFUN=1\r"
    assert got == "\r\n+SYSSTART\r\nATE0\r\r\nOK\r\n\r\nOK\r\n"
    assert all(a["t"] <= b["t"] for a, b in zip(lines[1:], lines[2:]))


def test_second_connection_replaces_first(sims):
    sim, u = started(sims, "bg95")
    u2 = Uart(sim.uart_address)
    assert u2.cmd(b"AT") == b"\r\nOK\r\n"
    # the simulator closes the first connection (EOF or reset): reading it must end in ConnectionError
    # well within a second; a first connection left open reads nothing and fails the test
    with pytest.raises(ConnectionError):
        u.quiet(1.0)
    assert u2.cmd(b"AT") == b"\r\nOK\r\n"


def test_cli_refuses_non_loopback():
    from click.testing import CliRunner
    from m2mkit.sim.modem.cli import modem_command

    r = CliRunner().invoke(modem_command, ["--model", "bg95", "--listen", "10.1.2.3:7000"])
    assert r.exit_code == 2 and "not loopback" in r.output
    r = CliRunner().invoke(modem_command, ["--model", "nope", "--listen", "127.0.0.1:0"])
    assert r.exit_code == 2


# ---- vendor settings the firmware's init and RAT scripts use --------------------------------------
def test_quectel_urc_port(sims):
    sim, u = started(sims, "bg95", timeline=NEVER)
    assert u.cmd(b'AT+QURCCFG="urcport","uart1"') == b"\r\nOK\r\n"
    assert u.cmd(b'AT+QURCCFG="urcport"') == b'\r\n+QURCCFG: "urcport","uart1"\r\n\r\nOK\r\n'
    assert u.cmd(b"AT+CMEE=1") == b"\r\nOK\r\n"
    assert u.cmd(b'AT+QURCCFG="urcport","serial"', final=b"\r\n+CME ERROR: 50\r\n") == b"\r\n+CME ERROR: 50\r\n"


def test_sequans_mode_active(sims):
    sim, u = started(sims, "gm02s", timeline=NEVER)
    assert u.cmd(b"AT+SQNMODEACTIVE=2") == b"\r\nOK\r\n"
    assert u.cmd(b"AT+SQNMODEACTIVE?") == b"\r\n+SQNMODEACTIVE: 2\r\n\r\nOK\r\n"
    assert u.cmd(b"AT+SQNMODEACTIVE=3", final=b"ERROR\r\n").endswith(b"ERROR\r\n")


def test_simcom_app_network_config(sims):
    sim, u = started(sims, "sim7080g", timeline=NEVER)
    assert u.cmd(b'AT+CNCFG=0,1,"iot.apn","user","pw",3') == b"\r\nOK\r\n"
    assert u.cmd(b"AT+CNCFG?") == b'\r\n+CNCFG: 0,1,"iot.apn","user","pw",3\r\n\r\nOK\r\n'


def test_cgauth_set_and_read(sims):
    sim, u = started(sims, "gm02s", timeline=NEVER)
    assert u.cmd(b'AT+CGAUTH=1,3,"user","secret"') == b"\r\nOK\r\n"
    assert u.cmd(b"AT+CGAUTH?") == b'\r\n+CGAUTH: 1,3,"user"\r\n\r\nOK\r\n'
    assert u.cmd(b"AT+CGAUTH=1,1", final=b"ERROR\r\n").endswith(b"\r\nERROR\r\n")  # PAP needs a user


def test_roaming_without_a_named_operator_picks_a_visited_network(sims):
    sim, u = started(sims, "bg95", timeline=NEVER)
    assert u.cmd(b"AT+CEREG=2") == b"\r\nOK\r\n"
    sim.set_registration("roaming")
    assert u.expect(b'+CEREG: 5,"1A2B","01A2B3C4",7\r\n')
    assert u.cmd(b"AT+CEREG?").endswith(b'+CEREG: 2,5,"1A2B","01A2B3C4",7\r\n\r\nOK\r\n')
    assert sim.status()["operator"] != "TEST"


def test_a_simulator_bug_is_answered_and_reported(sims):
    from m2mkit.sim.modem import SimulatorBug

    sim, u = started(sims, "bg95", timeline=NEVER)

    def broken(cmd):
        raise KeyError("deliberate")

    sim.modem.at_CSQ = broken
    assert u.cmd(b"AT+CSQ", final=b"\r\nERROR\r\n") == b"\r\nERROR\r\n"  # the firmware is not left hanging
    with pytest.raises(SimulatorBug, match="AT\\+CSQ"):
        sim.stop()

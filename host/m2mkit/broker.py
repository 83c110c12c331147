"""A real Mosquitto broker for tests and the demo, and a paho-mqtt subscriber.

`Broker().start()` runs the system's `mosquitto` (the apt package) on free loopback ports with a
config generated in a temporary folder: a plain listener (`port`) and a TLS listener (`tls_port`)
whose server certificate (CN and SAN `localhost` / 127.0.0.1) is signed by a CA made at start
(`ca_file`); `other_ca_file` is a second CA that signed nothing, for proving that a client refuses
the broker. `stop()` ends the broker and removes the folder. Options: mosquitto.conf(5).
"""

import datetime
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .errors import UserError

APT_HINT = "sudo apt-get install mosquitto (or ./dev.sh, which installs it)"


def find_mosquitto():
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise UserError(f"mosquitto is not installed: {APT_HINT}")


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_ca(name):
    """(certificate, key) of a self-signed CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_server_cert(ca_cert, ca_key, host="localhost", ips=("127.0.0.1",)):
    """(certificate, key) for a TLS server, signed by the CA."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    san = [x509.DNSName(host)] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _pem(cert=None, key=None):
    from cryptography.hazmat.primitives import serialization

    if cert is not None:
        return cert.public_bytes(serialization.Encoding.PEM)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class _PortTaken(Exception):
    pass


class Broker:
    """`with Broker() as b: b.url, b.tls_url, b.ca_file` — Mosquitto on free loopback ports."""

    def __init__(self, host="127.0.0.1", tls=True, port=None):
        self.mosquitto = find_mosquitto()
        self.host = host
        self.tls = tls
        self.port = port
        self.tls_port = None
        self.proc = None
        self.dir = None

    @property
    def url(self):
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_url(self):
        return f"mqtts://{self.host}:{self.tls_port}" if self.tls_port else None

    def start(self, timeout=10):
        fixed = self.port
        for attempt in range(3):
            self.dir = Path(tempfile.mkdtemp(prefix="m2mkit-broker-"))
            try:
                self._start(timeout)
                return self
            except _PortTaken:
                self.stop()  # another process took a free port before mosquitto bound it: again
                self.port, self.tls_port = fixed, None
                if fixed is not None:
                    break
            except BaseException:
                self.stop()
                raise
        raise UserError(f"mosquitto could not listen on {self.host}:{self.port or 'a free port'}: the "
                        f"address is in use; give another port")

    def _write(self, name, data, mode=0o600):
        p = self.dir / name
        p.write_bytes(data)
        p.chmod(mode)
        return str(p)

    def _start(self, timeout):
        if self.port is None:
            self.port = free_port(self.host)
        else:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as mosquitto binds
                try:
                    s.bind((self.host, self.port))
                except OSError:
                    raise _PortTaken("in use") from None
        conf = [
            "per_listener_settings false",
            "allow_anonymous true",  # mosquitto 2 refuses anonymous clients once listeners are set
            "persistence false",
            "log_dest file " + str(self.dir / "mosquitto.log"),
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            f"listener {self.port} {self.host}",
        ]
        if os.geteuid() == 0:
            # as root mosquitto switches to the "mosquitto" user, which cannot read this folder
            conf.insert(0, "user root")
        if self.tls:
            ca, ca_key = make_ca("m2mkit test CA")
            cert, key = make_server_cert(ca, ca_key)
            other, _ = make_ca("m2mkit other CA")
            self.ca_file = self._write("ca.pem", _pem(ca), 0o644)
            self.other_ca_file = self._write("other-ca.pem", _pem(other), 0o644)
            certfile = self._write("server.pem", _pem(cert))
            keyfile = self._write("server.key", _pem(key=key))
            self.tls_port = free_port(self.host)
            conf += [f"listener {self.tls_port} {self.host}", f"cafile {self.ca_file}",
                     f"certfile {certfile}", f"keyfile {keyfile}"]
        conf_file = self._write("mosquitto.conf", ("\n".join(conf) + "\n").encode())
        self.proc = subprocess.Popen([self.mosquitto, "-c", conf_file], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        for port in filter(None, (self.port, self.tls_port)):
            while True:
                if self.proc.poll() is not None:
                    why = self._why()
                    if "in use" in why:
                        raise _PortTaken(why)
                    raise UserError(f"mosquitto ended at start (exit status {self.proc.returncode}): {why}")
                try:
                    if self._probe(port):
                        break
                    time.sleep(0.05)  # something else answers there (the port was taken): look again
                except OSError:
                    if time.monotonic() > deadline:
                        raise UserError(f"mosquitto did not listen on {self.host}:{port} within {timeout} s: "
                                        f"{self._why()}")
                    time.sleep(0.02)

    # MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s, empty client id) and the CONNACK "accepted"
    # (MQTT 3.1.1 sections 3.1 and 3.2): only an MQTT broker answers this way
    _CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
    _CONNACK = b"\x20\x02\x00\x00"

    def _probe(self, port):
        """True when an MQTT broker answers on port (over TLS, verified with ca_file, on tls_port)."""
        with socket.create_connection((self.host, port), 0.5) as raw:
            raw.settimeout(0.5)
            conn = raw
            if port == self.tls_port:
                import ssl

                conn = ssl.create_default_context(cafile=self.ca_file).wrap_socket(raw, server_hostname="localhost")
            try:
                conn.sendall(self._CONNECT)
                got = b""
                while len(got) < 4:
                    more = conn.recv(4 - len(got))
                    if not more:
                        break
                    got += more
                if got == self._CONNACK:
                    conn.sendall(b"\xe0\x00")  # DISCONNECT
                return got == self._CONNACK
            finally:
                if conn is not raw:
                    conn.close()

    def _why(self):
        err = b""
        if self.proc and self.proc.poll() is not None and self.proc.stderr:
            err = self.proc.stderr.read() or b""
        try:
            err += (self.dir / "mosquitto.log").read_bytes()
        except OSError:
            pass
        lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1] if lines else "no message"

    def log(self):
        """The broker's log so far (connections, refusals)."""
        try:
            return (self.dir / "mosquitto.log").read_text("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Subscriber:
    """A paho-mqtt client on a broker URL (mqtt:// or mqtts:// with `ca_file`): `messages` is a queue of
    (topic, payload, retain); `wait(n, timeout)` collects n of them; `publish(topic, payload)`."""

    def __init__(self, url, topics=("#",), ca_file=None, client_id=None, timeout=10):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise UserError("paho-mqtt is missing: .venv/bin/pip install -e '.[test]' (or ./dev.sh)") from None
        scheme, _, rest = url.partition("://")
        host, _, port = rest.rpartition(":")
        if scheme not in ("mqtt", "mqtts") or not host or not port.isdigit():
            raise UserError(f"broker {url!r}: give mqtt://HOST:PORT or mqtts://HOST:PORT")
        self.messages = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.error = None
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "")
        if scheme == "mqtts":
            c.tls_set(ca_certs=ca_file)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_message = lambda cl, ud, m: self.messages.put((m.topic, m.payload, bool(m.retain)))
        self.topics = topics
        self.client = c
        try:
            c.connect(host, int(port), keepalive=30)
        except OSError as e:
            raise UserError(f"cannot connect to {url}: {e}") from None
        c.loop_start()
        if not self._connected.wait(timeout) or not self._subscribed.wait(timeout):
            self.close()
            raise UserError(f"no MQTT session with {url} within {timeout} s: {self.error or 'no answer'}")

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self.error = str(reason)
            return
        for t in self.topics:
            client.subscribe(t, qos=1)
        self._connected.set()

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)
        return info

    def wait(self, n=1, timeout=10, topic=None):
        """The next n messages (on `topic` only, when given); fewer when the timeout passes."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                m = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if topic is None or m[0] == topic:
                out.append(m)
        return out

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()

"""MQTT over TLS with a client certificate, end to end on the virtual device: a real Mosquitto on
loopback whose TLS listener has `require_certificate true` (its `cafile` the fleet CA that verifies
clients), the firmware's supervisor (main.py, device.autorun) on a virtual board of each modem
family (LilyGO T-SIM7080G-S3, ESP32-DevKitC + BG95, Walter), the simulated modem doing the TLS with
what the firmware uploaded to it. The client certificate is made by `m2mkit provision`'s own code
(provision.issue_cert, the fleet CA) and the device's /config.json and files by
provision.device_files, so mqtt.cert / mqtt.key are what `provision --cert` sets.

- the right certificate: what the device's outbox holds reaches a subscriber;
- no certificate, or one from another CA: Mosquitto refuses the handshake (its log gives OpenSSL's
  reason), the device says so in one line, and its records stay in the outbox.
(The config's wrong combinations are tests/firmware/test_mqtt_tls_config.py.)

Mosquitto: `require_certificate true` makes a client without a certificate verified against
`cafile` fail the TLS handshake (mosquitto.conf(5), "Certificate based SSL/TLS Support")."""

import json
import os
import socket
import subprocess
import time

import pytest

from m2mkit import boards, image, provision
from m2mkit.senml import status
from m2mkit.broker import Subscriber, _pem, find_mosquitto, free_port, make_ca, make_server_cert
from m2mkit.vdev.device import VirtualDevice

# one board per dialect's way of taking a client certificate (SIMCom "convert",1 + CASSLCFG "CERT";
# Quectel clientcert / clientkey with seclevel 2; Sequans SQNSPCFG's certificate and key slots)
BOARDS = {"sim7080g": "lilygo-t-sim7080g-s3", "bg95": "esp32-devkitc-bg95", "gm02s": "dptechnics-walter"}
SCALE = 10
DEV = "meter-c1"


class CertBroker:
    """Mosquitto on two free loopback ports: `port` plain (for the test's subscriber), `tls_port`
    with the server certificate from `server_ca` and require_certificate against `client_ca_file`."""

    def __init__(self, folder, client_ca_file):
        self.dir = folder
        ca, ca_key = make_ca("m2mkit broker CA")
        cert, key = make_server_cert(ca, ca_key)
        self.ca_pem = _pem(ca)
        (folder / "server.pem").write_bytes(_pem(cert))
        (folder / "server.key").write_bytes(_pem(key=key))
        (folder / "server.key").chmod(0o600)
        self.port, self.tls_port = free_port(), free_port()
        conf = ["per_listener_settings false", "allow_anonymous true", "persistence false",
                f"log_dest file {folder / 'mosquitto.log'}", "log_type all", "connection_messages true",
                f"listener {self.port} 127.0.0.1",
                f"listener {self.tls_port} 127.0.0.1", f"cafile {client_ca_file}",
                f"certfile {folder / 'server.pem'}", f"keyfile {folder / 'server.key'}",
                "require_certificate true"]
        if os.geteuid() == 0:
            conf.insert(0, "user root")  # as m2mkit.broker: as root mosquitto drops to "mosquitto"
        (folder / "mosquitto.conf").write_text("\n".join(conf) + "\n")
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(folder / "mosquitto.conf")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        for port in (self.port, self.tls_port):
            while True:
                assert self.proc.poll() is None, self.proc.stderr.read()
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"mosquitto did not listen on {port}"
                    time.sleep(0.05)

    def log(self):
        return (self.dir / "mosquitto.log").read_text("utf-8", "replace")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """(broker, a client certificate from the fleet CA, folder): the broker trusts that CA for its clients."""
    root = tmp_path_factory.mktemp("certbroker")
    good = provision.issue_cert(DEV, root / "fleet")  # creates the fleet CA
    b = CertBroker(root, root / "fleet" / "ca.crt")
    yield b, good, root
    b.stop()


def device_image(tmp_path, broker, cred, board, autorun=True):
    """A flash image as `m2mkit provision` would leave it: its config (provision.device_config) and
    files (provision.device_files), and the broker's CA the user adds as mqtt.ca."""
    board = boards.load(board)
    cfg = {"device": {"id": DEV, "autorun": autorun, "watchdog_s": 0},
           "mqtt": {"broker": f"mqtts://127.0.0.1:{broker.tls_port}", "keepalive": 60, "ca": "/certs/broker.crt"},
           "sense": {"battery": True, "interval_s": 10}}
    base = {"mqtt_user": DEV, "psk_identity": DEV, "psk_key": "00" * 16}
    files = provision.device_files(cfg, dict(base, **cred))
    files["/certs/broker.crt"] = broker.ca_pem
    flash = tmp_path / "flash.img"
    flash.write_bytes(image.build(board, extra=files))
    return flash


class Console:
    def __init__(self, dev):
        import serial

        self.s = serial.Serial(dev.port, 115200, timeout=0.05)
        self.seen = b""

    def wait_for(self, token, timeout):
        deadline = time.monotonic() + timeout
        while token not in self.seen:
            assert time.monotonic() < deadline, f"{token!r} not seen; console: {self.seen[-2500:]!r}"
            self.seen += self.s.read(4096)

    def repl(self, code, token, timeout=10):
        self.s.write(code.encode() + b"\r")
        self.wait_for(token, timeout)


def stop_and_count(con):
    """Ctrl-C the supervisor; (readings made, readings left in its outbox)."""
    con.s.write(b"\x03")
    con.wait_for(b"supervisor: stopped", 20)
    con.wait_for(b">>> ", 10)
    con.repl("from m2m import supervisor as s; r = s.current; print('OB', r.outbox.pending(), r.reporter and r.reporter.sent, 'END')",
             b" END")
    line = con.seen[con.seen.rindex(b"OB "):].split(b"\r\n")[0].split()
    return int(line[1]), line[2]


@pytest.mark.parametrize("model", sorted(BOARDS))
def test_the_right_client_certificate_reports(fleet, tmp_path, model):
    broker, good, _ = fleet
    sub = Subscriber(f"mqtt://127.0.0.1:{broker.port}", topics=(f"m2mkit/{DEV}/#",))
    try:
        flash = device_image(tmp_path, broker, good, BOARDS[model])
        with VirtualDevice(BOARDS[model], flash=flash, modem=True, time_scale=SCALE) as dev:
            con = Console(dev)
            con.wait_for(b"mqtt: connected to 127.0.0.1:%d" % broker.tls_port, 60)
            # what the device's outbox held reaches the subscriber: the battery's telemetry (the
            # T-SIM7080G-S3 reads it from its PMU; the other two boards have no battery reading
            # without a simulated bus) or the network's events, and the retained status online
            want = "/telemetry" if model == "sim7080g" else "/events"
            deadline = time.monotonic() + 40
            got = []
            while not (any(t.endswith(want) for t, _, _ in got) and
                       any(t.endswith("/status") and status(p)[0] == "online" for t, p, _ in got)):
                assert time.monotonic() < deadline, (got, con.seen[-2000:])
                got += sub.wait(10, timeout=1)
        first = json.loads([p for t, p, _ in got if t.endswith(want)][0])
        if model == "sim7080g":
            assert first[0]["bn"] == DEV + ":" and any(r.get("n") == "battery" for r in first), first
        else:
            assert first.get("kind", "").startswith("net."), first
    finally:
        sub.close()


@pytest.mark.parametrize("which,model", [("none", "sim7080g"), ("other CA", "sim7080g"), ("other CA", "bg95"),
                                         ("none", "gm02s")])
def test_without_the_right_certificate_the_broker_refuses_and_the_readings_stay(fleet, tmp_path, which, model):
    broker, good, _ = fleet
    if which == "none":  # a device provisioned with a password, mqtts to this broker
        cred = {"mqtt_password": "pw"}
    else:  # a certificate from another fleet CA, which the broker does not trust
        cred = provision.issue_cert(DEV, tmp_path / "other-fleet")
    flash = device_image(tmp_path, broker, cred, BOARDS[model])
    seen_before = broker.log()
    with VirtualDevice(BOARDS[model], flash=flash, modem=True, time_scale=SCALE) as dev:
        con = Console(dev)
        con.wait_for(b"supervisor: sensors", 30)
        con.wait_for(b"mqtt: ", 60)
        time.sleep(30 / SCALE)  # a few readings and the reconnects after the first refusal
        pending, sent = stop_and_count(con)
    lines = [ln for ln in con.seen.decode(errors="replace").splitlines() if ln.startswith("mqtt: ")]
    # one line, said once however often it reconnects, naming the client certificate
    assert len(lines) == 1 and ("refuses a device without one" if which == "none" else
                                "refuses this one if not from its CA") in lines[0], lines
    # and it was the broker that refused the certificate (Mosquitto's log, the OpenSSL reason)
    why = "peer did not return a certificate" if which == "none" else "certificate verify failed"
    assert broker.log().count(why) > seen_before.count(why), broker.log()[-2000:]
    assert pending >= 1 and sent in (b"None", b"0"), (pending, sent)


def test_health_run_presents_the_client_certificate_too(fleet, tmp_path):
    # `from m2m.report import health; health.run()` (what `m2mkit demo` types; no autorun) takes
    # the same three files through m2m.report.tlsconf: its heap readings reach the subscriber
    broker, good, _ = fleet
    sub = Subscriber(f"mqtt://127.0.0.1:{broker.port}", topics=(f"m2mkit/{DEV}/telemetry",))
    try:
        flash = device_image(tmp_path, broker, good, BOARDS["sim7080g"], autorun=False)
        with VirtualDevice(BOARDS["sim7080g"], flash=flash, modem=True, time_scale=SCALE) as dev:
            con = Console(dev)
            con.wait_for(b">>> ", 30)
            con.repl("from m2m.report import health; health.run(every_s=5, seconds=120)",
                     b"mqtt: connected to 127.0.0.1:%d" % broker.tls_port, 60)
            got = sub.wait(1, timeout=40)
        assert got and any(r.get("n") == "heap" for r in json.loads(got[0][1])), (got, con.seen[-2000:])
    finally:
        sub.close()

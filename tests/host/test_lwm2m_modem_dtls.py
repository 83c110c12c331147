"""LwM2M over the modem's own DTLS (lwm2m.dtls "modem"): the firmware's SIM7080G dialect writes the
PSK table and opens a DTLS connection the way SIMCom's application notes show (TCPUDP(S)
Application Note V1.03 5.2.4, SSL Application Note V1.00 4.4); the simulated modem makes a real DTLS
1.2 PSK handshake (python-mbedtls, Mbed TLS 2.28) with the server's DTLS endpoint (MicroPython's
own Mbed TLS in a second interpreter, as in test_lwm2m_client_dtls) in front of the real aiocoap
LwM2M server, and carries the device's plain CoAP. The device never loads MicroPython's tls.

- register, Read and Send (telemetry from the outbox) through it;
- a wrong key: the modem's handshake fails, the open reports an error, the client says what to
  check and never registers;
- a dialect whose DTLS-PSK is not confirmed (BG95) refuses lwm2m.dtls "modem" with a clear error.
"""

import json
import subprocess

import cbor2

from m2mkit import testing
from test_lwm2m_client import SENML_CBOR, Code, Server, config, free_port
from test_lwm2m_client_dtls import RELAY

KEY = "00112233445566778899aabbccddeeff"

DEVICE = r"""
import json, os, sys
from m2m import hal
from m2m.at import AT
from m2m import modem
from m2m.net import sock
from m2m.sense.sampler import Sampler
from m2m.lwm2m.client import Client
from simctl import attach
cfg = json.loads(%(cfg)r)

class Thermo:  # stands in for the sensor hardware
    QUANT = ("temperature",)
    RANGE = None
    def start(self):
        return 0
    def read(self):
        return (21.0,)

at = AT(hal.UART(1, 115200), timeout_ms=2000)
m = modem.create(at, {"model": %(model)r})
attach(m)
smp = Sampler(lambda readings, urgent: None)
smp.add("t", Thermo(), interval_s=0.5)
ob = None
if cfg["lwm2m"].get("send"):
    from m2m.outbox import Outbox
    from m2m.report.contract import pack_readings
    ob = Outbox(%(obdir)r)
    for i in range(3):
        ob.append(1, pack_readings([("temperature", 20.5 + i, "Cel", 1767225600 + i)]))
c = Client(cfg, sampler=smp, outbox=ob, stack=sock.Stack(m, kind="udp", timeout_ms=5000))
while True:
    try:
        os.stat(%(stop)r)
        break
    except OSError:
        pass
    hal.sleep_ms(min(c.step(), smp.step(), 20))
c.close()
print("device tls loaded:", "tls" in sys.modules or "ssl" in sys.modules)
"""


class Run:
    """The aiocoap server, its DTLS relay (MicroPython) and a device on a simulated modem."""

    def __init__(self, tmp_path, key=KEY, model="sim7080g", send=False, dtls="modem"):
        from m2mkit.sim.modem import ModemSim

        self.server = Server()
        port = free_port()
        self.relay = subprocess.Popen([testing.micropython(), "-c", RELAY % {"up": self.server.port, "port": port}],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.relay.stdout.readline().strip() == "relay ready"
        cfg = config(self.server, psk_identity="dev-1", psk_key=key, dtls=dtls, send=send)
        cfg["lwm2m"]["server"] = "coaps://127.0.0.1:%d" % port
        self.stop_file = tmp_path / "stop"
        self.sim = ModemSim(model=model, time_scale=10, record=str(tmp_path / "modem.atlog"))
        self.sim.start()
        self.atlog = tmp_path / "modem.atlog"
        env = testing.mpy_env({"M2M_MODEM": "%s:%d" % tuple(self.sim.uart_address),
                               "M2M_GPIO": "%s:%d" % tuple(self.sim.control_address), "M2M_TIME_SCALE": "10"})
        code = DEVICE % {"cfg": json.dumps(cfg), "stop": str(self.stop_file), "model": model,
                         "obdir": str(tmp_path / "outbox")}
        self.dev = subprocess.Popen([testing.micropython(), "-X", "heapsize=512K", "-c", testing._prelude() + code],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    def end(self):
        self.stop_file.write_text("")
        try:
            out = self.dev.communicate(timeout=120)[0]
        except subprocess.TimeoutExpired:
            self.dev.kill()
            out = self.dev.communicate()[0]
        self.sim.stop()
        # the AT transcript (one JSON line per chunk, "d" ">" host to modem): the text both ways
        lines = [json.loads(x) for x in self.atlog.read_text().splitlines()[1:] if x.strip()]
        self.sent = "".join(x["b"] for x in lines if x.get("d") == ">")
        self.got = "".join(x["b"] for x in lines if x.get("d") == "<")
        self.relay.kill()
        rout = self.relay.communicate()[0]
        self.server.stop()
        return out, rout


def test_register_read_and_send_over_the_modems_dtls(tmp_path):
    run = Run(tmp_path, send=True)
    try:
        assert run.server.wait("register", timeout=120)[0]["ep"] == "dev-1"
        r = run.server.request(Code.GET, "/3/0/0", timeout=60)
        assert r.code == Code.CONTENT and r.payload == b"m2mkit"
        sends = run.server.wait("send", timeout=60)
        assert sends[0]["cf"] == SENML_CBOR
        recs = cbor2.loads(sends[0]["payload"])
        assert [r[2] for r in recs] == [20.5, 21.5, 22.5]
        counters = run.sim.counters()
    finally:
        out, rout = run.end()
    assert "relay handshake done" in rout, rout
    assert "event: lwm2m.deregistered ok=True" in out, out
    assert "device tls loaded: False" in out, out  # the modem ended DTLS, not MicroPython's tls
    log = run.sent
    # the SIM7080's DTLS-PSK sequence: the table written, converted and deleted, then the connection
    for cmd in ('AT+CFSWFILE=3,"m2mpsk.txt"', 'AT+CSSLCFG="CONVERT",3,"m2mpsk.txt"', 'AT+CFSDFILE=3,"m2mpsk.txt"',
                'AT+CSSLCFG="sslversion",1,5', '"PSKTABLE","m2mpsk.txt"', '"UDP","127.0.0.1"'):
        assert cmd in log, cmd
    udp = [c for c in counters.values() if c["proto"] == "udp"]
    assert udp and all(c["tls"] for c in udp), counters  # the modem's socket carried DTLS records
    # on air: each record's 13-byte header and AEAD overhead over the plain CoAP the device gave
    assert all(c["tx_air"] > c["tx_payload"] + 28 * c["tx_packets"] for c in udp), udp


def test_wrong_psk_fails_the_modems_handshake(tmp_path):
    run = Run(tmp_path, key="ffffffffffffffffffffffffffffffff")
    try:
        import time

        time.sleep(8)
        assert not [d for w, d in run.server.log if w == "register"]
    finally:
        out, rout = run.end()
    assert "relay handshake done" not in rout, rout
    assert "+CAOPEN: 0,27" in run.got
    assert "DTLS handshake with 127.0.0.1:" in out and "in the modem failed" in out, out
    assert "check lwm2m.psk_identity / lwm2m.psk_key" in out, out


def test_a_dialect_without_confirmed_dtls_psk_refuses_it(tmp_path):
    run = Run(tmp_path, model="bg95")
    try:
        import time

        time.sleep(4)
    finally:
        out, rout = run.end()
    assert 'lwm2m.dtls is "modem" but the bg95\'s DTLS with a pre-shared key is not confirmed' in out, out
    assert 'set lwm2m.dtls to "device"' in out, out
    assert "AT+QSSLOPEN" not in run.sent and "AT+QSSLCFG" not in run.sent

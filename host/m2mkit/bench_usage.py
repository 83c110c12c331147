"""Issue #14 figures: what one usage record costs on the air and on the device.

- usage_record_bytes_on_air: one record published on a kept MQTT connection (QoS 1 PUBLISH to
  .../usage, its PUBACK, the TCP ACKs), both directions with IPv4 + TCP headers per segment, from the
  modem simulator's byte counters (sim/modem/netsock.py) as bench_mqtt.py reads them;
- usage_sign_us: the device's time to make one record's signature and payload (message,
  HMAC-SHA256 over hashlib, the compact JSON), wall time on the unix port;
- usage_sign_instructions: the same in instructions (callgrind, less a run that signs nothing), when
  valgrind is installed.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .broker import Broker
from .testing import _prelude, micropython, mpy_env

SCALE = 20
RECORDS = 10

DEVICE = """
import json, os
from m2m import hal, loop, config, outbox
from m2m.at import AT
from m2m import modem
from m2m.net import sock
from m2m.net.network import Network
from m2m.report import mqtt
from m2m.usagerec import Chain
D = os.getenv("DIR")
cfg = config.validate({"device": {"id": "dev-1"}, "net": {"apn": "internet"},
                       "mqtt": {"broker": os.getenv("BROKER"), "keepalive": 600, "batch": 1}})
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=3000)
m = modem.create(at, {"model": "bg95"})
net = Network(m, cfg, state_dir=D + "/")
st = sock.Stack(m, timeout_ms=8000)
ob = outbox.Outbox(D + "/outbox")
rep = mqtt.Reporter(st, ob, cfg, "dev-1", up=net.attached)
ch = Chain("dev-1", b"k" * 32, ob, D + "/meter.json")
ch.begin("water", 1000, hal.epoch())
b = [1000]
def one():
    b[0] += 37
    ch.record("water", b[0], "0.5", "L", hal.epoch())
    loop.run([net, rep], until=lambda: ob.pending() == 0, max_ms=60000)
    hal.sleep_ms(1000)  # records are minutes apart: the delayed ACK for the PUBACK goes alone
one()
print(json.dumps({"phase": 0}))
while True:
    try:
        os.stat(D + "/GO1")
        break
    except OSError:
        loop.run([net, rep], max_ms=100)
n = int(os.getenv("RECORDS"))
for _ in range(n):
    one()
print(json.dumps({"phase": 1, "pending": ob.pending()}))
"""

SIGN = """
import os, time
from m2m.usagerec import Signer, message, payload
s = Signer(b"k" * 32)
n = int(os.getenv("M2M_BENCH_N") or "0")
p = "0123456789abcdef0123456789abcdef"
t0 = time.ticks_us()
for i in range(n):
    m = message("pump-0007", "water", i + 1, 123456, 123490, "0.5", "L", 1764590000, 1764593600, p)
    sig = s.tag(m)
    rec = payload("water", i + 1, 123456, 123490, "0.5", "L", 1764590000, 1764593600, p, sig)
dt = time.ticks_diff(time.ticks_us(), t0)
print(n, dt)
"""


def _counters(sim):
    return {k: dict(v) for k, v in sim.counters().items()}


def record_bytes():
    from .sim.modem import ModemSim

    with tempfile.TemporaryDirectory(prefix="m2mkit-bench-usage-") as d, Broker(tls=False) as b, \
            ModemSim(model="bg95", time_scale=SCALE) as sim:
        d = Path(d)
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_TIME_SCALE": str(SCALE), "BROKER": b.url, "DIR": str(d), "RECORDS": str(RECORDS)}
        p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + DEVICE],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=mpy_env(env))
        lines = []

        def phase(n, timeout=300):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if line.startswith("{") and json.loads(line).get("phase") == n:
                    return json.loads(line)
            raise RuntimeError("the bench device stopped:\n" + "".join(lines[-12:]))

        try:
            phase(0)
            before = _counters(sim)
            (d / "GO1").write_text("")
            end = phase(1)
            after = _counters(sim)
        finally:
            p.kill()
            p.wait()
    if end["pending"]:
        raise RuntimeError("the bench device did not deliver its records")
    k = [k for k in after if after[k]["state"] == "open"][0]
    bb = before[k]
    total = (after[k]["tx_air"] - bb["tx_air"]) + (after[k]["rx_air"] - bb["rx_air"])
    return {"name": "usage_record_bytes_on_air", "value": round(total / RECORDS, 1), "unit": "bytes",
            "model": "bg95", "note": "one signed usage record on a kept connection: QoS 1 PUBLISH to .../usage, "
                                     "PUBACK and TCP ACKs, both directions, IPv4 + TCP headers (simulator counters)"}


def sign_figures(n=2000):
    from .testing import run_micropython

    rc, out, err = run_micropython(SIGN, env={"M2M_BENCH_N": str(n)})
    if rc != 0:
        raise RuntimeError("micropython failed:\n" + out + err)
    k, us = (int(x) for x in out.split())
    figs = [{"name": "usage_sign_us", "value": round(us / k, 1), "unit": "us",
             "note": "device time to sign one usage record (message, HMAC-SHA256 over hashlib, compact JSON), "
                     "unix port"}]
    if shutil.which("valgrind"):
        def count(runs):
            with tempfile.TemporaryDirectory() as d:
                p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(d, "cg"),
                                    micropython(), "-X", "heapsize=512K", "-c", _prelude() + SIGN],
                                   capture_output=True, text=True, timeout=600,
                                   env=mpy_env({"M2M_BENCH_N": str(runs)}))
            m = re.search(r"Collected : (\d+)", p.stderr)
            if p.returncode != 0 or not m:
                raise RuntimeError("valgrind failed:\n" + p.stdout + p.stderr)
            return int(m.group(1))

        figs.append({"name": "usage_sign_instructions", "value": round((count(200) - count(0)) / 200),
                     "unit": "instr", "note": "instructions to sign one usage record (callgrind, less a run "
                                              "that signs none), unix port"})
    return figs


def usage_figures():
    yield record_bytes()
    yield from sign_figures()

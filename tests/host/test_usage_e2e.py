"""Usage records end to end: the firmware's Meters in MicroPython, the Network and the Reporter over a
simulated BG95, a real Mosquitto; the records reach `<prefix>/<id>/usage` as the device signed them,
and `m2mkit usage verify --broker` (a separate process, keys from the inventory) accepts them."""

import json
import subprocess
import sys
import time

from m2mkit import inventory
from m2mkit.sim.modem import ModemSim
from m2mkit.testing import _prelude, micropython, mpy_env

SCALE = 20
KEY = bytes.fromhex("3c" * 32)

DEVICE = """
import json, os
from m2m import hal, loop, config, outbox
from m2m.at import AT
from m2m import modem
from m2m.net import sock
from m2m.net.network import Network
from m2m.report import mqtt
import m2m.net
d = os.getenv("DIR")
with open(d + "/usage.key", "w") as f:
    f.write(os.getenv("KEY"))
cfg = config.validate({"device": {"id": "dev-u"}, "net": {"apn": "internet"},
                       "mqtt": {"broker": os.getenv("BROKER"), "keepalive": 60},
                       "meter": {"meters": [{"name": "water", "type": "pulses", "pin": 4, "k": "0.5",
                                             "unit": "L", "debounce_ms": -1}],
                                 "key_file": d + "/usage.key", "state": d + "/meter.json"}})
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=3000)
m = modem.create(at, {"model": "bg95"})
net = Network(m, cfg, state_dir=d + "/")
st = sock.Stack(m, kind="tcp", timeout_ms=8000, on_fail=m2m.net.link_failed)
ob = outbox.Outbox(d + "/outbox")
if cfg["meter"]["meters"]:
    from m2m import meter
    ms = meter.setup(cfg, ob, cfg["device"]["id"])
rep = mqtt.Reporter(st, ob, cfg, "dev-u", up=net.attached, config_path=d + "/config.json")
src = ms.meters[0].src
made = []
for i in range(6):
    for _ in range(i + 3):
        src._edge(src.pin)
    made += ms.record()
print(json.dumps({"made": made, "count": src.count}))
loop.run([net, ms, rep], until=lambda: ob.pending() == 0 and rep.client.connected(), max_ms=600000)
print(json.dumps({"pending": ob.pending(), "error": rep.last_error}))
"""


def test_records_reach_usage_and_verify_from_the_broker(broker, subscriber, tmp_path):
    db = tmp_path / "inv.sqlite"
    with inventory.Inventory(db) as inv:
        inv.record("dev-u", credentials={"mqtt_user": "dev-u", "usage_key": KEY.hex()})
    raw = subscriber("m2mkit/dev-u/usage")
    saved = tmp_path / "collected.jsonl"
    verify = subprocess.Popen([sys.executable, "-m", "m2mkit.cli", "usage", "verify", "--broker", broker.url,
                               "--seconds", "120", "--idle", "3", "--db", str(db), "--save", str(saved)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)  # subscribed before the device publishes (its modem takes longer to attach)
    with ModemSim(model="bg95", time_scale=SCALE) as sim:
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_TIME_SCALE": str(SCALE), "BROKER": broker.url, "DIR": str(tmp_path), "KEY": KEY.hex()}
        dev = subprocess.run([micropython(), "-X", "heapsize=512K", "-c", _prelude() + DEVICE],
                             capture_output=True, text=True, env=mpy_env(env), timeout=120)
    out = [json.loads(ln) for ln in dev.stdout.splitlines() if ln.startswith("{")]
    assert out and out[0]["made"] == [1, 2, 3, 4, 5, 6], dev.stdout + dev.stderr
    assert out[-1]["pending"] == 0, dev.stdout + dev.stderr
    got = [json.loads(m[1]) for m in raw.wait(6, timeout=20)]
    assert [r["n"] for r in got] == [1, 2, 3, 4, 5, 6]
    assert sum(r["b"] - r["a"] for r in got) == out[0]["count"] == 3 + 4 + 5 + 6 + 7 + 8
    text, _ = verify.communicate(timeout=150)
    assert verify.returncode == 0, text
    assert "6 records from 1 devices: 6 verified, 0 findings" in text
    lines = [json.loads(x) for x in saved.read_text().splitlines()]
    assert [x["d"] for x in lines] == ["dev-u"] * 6 and [x["n"] for x in lines] == [1, 2, 3, 4, 5, 6]

"""`m2mkit demo` runs the device's own main.py: the supervisor starts from the /config.json in the
demo's flash image (no command typed), the BME280 and SHT4x on the simulated bus follow the slowly
varying environment, their readings reach the demo's subscriber as SenML, and the hot spell raises
the duct's temperature alarm and clears it, on /events."""

import json
import os
import subprocess
import sys
from pathlib import Path

from m2mkit import demo_sense

BIN = Path(sys.executable).parent


def test_demo_shows_main_py_reporting_the_environment_and_an_alarm(tmp_path):
    start, length, _ = demo_sense.HOT_SPELL
    seconds = start + length + 10
    p = subprocess.run([str(BIN / "m2mkit"), "demo", "--seconds", str(seconds)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=seconds + 60, env=dict(os.environ, TMPDIR=str(tmp_path)))
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "device> supervisor: sensors 3, mqtt mqtt://127.0.0.1:" in out, out  # main.py, by itself
    tele = [ln for ln in out.splitlines() if "/telemetry seq " in ln]
    for name, unit in (("room.temperature", "Cel"), ("room.humidity", "%RH"), ("room.pressure", "Pa"),
                       ("duct.temperature", "Cel"), ("duct.humidity", "%RH"), ("battery", "V")):
        assert any(f" {name}=" in ln and ln.split(f" {name}=")[1].split()[1] == unit for ln in tele), (name, out)
    # the hot spell is the duct's: the room's BME280 never reads it (its alarm would be at 30 degC too)
    room = [float(ln.split(" room.temperature=")[1].split()[0]) for ln in tele if " room.temperature=" in ln]
    assert room and max(room) < demo_sense.ALARM_C - 5, (room, out)
    alarms = [json.loads(ln.split(" ", 2)[2]) for ln in out.splitlines() if "/events {" in ln and '"alarm"' in ln]
    assert [a["state"] for a in alarms] == ["raised", "cleared"], out
    assert alarms[0]["name"] == "duct.temperature" and alarms[0]["value"] > demo_sense.ALARM_C, alarms
    assert "Traceback" not in out, out
    assert list(tmp_path.iterdir()) == []  # image, state, broker folder: all gone

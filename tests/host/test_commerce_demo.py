"""`m2mkit demo --commerce`: the virtual device's ink tank drains, the device orders, the supplier
endpoint gets exactly one order, the confirmation reaches the device; Ctrl-C leaves nothing behind."""

import pytest
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

# whole demos on a scaled clock: beside three other workers they missed their broker (final CI runs)
pytestmark = pytest.mark.alone

BIN = Path(sys.executable).parent


def test_demo_orders_once_and_the_device_gets_the_confirmation(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    p = subprocess.Popen([str(BIN / "m2mkit"), "demo", "--commerce"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "/cmd/res " in line and '"status":"confirmed"' in line:
                break
        time.sleep(1)  # a little longer: no second order may come
        os.killpg(p.pid, signal.SIGINT)
        rest, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    out = "".join(lines) + rest
    assert "Traceback" not in out, out
    orders = [ln for ln in out.splitlines() if ln.startswith("supplier> new order ")]
    assert len(orders) == 1, out
    oid = orders[0].split()[3].rstrip(":")
    assert re.fullmatch(r"[a-z0-9-]+:ink-black:[0-9a-f]{8}-1", oid) and 'Idempotency-Key "%s"' % oid in orders[0], out
    assert "/telemetry seq " in out and ": ink.level=" in out, out
    assert "supervisor: sensors 1, mqtt mqtt://127.0.0.1:" in out and ", orders as " in out, out
    assert '/orders {"' in out and '"order": "%s"' % oid in out, out
    assert "device> event: order.need order=%s reason=ink.level" % oid in out, out
    assert "device> event: order.confirmed order=%s ref=S-1" % oid in out, out
    assert list(tmp_path.iterdir()) == []  # no image, state, broker or database left

"""`m2mkit demo --lwm2m coap://HOST:PORT`: the demo's virtual device (simulated modem, UDP through it)
registers with an LwM2M server, here the host's own, which reads it; Ctrl-C stops it all."""

import pytest
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from m2mkit.lwm2m import ServerThread

# whole demos on a scaled clock: beside three other workers they missed their broker (final CI runs)
pytestmark = pytest.mark.alone

BIN = Path(sys.executable).parent


def test_demo_device_registers_with_the_given_server_and_is_read(tmp_path):
    lines = []
    with ServerThread(log=lines.append) as srv:
        url = "coap://127.0.0.1:%d" % srv.address[1]
        p = subprocess.Popen([str(BIN / "m2mkit"), "demo", "--lwm2m", url], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, TMPDIR=str(tmp_path)), start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not srv.server.registrations and p.poll() is None:
                time.sleep(0.2)
            assert srv.server.registrations, lines
            reg = list(srv.server.registrations.values())[0]
            assert reg.ep == "m2mkit-demo" and "/3/0" in reg.objects()
            r = srv.call("read", "m2mkit-demo", "/3/0", fmt="cbor", timeout=60)
            assert r.code.dotted == "2.05" and r.value["/3/0/0"] == "m2mkit"
            os.killpg(p.pid, signal.SIGINT)
            out, _ = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert "lwm2m: registering as m2mkit-demo with " + url in out, out
    assert "Traceback" not in out, out
    assert list(tmp_path.iterdir()) == []  # no image or state folder left


def test_demo_refuses_a_bad_lwm2m_url_and_both_transports(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    p = subprocess.run([str(BIN / "m2mkit"), "demo", "--lwm2m", "udp://x:1"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert p.returncode == 2 and "give coap://HOST:PORT of an LwM2M server" in p.stderr, p.stderr
    p = subprocess.run([str(BIN / "m2mkit"), "demo", "--lwm2m", "coap://127.0.0.1:5683", "--broker",
                        "mqtt://127.0.0.1:1883"], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 2 and "not both" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr

"""umqtt.simple as the registry ships it: set up once, unmodified, importable on the virtual device as a
board's frozen module would be (without showing up in its filesystem), and a clear error when it
cannot be had."""

import hashlib
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from m2mkit import umqtt_setup
from m2mkit.errors import UserError
from m2mkit.vdev.device import VirtualDevice


# sha256 of umqtt/simple.py inside micropython-umqtt.simple-1.3.4.tar.gz (the sdist whose own sha256
# umqtt_setup.SHA256 pins), taken from the registry's file
SIMPLE_SHA256 = "8555d2f654deb8eb0d724f79b0811a78cc94029d070f3d96bbd74288653d63a5"


def test_the_cached_copy_is_the_registry_file_unmodified():
    src = (umqtt_setup.path() / "umqtt" / "simple.py").read_bytes()
    assert hashlib.sha256(src).hexdigest() == SIMPLE_SHA256


def _serve(body):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_unreachable_or_wrong_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(umqtt_setup, "CACHE", tmp_path / "cache")
    with pytest.raises(UserError, match="cannot download micropython-umqtt.simple .* check the network"):
        umqtt_setup.install("http://127.0.0.1:9/none.tar.gz")
    srv = _serve(b"not the sdist")
    try:
        with pytest.raises(UserError, match="refusing it"):
            umqtt_setup.install("http://127.0.0.1:%d/x.tar.gz" % srv.server_address[1])
    finally:
        srv.shutdown()
    assert not (tmp_path / "cache").exists()
    with pytest.raises(UserError, match="not set up: run ./dev.sh test"):
        umqtt_setup.path(fetch=False)


def test_virtual_device_imports_it_as_frozen_and_lists_only_its_flash():
    with VirtualDevice("esp32-devkitc-bg95") as dev:
        dev.wait_boot(1, timeout=30)
        p = subprocess.run([str(Path(sys.executable).parent / "mpremote"), "connect", dev.port, "exec",
                            "import os, umqtt.simple as s; print(s.MQTTClient.__name__, sorted(os.listdir('/')))"],
                           capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "MQTTClient ['board.json', 'boot.py', 'lib', 'main.py']", p.stdout + p.stderr

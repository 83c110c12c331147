"""Packaging: firmware/manifest.py (freezing m2m into a MicroPython build) and package.json (mip),
installed with `mpremote mip install` from the repository served on loopback to the virtual device."""

import functools
import http.server
import json
import os
import threading

import pytest

from m2mkit import boards, image, packaging, umqtt_setup
from m2mkit.paths import FIRMWARE, ROOT
from m2mkit.vdev.device import VirtualDevice
from test_vdev import mpremote, tool


def run_manifest():
    """Execute firmware/manifest.py with the manifest API of micropython/micropython
    tools/manifestfile.py (metadata, require, package, module, include) recording what it names,
    from the manifest's own folder as that tool does."""
    calls = []
    api = {n: functools.partial(lambda n, *a, **kw: calls.append((n, a, kw)), n)
           for n in ("metadata", "require", "package", "module", "include", "freeze")}
    cwd = os.getcwd()
    os.chdir(FIRMWARE)
    try:
        exec((FIRMWARE / "manifest.py").read_text(), dict(api))
    finally:
        os.chdir(cwd)
    return calls


def test_manifest_names_every_board_module_and_nothing_else():
    calls = run_manifest()
    assert ("require", ("umqtt.simple",), {}) in calls
    [(_, (pkg,), kw)] = [c for c in calls if c[0] == "package"]
    assert pkg == "m2m" and kw["base_path"] == "lib"
    named = set(kw["files"])
    for f in named:
        assert (FIRMWARE / "lib" / "m2m" / f).is_file(), f
    present = {p.relative_to(FIRMWARE / "lib" / "m2m").as_posix() for p in (FIRMWARE / "lib" / "m2m").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert "hal/unix.py" not in named  # the virtual device's hal: a board never imports it
    assert named == present - {"hal/unix.py"}
    assert not [c for c in calls if c[0] in ("module", "include", "freeze")]


def test_manifest_stays_off_the_flash():
    assert "/manifest.py" not in dict(image.firmware_files())


def test_package_json_is_current_and_names_existing_files():
    assert (ROOT / "package.json").read_text() == packaging.text(), \
        "package.json is stale: run `.venv/bin/python -m m2mkit.packaging` and commit it"
    pj = json.loads((ROOT / "package.json").read_text())
    for target, url in pj["urls"]:
        assert (ROOT / url).is_file() and url == "firmware/lib/" + target
    assert "m2m/hal/unix.py" not in [t for t, _ in pj["urls"]]
    assert pj["deps"] == [["umqtt.simple", "latest"]]


@pytest.fixture
def served(tmp_path):
    """The repository and a one-package stand-in of micropython-lib's index (umqtt.simple, the
    registry's own file from umqtt_setup) on a loopback HTTP server."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "repo").symlink_to(ROOT)
    (www / "umqtt").symlink_to(umqtt_setup.path() / "umqtt")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(www)))
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    for mpy in ("py", "6"):
        d = www / "index" / "package" / mpy / "umqtt.simple"
        d.mkdir(parents=True)
        (d / "latest.json").write_text(json.dumps({"urls": [["umqtt/simple.py", f"{base}/umqtt/simple.py"]]}))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield base
    srv.shutdown()
    srv.server_close()


def test_mip_installs_the_library_from_the_repository(served, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    flash = tmp_path / "flash.img"
    flash.write_bytes(image.build(boards.load("esp32-devkitc-bg95"), firmware=empty))  # a board with no app
    with VirtualDevice("esp32-devkitc-bg95", flash=flash, env={}) as dev:
        dev.wait_boot(1)
        p = tool("mpremote", "connect", dev.port, "mip", "install", "--index", f"{served}/index", f"{served}/repo/",
                 timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        out = mpremote(dev.port, "exec", "import os; print(sorted(os.listdir('/lib/m2m'))); "
                                         "print(os.listdir('/lib/umqtt'), os.listdir('/lib/m2m/hal'))")
        listed, rest = out.splitlines()
        assert "'atparse.py'" in listed and "'net'" in listed
        assert rest == "['simple.py'] ['__init__.py', 'esp32.py']"
        assert mpremote(dev.port, "exec", "import m2m.atparse, m2m.config; print('ok')") == "ok\n"

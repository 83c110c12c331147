"""package.json for mip (`mpremote mip install <repository URL>`): written from firmware/lib/m2m by
`python -m m2mkit.packaging`; tests/host/test_packaging.py checks it is current.

Format: micropython-lib's package.json as mpremote's mip.py reads it ("urls": [[target, url]], urls
relative to the package.json's folder; "deps": [[name, version]]).
"""

import json
import subprocess

from . import __version__
from .paths import FIRMWARE, ROOT

UNIX_ONLY = ("m2m/hal/unix.py",)  # the virtual device's hal: a board never imports it
PACKAGE_JSON = ROOT / "package.json"


def _sources():
    """Committed .py files under firmware/lib (git's list, so work in progress stays out), or
    every one when this is no git checkout."""
    lib = FIRMWARE / "lib"
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "firmware/lib"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode()
        paths = [ROOT / p for p in out.split("\0") if p.endswith(".py")]
    except (OSError, subprocess.CalledProcessError):
        paths = list(lib.rglob("*.py"))
    return sorted(p for p in paths if "__pycache__" not in p.parts)


def package_json():
    lib = FIRMWARE / "lib"
    urls = []
    for p in _sources():
        target = p.relative_to(lib).as_posix()
        if target not in UNIX_ONLY:
            urls.append([target, p.relative_to(ROOT).as_posix()])
    # umqtt.simple is frozen in MicroPython's generic ESP32 builds (ports/esp32/boards/manifest.py);
    # the dependency installs it where a build left it out
    return {"urls": urls, "deps": [["umqtt.simple", "latest"]], "version": __version__}


def text():
    pj = package_json()
    urls = ",\n".join("    " + json.dumps(u) for u in pj["urls"])
    return (f'{{\n  "urls": [\n{urls}\n  ],\n  "deps": {json.dumps(pj["deps"])},\n'
            f'  "version": {json.dumps(pj["version"])}\n}}\n')


if __name__ == "__main__":
    PACKAGE_JSON.write_text(text())
    print(f"wrote {PACKAGE_JSON}")

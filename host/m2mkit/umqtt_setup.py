"""umqtt.simple for the virtual device and the firmware tests: the registry's own copy, unmodified.

On an ESP32 board umqtt.simple is frozen into MicroPython (micropython/micropython
ports/esp32/boards/manifest.py: require("umqtt.simple")). Here the sdist of the registry package
micropython-umqtt.simple (pinned below, checked by its sha256) is fetched once and `umqtt/simple.py`
extracted into a git-ignored cache, which the virtual device imports from as a board would from its
frozen modules (vdev/vboot.py) and the firmware test runner puts on sys.path (testing.py).

`python -m m2mkit.umqtt_setup` does it (dev.sh runs it); `path()` does it on first use.
"""

import hashlib
import io
import os
import sys
import tarfile
import urllib.request

from .errors import UserError
from .paths import ROOT

VERSION = "1.3.4"
# the sdist pip resolves for micropython-umqtt.simple==1.3.4 (pip cannot install it: it has no
# setup.py, so it is fetched and unpacked here)
URL = ("https://files.pythonhosted.org/packages/bd/cf/697e3418b2f44222b3e848078b1e33ee76aedca9b6c2430ca1b1aec1ce1d/"
       "micropython-umqtt.simple-1.3.4.tar.gz")
SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
MEMBER = f"micropython-umqtt.simple-{VERSION}/umqtt/simple.py"
CACHE = ROOT / ".cache" / f"umqtt.simple-{VERSION}"  # holds umqtt/simple.py


_failed = None  # a download that failed in this process is not tried again (offline machines)


def path(fetch=True):
    """The folder that holds umqtt/simple.py (fetched first when missing)."""
    global _failed
    if not (CACHE / "umqtt" / "simple.py").is_file():
        if not fetch:
            raise UserError(f"umqtt.simple {VERSION} is not set up: run ./dev.sh test or "
                            f"python -m m2mkit.umqtt_setup (it downloads {URL})")
        if _failed is not None:
            raise _failed
        try:
            install()
        except UserError as e:
            _failed = e
            raise
    return CACHE


def install(url=URL):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            blob = r.read()
    except OSError as e:
        raise UserError(f"cannot download micropython-umqtt.simple {VERSION} from {url} ({e}): "
                        f"check the network, or put umqtt/simple.py from that sdist in {CACHE}") from e
    got = hashlib.sha256(blob).hexdigest()
    if got != SHA256:
        raise UserError(f"micropython-umqtt.simple {VERSION} from {url} has sha256 {got}, not {SHA256}: "
                        f"refusing it; check the download source")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as t:
        src = t.extractfile(MEMBER).read()
    dst = CACHE / "umqtt"
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / "simple.py.part"
    tmp.write_bytes(src)
    os.replace(tmp, dst / "simple.py")
    return CACHE


def main():
    try:
        print(f"umqtt.simple {VERSION}: {path()}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

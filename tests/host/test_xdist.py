"""The suite under pytest-xdist (./dev.sh test: `-n 4 --dist loadfile`): a test marked `alone` (or named
in tests/conftest.py ALONE) runs while no other worker runs a test, and the others still run beside
each other. Checked on a small suite of its own, run with the project's tests/conftest.py."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

# each test leaves a file in DIR while its body runs: run-* for the others, alone for the alone one
BODY = """
import os, time, pytest
D = os.environ["M2M_XDIST_DIR"]

def hold(name, check, seconds):
    open(os.path.join(D, name), "w").close()
    try:
        for _ in range(int(seconds / 0.02)):
            check(set(os.listdir(D)) - {name})
            time.sleep(0.02)
    finally:
        os.remove(os.path.join(D, name))
"""

OTHERS = BODY + """
@pytest.mark.parametrize("i", range(8))
def test_other(i):
    def check(seen):
        assert "alone" not in seen, seen
        if any(s.startswith("run-b") for s in seen):
            open(os.path.join(D, "..", "side-by-side"), "w").close()
    hold("run-a%d" % i, check, 0.3)
"""

MIXED = BODY + """
@pytest.mark.alone
def test_alone():
    def check(seen):
        assert not seen, seen
    hold("alone", check, 0.5)

@pytest.mark.parametrize("i", range(8))
def test_more(i):
    hold("run-b%d" % i, lambda seen: None, 0.3)
"""


def test_an_alone_test_runs_with_no_other_beside_it(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copyfile(TESTS / "conftest.py", suite / "conftest.py")
    # the alone test comes first in its file: its worker asks for it while the other runs test_other
    (suite / "test_a.py").write_text(OTHERS)
    (suite / "test_b.py").write_text(MIXED)
    (tmp_path / "dir").mkdir()
    p = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-q", "-p", "no:cacheprovider",
                        "-p", "no:pytest_embedded", "--basetemp", str(tmp_path / "tmp"), str(suite)],
                       capture_output=True, text=True, timeout=120, cwd=suite,
                       env={**os.environ, "M2M_XDIST_DIR": str(tmp_path / "dir")})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "17 passed" in p.stdout, p.stdout[-2000:]
    # the two workers did run tests side by side (the lock holds back only the alone test's neighbours)
    assert (tmp_path / "side-by-side").exists()

"""Every firmware file compiles for the ESP32's Xtensa core, as a board would run it."""

import pytest

from m2mkit import mpy
from m2mkit.paths import FIRMWARE

FILES = mpy.python_files()


@pytest.mark.parametrize("src", FILES, ids=[str(p.relative_to(FIRMWARE)) for p in FILES])
def test_compiles_for_xtensawin(src):
    ok, msg, data = mpy.compile_file(src, "xtensawin")
    assert ok, msg
    assert data[:1] == b"M"  # .mpy header


def test_a_syntax_error_is_reported(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    ok, msg, data = mpy.compile_file(bad)
    assert not ok and "SyntaxError" in msg and data is None

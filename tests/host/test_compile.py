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


def test_a_mpy_embeds_its_modules_dotted_name_which_the_import_interned_already():
    # py/persistentcode.c load_qstr interns the embedded source name; py/builtinimport.c interns the
    # dotted module name at the import: the same string takes no pool entry of its own
    from m2mkit.deploy import compile_mpy

    sim = FIRMWARE / "lib/m2m/net/sim.py"
    for data in (mpy.compile_file(sim)[2], compile_mpy(sim, "m2m/net/sim.py", "xtensawin")):
        assert b"m2m.net.sim" in data and b"sim.py" not in data
    pkg = mpy.compile_file(FIRMWARE / "lib/m2m/net/__init__.py")[2]
    assert b"m2m.net" in pkg and b"__init__" not in pkg

"""The HIL plugin beside pytest-embedded (installed with m2mkit, so pytest loads it wherever it runs
but in this folder, whose pyproject says `-p no:pytest_embedded`): the README's HIL commands work as
printed from any folder; pytest-embedded's --port and --target are read where they mean ours."""

import re
import shlex
import subprocess
import sys
from importlib.metadata import entry_points

from m2mkit.paths import ROOT


def readme_commands():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### HIL tests"):]
    section = section[:section.index("\n## ")]
    return [" ".join(c.split()) for c in re.findall(r"`(pytest [^`]*m2mkit\.hil_tests[^`]*)`", section)]


def run(cmd, cwd, *more, timeout=300):
    args = shlex.split(cmd)
    assert args[0] == "pytest"
    p = subprocess.run([sys.executable, "-m", *args, "-p", "no:cacheprovider", *more], capture_output=True,
                       text=True, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout + p.stderr


def test_pytest_embedded_is_there_to_coexist_with():
    assert any(ep.name == "pytest_embedded" for ep in entry_points(group="pytest11"))


def test_the_readme_suite_command_runs_from_another_folder_beside_pytest_embedded(tmp_path):
    cmds = readme_commands()
    assert len(cmds) == 2 and all("no:pytest_embedded" not in c for c in cmds), cmds
    sim = next(c for c in cmds if "--port" not in c)
    rc, out = run(sim, tmp_path, "-rs")  # as printed: the DevKitC's own heap
    assert rc == 0, out
    assert re.search(r"^plugins:.*\bembedded-", out, re.M), out  # pytest-embedded was loaded
    assert "4 passed, 1 skipped" in out and "hardware test: run with --port and --board" in out, out


def test_the_readme_board_command_reads_pytest_embeddeds_port(tmp_path):
    board = next(c for c in readme_commands() if "--port" in c).replace("<board>", "esp32-devkitc-bg95")
    # only the simulator-only test: skipped on a board before any fixture opens the port
    rc, out = run(board, tmp_path, "-rs", "-k", "simulator_on_the_virtual_device")
    assert re.search(r"^plugins:.*\bembedded-", out, re.M), out
    assert rc == 0 and "1 skipped" in out and "needs the simulators: run with --target sim" in out, out


def test_option_errors_beside_pytest_embedded_and_without_it(tmp_path):
    base = "pytest -p m2mkit.hil --pyargs m2mkit.hil_tests"
    for plugins in ("", "-p no:pytest_embedded"):  # its --target / --port, then ours
        rc, out = run(f"{base} {plugins} --target board", tmp_path)
        assert rc == 4 and "--target board needs --port /dev/ttyUSB0" in out, (plugins, out)
        rc, out = run(f"{base} {plugins} --port /dev/ttyUSB9", tmp_path)
        assert rc == 4 and "--port needs --board" in out, (plugins, out)
    # the m2mkit- names always; a chip name in pytest-embedded's --target is not a target kind
    rc, out = run(f"{base} --m2mkit-target board", tmp_path)
    assert rc == 4 and "--target board needs --port" in out, out
    rc, out = run(f"{base} --m2mkit-port /dev/ttyUSB9", tmp_path)
    assert rc == 4 and "--port needs --board" in out, out
    rc, out = run(f"{base} --target esp32s3 --collect-only", tmp_path)
    assert rc == 0 and "5 tests collected" in out, out
    # `-p no:pytest_embedded` after the plugin, as the old README had it before
    rc, out = run("pytest -p m2mkit.hil -p no:pytest_embedded --pyargs m2mkit.hil_tests --port /dev/ttyUSB9",
                  tmp_path)
    assert rc == 4 and "--port needs --board" in out, out


def test_the_plugin_from_a_conftest_takes_the_short_names_where_free(tmp_path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["m2mkit.hil"]\n')
    for plugins in ("", "-p no:pytest_embedded"):  # pytest-embedded's --port, then this plugin's own
        rc, out = run(f"pytest {plugins} --pyargs m2mkit.hil_tests --port /dev/ttyUSB9", tmp_path)
        assert rc == 4 and "--port needs --board" in out, (plugins, out)

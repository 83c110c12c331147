"""Firmware test files write their files under M2M_TEST_TMP, a folder of their own (pytest's tmp_path
for the file when pytest runs it; a temporary folder removed afterwards otherwise): two suites or two
workers never write the same path (test_config.py and test_net_units.py used fixed /tmp names)."""

import os

from m2mkit import testing

WRITER = """
import os
def test_writes():
    d = os.getenv("M2M_TEST_TMP")
    with open(d + "/here.txt", "w") as f:
        f.write("x")
    print("dir", d)
"""


def test_a_firmware_file_writes_into_the_folder_it_is_given(tmp_path):
    f = tmp_path / "test_writer.py"
    f.write_text(WRITER)
    out = tmp_path / "out"
    out.mkdir()
    ok, text = testing.run_file(f, tmp=out)["test_writes"]
    assert ok, text
    assert (out / "here.txt").read_text() == "x"


def test_without_a_folder_each_run_has_its_own_and_it_is_removed(tmp_path):
    f = tmp_path / "test_writer.py"
    f.write_text(WRITER)
    dirs = []
    for _ in range(2):
        ok, text = testing.run_file(f)["test_writes"]
        assert ok, text
        dirs.append(text.split("dir ", 1)[1].split()[0])
    assert dirs[0] != dirs[1]
    assert not any(os.path.exists(d) for d in dirs)


def test_the_config_and_network_unit_tests_name_no_fixed_tmp_path():
    for name in ("test_config.py", "test_net_units.py"):
        assert "/tmp" not in (testing.FW_TESTS / name).read_text(), name

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


def test_no_firmware_test_file_names_a_path_under_tmp():
    # (outbox, orders, meter, usagerec, sense_supervisor and mqtt_reporter made unique /tmp names;
    # two suites on one machine, or a crashed run's leftovers, could still meet there)
    named = [f.name for f in sorted(testing.FW_TESTS.glob("*.py")) if "/tmp" in f.read_text()]
    assert named == [], named

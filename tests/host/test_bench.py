"""`m2mkit bench` runs every figure and prints one JSON object per line (values are not judged here:
figures are measurements, not pass/fail)."""

import json
import subprocess
import sys
from pathlib import Path

EXPECTED = {"firmware_mpy_bytes", "vdev_heap_after_boot", "vdev_boot_to_repl", "at_parser_throughput",
            "at_driver_overhead", "at_command_round_trip", "modem_stack_heap_sim7080g",
            "modem_stack_heap_bg95", "modem_stack_heap_gm02s"}


def test_bench_prints_every_figure_as_json_lines():
    p = subprocess.run([str(Path(sys.executable).parent / "m2mkit"), "bench"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    figs = [json.loads(line) for line in p.stdout.splitlines()]
    assert {f["name"] for f in figs} == EXPECTED
    for f in figs:
        assert isinstance(f["value"], (int, float)) and f["value"] > 0, f
        assert f["unit"] in ("bytes", "ms", "lines/s", "us"), f

"""`m2mkit bench` runs every figure and prints one JSON object per line (values are not judged here:
figures are measurements, not pass/fail)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from m2mkit import bench
from m2mkit.paths import FIRMWARE

HEAP_MODELS = ("sim7080g", "bg95", "gm02s")
EXPECTED = {"firmware_mpy_bytes", "vdev_heap_after_boot", "app_heap_after_boot", "vdev_boot_to_repl",
            "at_parser_throughput", "at_driver_overhead", "at_command_round_trip", "vdev_hal_heap",
            "esp32_hal_mpy_bytes"}
EXPECTED |= {f"modem_stack_heap_{m}" for m in HEAP_MODELS}
EXPECTED |= {f"modem_stack_heap_peak_{k}_{m}" for m in HEAP_MODELS for k in ("mpy", "py")}
EXPECTED |= {"at_parser_throughput_1b", "at_parser_throughput_8b", "at_parser_throughput_256b",
             "at_parser_bytewise_ratio"}
EXPECTED |= {"sampler_cycle_us", "sense_heap_mpy", "sense_heap_py", "supervisor_heap_mpy"}  # issue #11
EXPECTED |= {"outbox_append_us", "outbox_drain_us", "outbox_heap_bytes", "outbox_heap_growth_bytes",
             "outbox_erases_per_record", "outbox_prog_bytes_per_record", "outbox_prog_bytes_per_ack",
             "outbox_erases_per_record_write_back"}  # issue #9
EXPECTED |= {"mqtt_report_bytes_kept", "mqtt_report_bytes_kept_units_each", "mqtt_report_bytes_naive", "mqtt_report_bytes_ratio",
             "mqtt_round_trips_per_report", "mqtt_heap_high_water", "mqtt_heap_qstr_cut"}  # issue #9
EXPECTED |= {"net_bringup_overhead_bg95", "net_attached_heap"}  # issue #8, network
EXPECTED |= {"esim_switch_overhead_bg95", "esim_heap"}  # issue #13, eSIM
EXPECTED |= {"fleet_images_per_s", "deploy_first_s", "deploy_unchanged_s"}  # issue #12, host tools
EXPECTED |= {"lwm2m_send_bytes", "lwm2m_send_bytes_both_ways", "lwm2m_send_ratio_mqtt_naive",
             "lwm2m_send_ratio_mqtt_kept", "lwm2m_round_trips_per_report", "lwm2m_heap_registered"}  # issue #10
EXPECTED |= {"lwm2m_send_datagram_ratio_mqtt_naive"}  # the Send datagram alone against naive MQTT
EXPECTED |= {"usage_record_bytes_on_air", "usage_sign_us"}  # issue #14, usage records
EXPECTED |= {"vdev_port_heap_vboot", "vdev_port_heap_prelude", "vdev_port_heap_pools"}  # the vdev's own heap
EXPECTED |= {"lwm2m_heap_qstr_cut"}  # the qstr pools a board's firmware makes (bench_lwm2m.py)
EXPECTED |= {"lwm2m_heap_share"}  # the LwM2M client's part of lwm2m_heap_registered (bench_lwm2m.py)
EXPECTED |= {"supervisor_heap_fault_run"}  # issue #9: main.py's supervisor in a limited heap (bench_supervisor.py)
EXPECTED |= {"supervisor_heap_fault_run_romfs"}  # the same from ROMFS (bench_supervisor.py)
EXPECTED |= {"romfs_image_bytes", "mqtt_heap_high_water_romfs", "lwm2m_heap_registered_romfs"}  # firmware in ROMFS
OPTIONAL = {"esp32_hal_heap"}  # only where stand-in machine / esp32 modules exist
OPTIONAL |= {"sampler_cycle_instructions", "usage_sign_instructions"}  # valgrind
OPTIONAL |= {"at_parser_instructions_1b", "at_parser_instructions_64b", "at_parser_bytewise_ratio_instr"}  # valgrind


M2MKIT = str(Path(sys.executable).parent / "m2mkit")


def test_bench_prints_every_figure_as_json_lines():
    # --quick: every figure through the same code with fewer iterations (bench.sized); `m2mkit bench`
    # alone runs them in full (test_quick_is_only_asked_for below)
    p = subprocess.run([M2MKIT, "bench", "--quick"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    figs = [json.loads(line) for line in p.stdout.splitlines()]
    names = {f["name"] for f in figs}
    assert EXPECTED <= names <= EXPECTED | OPTIONAL, names ^ EXPECTED
    for f in figs:
        assert isinstance(f["value"], (int, float)) and f["value"] > 0, f
        assert f["unit"] in ("bytes", "ms", "lines/s", "us", "ratio", "instr", "count", "s", "images/s"), f
    by = {f["name"]: f["value"] for f in figs}
    for m in HEAP_MODELS:
        # a peak holds the steady state plus what import and init throw away
        assert by[f"modem_stack_heap_peak_mpy_{m}"] >= by[f"modem_stack_heap_{m}"], m
        assert by[f"modem_stack_heap_peak_py_{m}"] >= by[f"modem_stack_heap_{m}"], m


def test_quick_is_only_asked_for():
    # the same figure in full and with --quick: the quick run makes fewer exchanges, the full one as many
    # as always; the flag does not outlive its run
    def exchanges(*opts):
        p = subprocess.run([M2MKIT, "bench", "--only", "at_round_trip", *opts], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        fig = [f for f in map(json.loads, p.stdout.splitlines()) if f["name"] == "at_command_round_trip"][0]
        assert fig["value"] > 0 and fig["unit"] == "us", fig
        return int(re.search(r"mean of (\d+) ", fig["note"]).group(1))

    assert exchanges() == 200
    assert exchanges("--quick") == 20
    assert list(bench.run(only=("firmware_size",), quick=True)) and not bench.QUICK
    assert bench.sized(2000, 200) == 2000


def test_stack_heap_leaves_the_hal_out(tmp_path):
    # a hal that holds 48 KB more must not change what the firmware's figure says it holds
    lib = tmp_path / "lib"
    shutil.copytree(FIRMWARE / "lib", lib)
    with open(lib / "m2m/hal/unix.py", "a") as f:
        f.write("\n_BALLAST = bytearray(48 * 1024)\n")
    plain = bench.heap_trees(tmp_path / "plain")["mpy"]
    heavy = bench.heap_trees(tmp_path / "heavy", lib)["mpy"]
    hal, fw = bench.stack_heap("bg95", plain)
    hal_heavy, fw_heavy = bench.stack_heap("bg95", heavy)
    assert hal_heavy - hal >= 48 * 1024  # the ballast is counted, as the hal's
    assert abs(fw_heavy - fw) < 2048, (fw, fw_heavy)  # and never as the firmware's

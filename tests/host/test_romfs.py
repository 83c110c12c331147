"""The firmware in ROMFS (host/m2mkit/romfs.py): the image builds and mounts in the real micropython,
a module run in place from it holds less heap than the same .mpy from a filesystem, the virtual
device with a ROMFS partition boots the firmware from /rom, `m2mkit deploy --romfs` writes it, and a
device without ROMFS (stock firmware: no vfs.rom_ioctl) gets an error that says what is needed."""

import subprocess
import sys
from pathlib import Path

import pytest

from m2mkit import deploy, romfs
from m2mkit.errors import UserError
from m2mkit.paths import FIRMWARE
from m2mkit.testing import run_micropython
from m2mkit.vdev.device import VirtualDevice


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The firmware compiled once for the unix port (x64) as a folder of .mpy, and its ROMFS image."""
    d = tmp_path_factory.mktemp("romfs")
    for rel, data in romfs._files(FIRMWARE / "lib", "x64", True).items():
        p = d / "lib" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    image = romfs.build("x64", lib=d / "lib")
    (d / "fw.romfs").write_bytes(image)
    return d


def test_image_is_mpremotes_format_with_the_package_under_lib(tree):
    image = (tree / "fw.romfs").read_bytes()
    assert image.startswith(b"\xd2\xcd\x31") and romfs.image_size(image + b"\xff" * 64) == len(image)
    assert romfs.image_size(b"\xff" * 16) == 0  # an erased partition holds no image
    board = romfs.build("xtensawin")
    code = ("import vfs, os\nvfs.mount(vfs.VfsRom(open(%r, 'rb').read()), '/rom')\n"
            "print(os.listdir('/rom'), sorted(os.listdir('/rom/lib/m2m/hal')))\n")
    p = tree / "board.romfs"
    p.write_bytes(board)
    rc, out, err = run_micropython(code % str(p))
    assert rc == 0, out + err
    # a board's image leaves the virtual device's hal out, as deploy does
    assert "['lib']" in out and "'esp32.mpy'" in out and "unix.mpy" not in out, out
    rc, out, err = run_micropython(code % str(tree / "fw.romfs"))
    assert rc == 0 and "unix.mpy" in out, out + err


# the import's hold after `from m2m import hal` (its baseline), in a fresh interpreter per source
HOLD = """
{first}
import gc
import m2m.hal
gc.collect()
a = gc.mem_alloc()
import {module}
gc.collect()
print('hold', gc.mem_alloc() - a, {module}.__file__)
"""


def _hold(module, first, path):
    rc, out, err = run_micropython(HOLD.format(first=first + "sys.path.insert(0, %r)\n" % path, module=module))
    assert rc == 0, out + err
    _, n, f = out.split()[-3:]
    return int(n), f


@pytest.mark.parametrize("module", ["m2m.coap", "m2m.report.mqtt"])
def test_module_run_in_place_from_romfs_holds_less_heap(tree, module):
    # the same .mpy bytes, from a filesystem (copied to the heap) and from the mounted image (bytecode,
    # constants and names' text referenced in place: py/persistentcode.c)
    on_fs, f1 = _hold(module, "", str(tree / "lib"))
    in_rom, f2 = _hold(module, romfs.prelude(tree / "fw.romfs"), "/rom/lib")
    assert f1.startswith(str(tree)) and f2.startswith("/rom/lib/m2m/"), (f1, f2)
    assert in_rom < on_fs * 0.7, (module, on_fs, in_rom)


def test_heap_extra_gives_the_image_back(tree):
    # a run that mounts the image first keeps the free heap it has without it, at the heap raised by
    # heap_extra (the image sits on the unix port's heap; a board maps it from flash)
    heap = 160 * 1024
    free = "import gc\ngc.collect()\nprint('free', gc.mem_free())\n"
    mp = [sys.executable.rsplit("/", 1)[0] + "/micropython"]
    bare = subprocess.run(mp + ["-X", "heapsize=%d" % heap, "-c", free], capture_output=True, text=True).stdout
    hs, first = romfs.bench_start(tree / "fw.romfs", heap)
    with_rom = subprocess.run(mp + ["-X", "heapsize=" + hs, "-c", first + free], capture_output=True, text=True)
    a, b = int(bare.split()[-1]), int(with_rom.stdout.split()[-1])
    assert a <= b < a + 128, (a, b, with_rom.stderr)
    assert int(hs) - heap > len((tree / "fw.romfs").read_bytes())


def _exec(port, code):
    t = deploy.open_port(port)
    try:
        deploy.raw_repl(t, port)
        return t.exec(code).decode()
    finally:
        t.close()


MODULES = ("import sys\nexec(open('main.py').read())\n"
           "print('files', sorted(set(m.__file__.rsplit('/', 1)[0] for m in sys.modules.values()"
           " if getattr(m, '__file__', '').endswith('.mpy'))))\n"
           "import m2m\nprint('m2m', m2m.__file__, sys.path)\n")


def test_virtual_device_boots_the_firmware_from_romfs(tree, tmp_path):
    # a flash image that also holds the firmware's .py on the LittleFS: /rom/lib comes first
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "f.img", romfs=(tree / "fw.romfs").read_bytes()) as dev:
        dev.wait_boot(1, timeout=30)
        out = _exec(dev.port, MODULES)
    assert "m2mkit" in out and "health:" in out, out  # main.py's banner and health line ran
    dirs = eval(out.split("files ", 1)[1].splitlines()[0])
    assert dirs and all(d.startswith("/rom/lib/m2m") for d in dirs), out
    assert "m2m /rom/lib/m2m/__init__.mpy ['', '.frozen', '/rom', '/rom/lib', '/lib']" in out, out


def test_deploy_romfs_writes_the_partition_and_removes_the_littlefs_copy(tmp_path):
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "f.img", romfs=True) as dev:
        dev.wait_boot(1, timeout=30)
        r = deploy.deploy(dev.port, progress=False, romfs=True)
        assert r["romfs"] and r["arch"] == "x64" and "/lib/m2m/atparse.py" in r["removed"], r
        dev.wait_boot(2, timeout=30)  # the soft reset mounts the new image
        out = _exec(dev.port, "import os, m2m.atparse\nprint(m2m.atparse.__file__, os.listdir('/lib'),"
                              " sorted(os.listdir('/')))")
        assert out.split()[0] == "/rom/lib/m2m/atparse.mpy", out
        assert "[]" in out and "'main.py'" in out and "'boot.py'" in out, out
        again = deploy.deploy(dev.port, progress=False, romfs=True)
        assert again["copied"] == [] and again["removed"] == [], again
        with pytest.raises(UserError) as e:  # a LittleFS copy would be shadowed by the ROMFS one
            deploy.deploy(dev.port, progress=False)
        assert "shadows /lib" in str(e.value) and "--romfs" in str(e.value)
        part = Path(str(tmp_path / "f.img") + ".state") / "romfs.bin"
        data = part.read_bytes()
        # mpremote writes whole 4 KB chunks (the last one padded with zeros); the rest stays erased
        end = -(-again["romfs"] // 4096) * 4096  # (the second image: firmware/ may change meanwhile)
        assert romfs.image_size(data) == again["romfs"] and data[end:] == b"\xff" * (len(data) - end)


def test_deploy_romfs_on_stock_firmware_says_what_is_needed_and_changes_nothing(tmp_path):
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "f.img") as dev:
        dev.wait_boot(1, timeout=30)
        with pytest.raises(UserError) as e:
            deploy.deploy(dev.port, progress=False, romfs=True)
        msg = str(e.value)
        assert "no vfs.rom_ioctl" in msg and "MICROPY_VFS_ROM" in msg and '"romfs"' in msg, msg
        assert "\n" not in msg and "without --romfs" in msg, msg
        out = _exec(dev.port, "import os\nprint(len(os.listdir('/lib/m2m')))")
        assert int(out) > 10, out  # the LittleFS firmware is untouched


M2MKIT = str(Path(sys.executable).parent / "m2mkit")


def test_cli_sim_device_romfs_and_deploy_romfs(tmp_path):
    p = subprocess.Popen([M2MKIT, "sim", "device", "--no-modem", "--romfs", "--flash", str(tmp_path / "f.img")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = p.stdout.readline().split()[1]
        lines = [p.stdout.readline() for _ in range(3)]
        assert any(ln.startswith("romfs: partition ") and "erased" in ln for ln in lines), lines
        d = subprocess.run([M2MKIT, "deploy", "--port", port, "--romfs"], capture_output=True, text=True, timeout=120)
        assert d.returncode == 0 and "ROMFS image of " in d.stdout and "mounted at /rom" in d.stdout, d.stdout + d.stderr
    finally:
        p.terminate()
        p.wait(15)
    # started again, the partition is kept: its image is mounted
    p = subprocess.Popen([M2MKIT, "sim", "device", "--no-modem", "--romfs", "--flash", str(tmp_path / "f.img")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline() for _ in range(3)]
        assert any(ln.startswith("romfs: ") and "mounted at /rom" in ln for ln in lines), lines
    finally:
        p.terminate()
        p.wait(15)


def test_cli_deploy_romfs_on_stock_firmware_is_one_line(tmp_path):
    p = subprocess.Popen([M2MKIT, "sim", "device", "--no-modem", "--flash", str(tmp_path / "f.img")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = p.stdout.readline().split()[1]
        p.stdout.readline()
        d = subprocess.run([M2MKIT, "deploy", "--port", port, "--romfs"], capture_output=True, text=True, timeout=120)
    finally:
        p.terminate()
        p.wait(15)
    assert d.returncode != 0 and "no vfs.rom_ioctl" in d.stderr and "MICROPY_VFS_ROM" in d.stderr, d.stderr
    assert len(d.stderr.strip().splitlines()) == 1 and "Traceback" not in d.stderr, d.stderr


def test_supervisor_runs_from_romfs_to_the_broker(tree, tmp_path, broker, subscriber):
    # main.py's supervisor on the no-PSRAM DevKitC, the firmware imported from /rom: online at the broker
    import json
    import time

    import serial

    from m2mkit import boards, image

    flash = tmp_path / "f.img"
    cfg = {"device": {"id": "rom-1", "autorun": True}, "mqtt": {"broker": broker.url, "keepalive": 60}}
    flash.write_bytes(image.build(boards.load("esp32-devkitc-bg95"), extra={"/config.json": json.dumps(cfg).encode()}))
    sub = subscriber("m2mkit/rom-1/status")
    with VirtualDevice("esp32-devkitc-bg95", flash=flash, modem=True, time_scale=10,
                       romfs=(tree / "fw.romfs").read_bytes()) as dev:
        con = serial.Serial(dev.port, 115200, timeout=0.05)
        seen, got = b"", []
        deadline = time.monotonic() + 40
        while not any(b'"online"' in p for _, p, _ in got):
            assert time.monotonic() < deadline, seen[-1500:]
            seen += con.read(4096)
            got += sub.wait(1, timeout=0.2)
        con.write(b"\x03")
        while b">>> " not in seen[-200:]:
            assert time.monotonic() < deadline + 20, seen[-1500:]
            seen += con.read(4096)
        con.write(b"import sys; print('dirs', sorted(set(m.__file__.rsplit('/', 1)[0] for m in sys.modules.values()"
                  b" if getattr(m, '__file__', '').startswith('/'))))\r")
        while b"dirs [" not in seen or not seen.rstrip().endswith(b">>>"):
            assert time.monotonic() < deadline + 30, seen[-1500:]
            seen += con.read(4096)
    line = seen.split(b"dirs ")[-1].split(b"\r\n")[0].decode()
    dirs = eval(line)
    assert b"supervisor: sensors" in seen and b"Traceback" not in seen, seen[-1500:]
    # the rest: umqtt as a board has it frozen (vboot.py), the port stand-in (a board's C modules)
    from m2mkit.testing import PORT

    rest = {d for d in dirs if not d.startswith("/rom/lib/m2m")}
    assert "/rom/lib/m2m/net" in dirs and rest == {"/.frozen-host/umqtt", str(PORT)}, dirs


def test_virtual_device_gives_the_image_back(tree, tmp_path):
    # the image the unix port holds on its heap (a board maps it) is added to -X heapsize with the
    # rest of the machinery: boot.py starts with the free heap of the same board without ROMFS
    import time

    import serial

    from m2mkit import boards, image

    board = boards.load("esp32-devkitc-bg95")
    boot = b"import gc\ngc.collect()\nprint('free', gc.mem_free())\n"
    got = []
    for romfs_arg, name in ((None, "plain.img"), ((tree / "fw.romfs").read_bytes(), "rom.img")):
        (tmp_path / name).write_bytes(image.build(board, extra={"/boot.py": boot, "/main.py": b""}))
        with VirtualDevice(board["name"], flash=tmp_path / name, romfs=romfs_arg) as dev:
            con = serial.Serial(dev.port, 115200, timeout=0.05)
            seen, deadline = b"", time.monotonic() + 20
            while b">>> " not in seen:
                assert time.monotonic() < deadline, seen
                seen += con.read(4096)
            got.append(int(seen.split(b"free ")[1].split()[0]))
    # within two of -X heapsize's 128-byte steps: port_heap settles to one step, and a stale stack word
    # can keep a dead object alive (seen: exactly 128 once in ~6 runs); the image itself is ~170 KB
    assert abs(got[0] - got[1]) <= 256, got

"""The firmware gets a board's heap: -X heapsize is raised by what the machinery holds before the
firmware runs (the port stand-in, vboot.py, the `-c` prelude), measured (vdev/bridge.py port_heap),
so the firmware's first line sees the free heap of a bare interpreter at the heap asked for."""

import subprocess

from littlefs import LittleFS

from m2mkit.testing import _prelude, micropython
from m2mkit.vdev import bridge
from m2mkit.vdev.device import VirtualDevice

FREE = "import gc\ngc.collect()\nprint('free', gc.mem_free())\n"


def _free(heap, code):
    out = subprocess.run([micropython(), "-X", "heapsize=" + heap, "-c", code], capture_output=True,
                         text=True, timeout=60).stdout
    return int(out.split("free ")[1].split()[0])


def test_the_prelude_leaves_the_firmware_the_heap_asked_for():
    for heap in ("160K", "256K"):
        bare = _free(heap, FREE)
        got = _free(bridge._with_port(heap), _prelude() + FREE)
        assert bare <= got < bare + 128, (heap, bare, got)  # the GC's free heap moves in 128-byte steps
    assert bridge._with_port("many") == "many"  # not a size: the interpreter says so


def test_the_virtual_device_leaves_the_firmware_a_boards_heap(tmp_path):
    # boot.py on the virtual device sees the bare interpreter's free heap at the board's 256K less
    # what a mounted VfsLfs2 holds (a board mounts its flash too)
    fs = LittleFS(block_count=512, block_size=4096, read_size=32, prog_size=32, lookahead_size=32)
    with fs.open("/boot.py", "w") as f:
        f.write(FREE)
    flash = tmp_path / "flash.img"
    flash.write_bytes(bytes(fs.context.buffer))
    import serial
    import time

    with VirtualDevice("esp32-devkitc-bg95", flash=flash, heapsize="256K") as dev:
        s = serial.Serial(dev.port, 115200, timeout=0.2)
        seen = b""
        deadline = time.monotonic() + 30
        while b">>> " not in seen and time.monotonic() < deadline:
            seen += s.read(4096)
        s.close()
    got = int(seen.split(b"free ")[1].split()[0])
    want = _free("256K", FREE) - bridge._mount_heap(micropython())
    assert want <= got < want + 128, (want, got, seen[-300:])

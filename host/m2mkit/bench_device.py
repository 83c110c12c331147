"""What the heap benches (bench_mqtt, bench_lwm2m, bench_supervisor) share: the firmware tree a board
would run (.mpy for the unix port, umqtt.simple compiled beside it as a board has it frozen, or a
ROMFS image of it) and the device process started in a limited heap with the virtual device's
measured machinery added (vdev/bridge.py _with_port, _machinery_prelude)."""

import subprocess

from .testing import micropython, mpy_env


def firmware_tree(d, romfs=False):
    """(tree, rom): the firmware as .mpy under d/lib with umqtt/simple.mpy beside it, and the bytes
    of its ROMFS image when romfs (host/m2mkit/romfs.py; umqtt stays in the tree), else None."""
    from pathlib import Path

    from . import mpy, umqtt_setup
    from . import romfs as romfs_mod
    from .bench import heap_trees, unix_arch

    tree = heap_trees(Path(d) / "lib")["mpy"]
    rom = romfs and romfs_mod.bench_image(tree, d)
    (tree / "umqtt").mkdir()
    ok, msg, _ = mpy.compile_file(umqtt_setup.path() / "umqtt" / "simple.py", unix_arch(),
                                  out=tree / "umqtt" / "simple.mpy")
    if not ok:
        raise RuntimeError(msg)
    return tree, rom


def start(script, env, heap, machinery, qstr_extra, tree, rom):
    """The device: `script` in micropython at `heap` plus the measured machinery (and the ROMFS
    image's hold, read in first and mounted at /rom, when rom), the tree on sys.path; its stdout and
    stderr merged, as text."""
    from . import romfs as romfs_mod
    from .vdev.bridge import _machinery_prelude, _with_port

    heapsize, first = _with_port(heap, machinery, qstr_extra=qstr_extra), ""
    if rom:
        heapsize, first = romfs_mod.bench_start(rom, heapsize)
    code = (first + _machinery_prelude(micropython(), machinery) + "sys.path.insert(0, %r)\n" % str(tree)
            + (romfs_mod.ROM_PATH if rom else "") + script)
    return subprocess.Popen([micropython(), "-X", "heapsize=" + heapsize, "-c", code],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=mpy_env(env))

"""`m2mkit bench`: the project's figures, one JSON object per line.

A figure function is decorated with `@figure` and yields {"name", "value", "unit"} dicts. Timings
live here, never in test assertions.

`m2mkit bench --quick` (run(quick=True)) runs every figure through the same code with fewer
iterations, readings and bisection steps (`sized(full, short)`): what tests/host/test_bench.py runs to
check that every figure comes out; its values are rougher, so the figures in README come from full runs.
"""

import time

FIGURES = []
QUICK = False  # set by run(quick=True) while it runs


def figure(fn):
    FIGURES.append(fn)
    return fn


def sized(full, short):
    """full, or short under `m2mkit bench --quick`."""
    return short if QUICK else full


def run(only=(), quick=False):
    global QUICK
    for fn in FIGURES:
        if only and not any(fn.__name__.startswith(o) for o in only):
            continue
        QUICK = quick
        try:
            yield from fn()
        finally:
            QUICK = False


@figure
def firmware_size():
    from . import mpy

    yield {"name": "firmware_mpy_bytes", "value": mpy.total_mpy_bytes("xtensawin"), "unit": "bytes",
           "arch": "xtensawin"}


_BOOT_HEAP = """import gc
gc.collect()
a0 = gc.mem_alloc()
from m2m import hal
gc.collect()
a1 = gc.mem_alloc()
from m2m import app
app.main()
gc.collect()
print("M2M_HEAP", a0, a1, gc.mem_alloc())
"""


@figure
def virtual_device_boot():
    """Boot a virtual device (no modem), then read its heap through mpremote's serial transport."""
    from mpremote.transport_serial import SerialTransport

    from .vdev.device import VirtualDevice

    boots = []
    with VirtualDevice(env={}) as dev:
        boots.append(dev.wait_boot(1)["ms"])
        t = SerialTransport(dev.port, baudrate=115200)
        try:
            # no soft reset: measure the heap as main.py left it
            t.enter_raw_repl(soft_reset=False)
            used = int(t.exec("import gc\ngc.collect()\nprint(gc.mem_alloc())").decode())
            t.exit_raw_repl()
            # two soft resets (Ctrl-D at the friendly REPL: boot.py and main.py run again) for a
            # steadier boot time
            for n in (2, 3):
                t.serial.write(b"\x04")
                boots.append(dev.wait_boot(n)["ms"])
            # the firmware's share: a soft reset from raw REPL skips main.py; import the hal apart
            # (the virtual device's machinery), then do what main.py does
            t.enter_raw_repl(soft_reset=True)
            out = t.exec(_BOOT_HEAP).decode()
            t.exit_raw_repl()
        finally:
            t.close()
    a0, a1, a2 = (int(x) for x in out.split("M2M_HEAP")[1].split())
    yield {"name": "vdev_heap_after_boot", "value": used, "unit": "bytes",
           "note": "gc.mem_alloc() after gc.collect() once main.py has run: all of it, the unix hal and "
                   "the virtual device's boot script included; unix port (64-bit objects: about 2x ESP32)"}
    yield {"name": "app_heap_after_boot", "value": a2 - a1, "unit": "bytes",
           "note": "the firmware's share of the boot heap: gc.mem_alloc() growth of main.py's "
                   "`from m2m import app; app.main()` over a baseline taken after `from m2m import hal` "
                   "(%d bytes for the unix hal), on the virtual device from its .py files; unix port "
                   "(64-bit objects: about 2x ESP32)" % (a1 - a0)}
    yield {"name": "vdev_boot_to_repl", "value": round(sorted(boots)[len(boots) // 2], 1), "unit": "ms",
           "note": "interpreter start to REPL prompt on the port: mount, boot.py, main.py "
                   "(median of a power-on and two soft resets)"}


@figure
def at_parser():
    from .bench_at import parser_instructions, parser_throughput

    yield from parser_throughput(lines=sized(2000, 200), passes=sized(10, 2))
    yield from parser_instructions(lines=sized(400, 100))


@figure
def at_round_trip():
    from .bench_at import command_round_trip, sim_command_round_trip

    yield command_round_trip(sized(2000, 200))
    yield sim_command_round_trip(sized(200, 20))


# ---- heap figures: what a board's heap holds, without the virtual device's own machinery ----------
# One interpreter per measurement. Its baseline is everything imported before the firmware's own
# modules: `from m2m import hal` and the UART object (the unix hal with its sockets, or whatever
# stands in for machine / esp32), measured apart and subtracted. Modules load from .mpy compiled
# with mpy-cross for the unix port's own arch (x64 here: an ESP32's xtensawin .mpy holds the same
# bytecode, but @micropython.native code only loads on its own arch), or from .py where a figure
# says so (what `mpremote fs cp -r lib` deploys, compiled on the board); the hal is .mpy in both,
# so its own compile never counts.

# mpy-cross -march names in the order of MicroPython's MP_NATIVE_ARCH_* enum (py/persistentcode.h);
# sys.implementation._mpy >> 10 is the interpreter's entry (MPY_FEATURE_DECODE_ARCH, same file)
_MPY_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
              "xtensa", "xtensawin", "rv32imc", "rv64imc")


def unix_arch():
    """The mpy-cross -march of the unix-port interpreter the virtual device runs."""
    from .testing import run_micropython

    rc, out, err = run_micropython("import sys\nprint(sys.implementation._mpy >> 10)")
    if rc != 0:
        raise RuntimeError("micropython failed:\n" + out + err)
    n = int(out)
    if not 0 < n < len(_MPY_ARCHS):
        raise RuntimeError("unknown native arch %d of the unix port (sys.implementation._mpy)" % n)
    return _MPY_ARCHS[n]

_HEAP_MODELS = ("sim7080g", "bg95", "gm02s")  # one per dialect module: simcom, quectel, sequans
_HEAP_STEP = 2048  # resolution of the smallest-heap search, bytes
_HEAP_TRIES = 2  # runs in a row that must succeed for a heap size to count as enough
_HEAP_SCALE = 10  # modem time scale: boots stay short, the dialects' 1 s steps get 100 ms of real time

_STACK_HEAP = """
import gc, sys
sys.path.insert(0, {tree!r})
gc.collect()
base = gc.mem_alloc()
from m2m import hal
u = hal.UART(1, 115200)
gc.collect()
held = gc.mem_alloc()
print("M2M_HEAP_BASE", base, held, held + gc.mem_free())
from m2m import modem
from m2m.at import AT
at = AT(u, timeout_ms=2000)
modem.Modem(at).power_on()
m = modem.create(at)
m.init()
gc.collect()
print("M2M_HEAP_END", gc.mem_alloc())
"""

_ESP32_HAL_HEAP = """
import gc, sys
sys.path.insert(0, {tree!r})
try:
    import machine, esp32, select, time  # built into the ESP32 port: not the hal's cost
except ImportError:
    print("M2M_HEAP_END -1")  # no stand-ins for them on this interpreter
else:
    gc.collect()
    base = gc.mem_alloc()
    import m2m_hal_esp32  # m2m/hal/esp32 alone: the package's __init__ would pick the unix hal here
    gc.collect()
    print("M2M_HEAP_END", gc.mem_alloc() - base)
"""


def heap_trees(tmp, lib=None):
    """Two copies of firmware/lib (or lib) under tmp: all .mpy (the unix port's arch), and .py with the hal
    as .mpy. Returns {"mpy": path, "py": path}."""
    import shutil
    from pathlib import Path

    from . import mpy
    from .paths import FIRMWARE

    lib = Path(lib or FIRMWARE / "lib")
    arch = unix_arch()
    trees = {"mpy": Path(tmp) / "mpy", "py": Path(tmp) / "py"}
    for src in mpy.python_files(lib):
        rel = src.relative_to(lib)
        for kind, root in trees.items():
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if kind == "py" and rel.parts[:2] != ("m2m", "hal"):
                shutil.copyfile(src, dst)
                continue
            ok, msg, _ = mpy.compile_file(src, arch, out=dst.with_suffix(".mpy"))
            if not ok:
                raise RuntimeError(f"{src}: {msg}")
    return trees


def _heap_run(code, model, heapsize):
    """Run a heap script (against a fresh simulator when model is set). Returns (fits, marks):
    marks maps each `M2M_HEAP_*` line to its integers; fits is False on a MemoryError."""
    from .sim.modem import ModemSim
    from .testing import run_micropython

    def go(env):
        rc, out, err = run_micropython(code, env=env, heapsize=str(heapsize), timeout=120)
        marks = {}
        for line in out.splitlines():
            if line.startswith("M2M_HEAP_"):
                key, *vals = line.split()
                marks[key] = [int(v) for v in vals]
        if rc == 0 and "M2M_HEAP_END" in marks:
            return True, marks
        if "MemoryError" in out + err:
            return False, marks
        return None, "micropython failed (heapsize %s):\n%s%s" % (heapsize, out, err)

    if model is None:
        fits, marks = go({})
    else:
        # a scaled clock turns host load into modem timeouts: one more try before giving up
        for _ in range(2):
            # registered from the start: no registration URCs arrive while init runs, whatever
            # its speed (a slower run at a small heap would otherwise queue more of them)
            with ModemSim(model=model, time_scale=_HEAP_SCALE, timeline=[(0.0, "home", {})]) as sim:
                fits, marks = go({"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
                                  "M2M_TIME_SCALE": str(_HEAP_SCALE)})
            if fits is not None:
                break
    if fits is None:
        raise RuntimeError(marks)
    return fits, marks


def stack_heap(model, tree, heapsize="256K"):
    """(hal, firmware): heap held by `from m2m import hal` + hal.UART(), and what the AT driver +
    dialect hold over that after detection and init, with modules from tree."""
    fits, marks = _heap_run(_STACK_HEAP.format(tree=str(tree)), model, heapsize)
    if not fits:
        raise RuntimeError("the modem stack does not fit in a %s heap" % heapsize)
    base, held, _ = marks["M2M_HEAP_BASE"]
    return held - base, marks["M2M_HEAP_END"][0] - held


def _fits(code, model, heapsize, tries=_HEAP_TRIES):
    # near the limit a run fits or not by how the collector meets garbage and fragments: a heap
    # fits only when `tries` runs in a row get through
    for _ in range(tries):
        fits, marks = _heap_run(code, model, heapsize)
        if not fits:
            break
    return fits, marks


def _smallest_heap(code, model, lo, step=_HEAP_STEP, tries=_HEAP_TRIES):
    """Smallest -X heapsize (to step bytes) with which the script runs to its end `tries` times
    in a row; lo is a heap too small. Returns (marks of that run, whether the largest failing run
    failed inside the hal)."""
    hi = lo + 64 * 1024
    while True:
        fits, marks = _fits(code, model, hi, tries)
        if fits:
            break
        lo, hi = hi, hi * 2
        if hi > 4 << 20:
            raise RuntimeError("the modem stack did not fit in 4 MB of heap")
    best, hal_bound = marks, False
    while hi - lo > step:
        mid = (lo + hi) // 2
        fits, marks = _fits(code, model, mid, tries)
        if fits:
            hi, best = mid, marks
        else:
            lo, hal_bound = mid, "M2M_HEAP_BASE" not in marks
    return best, hal_bound


@figure
def modem_stack_heap():
    """The AT driver + detected dialect after its init script, without the hal: steady and peak."""
    import shutil
    import tempfile
    from pathlib import Path

    from . import mpy
    from .paths import FIRMWARE

    step, tries = sized(_HEAP_STEP, 16 * 1024), sized(_HEAP_TRIES, 1)  # --quick: a coarse bisection
    with tempfile.TemporaryDirectory() as tmp:
        trees = heap_trees(tmp)
        arch = unix_arch()
        for model in _HEAP_MODELS:
            hal_heap, steady = stack_heap(model, trees["mpy"])
            yield {"name": f"modem_stack_heap_{model}", "value": steady, "unit": "bytes",
                   "note": "steady state: gc.mem_alloc() after gc.collect() once m2m.at + m2m.modem are "
                           "imported, the dialect detected and its init script run, minus the baseline "
                           "taken after `from m2m import hal` and hal.UART() (the virtual device's "
                           "machinery, vdev_hal_heap); modules from .mpy (mpy-cross -march=%s, the "
                           "unix port's arch); unix port, 64-bit objects: about 2x ESP32" % arch}
            for kind in ("mpy", "py"):
                best, hal_bound = _smallest_heap(_STACK_HEAP.format(tree=str(trees[kind])), model,
                                                 lo=hal_heap + steady, step=step, tries=tries)
                _, held_at, total_at = best["M2M_HEAP_BASE"]
                yield {"name": f"modem_stack_heap_peak_{kind}_{model}", "value": total_at - held_at,
                       "unit": "bytes",
                       "note": "peak: the free heap above the hal baseline with which import + detect + "
                               "init succeed %d times in a row, found by bisecting -X heapsize to %d "
                               "bytes (so it includes fragmentation); firmware modules from %s; unix "
                               "port, 64-bit objects: about 2x ESP32%s"
                               % (tries, step,
                                  ".mpy (mpy-cross -march=%s)" % arch if kind == "mpy"
                                  else ".py, compiled on the device as after `mpremote fs cp -r lib`",
                                  "; WARNING: the smallest failing heap failed inside the hal import, "
                                  "so this is an upper bound" if hal_bound else "")}
        yield {"name": "vdev_hal_heap", "value": hal_heap, "unit": "bytes",
               "note": "what the figures above leave out: `from m2m import hal` + hal.UART(1) on the virtual "
                       "device: the unix hal and all it imports, the stand-ins for the port's "
                       "modules included (no board carries them), from .mpy"}

        esp32_mpy = sum(len(mpy.compile_file(FIRMWARE / "lib/m2m/hal" / f, "xtensawin")[2])
                        for f in ("__init__.py", "esp32.py"))
        yield {"name": "esp32_hal_mpy_bytes", "value": esp32_mpy, "unit": "bytes",
               "note": "m2m/hal/__init__ + m2m/hal/esp32 compiled with mpy-cross -march=xtensawin: "
                       "the bytecode a board's hal loads"}
        alone = Path(tmp) / "esp32hal"
        alone.mkdir()
        shutil.copyfile(trees["mpy"] / "m2m/hal/esp32.mpy", alone / "m2m_hal_esp32.mpy")
        fits, marks = _heap_run(_ESP32_HAL_HEAP.format(tree=str(alone)), None, "256K")
        if marks["M2M_HEAP_END"][0] >= 0:
            yield {"name": "esp32_hal_heap", "value": marks["M2M_HEAP_END"][0], "unit": "bytes",
                   "note": "gc.mem_alloc() growth of importing m2m/hal/esp32 alone from .mpy (mpy-cross "
                           "-march=%s), asyncio included, over the virtual device's stand-in machine / "
                           "esp32 / select / time (imported first: a board has them built in); unix port, "
                           "64-bit objects: about 2x ESP32" % arch}


@figure
def sensing():
    """Issue #11: the sampler's CPU time per cycle, the sensing layer's heap and the whole device's
    under the supervisor (bench_sense.py)."""
    from .bench_sense import sampler_cycle, sense_heap, supervisor_heap

    yield from sampler_cycle(sized(300, 30))
    yield from sense_heap()
    yield from supervisor_heap(reports=sized(20, 5))


@figure
def outbox():
    """Issue #9: the outbox's append and drain time per record on the virtual device's flash, its
    heap and its flash wear (bench_outbox.py)."""
    from .bench_outbox import outbox_figures, outbox_wear

    yield from outbox_figures()
    yield from outbox_wear()


@figure
def network_bringup():
    """Issue #8: the firmware's overhead from power-on to registered, and the heap once attached
    (bench_net.py)."""
    from .bench_net import net_figures

    yield from net_figures()


@figure
def esim_switch():
    """Issue #13: an eSIM profile switch's cost beyond the card's refresh and the attach, and the heap
    esim.enabled adds (bench_esim.py)."""
    from .bench_esim import esim_figures

    yield from esim_figures()


@figure
def host_tools():
    """Issue #12: deploy against mpremote, per-device images per second (bench_hosttools.py)."""
    from .bench_hosttools import deploy_vs_mpremote, fleet_images

    yield from fleet_images(sized(50, 5))
    yield from deploy_vs_mpremote()


@figure
def mqtt_report():
    """Issue #9: bytes on air per MQTT report (kept connection vs connect-publish-disconnect), round
    trips per report, and the heap high-water over 1000 readings at 160K (bench_mqtt.py)."""
    from .bench_mqtt import mqtt_figures

    yield from mqtt_figures()


@figure
def supervisor_fault_run():
    """Issue #9: the whole device as main.py runs it (supervisor) in a limited heap through a modem
    reboot and a power-key recovery (bench_supervisor.py)."""
    from .bench_supervisor import HEAPS, supervisor_heap_figures, supervisor_romfs_figures

    yield from supervisor_heap_figures(heaps=sized(HEAPS, HEAPS[2:]))  # --quick: from 192K
    yield from supervisor_romfs_figures()  # the same run from ROMFS


@figure
def lwm2m_send():
    """Issue #10: bytes on air for one LwM2M Send of three readings beside the MQTT report of the same
    readings, round trips per Send, the heap with the client registered (bench_lwm2m.py)."""
    from .bench_lwm2m import lwm2m_figures

    yield from lwm2m_figures()


@figure
def romfs_heap():
    """The firmware in ROMFS (host/m2mkit/romfs.py): the image a board's romfs partition must hold, and
    the MQTT and LwM2M heap figures with the firmware run in place from it (bench_mqtt.py,
    bench_lwm2m.py romfs_figures)."""
    from . import romfs
    from .bench_lwm2m import romfs_figures as lwm2m_romfs
    from .bench_mqtt import romfs_figures as mqtt_romfs

    yield {"name": "romfs_image_bytes", "value": len(romfs.build("xtensawin")), "unit": "bytes", "arch": "xtensawin",
           "note": "the ROMFS image of firmware/lib for a board (hal/unix.py left out): its romfs partition "
                   "must hold it (ports/esp32/partitions-4MiB-romfs.csv's holds 131072)"}
    yield from mqtt_romfs()
    yield from lwm2m_romfs()


@figure
def usage_records():
    """Issue #14: bytes on air per signed usage record and the device time to sign one (bench_usage.py)."""
    from .bench_usage import usage_figures

    yield from usage_figures()


@figure
def vdev_port_heap():
    """The virtual device's machinery heap, left out of the firmware's budget (bench_vdev.py)."""
    from .bench_vdev import port_heap_figures

    yield from port_heap_figures()

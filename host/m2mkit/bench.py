"""`m2mkit bench`: the project's figures, one JSON object per line.

A figure function is decorated with `@figure` and yields {"name", "value", "unit"} dicts. Timings
live here, never in test assertions.
"""

import time

FIGURES = []


def figure(fn):
    FIGURES.append(fn)
    return fn


def run(only=()):
    for fn in FIGURES:
        if only and not any(fn.__name__.startswith(o) for o in only):
            continue
        yield from fn()


@figure
def firmware_size():
    from . import mpy

    yield {"name": "firmware_mpy_bytes", "value": mpy.total_mpy_bytes("xtensawin"), "unit": "bytes",
           "arch": "xtensawin"}


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
        finally:
            t.close()
    yield {"name": "vdev_heap_after_boot", "value": used, "unit": "bytes",
           "note": "gc.mem_alloc() after gc.collect() on the unix port (64-bit objects: about 2x ESP32)"}
    yield {"name": "vdev_boot_to_repl", "value": round(sorted(boots)[len(boots) // 2], 1), "unit": "ms",
           "note": "interpreter start to REPL prompt on the port: mount, boot.py, main.py "
                   "(median of a power-on and two soft resets)"}


@figure
def at_parser():
    from .bench_at import parser_throughput

    yield parser_throughput()


@figure
def at_round_trip():
    from .bench_at import command_round_trip, sim_command_round_trip

    yield command_round_trip()
    yield sim_command_round_trip()




_STACK_HEAP = """
import gc
gc.collect()
base = gc.mem_alloc()
from m2m import hal, modem
from m2m.at import AT
at = AT(hal.UART(1, 115200), timeout_ms=2000)
modem.Modem(at).power_on()
m = modem.create(at)
m.init()
gc.collect()
print(gc.mem_alloc() - base)
"""


@figure
def modem_stack_heap():
    """Heap the AT driver + detected dialect + identity hold after init (unix port, 64-bit objects)."""
    from .bench_at import _run
    from .sim.modem import ModemSim

    for model in ("sim7080g", "bg95", "gm02s"):
        with ModemSim(model=model, time_scale=20) as sim:
            env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_TIME_SCALE": "20"}
            (held,) = _run(_STACK_HEAP, env=env, heapsize="256K")
        yield {"name": f"modem_stack_heap_{model}", "value": held, "unit": "bytes",
               "note": "gc.mem_alloc() growth after importing m2m.at + m2m.modem, detecting the dialect "
                       "and running its init script; unix port (64-bit objects: about 2x ESP32)"}

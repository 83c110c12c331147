"""Figures of the sensing layer (issue #11): the sampler's CPU time per cycle on the unix port (wall
time, and callgrind instruction counts when valgrind is installed, steady from run to run), and the
heap the sensing layer holds over the hal baseline."""

import os
import re
import shutil
import subprocess
import tempfile

from .broker import Broker
from .testing import _prelude, micropython, mpy_env, run_micropython

# One cycle = every sensor due once: a BME280 (integer compensation of all three quantities), an
# SHT4x (two CRCs), a DS18B20 (scratchpad CRC), a battery ADC, a pulse count; the drivers run over
# in-process fake buses (no sockets), so the figure is the firmware's own work.
_CYCLE = """
import sys
from m2m import hal, events
from m2m.sense import sampler as S, crc8_31, crc8_maxim
from m2m.sense.sampler import Sampler
from m2m.sense.bme280 import BME280
from m2m.sense.sht4x import SHT4x
from m2m.sense.ds18b20 import DS18B20
from m2m.sense.battery import Battery
events.log = False

class Clock:
    ms = 0
    def ticks_ms(self): return self.ms
    def ticks_add(self, a, b): return a + b
    def ticks_diff(self, a, b): return a - b
    def epoch(self): return 1700000000
    def sleep_ms(self, ms): pass
clk = Clock()

class I2C:
    def __init__(self):
        m = bytearray(256)
        m[0xD0] = 0x60
        m[0x88:0xA0] = bytes.fromhex("706b436718fc7d8e43d6d00b270b8c00f9ff8c3cf8c67017")
        m[0xA1] = 75
        m[0xE1:0xE8] = bytes.fromhex("6a01001424031e")
        m[0xF7:0xFF] = bytes.fromhex("655ac07eed006000")  # adc_P 415148, adc_T 519888, adc_H 0x6000
        self.m = m
        w = bytes((0x66, 0x2c)); r = bytes((0x72, 0x0e))
        self.sht = w + bytes((crc8_31(w),)) + r + bytes((crc8_31(r),))
    def readfrom_mem(self, a, reg, n): return bytes(self.m[reg:reg + n])
    def readfrom_mem_into(self, a, reg, buf): buf[:] = self.m[reg:reg + len(buf)]
    def writeto_mem(self, a, reg, b): pass
    def writeto(self, a, b): pass
    def readfrom_into(self, a, buf): buf[:] = self.sht

class OW:
    rom = bytes((0x28, 1, 2, 3, 4, 5, 6)); rom += bytes((crc8_maxim(rom),))
    sp = bytes((0x50, 0x01, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10)); sp += bytes((crc8_maxim(sp),))
    def reset(self): return True
    def writebyte(self, b): pass
    def write(self, b): pass
    def readinto(self, buf): buf[:] = self.sp
    def scan(self): return [self.rom]

class ADC:
    def read_uv(self): return 1850000

class Count:
    QUANT = ("pulses",); RANGE = None
    n = 0
    def start(self): return 0
    def read(self):
        self.n += 1
        return (self.n,)

S.hal = clk
import m2m.sense.sht4x as sht
sht.hal = clk
got = [0]
def sink(r, u):
    got[0] += len(r)
sm = Sampler(sink)
i2c = I2C()
sm.add("bme", BME280(i2c), interval_s=1, deadband=0.0)
sm.add("sht", SHT4x(i2c), interval_s=1, deadband=0.0)
sm.add("ds", DS18B20(OW()), interval_s=1, deadband=0.0)
sm.add("bat", Battery(ADC(), 2.0), interval_s=1, deadband=0.0)
sm.add("pulse", Count(), interval_s=1, deadband=0.0)
def cycle():
    # every sensor due: start, wait out the conversions, read
    clk.ms += 1000
    sm.step()
    clk.ms += 750
    sm.step()
import os
n = int(os.getenv("M2M_BENCH_N") or "0")
import time
t0 = time.ticks_us()
for _ in range(n):
    cycle()
dt = time.ticks_diff(time.ticks_us(), t0)
print(n, dt, got[0])
"""


def sampler_cycle(n=300):
    rc, out, err = run_micropython(_CYCLE, env={"M2M_BENCH_N": str(n)})
    if rc != 0:
        raise RuntimeError("micropython failed:\n" + out + err)
    k, us, readings = (int(x) for x in out.split())
    figs = [{"name": "sampler_cycle_us", "value": round(us / k, 1), "unit": "us",
             "note": "wall time per sampler cycle (BME280, SHT4x, DS18B20, battery, pulses each read "
                     "once, conversions waited, drivers over in-process fake buses), unix port"}]
    if shutil.which("valgrind"):
        def count(runs):
            with tempfile.TemporaryDirectory() as d:
                p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(d, "cg"),
                                    micropython(), "-X", "heapsize=512K", "-c", _prelude() + _CYCLE],
                                   capture_output=True, text=True, timeout=600,
                                   env=mpy_env({"M2M_BENCH_N": str(runs), "PYTHONHASHSEED": "0"}))
            m = re.search(r"Collected : (\d+)", p.stderr)
            if p.returncode != 0 or not m:
                raise RuntimeError("valgrind failed:\n" + p.stdout + p.stderr)
            return int(m.group(1))

        per = (count(50) - count(0)) / 50
        figs.append({"name": "sampler_cycle_instructions", "value": round(per), "unit": "instr",
                     "note": "instructions per sampler cycle (callgrind, less a run with no cycle)"})
    return figs


_SENSE_HEAP = """
import gc, sys
sys.path.insert(0, {tree!r})
gc.collect()
base = gc.mem_alloc()
from m2m import hal
from m2m import config, events  # shared by every layer: part of the baseline
gc.collect()
held = gc.mem_alloc()
print("M2M_HEAP_BASE", base, held)
from m2m.sense import build
events.log = False
cfg = config.validate({{"sense": {{"battery": True, "sensors": [
    {{"type": "bme280", "alarms": [{{"above": 30, "hyst": 1}}]}}, {{"type": "sht4x", "id": "out"}},
    {{"type": "ds18b20", "pin": 4}}, {{"type": "pulses", "pin": 13}},
    {{"type": "modbus", "unit": 1, "regs": [{{"name": "energy", "fc": 4, "addr": 0}}]}}]}}}})
sm = build.sampler(cfg, lambda r, u: None, {{"battery_adc": {{"pin": 35, "divider": 2.0}}}})
from m2m.sense import bme280, sht4x, ds18b20, pulse, modbus, battery
gc.collect()
print("M2M_HEAP_END", gc.mem_alloc())
"""


def sense_heap():
    from .bench import heap_trees

    with tempfile.TemporaryDirectory() as tmp:
        trees = heap_trees(tmp)
        out = []
        for kind in ("mpy", "py"):
            rc, so, se = run_micropython(_SENSE_HEAP.format(tree=str(trees[kind])), heapsize="256K")
            marks = {ln.split()[0]: [int(x) for x in ln.split()[1:]] for ln in so.splitlines()
                     if ln.startswith("M2M_HEAP_")}
            if rc != 0 or "M2M_HEAP_END" not in marks:
                raise RuntimeError("micropython failed:\n" + so + se)
            out.append({"name": f"sense_heap_{kind}", "value": marks["M2M_HEAP_END"][0] - marks["M2M_HEAP_BASE"][1],
                        "unit": "bytes",
                        "note": "the sensing layer (every driver, the sampler, the config builder, a "
                                "sampler with six sensors configured) after gc.collect(), over the baseline "
                                "taken after `from m2m import hal, config, events`; modules from .%s; unix port, 64-bit "
                                "objects: about 2x ESP32" % kind})
        return out


# The whole device as main.py runs it (m2m.supervisor): network over a simulated BG95, MQTT to a
# local Mosquitto, a BME280 and an SHT4x (with an alarm) on the simulated bus, the events forwarded;
# the firmware and umqtt.simple as .mpy. The figure is the most held after gc.collect() between loop
# steps once reporting has started, over the baseline after `from m2m import hal`.
_SUPERVISOR = """
import gc, os
gc.collect()
from m2m import hal
gc.collect()
base = gc.mem_alloc()
from m2m import config, events, supervisor
events.log = False
cfg = config.validate({"device": {"id": "bench-1", "watchdog_s": 0},
                       "mqtt": {"broker": os.getenv("BROKER"), "keepalive": 60},
                       "sense": {"battery": False, "interval_s": 2, "max_interval_s": 2, "sensors": [
                           {"type": "bme280"}, {"type": "sht4x", "id": "out",
                                                "alarms": [{"q": "temperature", "above": 30, "hyst": 1}]}]}})
b = {"modem": {"model": os.getenv("MODEL"), "uart": {"id": 1, "tx": 17, "rx": 16, "baud": 115200}},
     "i2c": {"id": 0, "scl": 22, "sda": 21}}
del config  # main.py holds no reference: supervisor.start lets the module go
r = supervisor.start(cfg, b, outbox_path=os.getenv("DIR") + "/ob")  # as main() builds it
hi = [0]
class Probe:
    def step(self):
        gc.collect()
        if r.reporter is not None and r.reporter.sent:  # built at the first attach
            a = gc.mem_alloc() - base
            if a > hi[0]:
                hi[0] = a
        return 500
r.services.append(supervisor.Guard("probe", Probe()))
n = int(os.getenv("REPORTS"))
r.run(until=lambda: r.reporter is not None and r.reporter.sent >= n, max_ms=600000)
print("M2M_SUP", hi[0], r.reporter.sent)
"""


def supervisor_heap(model="bg95", reports=20, scale=20):
    from . import mpy, umqtt_setup
    from .bench import heap_trees, unix_arch
    from .sim.bus import BusSim
    from .sim.modem import ModemSim
    from .sim.sensors import BME280, SHT4x

    with tempfile.TemporaryDirectory(prefix="m2mkit-bench-sup-") as d, Broker(tls=False) as br, \
            ModemSim(model=model, time_scale=scale) as sim, BusSim() as bus:
        tree = heap_trees(os.path.join(d, "lib"))["mpy"]
        (tree / "umqtt").mkdir()
        ok, msg, _ = mpy.compile_file(umqtt_setup.path() / "umqtt" / "simple.py", unix_arch(),
                                      out=tree / "umqtt" / "simple.mpy")
        if not ok:
            raise RuntimeError(msg)
        bus.i2c[(0, 0x76)] = BME280()
        bus.i2c[(0, 0x44)] = SHT4x()
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_BUS": bus.address_str, "M2M_TIME_SCALE": str(scale), "MODEL": model, "BROKER": br.url,
               "DIR": d, "REPORTS": str(reports)}
        p = subprocess.run([micropython(), "-X", "heapsize=1M", "-c",
                            _prelude() + "import sys\nsys.path.insert(0, %r)\n" % str(tree) + _SUPERVISOR],
                           capture_output=True, text=True, timeout=300, env=mpy_env(env))
        marks = [ln.split() for ln in p.stdout.splitlines() if ln.startswith("M2M_SUP ")]
        if p.returncode != 0 or not marks or int(marks[-1][2]) < reports:
            raise RuntimeError("the supervisor bench failed:\n" + p.stdout[-3000:] + p.stderr[-2000:])
        return [{"name": "supervisor_heap_mpy", "value": int(marks[-1][1]), "unit": "bytes",
                 "note": "the whole device as main.py runs it (supervisor, network on a simulated %s, MQTT "
                         "reporter, outbox, events, a BME280 and an SHT4x with an alarm): the most held after "
                         "gc.collect() between loop steps over %d reports, over the baseline after `from m2m "
                         "import hal`; firmware and umqtt.simple from .mpy; unix port, 64-bit objects: about "
                         "2x ESP32" % (model, reports)}]

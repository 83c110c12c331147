"""The slowly varying environment (m2mkit.sim.environment) drives the simulated sensors: values are
smooth functions of time, excursions rise and fall, a test can hold a value, and the firmware's
sampler on the bus sees an excursion as an alarm raised and cleared."""

from m2mkit.sim.bus import BusSim
from m2mkit.sim.environment import Environment
from m2mkit.sim.sensors import BME280, SHT4x
from m2mkit.testing import run_micropython


def test_values_vary_slowly_and_excursions_come_back():
    env = Environment(day_s=600, seed=3)
    temps = [env.value("temperature", t) for t in range(0, 600, 5)]
    assert max(temps) - min(temps) > 4  # the daily swing shows
    assert max(abs(a - b) for a, b in zip(temps, temps[1:])) < 1.0  # no jumps between 5 s steps
    env.excursion("temperature", 100, 60, 15)
    assert env.value("temperature", 130) - Environment(day_s=600, seed=3).value("temperature", 130) > 14
    assert env.value("temperature", 161) == Environment(day_s=600, seed=3).value("temperature", 161)
    env.set("humidity", 93.0)
    assert env.value("humidity", 42) == 93.0


def test_environment_sets_the_sensors():
    env = Environment(day_s=600, seed=1)
    bme, sht = BME280(), SHT4x()
    env.bme280(bme)
    env.sht4x(sht)
    v = env.apply(77)
    assert abs(bme.temperature(bme.raw[0]) - v["temperature"]) < 0.01
    assert abs(bme.pressure(bme.raw[1], bme.raw[0]) - v["pressure"]) < 1
    assert (sht.temperature, sht.humidity) == (v["temperature"], v["humidity"])


def test_an_excursion_raises_and_clears_an_alarm_on_the_device():
    env = Environment(day_s=10 ** 9, seed=0)
    env.set("humidity", 45.0)
    env.set("pressure", 100000.0)
    env.set("temperature", 22.0)
    with BusSim() as bus:
        bus.i2c[(0, 0x76)] = bme = BME280()
        env.bme280(bme)
        env.apply(0)
        # the device samples; between its reads the host moves the environment through a hot spell
        code = """
from m2m import hal, events
from m2m.sense.sampler import Sampler
from m2m.sense.bme280 import BME280
import sys
events.log = False
out = []
sm = Sampler(lambda r, u: out.append((u, r[0][0], r[0][1])))
sm.add("in", lambda: BME280(hal.I2C(0)), ("temperature", "humidity", "pressure"), interval_s=0.05,
       deadband=100, max_interval_s=100000, alarms=({"above": 30, "hyst": 2},))
for _ in range(3):
    sm.step(); hal.sleep_ms(60)
print('ready'); sys.stdout.flush() if hasattr(sys.stdout, 'flush') else None
sys.stdin.readline()
for _ in range(3):
    sm.step(); hal.sleep_ms(60)
print('ready'); sys.stdin.readline()
for _ in range(3):
    sm.step(); hal.sleep_ms(60)
print([o for o in out if o[0]])
"""
        import subprocess

        from m2mkit.testing import _prelude, micropython, mpy_env

        p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + code],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=mpy_env({"M2M_BUS": bus.address_str}))
        assert p.stdout.readline().strip() == "ready"
        env.set("temperature", 35.0)
        env.apply(1)
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "ready"
        env.set("temperature", 27.0)
        env.apply(2)
        out = p.communicate("\n", timeout=30)[0].strip()
        assert p.returncode == 0, out
        assert out == "[(True, 'temperature', 35.0), (True, 'temperature', 27.0)]", out

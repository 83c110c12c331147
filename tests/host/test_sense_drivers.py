"""The sensing drivers (firmware/lib/m2m/sense/, inside MicroPython) against the simulated peripherals
on the bus (m2mkit.sim.sensors through m2mkit.sim.bus and the port stand-in): values, CRC errors,
missing devices. Expected values come from the datasheets' examples and floating-point formulas
(evaluated by the simulator), never from the firmware's integer code."""

import pytest

from m2mkit.sim.bus import BusSim
from m2mkit.sim.sensors import BME280, DS18B20, SHT4x, PulseSource
from m2mkit.testing import run_micropython


def run(bus, code, env=None):
    e = {"M2M_BUS": bus.address_str}
    e.update(env or {})
    rc, out, err = run_micropython("from m2m import hal\n" + code, env=e)
    assert rc == 0, out + err
    return out.strip().split("\n")


def test_bme280_datasheet_example():
    # BMP280 datasheet 3.12: the example calibration and adc_T 519888 / adc_P 415148 give 25.08 degC
    # and 100653.27 Pa (the BME280's temperature and pressure paths are the BMP280's; the table's
    # values: ASSUMED docs/ASSUMED.md#A-BMP280-EXAMPLE)
    with BusSim() as bus:
        bus.i2c[(0, 0x76)] = dev = BME280()
        out = run(bus, """
from m2m.sense.bme280 import BME280
s = BME280(hal.I2C(0, scl=22, sda=21))
s.start()
t, h, p = s.read()
print(repr(t)); print(repr(p)); print(repr(h)); print(s.temperature(519888)[0])
print(s.temperature(519888)[1], s.pressure(415148, 128422))
""")
        assert float(out[0]) == 25.08
        # within the int64 formula's Q24.8 step (1/256 Pa) plus the example's rounding
        assert abs(float(out[1]) - 100653.27) < 0.02
        assert abs(float(out[1]) - dev.pressure(415148, 519888)) < 0.01
        assert abs(float(out[2]) - dev.humidity(0x6000, 519888)) < 0.01  # the datasheet's double formula
        assert int(out[3]) == 128422  # t_fine of the example
        # 2508 (0.01 degC) and, from the int64 formula, 25767233 in Q24.8 (100653.254 Pa): the values
        # other implementations of Bosch's integer code check for this example too
        assert out[4] == "2508 25767233"
        assert dev.conversions == 1


@pytest.mark.parametrize("t,h,p", [(-10.5, 80.0, 95000.0), (21.3, 40.0, 99000.0), (60.0, 5.0, 105000.0)])
def test_bme280_values_driven_by_the_simulator(t, h, p):
    with BusSim() as bus:
        bus.i2c[(0, 0x77)] = dev = BME280()
        dev.set(temperature=t, humidity=h, pressure=p)
        out = run(bus, """
from m2m.sense.bme280 import BME280
s = BME280(hal.I2C(0), 0x77)
s.start()
print(' '.join(repr(v) for v in s.read()))
""")
        ft, fh, fp = (float(x) for x in out[0].split())
        assert abs(ft - t) <= 0.011 and abs(fh - h) <= 0.05 and abs(fp - p) <= 2


def test_bme280_missing_and_wrong_chip():
    with BusSim() as bus:
        bus.i2c[(0, 0x77)] = BME280(chip_id=0x58)  # a BMP280 answers at 0x77
        out = run(bus, """
from m2m.sense.bme280 import BME280
from m2m.sense import SensorError
for a in (0x76, 0x77):
    try:
        BME280(hal.I2C(0), a)
    except OSError as e:
        print('missing', e.errno)
    except SensorError as e:
        print('wrong', e)
""")
        assert out[0] == "missing 19"
        assert out[1].startswith("wrong") and "0x58" in out[1]


def test_sht4x_values_and_crc():
    with BusSim() as bus:
        bus.i2c[(0, 0x44)] = dev = SHT4x(temperature=23.45, humidity=61.2)
        out = run(bus, """
from m2m.sense.sht4x import SHT4x
from m2m.sense import SensorError
i2c = hal.I2C(0)
s = SHT4x(i2c)
print(hex(s.serial[0] << 16 | s.serial[1]))
s.start(); print(' '.join(repr(v) for v in s.read()))
import sys
sys.stdin  # keep going
""" + """
def corrupt():
    s.start()
    try:
        s.read()
    except SensorError as e:
        print('crc', e)
print('ready'); import time
""")
        assert out[0] == hex(dev.serial)
        t, h = (float(x) for x in out[1].split())
        st, srh = SHT4x.ticks(23.45, 61.2)
        assert abs(t - (-45 + 175 * st / 65535)) < 1e-4 and abs(h - (-6 + 125 * srh / 65535)) < 1e-4
        assert abs(t - 23.45) < 0.01 and abs(h - 61.2) < 0.01


def test_sht4x_crc_error_and_missing():
    with BusSim() as bus:
        bus.i2c[(0, 0x44)] = dev = SHT4x()
        dev.corrupt = 0
        out = run(bus, """
from m2m.sense.sht4x import SHT4x
from m2m.sense import SensorError
s = SHT4x(hal.I2C(0))
import _m2m_sim
_m2m_sim.bus_call('noop')
""")
        dev.corrupt = 1
        out = run(bus, """
from m2m.sense.sht4x import SHT4x
from m2m.sense import SensorError
try:
    SHT4x(hal.I2C(0))
except SensorError as e:
    print('crc', e)
s = SHT4x(hal.I2C(0))
s.start(); print(len(s.read()))
try:
    SHT4x(hal.I2C(0), 0x45)
except OSError as e:
    print('missing', e.errno)
""")
        assert out[0].startswith("crc SHT4x CRC mismatch")
        assert out[1:] == ["2", "missing 19"]


def test_sensirion_crc_example():
    # SHT4x datasheet 4.4: CRC of 0xBEEF is 0x92
    rc, out, err = run_micropython("from m2m.sense import crc8_31\nprint(hex(crc8_31(b'\\xbe\\xef')))")
    assert out.strip() == "0x92", out + err


def test_ds18b20_conversion_scratchpad_and_faults():
    with BusSim() as bus:
        bus.onewire[4] = [DS18B20(temperature=23.5625), DS18B20(serial=b"\x09\x08\x07\x06\x05\x04", temperature=-10.125)]
        second = bus.onewire[4][1]
        out = run(bus, """
from m2m.sense.ds18b20 import DS18B20
from m2m.sense import SensorError
ow = hal.OneWire(hal.Pin(4))
a = DS18B20(ow)
b = DS18B20(ow, %r)
try:
    a.read()
except SensorError as e:
    print('fault', e)
print(a.start(), b.start())
print(a.read()[0], b.read()[0])
""" % second.rom)
        assert "power-on value" in out[0]
        assert out[1] == "750 750"
        assert out[2] == "23.5625 -10.125"
        second.corrupt = 1
        out = run(bus, """
from m2m.sense.ds18b20 import DS18B20
b = DS18B20(hal.OneWire(hal.Pin(4)), %r)
b.start()
try:
    b.read()
except ValueError as e:
    print('crc', e)
try:
    DS18B20(hal.OneWire(hal.Pin(5)))
except OSError as e:
    print('missing', e.errno)
""" % second.rom)
        assert out[0].startswith("crc") and "CRC mismatch" in out[0]
        assert out[1] == "missing 19"


def test_battery_adc_divider_and_calibration():
    with BusSim() as bus:
        bus.adc[35] = 1_850_000
        out = run(bus, """
from m2m.sense.battery import Battery, from_board
print(from_board({"battery_adc": {"pin": 35, "divider": 2.0}}).read()[0])
print(Battery(hal.ADC(35), 2.0, scale=1.02, offset_mv=-30).read()[0])
print(from_board({"battery_adc": None}))
""")
        assert float(out[0]) == pytest.approx(3.7)
        assert float(out[1]) == pytest.approx((1850 * 2 * 1.02 - 30) / 1000)
        assert out[2] == "None"


def test_battery_from_the_axp2101():
    from m2mkit.sim.axp2101 import AXP2101
    import json
    from m2mkit.paths import ROOT

    board = json.loads((ROOT / "boards" / "lilygo-t-sim7080g-s3.json").read_text())
    with BusSim() as bus:
        bus.i2c[(0, 0x34)] = AXP2101(battery_mv=3912)
        out = run(bus, "from m2m.sense.battery import from_board\nprint(from_board(%r).read()[0])" % board)
        assert float(out[0]) == pytest.approx(3.912)


class Device:
    """MicroPython running firmware code while the host drives the bus (for edges in real time)."""

    def __init__(self, bus, code, env):
        import subprocess

        from m2mkit.testing import _prelude, micropython, mpy_env

        e = {"M2M_BUS": bus.address_str}
        e.update(env)
        self.p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + code],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=mpy_env(e))

    def line(self):
        return self.p.stdout.readline().strip()

    def finish(self):
        out = self.p.communicate(timeout=30)[0]
        assert self.p.returncode == 0, out
        return out.strip().split("\n")


# the device counts for `ms` of its own time, sleeping in 2 ms steps (the irq handlers run then)
COUNTER = """
from m2m import hal
from m2m.sense.pulse import Pulses
import sys
p = Pulses(13, debounce_ms=50, path=%r, flush_s=%d)
print('start', p.read()[0]); sys.stdout.flush() if hasattr(sys.stdout, 'flush') else None
t0 = hal.ticks_ms()
while hal.ticks_diff(hal.ticks_ms(), t0) < %d:
    hal.sleep_ms(2)
print('count', p.read()[0])
%s
"""


def count_pulses(bus, src, tmp_path, presses, bounce=0, ms=1500, after="", flush_s=3600):
    import time

    dev = Device(bus, COUNTER % (str(tmp_path / "pulses.dat"), flush_s, ms, after), {"M2M_STATE_DIR": str(tmp_path)})
    start = dev.line()
    time.sleep(0.2)
    for _ in range(presses):
        src.pulse(1, bounce)  # the bounces land within a millisecond: inside the 50 ms window
        time.sleep(0.12)
    return start, dev.finish()


def test_pulses_debounced_through_pin_irq(tmp_path):
    with BusSim() as bus:
        src = PulseSource(bus, 13)
        start, out = count_pulses(bus, src, tmp_path, 4, bounce=3)
        assert start == "start 0"
        assert out[0] == "count 4"


def test_pulse_count_survives_a_reset_and_a_power_loss(tmp_path):
    with BusSim() as bus:
        src = PulseSource(bus, 13)
        # counted, never saved to flash: RTC memory carries it across the restart
        start, out = count_pulses(bus, src, tmp_path, 3)
        assert (start, out[0]) == ("start 0", "count 3")
        assert not (tmp_path / "pulses.dat.0").exists()
        start, out = count_pulses(bus, src, tmp_path, 2, after="p.save()")
        assert (start, out[0]) == ("start 3", "count 5")
        assert (tmp_path / "pulses.dat.0").read_text() == "5"
        # more pulses, then the power goes: RTC memory is gone, the flash copy holds what was saved
        start, out = count_pulses(bus, src, tmp_path, 2)
        assert (start, out[0]) == ("start 5", "count 7")
        (tmp_path / "rtcmem").unlink()
        start, out = count_pulses(bus, src, tmp_path, 0, ms=10)
        assert (start, out[0]) == ("start 5", "count 5")
        # flush_s: a read after that long since the last save writes the count to flash by itself
        start, out = count_pulses(bus, src, tmp_path, 1, flush_s=1)
        assert (start, out[0]) == ("start 5", "count 6")
        assert (tmp_path / "pulses.dat.0").read_text() == "6"

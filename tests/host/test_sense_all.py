"""Every sensor type at once on the virtual device's buses, built from a `sense` config and the board
file as a device would (m2m.sense.build): readings with their names, SenML units and values, and the
IPSO object of each. This is what the MQTT and LwM2M reporters receive through the sampler's sink."""

import json

from m2mkit.sim.bus import BusSim
from m2mkit.sim.modbus import ModbusServer
from m2mkit.sim.sensors import BME280, DS18B20, SHT4x, PulseSource
from m2mkit.testing import run_micropython

CODE = """
from m2m import hal, config, events
from m2m.sense import build, ipso
events.log = False
cfg = config.validate({cfg})
got = []
sm = build.sampler(cfg, lambda r, u: got.extend(r), {board})
for _ in range(60):
    w = sm.step()
    if len(got) >= 9:
        break
    hal.sleep_ms(min(w, 100) or 1)
for r in got:
    print(r[0], repr(r[1]), repr(r[2]), ipso(r[0]), int(r[3] > 1.7e9))
e = events.take()
print('events', e and e[0])
"""


def test_every_sensor_through_the_config():
    cfg = {"sense": {"battery": True, "sensors": [
        {"type": "bme280", "id": "in"},
        {"type": "sht4x", "id": "out"},
        {"type": "ds18b20", "pin": 4, "id": "tank"},
        {"type": "pulses", "pin": 13},
        {"type": "modbus", "unit": 3, "uart": {"id": 2, "tx": 17, "rx": 16, "baud": 9600},
         "regs": [{"name": "energy", "fc": 4, "addr": 0, "scale": 0.1, "unit": "kWh"}]},
    ]}}
    board = {"i2c": {"id": 0, "scl": 22, "sda": 21}, "battery_adc": {"pin": 35, "divider": 2.0}}
    with BusSim() as bus, ModbusServer({3: {"input": [12345]}}) as mb:
        bus.i2c[(0, 0x76)] = bme = BME280()
        bme.set(temperature=19.5, humidity=55.0, pressure=100500.0)
        bus.i2c[(0, 0x44)] = SHT4x(temperature=4.25, humidity=88.0)
        bus.onewire[4] = [DS18B20(temperature=61.5)]
        bus.adc[35] = 1_950_000
        PulseSource(bus, 13)
        rc, out, err = run_micropython(CODE.format(cfg=json.dumps(cfg).replace("true", "True"), board=repr(board)),
                                       env={"M2M_BUS": bus.address_str, "M2M_UART2": mb.address_str})
    assert rc == 0, out + err
    lines = out.strip().split("\n")
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines if not ln.startswith("events")}
    assert set(rows) == {"in.temperature", "in.humidity", "in.pressure", "out.temperature", "out.humidity",
                         "tank.temperature", "pulses", "energy", "battery"}, rows
    def val(n):
        return float(rows[n][0])
    assert abs(val("in.temperature") - 19.5) <= 0.01 and abs(val("in.humidity") - 55.0) <= 0.05
    assert abs(val("in.pressure") - 100500.0) <= 2
    assert abs(val("out.temperature") - 4.25) < 0.01 and abs(val("out.humidity") - 88.0) < 0.01
    assert val("tank.temperature") == 61.5 and val("pulses") == 0
    assert abs(val("energy") - 1234.5) < 1e-6 and abs(val("battery") - 3.9) < 1e-6
    units = {n: (r[1], int(r[2]), r[3]) for n, r in rows.items()}
    assert units["in.temperature"] == ("'Cel'", 3303, "1") and units["in.humidity"] == ("'%RH'", 3304, "1")
    assert units["in.pressure"] == ("'Pa'", 3315, "1") and units["battery"] == ("'V'", 3316, "1")
    assert units["pulses"] == ("''", 3200, "1") and units["energy"] == ("'kWh'", 3300, "1")
    assert lines[-1] == "events None"  # no fault on the way


def test_check_prints_readings_and_faults():
    with BusSim() as bus:
        bus.i2c[(0, 0x44)] = SHT4x(temperature=20.0, humidity=50.0)
        code = """
from m2m import config
from m2m.sense import build
cfg = config.validate({"sense": {"battery": False, "sensors": [{"type": "sht4x"}, {"type": "bme280"}]}})
build.check(cfg=cfg, b={"i2c": {"id": 0, "scl": 22, "sda": 21}})
"""
        rc, out, err = run_micropython(code, env={"M2M_BUS": bus.address_str})
    assert rc == 0, out + err
    lines = out.strip().split("\n")
    assert "sense: temperature=20.0" in "\n".join(lines) and any(l.startswith("sense: humidity=") for l in lines)
    assert any(l.startswith("event: sensor.fault") and "sensor=bme280" in l and "missing" in l for l in lines), lines

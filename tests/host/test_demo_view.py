"""What a newcomer sees in `m2mkit demo`: readings as a person reads them (the broker still gets the
device's own values), and the hot spell where the banner says it is: in the duct, not in the room."""

import json

from m2mkit import demo_sense
from m2mkit.demo_report import describe, shown
from m2mkit.senml import resolve
from m2mkit.sim.sensors import BME280, SHT4x

FULL = 16.999694819562066


def test_a_reading_shows_with_a_space_and_its_quantitys_digits():
    assert shown(FULL, "Cel") == "17.00 Cel"
    assert shown(38.07123, "%RH") == "38.1 %RH"
    assert shown(101324.62, "Pa") == "101325 Pa"
    assert shown(3.9, "V") == "3.90 V"
    assert shown(3, "") == "3"  # a count, no unit
    assert shown(12.34567, "") == "12.35"  # no unit known: 4 significant digits
    assert shown(123456.7, "x") == "123457 x"  # never an exponent for a big value


def test_the_demo_line_is_rounded_but_the_reading_is_not():
    payload = json.dumps([{"bn": "dev-1:", "bt": 1767225600, "v": 9},
                          {"n": "duct.temperature", "u": "Cel", "v": FULL},
                          {"n": "room.humidity", "u": "%RH", "v": 38.07123}]).encode()
    line = describe("m2mkit/dev-1/telemetry", payload)
    assert line == "broker> m2mkit/dev-1/telemetry seq 9: duct.temperature=17.00 Cel room.humidity=38.1 %RH"
    assert resolve(payload)[1][1] == FULL  # what a subscriber decodes: the device's value, whole


def test_the_hot_spell_heats_the_duct_and_not_the_room():
    bme, sht = BME280(), SHT4x()
    env = demo_sense.environment(bme, sht)
    start, length, delta = demo_sense.HOT_SPELL
    peak = start + length / 2
    for t in (0, start - 1, peak, start + length + 1):
        env.apply(t)
        day = env.value("temperature", t)  # the room's air: the day alone
        room = bme.temperature(bme.raw[0])
        assert abs(room - day) < 0.02, (t, room, day)  # the BME280 reads back within its resolution
        spell = delta if t == peak else 0.0
        assert abs(sht.temperature - (day + spell)) < 1e-9, (t, sht.temperature, day)
    env.apply(peak)
    assert sht.temperature > demo_sense.ALARM_C > bme.temperature(bme.raw[0])  # the duct's alarm alone

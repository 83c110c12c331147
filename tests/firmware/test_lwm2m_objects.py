# The IPSO objects m2m.lwm2m.objects builds from the sampler's reading names: one instance per
# reading, in the sampler's order; a pulse count is 3200 Digital Input with its counter 5501 (an
# Integer; the object has no 5700 / 5701, OMA lwm2m-registry 3200.xml), the others Sensor Value 5700
# and Sensor Units 5701 (IPSO 3303 / 3304 / 3315 / 3316 / 3300 xml).
from m2m.lwm2m import TEXT, TLV
from m2m.lwm2m import objects, tlv
from m2m.lwm2m.model import Err

NOT_FOUND = 0x84  # CoAP 4.04 (RFC 7252 12.1.2)


class Sampler:
    def __init__(self, latest):  # [(name, (value, unit, t) or None)]: names in config order
        self.order = [n for n, _ in latest]
        self.now = dict(latest)

    def names(self):
        return self.order

    def latest(self, name):
        return self.now.get(name)


class Client:
    errors = None
    clock_offset = 0

    def __getattr__(self, name):  # the Device / Firmware / Statistics callbacks: not used here
        return lambda *a: (0, 0)


READINGS = [("in.temperature", (23.4, "Cel", 1)), ("in.humidity", (41.5, "%RH", 1)),
            ("in.pressure", (99870.0, "Pa", 1)), ("tank.temperature", (11.375, "Cel", 1)), ("battery", (3.85, "V", 1)),
            ("pulses", (44, "", 1)), ("meter.energy", (1234.5, "kWh", 1))]


def model(readings):
    return objects.build({"device": {"id": "d"}}, Client(), sampler=Sampler(readings))


def text(m, path):
    return m.read(path, TEXT).decode()


def test_every_reading_has_an_instance_with_value_and_unit():
    m = model(READINGS)
    assert sorted(m.objs[3303].inst) == [0, 1]  # in.temperature, tank.temperature
    assert text(m, (3303, 0, 5700)) == "23.4" and text(m, (3303, 1, 5700)) == "11.375"
    assert text(m, (3303, 1, 5701)) == "Cel"
    assert text(m, (3304, 0, 5700)) == "41.5" and text(m, (3304, 0, 5701)) == "%RH"
    assert text(m, (3315, 0, 5700)) == "99870.0" and text(m, (3315, 0, 5701)) == "Pa"
    assert text(m, (3316, 0, 5700)) == "3.85" and text(m, (3316, 0, 5701)) == "V"
    assert text(m, (3300, 0, 5700)) == "1234.5" and text(m, (3300, 0, 5701)) == "kWh"


def test_pulses_are_a_digital_input_counter():
    m = model(READINGS)
    assert list(m.objs[3200].inst) == [0]
    assert text(m, (3200, 0, 5501)) == "44"
    got = tlv.decode(m.read((3200, 0), TLV))
    assert [(e[1], e[2]) for e in got] == [(5501, b"\x2c")], got  # one Integer resource, 44 in one byte
    for rid in (5700, 5701):
        try:
            m.read((3200, 0, rid), TEXT)
        except Err as e:
            assert e.code == NOT_FOUND, e.code
        else:
            raise AssertionError("3200 has no %d" % rid)


def test_before_the_first_reading_the_counter_is_absent():
    m = model([("pulses", None)])
    try:
        m.read((3200, 0, 5501), TEXT)
    except Err as e:
        assert e.code == NOT_FOUND, e.code
    else:
        raise AssertionError("no value yet: Not Found")

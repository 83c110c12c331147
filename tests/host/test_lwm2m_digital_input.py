"""3200 Digital Input's Digital Input State (5500, the object's one Mandatory resource, Boolean, R:
"The current state of a digital input", OMA lwm2m-registry 3200.xml) for a pulse input: the level of
the pulse sensor's pin (config sense.sensors[].pin), read through the hal when the server asks, here
from the simulated bus that drives the pin (m2mkit.sim.bus: a meter's S0 output idles high and pulls
the pin low during a pulse)."""

from m2mkit.sim.bus import BusSim
from m2mkit.testing import run_micropython

CODE = """
from m2m.lwm2m import TEXT, TLV, objects, tlv

class Sampler:
    def names(self):
        return ["meter.pulses", "pulses"]
    def latest(self, name):
        return (44, "", 1)

class Client:
    errors = None
    clock_offset = 0
    def __getattr__(self, name):
        return lambda *a: (0, 0)

cfg = {"device": {"id": "d"}, "sense": {"sensors": [{"type": "pulses", "id": "meter", "pin": 13}]}}
m = objects.build(cfg, Client(), sampler=Sampler())
print(m.read((3200, 0, 5500), TEXT).decode())
print(" ".join("%d:%s" % (e[1], e[2].hex()) for e in tlv.decode(m.read((3200, 0), TLV))))
print(sorted(m.objs[3200].inst[1]))  # "pulses": no pulse input in the config names its pin
"""


def read_state(level):
    with BusSim() as bus:
        bus.set_pin(13, level)
        rc, out, err = run_micropython(CODE, env={"M2M_BUS": bus.address_str})
        assert rc == 0, out + err
        return out.strip().split("\n")


def test_digital_input_state_is_the_pulse_pins_level():
    state, res, other = read_state(1)
    assert state == "1"  # idle: high on the pull-up
    assert res == "5500:01 5501:2c", res  # TLV: Boolean 1 byte (OMA core appendix C), Integer 44
    assert other == "[5501]"
    state, res, _ = read_state(0)
    assert state == "0" and res == "5500:00 5501:2c", res  # a pulse holds the pin low

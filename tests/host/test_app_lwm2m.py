"""The device's real run end to end, the LwM2M side: the virtual T-SIM7000G and sensors of
test_app_vdev.py (BME280, SHT4x, DS18B20, battery ADC, pulse input, a pymodbus Modbus RTU meter),
main.py's supervisor with lwm2m.server set (no MQTT broker): the firmware's client registers over the
simulated SIM7000G's UDP socket with the host LwM2M server on loopback, and every reading the sampler
takes is an IPSO object instance whose value the server reads (SenML JSON and TLV) as the test set it
in the simulated environment, within each sensor's resolution, with the SenML unit as its Sensor
Units (5701).

Objects and resources: OMA lwm2m-registry 3303.xml Temperature, 3304.xml Humidity, 3315.xml Barometer
(its Sensor Value has no fixed unit: "an example measurement unit is pascals"), 3316.xml Voltage,
3300.xml Generic Sensor (5701 "e.g. Cel"), each with 5700 Sensor Value and 5701 Sensor Units; 3200.xml
Digital Input with 5500 Digital Input State (Boolean: the pulse pin's level, high when idle) and 5501
Digital Input Counter (Integer, no units resource)."""

import json
import time

from m2mkit import boards, image
from m2mkit.lwm2m import ServerThread
from m2mkit.sim.bus import BusSim
from m2mkit.sim.environment import Environment
from m2mkit.sim.modbus import ModbusServer
from m2mkit.sim.sensors import BME280, DS18B20, SHT4x, PulseSource
from m2mkit.vdev.device import VirtualDevice
from test_app_vdev import BOARD, DEV, SCALE, TOL, Console, config

# the sampler's names in its order (config order, the battery last: m2m.sense.build) -> (IPSO object,
# instance, the value the environment gives, SenML unit)
EXPECT = {"in.temperature": (3303, 0, 23.4, "Cel"), "in.humidity": (3304, 0, 41.5, "%RH"),
          "in.pressure": (3315, 0, 99870.0, "Pa"), "out.temperature": (3303, 1, 28.4, "Cel"),
          "out.humidity": (3304, 1, 31.5, "%RH"), "tank.temperature": (3303, 2, 11.4, "Cel"),
          "pulses": (3200, 0, 41, None), "meter.energy": (3300, 0, 1234.5, "kWh"), "battery": (3316, 0, 3.85, "V")}


def lwm2m_config(url):
    cfg = config(url)
    del cfg["mqtt"]
    cfg["lwm2m"] = {"server": url, "lifetime_s": 600}
    return cfg


def until(cond, timeout, what, con, detail=lambda: ""):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < end, f"{what}: not within {timeout} s {detail()}; console: {con.pump()[-2500:]!r}"
        con.pump()
        time.sleep(0.2)


def test_every_reading_reaches_the_lwm2m_server_as_an_ipso_instance_with_value_and_unit(tmp_path):
    board = boards.load(BOARD)
    lines = []
    with ServerThread(log=lines.append) as server:
        url = "coap://127.0.0.1:%d" % server.address[1]
        flash = tmp_path / "flash.img"
        flash.write_bytes(image.build(board, extra={"/config.json": json.dumps(lwm2m_config(url)).encode(),
                                                    "/pulses.dat.0": b"41"}))
        env = Environment(seed=3)
        for q, v in {"temperature": 23.4, "humidity": 41.5, "pressure": 99870.0, "battery": 3.85}.items():
            env.set(q, v)
        with BusSim() as bus, ModbusServer({3: {"input": [12345]}}) as mb:
            bus.i2c[(0, 0x76)] = bme = BME280()
            bus.i2c[(0, 0x44)] = sht = SHT4x()
            bus.onewire[15] = [ds := DS18B20()]
            env.bme280(bme)
            # the SHT4x outdoors, 5 degC warmer and 10 %RH drier than the BME280 indoors: every
            # instance's value tells which sensor it is
            env.attach("temperature", lambda v: setattr(sht, "temperature", v + 5.0))
            env.attach("humidity", lambda v: setattr(sht, "humidity", v - 10.0))
            env.ds18b20(ds, offset=-12.0)
            env.adc(bus, 35, divider=2.0)  # the board's battery divider
            env.apply(0)
            src = PulseSource(bus, 13)
            with VirtualDevice(BOARD, flash=flash, modem=True, time_scale=SCALE,
                               env={"M2M_BUS": bus.address_str, "M2M_UART2": mb.address_str}) as dev:
                con = Console(dev.port)
                con.wait_for(b"supervisor: sensors 6", 30)
                reg = until(lambda: next((r for r in list(server.server.registrations.values()) if r.ep == DEV), None),
                            90, "the registration", con)
                # every reading has its instance, and no sensor object has more
                links = set(reg.objects())
                for oid in {o for o, _, _, _ in EXPECT.values()}:
                    got = {p for p in links if p.startswith("/%d/" % oid)}
                    assert got == {"/%d/%d" % (o, i) for o, i, _, _ in EXPECT.values() if o == oid}, (oid, links)

                def read_all(fmt):
                    out = {}
                    for name, (oid, iid, _, _) in EXPECT.items():
                        r = server.call("read", DEV, "/%d/%d" % (oid, iid), fmt=fmt, timeout=30)
                        assert r.ok, (name, r)
                        out[name] = r.value
                    return out

                def wrong(vals, pulses=41):
                    # the readings whose instance does not hold the environment's value and unit
                    bad = []
                    for name, (oid, iid, v, unit) in EXPECT.items():
                        p = "/%d/%d/" % (oid, iid)
                        if oid == 3200:
                            if vals[name] != {p + "5500": True, p + "5501": pulses}:
                                bad.append((name, vals[name]))
                        elif (vals[name].get(p + "5701") != unit or p + "5700" not in vals[name]
                              or abs(vals[name][p + "5700"] - v) > TOL[name]):
                            bad.append((name, vals[name]))
                    return bad

                last = {}

                def all_right():
                    last.update(read_all("json"))
                    return not wrong(last)

                until(all_right, 60, "every reading's value and unit (SenML JSON)", con, lambda: wrong(last))
                tlv = read_all("tlv")
                assert not wrong(tlv), wrong(tlv)  # the same in TLV

                # Discover: the value and its units, the state and the counter in the Digital Input
                d = server.call("discover", DEV, "/3303/2", timeout=30)
                assert {"/3303/2/5700", "/3303/2/5701"} <= {p for p, _ in d.value}, d.value
                d = server.call("discover", DEV, "/3200/0", timeout=30)
                assert [p for p, _ in d.value if p.count("/") == 3] == ["/3200/0/5500", "/3200/0/5501"], d.value

                # three pulses while registered: the counter follows
                for _ in range(3):
                    src.pulse(1, bounce=2)
                    time.sleep(0.3)
                until(lambda: not wrong(last.update(read_all("json")) or last, pulses=44), 30,
                      "the counter after three pulses", con, lambda: wrong(last, pulses=44))
                assert b"Traceback" not in con.pump(), con.seen[-2000:]

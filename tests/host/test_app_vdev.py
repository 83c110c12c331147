"""The device's real run end to end: a virtual T-SIM7000G boots its flash (firmware, board.json and a
/config.json with device.autorun), and main.py starts the supervisor by itself: the sampler reads a
BME280, an SHT4x, a DS18B20, the battery ADC, a pulse input and a Modbus RTU meter (simulated at
register level, pymodbus for Modbus), the network comes up on the simulated SIM7000G, and the
readings reach a paho subscriber on a real Mosquitto as SenML with their units and the values the
test set in the simulated environment, within each sensor's resolution. An alarm goes to /events
at once, a Modbus meter that stops answering is a sensor.fault event there, and Ctrl-C at the
console stops the run and leaves the REPL (the broker then sends the last will, offline)."""

import json
import time

import serial

from m2mkit import boards, image
from m2mkit.senml import Units, resolve, status
from m2mkit.sim.bus import BusSim
from m2mkit.sim.environment import Environment
from m2mkit.sim.modbus import ModbusServer
from m2mkit.sim.sensors import BME280, DS18B20, SHT4x, PulseSource
from m2mkit.vdev.device import VirtualDevice

# a board with PSRAM: the whole stack (network, sockets, umqtt.simple, outbox, six drivers, sampler)
# does not fit the no-PSRAM DevKitC's heap yet (issue #9's heap goal)
BOARD = "lilygo-t-sim7000g"
SCALE = 10
DEV = "site-1"

# resolution of each reading: the BME280 at x1 oversampling (the driver's forced mode) measures
# pressure with 16 bits, 2.62 Pa (BME280 datasheet BST-BME280-DS001 3.4.2: 16 + (osrs_p - 1) bits
# without the IIR filter; BMP280 datasheet BST-BMP280-DS001 table 4: x1 = 16 bit / 2.62 Pa), and the
# integer compensation gives temperature in 0.01 degC and humidity in 1/1024 %RH steps (BME280
# datasheet 4.2.3); SHT4x 16-bit ticks: 175/65535 degC and 125/65535 %RH (SHT4x datasheet 4.6);
# DS18B20 12 bits: 0.0625 degC (DS18B20 datasheet, "Operation - measuring temperature"); battery: the
# ADC's microvolts; the Modbus register is exact (a count of 0.1 kWh).
TOL = {"in.temperature": 0.01, "in.humidity": 1 / 1024 + 1e-6, "in.pressure": 2.62,
       "out.temperature": 175 / 65535, "out.humidity": 125 / 65535, "tank.temperature": 0.0625,
       "battery": 1e-5, "meter.energy": 1e-9, "pulses": 0}


def config(url):
    return {"device": {"id": DEV, "autorun": True, "watchdog_s": 60},
            "mqtt": {"broker": url, "keepalive": 60},
            "sense": {"battery": True, "interval_s": 10, "sensors": [
                {"type": "bme280", "id": "in"},
                {"type": "sht4x", "id": "out", "alarms": [{"q": "temperature", "above": 30, "hyst": 1}]},
                {"type": "ds18b20", "id": "tank", "pin": 15},
                {"type": "pulses", "pin": 13, "debounce_ms": 20},
                {"type": "modbus", "id": "meter", "unit": 3, "uart": {"id": 2, "tx": 18, "rx": 19, "baud": 9600},
                 "regs": [{"name": "energy", "fc": 4, "addr": 0, "scale": 0.1, "unit": "kWh"}]}]}}


def loaded_host(bus, pause=0.005):
    """The test's thread as on a loaded machine: a pause after each set_pin (CPython hands the GIL to
    another thread every 5 ms, sys.getswitchinterval; two busy cores make it longer), which the
    time-scaled device lives SCALE times longer: 50 ms at 10x, past debounce_ms. A pulse's bounces
    still come at one instant (PulseSource.pulse drives them in one set_pin): one count each."""
    real = bus.set_pin

    def set_pin(*a):
        real(*a)
        time.sleep(pause)

    bus.set_pin = set_pin


class Console:
    def __init__(self, port):
        self.s = serial.Serial(port, 115200, timeout=0.05)
        self.seen = b""

    def pump(self):
        self.seen += self.s.read(4096)
        return self.seen

    def wait_for(self, token, timeout):
        deadline = time.monotonic() + timeout
        while token not in self.pump():
            assert time.monotonic() < deadline, f"{token!r} not seen; console: {self.seen[-1500:]!r}"


class Seen:
    """What the subscriber got: the newest SenML value and unit per name (the units from the retained
    status, mqtt.units "status"), alarms and events."""

    def __init__(self, sub):
        self.sub = sub
        self.values = {}
        self.events = []
        self.status = []
        self.units = Units()

    def pump(self, timeout=0.5):
        for topic, payload, retained in self.sub.wait(50, timeout=timeout):
            leaf = topic.split("/", 2)[2]
            if leaf == "telemetry":
                for name, v, u, t in resolve(payload, self.units.names):  # RFC 8428 resolution: checks the pack
                    assert name.startswith(DEV + ":") and t > 1.7e9
                    self.values[name[len(DEV) + 1:]] = (v, u)
            elif leaf == "events":
                self.events.append(json.loads(payload))
            elif leaf == "status":
                self.units.feed(topic, payload)
                self.status.append(payload)

    def until(self, pred, timeout, con, what):
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, (f"{what}: not seen; got {self.values} {self.events}; "
                                                 f"console: {con.pump()[-2500:]!r}")
            self.pump()
            con.pump()


def test_main_py_runs_sensors_to_mqtt_with_values_units_alarm_fault_and_ctrl_c(tmp_path, broker, subscriber):
    board = boards.load(BOARD)
    flash = tmp_path / "flash.img"
    # the meter's count as the pulse counter last saved it to flash (slot 0) before a power cut; once
    # online, pulses are driven while the supervisor's loop waits on the modem's UART (select.poll,
    # where the ESP32 port runs scheduled handlers, extmod/modselect.c mp_event_wait_ms, and so does
    # the port stand-in) and the count goes on from there
    flash.write_bytes(image.build(board, extra={"/config.json": json.dumps(config(broker.url)).encode(),
                                                "/pulses.dat.0": b"41"}))
    sub = subscriber(f"m2mkit/{DEV}/#")
    env = Environment(seed=3)
    want = {"temperature": 23.4, "humidity": 41.5, "pressure": 99870.0, "battery": 3.85}
    for q, v in want.items():
        env.set(q, v)
    with BusSim() as bus, ModbusServer({3: {"input": [12345]}}) as mb:
        bus.i2c[(0, 0x76)] = bme = BME280()
        bus.i2c[(0, 0x44)] = sht = SHT4x()
        bus.onewire[15] = [ds := DS18B20()]
        env.bme280(bme)
        env.sht4x(sht)
        env.ds18b20(ds, offset=-12.0)
        env.adc(bus, 35, divider=2.0)  # the board's battery divider
        env.apply(0)
        loaded_host(bus)
        src = PulseSource(bus, 13)  # idle high
        with VirtualDevice(BOARD, flash=flash, modem=True, time_scale=SCALE,
                           env={"M2M_BUS": bus.address_str, "M2M_UART2": mb.address_str}) as dev:
            con = Console(dev.port)
            con.wait_for(b"supervisor: sensors 6, mqtt " + broker.url.encode() + b" as site-1", 30)
            seen = Seen(sub)
            expect = {"in.temperature": (23.4, "Cel"), "in.humidity": (41.5, "%RH"), "in.pressure": (99870.0, "Pa"),
                      "out.temperature": (23.4, "Cel"), "out.humidity": (41.5, "%RH"),
                      "tank.temperature": (11.4, "Cel"), "battery": (3.85, "V"), "meter.energy": (1234.5, "kWh"),
                      "pulses": (41, "")}

            def all_right():
                return all(n in seen.values and seen.values[n][1] == u and abs(seen.values[n][0] - v) <= TOL[n]
                           for n, (v, u) in expect.items())

            seen.until(all_right, 60, con, "every reading with its value and unit")
            assert "online" in [status(p)[0] for p in seen.status]  # with the units: the values' were joined

            # three pulses (each bouncing within debounce_ms) while online: 44 in the next telemetry
            for _ in range(3):
                src.pulse(1, bounce=2)
                time.sleep(0.3)
            seen.until(lambda: seen.values["pulses"] == (44, ""), 30, con, "the pulses counted while online")

            # a hot spell on the SHT4x's side: the alarm goes to /events at once, with the reading
            env.set("temperature", 33.0)
            env.apply(0)
            seen.until(lambda: any(e.get("kind") == "alarm" and e.get("state") == "raised" for e in seen.events),
                       60, con, "the alarm")
            alarm = [e for e in seen.events if e.get("kind") == "alarm"][0]
            assert alarm["name"] == "out.temperature" and alarm["unit"] == "Cel" and alarm["level"] == 30
            assert abs(alarm["value"] - 33.0) <= TOL["out.temperature"] and alarm["t"] > 1.7e9
            seen.until(lambda: abs(seen.values["out.temperature"][0] - 33.0) <= TOL["out.temperature"], 30, con,
                       "the alarm's reading in telemetry")

            # the meter stops answering: a fault event, once, and the device goes on
            mb.silent = True
            seen.until(lambda: any(e.get("kind") == "sensor.fault" and e.get("sensor") == "meter" for e in seen.events),
                       60, con, "the Modbus fault")
            env.set("temperature", 24.0)
            env.apply(0)
            seen.until(lambda: any(e.get("kind") == "alarm" and e.get("state") == "cleared" for e in seen.events),
                       60, con, "the alarm cleared")

            # Ctrl-C: the REPL, and the broker sends the last will
            con.s.write(b"\x03")
            con.wait_for(b"supervisor: stopped", 20)
            con.wait_for(b">>> ", 10)
            seen.until(lambda: seen.status and seen.status[-1] == b"offline", 60, con, "the last will")
            # the watchdog (60 s, fed by the loop while it ran) is stretched, not left to reset the REPL
            time.sleep(70 / SCALE)
            con.s.write(b"print('still', 6 * 7)\r")
            con.wait_for(b"still 42", 10)
            assert b"reset_cause=watchdog" not in con.seen and con.seen.count(b"health:") == 1, con.seen[-1500:]
            faults = [e for e in seen.events if e.get("kind") == "sensor.fault"]
            assert len(faults) == 1, faults
            assert b"Traceback" not in con.seen, con.seen[-2000:]


def test_without_a_broker_main_py_samples_into_the_outbox_and_counts_pulses(tmp_path):
    # no mqtt.broker: no network, the loop sleeps between sensors, so the stand-in delivers the pulse
    # input's edges as they come; at the REPL after Ctrl-C the run is supervisor.current
    board = boards.load("esp32-devkitc-bg95")
    cfg = {"device": {"id": "meter-9", "autorun": True},
           "sense": {"battery": False, "interval_s": 5, "sensors": [{"type": "pulses", "pin": 13, "debounce_ms": 20}]}}
    flash = tmp_path / "flash.img"
    flash.write_bytes(image.build(board, extra={"/config.json": json.dumps(cfg).encode()}))
    with BusSim() as bus:
        loaded_host(bus)
        src = PulseSource(bus, 13)
        with VirtualDevice(board["name"], flash=flash, time_scale=SCALE, env={"M2M_BUS": bus.address_str}) as dev:
            con = Console(dev.port)
            con.wait_for(b"supervisor: sensors 1, no mqtt.broker: readings stay in the outbox as meter-9", 30)
            time.sleep(0.5)
            for _ in range(3):
                src.pulse(1, bounce=2)  # bounces within debounce_ms: one count each
                time.sleep(0.3)
            time.sleep(1.5)  # 15 s of device time: the next reads
            con.s.write(b"\x03")
            con.wait_for(b"supervisor: stopped", 10)
            con.wait_for(b">>> ", 10)
            con.s.write(b"from m2m import supervisor as s; r = s.current; print('latest', r.sense.sampler.latest('pulses')[:2], "
                        b"r.sense.sampler.names(), r.outbox.pending() >= 2)\r")
            con.wait_for(b"latest (3, '') ['pulses'] True", 10)

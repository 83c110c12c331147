"""The unix hal's I2C, 1-Wire, ADC and input pins against the host-fed simulated bus, inside MicroPython."""

from m2mkit.sim.bus import BusSim, OneWireDevice, RegisterDevice
from m2mkit.testing import run_micropython


def run(bus, code):
    rc, out, err = run_micropython("from m2m import hal\n" + code, env={"M2M_BUS": bus.address_str})
    assert rc == 0, out + err
    return out


def test_i2c_registers_scan_and_absent_device():
    with BusSim() as bus:
        dev = RegisterDevice({0xD0: 0x60, 0xF7: 0x51, 0xF8: 0x2A})
        bus.i2c[(0, 0x76)] = dev
        out = run(bus, """
i2c = hal.I2C(0, scl=22, sda=21)
print(i2c.scan())
print(i2c.readfrom_mem(0x76, 0xD0, 1).hex(), i2c.readfrom_mem(0x76, 0xF7, 2).hex())
i2c.writeto_mem(0x76, 0xF4, b'\\x27')
try:
    i2c.readfrom(0x77, 1)
except OSError as e:
    print('absent', e.errno)
""")
        assert out.split("\n")[:3] == ["[118]", "60 512a", "absent 19"]
        assert dev.regs[0xF4] == 0x27


def test_onewire_reset_scan_and_read():
    rom = bytes.fromhex("021cb801000000a2")  # Maxim AN27's example ROM: its CRC byte is 0xA2
    scratch = bytes.fromhex("5001 4b46 7fff 0c10 1c".replace(" ", ""))

    def ds18b20(written):
        return scratch if written == b"\xbe" else b""

    with BusSim() as bus:
        bus.onewire[4] = [OneWireDevice(rom, ds18b20)]
        out = run(bus, """
ow = hal.OneWire(hal.Pin(4))
roms = ow.scan()
print(ow.reset(), [bytes(r).hex() for r in roms], ow.crc8(roms[0]))
ow.select_rom(roms[0]); ow.writebyte(0xBE)
print(ow.read(9).hex())
print(hal.OneWire(5).reset())
""")
        lines = out.split("\n")
        assert lines[0] == f"True ['{rom.hex()}'] 0"
        assert lines[1] == scratch.hex()
        assert lines[2] == "False"


def test_adc_and_input_pins():
    with BusSim() as bus:
        bus.adc[35] = 1_850_000
        bus.pins[0] = 0
        out = run(bus, """
print(hal.ADC(hal.Pin(35)).read_uv(), hal.Pin(0, hal.Pin.IN).value(), hal.ADC(34).read_uv())
""")
        assert out.strip() == "1850000 0 0"



def test_axp2101_model_through_the_hal():
    """The PMU model answers the firmware's I2C the way XPowersLib reads it (chip id 0x4A in 0x03)."""
    from m2mkit.sim.axp2101 import AXP2101

    with BusSim() as bus:
        bus.i2c[(0, 0x34)] = pmu = AXP2101(battery_mv=4012)
        out = run(bus, """
i2c = hal.I2C(0, scl=7, sda=15)
print(i2c.scan(), i2c.readfrom_mem(0x34, 0x03, 1).hex())
i2c.writeto_mem(0x34, 0x84, bytes([102]))
i2c.writeto_mem(0x34, 0x80, bytes([i2c.readfrom_mem(0x34, 0x80, 1)[0] | 0x04]))
i2c.writeto_mem(0x34, 0x30, b'\\x01')
b = i2c.readfrom_mem(0x34, 0x34, 2)
print((b[0] & 0x1f) << 8 | b[1])
""")
        assert out.split("\n")[:2] == ["[52] 4a", "4012"]
        assert pmu.rail_mv("DC3") == 3000 and pmu.rail_on("DC1")


def test_stop_returns_when_an_accept_finds_the_connection_gone():
    # serve_forever accepts after select() said a connection waits; a device process reset between its
    # connect and that accept leaves the queue empty: the accept must give up, not block stop() for ever
    # (a CI run hung in BusSim.stop). No connection waits here: the same accept, made deterministic.
    import threading

    from m2mkit.sim.bus import BusSim

    with BusSim() as b:
        t = threading.Thread(target=b.server._handle_request_noblock, daemon=True)
        t.start()
        t.join(5)
        assert not t.is_alive(), "the bus's accept blocked with no connection waiting"

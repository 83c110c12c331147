# The unix hal, as the virtual device and the firmware tests see it.
from m2m import hal


def test_platform_is_unix():
    assert hal.PLATFORM == "unix"


def test_ticks_advance_with_sleep():
    t0 = hal.ticks_ms()
    hal.sleep_ms(20)
    d = hal.ticks_diff(hal.ticks_ms(), t0)
    assert 15 <= d < 2000, d


def test_uart_without_simulator_is_a_silent_line():
    # M2M_MODEM unset: like a UART with nothing wired to it
    u = hal.UART(1, 115200)
    assert u.write(b"AT\r") == 3
    buf = bytearray(16)
    assert u.readinto(buf) == 0
    assert u.wait(5) is False


def test_i2c_without_bus_raises_enodev():
    i2c = hal.I2C(0, scl=22, sda=21)
    assert i2c.scan() == []
    try:
        i2c.readfrom(0x76, 1)
    except OSError as e:
        assert e.errno == 19
    else:
        raise AssertionError("a read from an absent device must fail")


def test_onewire_crc8_matches_dallas():
    ow = hal.OneWire(4)
    # ROM of a DS18B20 from its datasheet example: the 8th byte is the CRC of the first 7
    rom = bytes((0x28, 0xFF, 0x64, 0x1E, 0x15, 0x21, 0x03))
    crc = ow.crc8(rom)
    assert ow.crc8(rom + bytes((crc,))) == 0


def test_rtc_memory_in_process():
    r = hal.RTC()
    r.memory(b"\x01\x02")
    assert r.memory() == b"\x01\x02"
    try:
        r.memory(bytes(2049))
    except ValueError:
        pass
    else:
        raise AssertionError("RTC memory is 2048 bytes")


def test_nvs_roundtrip():
    n = hal.NVS("m2m")
    n.set_i32("boots", 7)
    n.set_blob("key", b"abc")
    assert n.get_i32("boots") == 7
    buf = bytearray(8)
    assert n.get_blob("key", buf) == 3 and buf[:3] == b"abc"
    try:
        n.get_i32("missing")
    except OSError:
        pass
    else:
        raise AssertionError("missing NVS key must raise")


def test_machine_time_and_os_are_the_esp32_ports_stand_in():
    # installed by m2mkit.testing (and the virtual device's boot script) before any firmware import
    import machine
    import os
    import time

    assert machine.Pin.PULL_UP == 2 and machine.Pin.PULL_DOWN == 1
    assert time.gmtime(0)[0] == 2000  # the esp32 port's epoch
    assert os.uname().sysname == "esp32"
    try:
        machine.Pin(None)
    except ValueError:
        pass
    else:
        raise AssertionError("the port refuses Pin(None)")


def test_rtc_datetime_set_moves_the_clock_and_epoch_follows():
    import machine

    r = machine.RTC()
    r.datetime((2031, 5, 6, 1, 7, 8, 9, 0))
    d = r.datetime()
    assert d[:3] == (2031, 5, 6) and d[4:6] == (7, 8), d
    assert 1935817600 < hal.epoch() < 1935818000  # 2031-05-06 07:08:09 UTC is 1935817689


def _raises(exc, f, *a, **kw):
    try:
        f(*a, **kw)
    except exc as e:
        return e
    raise AssertionError("%s expected from %r" % (exc.__name__, f))


def test_port_stand_in_is_as_strict_as_the_port():
    import machine

    _raises(TypeError, machine.UART, 1, 9600, 8, None, 1, 17)  # tx is keyword-only
    _raises(ValueError, machine.UART, 1, tx=None)
    _raises(ValueError, machine.UART, 3)  # UART(3) does not exist
    _raises(ValueError, machine.UART, 1, flow=4)  # invalid flow control mask
    _raises(TypeError, machine.I2C, 0, 22, 21)  # scl/sda are keyword-only
    _raises(TypeError, machine.ADC, 35, 3)  # atten is keyword-only
    _raises(TypeError, machine.ADC, 35, atten=3.0)
    _raises(ValueError, machine.ADC, 35, atten=4)
    _raises(ValueError, machine.freq, 100000000)
    machine.freq(80000000)
    assert machine.freq() == 80000000
    _raises(ValueError, machine.WDT, timeout=0)
    assert str(_raises(ValueError, machine.RTC().memory, bytes(2049))) == "buffer too long"
    _raises(SystemExit, machine.soft_reset)
    u = machine.UART(1)
    assert u.read() is None and u.readinto(bytearray(4)) is None and u.readline() is None
    import onewire

    _raises(AttributeError, getattr, onewire.OneWire(machine.Pin(4)), "read")

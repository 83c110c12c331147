# The AXP2101 driver against a register-level fake: every expected register value below is worked
# out from XPowersLib's own formulas (lewisxhe/XPowersLib src/XPowersAXP2101.hpp setDCxVoltage /
# getDCxVoltage / set*LDO*Voltage, src/REG/AXP2101Constants.h), not from the driver's tables.
from m2m import axp2101
from m2m.axp2101 import AXP2101
from pmu_fake import FakeAXP2101


def pmu(**kw):
    bus = FakeAXP2101(**kw)
    return bus, AXP2101(bus)


def expect_value_error(fn, *words):
    try:
        fn()
    except ValueError as e:
        for w in words:
            assert w in str(e), (w, str(e))
        return str(e)
    raise AssertionError("ValueError expected")


def test_chip_id_is_checked():
    bus, p = pmu()
    assert bus.regs[0x03] == 0x4A and p.addr == 0x34
    # an AXP192 (chip id 0x03 in its own map) or anything else at 0x34 is refused
    expect_value_error(lambda: AXP2101(FakeAXP2101(chip_id=0x47)), "not an AXP2101", "0x47", "0x4a")


def test_nothing_at_the_address_is_an_oserror():
    try:
        AXP2101(FakeAXP2101(), addr=0x35)
    except OSError as e:
        assert e.errno == 19
    else:
        raise AssertionError("a silent address must fail")


def test_dc3_voltages_encode_as_xpowerslib_does():
    # setDC3Voltage: 0.5-1.2 V: (mV-500)/10; 1.22-1.54 V: (mV-1220)/20 + 71; 1.6-3.4 V: (mV-1600)/100 + 88
    bus, p = pmu()
    for mv, code in ((3000, 102), (3400, 106), (1600, 88), (1540, 87), (1220, 71), (1200, 70), (500, 0),
                     (700, 20), (1300, 75)):
        p.set_voltage("DC3", mv)
        assert bus.regs[0x84] == code, (mv, bus.regs[0x84], code)
    # 3000 mV, LilyGO's modem supply, is 0x66 in DC_VOL2_CTRL
    p.set_voltage("DC3", 3000)
    assert bus.regs[0x84] == 0x66


def test_dc3_decodes_every_code_as_xpowerslib_does():
    # getDC3Voltage: code < 71: code*10 + 500; code < 88: code*20 - 200; else code*100 - 7200
    bus, p = pmu()
    for code in range(0, 107):
        bus.regs[0x84] = code
        if code < 71:
            want = code * 10 + 500
        elif code < 88:
            want = code * 20 - 200
        else:
            want = code * 100 - 7200
        assert p.voltage("DC3") == want, (code, p.voltage("DC3"), want)
        # and every voltage the table can produce encodes back to its code
        p.set_voltage("DC3", want)
        assert bus.regs[0x84] == code


def test_ldo_and_other_dc_voltages():
    bus, p = pmu()
    # set*LDO*Voltage: (mV - 500) / 100 in bits 4-0
    p.set_voltage("BLDO1", 3300)
    assert bus.regs[0x96] == 28
    p.set_voltage("bldo2", 3300)
    assert bus.regs[0x97] == 28
    p.set_voltage("ALDO1", 1800)
    assert bus.regs[0x92] == 13
    p.set_voltage("ALDO4", 3500)
    assert bus.regs[0x95] == 30
    p.set_voltage("DLDO1", 3400)
    assert bus.regs[0x99] == 29
    p.set_voltage("DLDO2", 500)
    assert bus.regs[0x9A] == 0
    # setDC1Voltage: (mV - 1500) / 100
    p.set_voltage("DC1", 3300)
    assert bus.regs[0x82] == 18
    # setDC5Voltage: 1200 mV is the special code 0x19, else (mV - 1400) / 100
    p.set_voltage("DC5", 1200)
    assert bus.regs[0x86] == 0x19 and p.voltage("DC5") == 1200
    p.set_voltage("DC5", 3300)
    assert bus.regs[0x86] == 19 and p.voltage("DC5") == 3300
    # setDC2Voltage / setDC4Voltage: the second range starts at code 71 (1220 mV)
    p.set_voltage("DC2", 1540)
    assert bus.regs[0x83] == 87
    p.set_voltage("DC4", 1840)
    assert bus.regs[0x85] == 102
    assert p.voltage("DC4") == 1840 and p.voltage("BLDO1") == 3300 and p.voltage("DC1") == 3300


def test_voltage_writes_keep_the_other_bits():
    # setDC3Voltage keeps bit 7 (val &= 0x80); the LDO setters keep bits 7-5 (& 0xE0)
    bus, p = pmu()
    bus.regs[0x84] = 0x80 | 5
    p.set_voltage("DC3", 3000)
    assert bus.regs[0x84] == 0x80 | 0x66
    assert p.voltage("DC3") == 3000
    bus.regs[0x96] = 0xE0 | 3
    p.set_voltage("BLDO1", 3300)
    assert bus.regs[0x96] == 0xE0 | 28
    assert p.voltage("BLDO1") == 3300


def test_bad_voltages_and_rails_say_what_is_allowed():
    bus, p = pmu()
    expect_value_error(lambda: p.set_voltage("DC3", 3050), "DC3", "3050", "1600-3400 mV in 100 mV steps")
    expect_value_error(lambda: p.set_voltage("DC3", 1210), "DC3", "1220-1540 mV in 20 mV steps")
    expect_value_error(lambda: p.set_voltage("BLDO1", 3600), "BLDO1", "500-3500 mV")
    expect_value_error(lambda: p.set_voltage("DLDO1", 3500), "DLDO1", "500-3400 mV")
    expect_value_error(lambda: p.set_voltage("DC1", 1400), "DC1", "1500-3400 mV")
    expect_value_error(lambda: p.enable("DC6"), "unknown AXP2101 rail", "DC3", "BLDO1")
    # nothing was written by the refused calls
    assert bus.writes == []


def test_enable_bits():
    # DC_ONOFF_DVM_CTRL 0x80 bits 0-4 = DC1-5; LDO_ONOFF_CTRL0 0x90 bit 0-3 ALDO1-4, 4-5 BLDO1-2,
    # 6 CPUSLDO, 7 DLDO1; LDO_ONOFF_CTRL1 0x91 bit 0 DLDO2
    bus, p = pmu()
    bus.regs[0x80] = 0x01  # DC1 (the ESP32-S3's supply) is on and must stay on
    p.enable("DC3")
    assert bus.regs[0x80] == 0x05 and p.enabled("DC3") and p.enabled("DC1")
    p.disable("DC3")
    assert bus.regs[0x80] == 0x01 and not p.enabled("DC3")
    for name, reg, bit in (("DC5", 0x80, 4), ("ALDO1", 0x90, 0), ("ALDO4", 0x90, 3), ("BLDO1", 0x90, 4),
                           ("BLDO2", 0x90, 5), ("DLDO1", 0x90, 7), ("DLDO2", 0x91, 0)):
        before = bus.regs[reg]
        p.enable(name)
        assert bus.regs[reg] == before | (1 << bit), (name, bus.regs[reg])
        p.enable(name, False)
        assert bus.regs[reg] == before & ~(1 << bit), name


def test_battery_voltage_and_charge_state():
    bus, p = pmu()
    assert p.battery_mv() is None and p.battery_percent() is None  # STATUS1 bit 3 clear: no battery
    bus.regs[0x00] = 0x08
    # getBattVoltage: readRegisterH5L8(ADC_DATA_RELUST0, RELUST1) = (h & 0x1F) << 8 | l, in mV
    bus.regs[0x34] = 0xE0 | 0x0F
    bus.regs[0x35] = 0xA0
    assert p.battery_mv() == 4000
    bus.regs[0xA4] = 87
    assert p.battery_percent() == 87
    # STATUS2: bits 7-5 current direction (1 = charging), bits 2-0 xpowers_chg_status_t
    bus.regs[0x01] = (1 << 5) | 2
    assert p.charging() and p.charge_state() == "cc"
    bus.regs[0x01] = (2 << 5) | 5
    assert not p.charging() and p.charge_state() == "stopped"
    bus.regs[0x01] = 4
    assert p.charge_state() == "done"


def test_measurement_setup_matches_xpowerslib():
    bus, p = pmu()
    bus.regs[0x50] = 0x07  # TS pin as the NTC input (enableTSPinMeasure's pattern)
    bus.regs[0x30] = 0x02
    p.ts_pin_off()
    # disableTSPinMeasure: TS_PIN_CTRL = (v & 0xF0) | 0x10; ADC_CHANNEL_CTRL bit 1 cleared
    assert bus.regs[0x50] == 0x10 and bus.regs[0x30] == 0x00
    p.measure_battery()
    # enableBattDetection (BAT_DET_CTRL 0x68 bit 0), enableBattVoltageMeasure (0x30 bit 0)
    assert bus.regs[0x68] & 1 and bus.regs[0x30] == 0x01


def test_tables_are_literals():
    # the rail table is a tuple (frozen with the module), and covers the rails board files name
    assert isinstance(axp2101.RAILS, tuple)
    for r in ("DC1", "DC2", "DC3", "DC4", "DC5", "ALDO1", "ALDO2", "ALDO3", "ALDO4", "BLDO1", "BLDO2",
              "DLDO1", "DLDO2"):
        assert axp2101.rail(r)[0] == r

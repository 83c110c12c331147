# X-Powers AXP2101 PMU: the rails' voltages and switches, battery voltage and charge state.
# Handed its bus: AXP2101(i2c, addr=0x34). Register map and encodings from XPowersLib
# (lewisxhe/XPowersLib src/REG/AXP2101Constants.h, src/XPowersAXP2101.hpp, which was .tpp);
# the constant names in the comments are XPowersLib's (prefix XPOWERS_AXP2101_ left off).
from micropython import const

CHIP_ID = const(0x4A)  # CHIP_ID, read from IC_TYPE
_STATUS1 = const(0x00)  # STATUS1: bit 3 battery present (isBatteryConnect)
_STATUS2 = const(0x01)  # STATUS2: bits 7-5 current direction, bits 2-0 charger state
_IC_TYPE = const(0x03)  # IC_TYPE
_ADC_CTRL = const(0x30)  # ADC_CHANNEL_CTRL: bit 0 battery voltage, bit 1 TS pin
_VBAT_H = const(0x34)  # ADC_DATA_RELUST0 (bits 12-8, mV) and ADC_DATA_RELUST1 (bits 7-0)
_VBAT_L = const(0x35)
_TS_CTRL = const(0x50)  # TS_PIN_CTRL
_BAT_DET = const(0x68)  # BAT_DET_CTRL: bit 0 battery detection
_BAT_PERCENT = const(0xA4)  # BAT_PERCENT_DATA

# voltage segments (min mV, max mV, step mV, first register code), from the *_VOL_MIN / _MAX /
# _STEPS / _STEPS*_BASE constants and setDCxVoltage / getDCxVoltage
_DC1 = ((1500, 3400, 100, 0),)
_DC2 = ((500, 1200, 10, 0), (1220, 1540, 20, 71))
_DC3 = ((500, 1200, 10, 0), (1220, 1540, 20, 71), (1600, 3400, 100, 88))
_DC4 = ((500, 1200, 10, 0), (1220, 1840, 20, 71))
_DC5 = ((1200, 1200, 100, 0x19), (1400, 3700, 100, 0))  # DCDC5_VOL_1200MV is code DCDC5_VOL_VAL
_LDO35 = ((500, 3500, 100, 0),)  # ALDO1-4, BLDO1-2
_LDO34 = ((500, 3400, 100, 0),)  # DLDO1-2

# name, on/off register, bit, voltage register, voltage field mask, segments.
# DC_ONOFF_DVM_CTRL 0x80 bits 0-4 (enableDC1..5), LDO_ONOFF_CTRL0 0x90 bits 0-5 and 7 (ALDO1-4,
# BLDO1-2, DLDO1), LDO_ONOFF_CTRL1 0x91 bit 0 (DLDO2); DC_VOL0-4_CTRL 0x82-0x86,
# LDO_VOL0-5_CTRL 0x92-0x97, LDO_VOL7-8_CTRL 0x99-0x9A. Bits outside the mask are kept.
RAILS = (
    ("DC1", 0x80, 0, 0x82, 0x1F, _DC1),
    ("DC2", 0x80, 1, 0x83, 0x7F, _DC2),
    ("DC3", 0x80, 2, 0x84, 0x7F, _DC3),
    ("DC4", 0x80, 3, 0x85, 0x7F, _DC4),
    ("DC5", 0x80, 4, 0x86, 0x1F, _DC5),
    ("ALDO1", 0x90, 0, 0x92, 0x1F, _LDO35),
    ("ALDO2", 0x90, 1, 0x93, 0x1F, _LDO35),
    ("ALDO3", 0x90, 2, 0x94, 0x1F, _LDO35),
    ("ALDO4", 0x90, 3, 0x95, 0x1F, _LDO35),
    ("BLDO1", 0x90, 4, 0x96, 0x1F, _LDO35),
    ("BLDO2", 0x90, 5, 0x97, 0x1F, _LDO35),
    ("DLDO1", 0x90, 7, 0x99, 0x1F, _LDO34),
    ("DLDO2", 0x91, 0, 0x9A, 0x1F, _LDO34),
)

# STATUS2 bits 2-0 (xpowers_chg_status_t): tri_charge, pre_charge, constant current, constant
# voltage, charge done, not charging
CHARGE_STATES = ("trickle", "precharge", "cc", "cv", "done", "stopped")


def rail(name):
    # the RAILS entry of a rail name ("DC3", "bldo1")
    n = name.upper()
    for r in RAILS:
        if r[0] == n:
            return r
    raise ValueError("unknown AXP2101 rail %r: use one of %s" % (name, " ".join(r[0] for r in RAILS)))


def encode(name, mv):
    # the register code of a voltage on a rail; ValueError names the rail's range and steps
    for lo, hi, step, base in rail(name)[5]:
        if lo <= mv <= hi and (mv - lo) % step == 0:
            return base + (mv - lo) // step
    raise ValueError("%s cannot be set to %s mV: it takes %s" % (
        rail(name)[0], mv, ", ".join("%d-%d mV in %d mV steps" % s[:3] for s in rail(name)[5])))


def decode(name, code):
    # the voltage (mV) of a register code, or None for a code outside the rail's table
    for lo, hi, step, base in rail(name)[5]:
        if base <= code <= base + (hi - lo) // step:
            return lo + (code - base) * step
    return None


class AXP2101:
    def __init__(self, i2c, addr=0x34):
        # raises OSError when nothing answers at addr, ValueError when it is not an AXP2101
        self.i2c = i2c
        self.addr = addr
        self._b = bytearray(1)
        cid = self.read(_IC_TYPE)
        if cid != CHIP_ID:
            raise ValueError("the chip at 0x%02x is not an AXP2101 (chip id 0x%02x, expected 0x%02x)"
                             % (addr, cid, CHIP_ID))

    def read(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._b)
        return self._b[0]

    def write(self, reg, value):
        self._b[0] = value
        self.i2c.writeto_mem(self.addr, reg, self._b)

    def _update(self, reg, mask, bits):
        # read-modify-write: the bits under mask become bits
        v = self.read(reg)
        self.write(reg, (v & ~mask & 0xFF) | (bits & mask))

    # ---- rails ----
    def set_voltage(self, name, mv):
        r = rail(name)
        self._update(r[3], r[4], encode(name, mv))

    def voltage(self, name):
        r = rail(name)
        return decode(name, self.read(r[3]) & r[4])

    def enable(self, name, on=True):
        r = rail(name)
        self._update(r[1], 1 << r[2], (1 << r[2]) if on else 0)

    def disable(self, name):
        self.enable(name, False)

    def enabled(self, name):
        r = rail(name)
        return bool(self.read(r[1]) >> r[2] & 1)

    # ---- battery ----
    def measure_battery(self):
        # battery detection and the battery-voltage ADC channel on (enableBattDetection,
        # enableBattVoltageMeasure)
        self._update(_BAT_DET, 1, 1)
        self._update(_ADC_CTRL, 1, 1)

    def ts_pin_off(self):
        # no NTC on the TS pin: charging stalls unless its measurement is off (disableTSPinMeasure:
        # TS_PIN_CTRL bits 3-0 cleared and bit 4 set, ADC_CHANNEL_CTRL bit 1 cleared)
        self.write(_TS_CTRL, (self.read(_TS_CTRL) & 0xF0) | 0x10)
        self._update(_ADC_CTRL, 2, 0)

    def battery_present(self):
        return bool(self.read(_STATUS1) >> 3 & 1)

    def battery_mv(self):
        # battery voltage in mV (getBattVoltage: 13 bits, 1 mV a step), None without a battery
        if not self.battery_present():
            return None
        return (self.read(_VBAT_H) & 0x1F) << 8 | self.read(_VBAT_L)

    def battery_percent(self):
        # the fuel gauge's estimate, None without a battery
        if not self.battery_present():
            return None
        return self.read(_BAT_PERCENT)

    def charge_state(self):
        # one of CHARGE_STATES (getChargerStatus)
        s = self.read(_STATUS2) & 7
        return CHARGE_STATES[s] if s < len(CHARGE_STATES) else s

    def charging(self):
        # STATUS2 bits 7-5 == 1: current flows into the battery (isCharging)
        return self.read(_STATUS2) >> 5 == 1

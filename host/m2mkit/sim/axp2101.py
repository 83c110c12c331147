"""A register model of the X-Powers AXP2101 PMU (I2C 0x34) for the simulated bus (sim/bus.py).

Facts from lewisxhe/XPowersLib (commit 830eb6bf, 2026-02): src/REG/AXP2101Constants.h (addresses,
chip id, voltage ranges and steps) and src/XPowersAXP2101.hpp (which bit is which, how voltages are
coded, how the ADC results are read: `readRegisterH5L8` / `readRegisterH6L8` in src/XPowersCommon.hpp).

Modelled: chip id (0x03 = 0x4A); the DC-DC and LDO enable bits (0x80, 0x90, 0x91) and voltage
registers (0x82-0x86, 0x92-0x9A) decoded to millivolts; STATUS1 / STATUS2 (battery present, VBUS,
charging / discharging / standby, charger state); the ADC channel enable (0x30) and the battery, VBUS
and system voltage results (0x34-0x3B). Every other register reads back what was written.
Not modelled: interrupts, the fuel gauge, charging dynamics, the power key, sleep, the watchdog.

Power-on state (a board's AXP2101 OTP defaults are unpublished: ASSUMED docs/ASSUMED.md#A-AXP2101-OTP):
DC1 on (it feeds the ESP32), every other rail off at its lowest code, ADC channels off.
"""

import threading

from .bus import RegisterDevice

ADDRESS = 0x34  # AXP2101_SLAVE_ADDRESS
CHIP_ID = 0x4A  # XPOWERS_AXP2101_CHIP_ID, read from IC_TYPE
REG_STATUS1, REG_STATUS2, REG_IC_TYPE = 0x00, 0x01, 0x03
REG_ADC_CTRL = 0x30  # bit0 battery voltage, bit2 VBUS, bit3 system voltage
REG_VBAT_H, REG_VBAT_L = 0x34, 0x35  # ADC_DATA_RELUST0/1: 13-bit mV (H5L8)
REG_VBUS_H, REG_VBUS_L = 0x38, 0x39  # ADC_DATA_RELUST4/5: 14-bit mV (H6L8)
REG_VSYS_H, REG_VSYS_L = 0x3A, 0x3B  # ADC_DATA_RELUST6/7: 14-bit mV (H6L8)
REG_DC_ONOFF = 0x80   # DC_ONOFF_DVM_CTRL: bit0..4 = DC1..DC5
REG_LDO_ONOFF0 = 0x90  # LDO_ONOFF_CTRL0: bit0..3 ALDO1..4, bit4 BLDO1, bit5 BLDO2, bit6 CPUSLDO, bit7 DLDO1
REG_LDO_ONOFF1 = 0x91  # LDO_ONOFF_CTRL1: bit0 DLDO2

CHG_STATES = ("tri", "pre", "cc", "cv", "done", "stop")  # STATUS2 bits 2:0 (xpowers_chg_status_t)
BAT_CURRENT_DIR = {"standby": 0, "charging": 1, "discharging": 2}  # STATUS2 bits 7:5


def _dc1(code):
    return 1500 + 100 * code  # 1.5-3.4 V, 100 mV steps


def _dc23(code):
    # DC2 / DC3: 0.5-1.2 V in 10 mV steps (codes 0-70), 1.22-1.54 V in 20 mV (71-87),
    # DC3 only: 1.6-3.4 V in 100 mV (88-106). XPowersAXP2101.hpp getDC3Voltage().
    if code < 71:
        return 500 + 10 * code
    if code < 88:
        return code * 20 - 200
    return code * 100 - 7200


def _dc4(code):
    return 500 + 10 * code if code < 71 else code * 20 - 200  # up to 1.84 V


def _dc5(code):
    return 1400 + 100 * code  # 1.4-3.7 V (code 0x19 is the 1.2 V setting, not modelled)


def _ldo(code):
    return 500 + 100 * code  # ALDO1-4, BLDO1-2, DLDO1-2: 0.5-3.5 V, 100 mV steps


def _cpusldo(code):
    return 500 + 50 * code  # 0.5-1.4 V, 50 mV steps


# name: (enable register, bit, voltage register, code mask, code -> mV, max mV)
RAILS = {
    "DC1": (REG_DC_ONOFF, 0, 0x82, 0x1F, _dc1, 3400),
    "DC2": (REG_DC_ONOFF, 1, 0x83, 0x7F, _dc23, 1540),
    "DC3": (REG_DC_ONOFF, 2, 0x84, 0x7F, _dc23, 3400),
    "DC4": (REG_DC_ONOFF, 3, 0x85, 0x7F, _dc4, 1840),
    "DC5": (REG_DC_ONOFF, 4, 0x86, 0x1F, _dc5, 3700),
    "ALDO1": (REG_LDO_ONOFF0, 0, 0x92, 0x1F, _ldo, 3500),
    "ALDO2": (REG_LDO_ONOFF0, 1, 0x93, 0x1F, _ldo, 3500),
    "ALDO3": (REG_LDO_ONOFF0, 2, 0x94, 0x1F, _ldo, 3500),
    "ALDO4": (REG_LDO_ONOFF0, 3, 0x95, 0x1F, _ldo, 3500),
    "BLDO1": (REG_LDO_ONOFF0, 4, 0x96, 0x1F, _ldo, 3500),
    "BLDO2": (REG_LDO_ONOFF0, 5, 0x97, 0x1F, _ldo, 3500),
    "CPUSLDO": (REG_LDO_ONOFF0, 6, 0x98, 0x1F, _cpusldo, 1400),
    "DLDO1": (REG_LDO_ONOFF0, 7, 0x99, 0x1F, _ldo, 3400),
    "DLDO2": (REG_LDO_ONOFF1, 0, 0x9A, 0x1F, _ldo, 3400),
}


class AXP2101(RegisterDevice):
    """`bus.i2c[(0, 0x34)] = pmu = AXP2101(battery_mv=3900)`; `pmu.listeners.append(fn)` calls
    fn(pmu) after every write (the modem simulator's supply follows DC3 / BLDO1 that way)."""

    def __init__(self, battery_mv=3900, vbus_mv=None, charge="stop", dc1_mv=3300):
        super().__init__({REG_IC_TYPE: CHIP_ID, REG_DC_ONOFF: 0x01, 0x82: (dc1_mv - 1500) // 100})
        self.battery_mv = battery_mv  # None: no battery
        self.vbus_mv = vbus_mv        # None: no USB / VBUS input
        self.charge = charge          # one of CHG_STATES
        self.listeners = []
        self.writes = []              # (register, value) in order, for tests
        self._lock = threading.RLock()

    # ---- what the rest of the simulation reads --------------------------------------------------
    def rail_on(self, name):
        reg, bit = RAILS[name][:2]
        return bool(self.regs[reg] >> bit & 1)

    def rail_mv(self, name):
        """The rail's output in mV, 0 when it is off."""
        reg, bit, vreg, mask, decode, top = RAILS[name]
        if not self.regs[reg] >> bit & 1:
            return 0
        return min(decode(self.regs[vreg] & mask), top)  # ASSUMED docs/ASSUMED.md#A-AXP2101-CLAMP

    def rails(self):
        return {n: self.rail_mv(n) for n in RAILS}

    # ---- I2C ------------------------------------------------------------------------------------
    def write(self, data):
        with self._lock:
            if not data:
                return
            self.ptr = data[0]
            for b in data[1:]:
                if self.ptr not in (REG_IC_TYPE, REG_STATUS1, REG_STATUS2) and not 0x34 <= self.ptr <= 0x3D:
                    self.regs[self.ptr] = b  # status, id and ADC results are read-only
                self.writes.append((self.ptr, b))
                self.ptr = (self.ptr + 1) & 0xFF
            wrote = len(data) > 1
        if wrote:
            for fn in list(self.listeners):
                fn(self)

    def read(self, n):
        with self._lock:
            self._refresh()
            return super().read(n)

    def _refresh(self):
        bat = self.battery_mv is not None
        vbus = self.vbus_mv is not None
        r = self.regs
        # STATUS1: bit5 VBUS good, bit3 battery present (XPowersAXP2101.hpp isVbusGood/isBatteryConnect)
        r[REG_STATUS1] = (0x20 if vbus else 0) | (0x08 if bat else 0)
        if not bat or self.charge in ("stop", "done"):
            direction = "discharging" if bat and not vbus else "standby"
        else:
            direction = "charging"
        # STATUS2: bits 7:5 current direction, bits 2:0 charger state (bit3 is left 0: isVbusIn()
        # reads it as 0 and then follows STATUS1's VBUS good)
        r[REG_STATUS2] = (BAT_CURRENT_DIR[direction] << 5) | CHG_STATES.index(self.charge)
        adc = r[REG_ADC_CTRL]
        # ADC results hold 0 until their channel is enabled: ASSUMED docs/ASSUMED.md#A-AXP2101-ADC
        self._put(REG_VBAT_H, REG_VBAT_L, self.battery_mv if bat and adc & 0x01 else 0, 0x1F)
        self._put(REG_VBUS_H, REG_VBUS_L, self.vbus_mv if vbus and adc & 0x04 else 0, 0x3F)
        vsys = max(self.battery_mv or 0, self.vbus_mv or 0)
        self._put(REG_VSYS_H, REG_VSYS_L, vsys if adc & 0x08 else 0, 0x3F)

    def _put(self, hi, lo, mv, mask):
        self.regs[hi] = (int(mv) >> 8) & mask
        self.regs[lo] = int(mv) & 0xFF


def link_modem(pmu, modem_sim, supply_rail="DC3", uart_rail="BLDO1"):
    """Make the modem simulator's supply follow the PMU: VBAT from `supply_rail`, its UART level
    shifter from `uart_rail` (LilyGO T-SIM7080G-S3: DC3 and BLDO1)."""

    def follow(p):
        modem_sim.set_supply(mv=p.rail_mv(supply_rail), uart_mv=p.rail_mv(uart_rail))

    pmu.listeners.append(follow)
    follow(pmu)
    return follow

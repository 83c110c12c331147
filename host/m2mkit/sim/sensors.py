"""Simulated sensors at register level for the bus (m2mkit.sim.bus): the firmware's real drivers run
against them through the virtual device's hal.

- BME280: chip id 0x60, calibration words in 0x88-0xA1 / 0xE1-0xE7 (datasheet table 16), forced
  mode through ctrl_meas, raw results in 0xF7-0xFE. The raw values for a wanted temperature /
  humidity / pressure are found by inverting the datasheet's floating-point formulas (BST-BME280-DS002
  section 8.1), not the integer ones a device driver uses. The default calibration and raw readings
  are the BMP280 datasheet's worked example (BST-BMP280-DS001 section 3.12: dig_T1..dig_P9,
  adc_T 519888, adc_P 415148 -> 25.08 degC, 100653.27 Pa: ASSUMED docs/ASSUMED.md#A-BMP280-EXAMPLE,
  the table could not be retrieved; the BME280 reads temperature and pressure
  as the BMP280 does, BME280 datasheet 5.2); the humidity words are a plausible set (the datasheet
  gives no example).
- SHT4x: commands 0xFD (measure, high repeatability), 0x89 (serial number), 0x94 (soft reset); two
  16-bit words each followed by its CRC-8 (0x31, init 0xFF); ticks from the datasheet's conversion
  formulas (SHT4x datasheet 4.4-4.6). `corrupt` flips the CRC of the next answers.
- DS18B20: a 1-Wire ROM (family 0x28 and its Dallas CRC), MATCH ROM / SKIP ROM, CONVERT T, READ
  SCRATCHPAD (9 bytes with CRC; power-on value 85 degC until a conversion). The conversion is
  instantaneous (the 750 ms wait is the firmware's).
- Pulse source: `PulseSource(bus, pin).pulse(n, bounce=0)` drives the input pin low and high n times
  (plus `bounce` extra short edges per press, at the same instant as the press) as BusSim.set_pin
  edges, which the stand-in's Pin.irq delivers.
Not modelled: bus timing, conversion times, oversampling / IIR filter settings (results are the
x1 values), sleep and normal modes of the BME280, the SHT4x heater, DS18B20 alarms and resolutions
other than 12 bits, parasite power.
"""

import struct

from .bus import OneWireDevice, RegisterDevice

# BMP280 datasheet 3.12 worked example: dig_T1..T3, dig_P1..P9
EXAMPLE_T = (27504, 26435, -1000)
EXAMPLE_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
EXAMPLE_ADC_T, EXAMPLE_ADC_P = 519888, 415148
PLAUSIBLE_H = (75, 362, 0, 324, 50, 30)  # dig_H1..H6


def _crc8_31(data):
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc8_maxim(data):
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


class BME280(RegisterDevice):
    def __init__(self, T=EXAMPLE_T, P=EXAMPLE_P, H=PLAUSIBLE_H, chip_id=0x60):
        super().__init__({0xD0: chip_id})
        self.T, self.P, self.H = T, P, H
        self.regs[0x88:0xA0] = struct.pack("<Hhh Hhhhhhhhh".replace(" ", ""), *T, *P)
        self.regs[0xA1] = H[0]
        h4, h5 = H[3] & 0xFFF, H[4] & 0xFFF
        self.regs[0xE1:0xE8] = struct.pack("<hB", H[1], H[2]) + bytes(
            [h4 >> 4 & 0xFF, (h4 & 0xF) | (h5 & 0xF) << 4, h5 >> 4 & 0xFF, H[5] & 0xFF])
        self.raw = (EXAMPLE_ADC_T, EXAMPLE_ADC_P, 0x6000)  # adc_T, adc_P, adc_H
        self.conversions = 0
        self.results(*self.raw, latch=False)

    # ---- the datasheet's double-precision formulas (section 8.1) ----
    def t_fine(self, adc_t):
        T1, T2, T3 = self.T
        v1 = (adc_t / 16384.0 - T1 / 1024.0) * T2
        v2 = (adc_t / 131072.0 - T1 / 8192.0) ** 2 * T3
        return v1 + v2

    def temperature(self, adc_t):
        return self.t_fine(adc_t) / 5120.0

    def pressure(self, adc_p, adc_t):
        P1, P2, P3, P4, P5, P6, P7, P8, P9 = self.P
        v1 = int(self.t_fine(adc_t)) / 2.0 - 64000.0
        v2 = v1 * v1 * P6 / 32768.0
        v2 = v2 + v1 * P5 * 2.0
        v2 = v2 / 4.0 + P4 * 65536.0
        v1 = (P3 * v1 * v1 / 524288.0 + P2 * v1) / 524288.0
        v1 = (1.0 + v1 / 32768.0) * P1
        p = 1048576.0 - adc_p
        p = (p - v2 / 4096.0) * 6250.0 / v1
        v1 = P9 * p * p / 2147483648.0
        v2 = p * P8 / 32768.0
        return p + (v1 + v2 + P7) / 16.0

    def humidity(self, adc_h, adc_t):
        H1, H2, H3, H4, H5, H6 = self.H
        h = int(self.t_fine(adc_t)) - 76800.0
        h = (adc_h - (H4 * 64.0 + H5 / 16384.0 * h)) * (
            H2 / 65536.0 * (1.0 + H6 / 67108864.0 * h * (1.0 + H3 / 67108864.0 * h)))
        h = h * (1.0 - H1 * h / 524288.0)
        return min(max(h, 0.0), 100.0)

    @staticmethod
    def _solve(f, want, lo, hi, rising=True):
        for _ in range(40):
            mid = (lo + hi) // 2
            if (f(mid) < want) == rising:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1:
                break
        return lo if abs(f(lo) - want) <= abs(f(hi) - want) else hi

    def set(self, temperature=None, humidity=None, pressure=None):
        """Raw results that read back as these values (degC, %RH, Pa)."""
        adc_t, adc_p, adc_h = self.raw
        if temperature is not None:
            adc_t = self._solve(self.temperature, temperature, 0, (1 << 20) - 1)
        if pressure is not None:  # pressure falls as adc_P rises
            adc_p = self._solve(lambda a: self.pressure(a, adc_t), pressure, 0, (1 << 20) - 1, rising=False)
        if humidity is not None:
            adc_h = self._solve(lambda a: self.humidity(a, adc_t), humidity, 0, 0xFFFF)
        self.results(adc_t, adc_p, adc_h, latch=False)

    def results(self, adc_t, adc_p, adc_h, latch=True):
        self.raw = (adc_t, adc_p, adc_h)
        if latch:
            self._latch()

    def _latch(self):
        adc_t, adc_p, adc_h = self.raw
        self.regs[0xF7:0xFF] = bytes([adc_p >> 12 & 0xFF, adc_p >> 4 & 0xFF, (adc_p & 0xF) << 4,
                                      adc_t >> 12 & 0xFF, adc_t >> 4 & 0xFF, (adc_t & 0xF) << 4,
                                      adc_h >> 8, adc_h & 0xFF])

    def write(self, data):
        super().write(data)
        if len(data) >= 2 and data[0] == 0xF4 and data[1] & 3 == 1:  # forced mode: one conversion
            self.conversions += 1
            self._latch()
            self.regs[0xF4] &= ~3 & 0xFF  # back to sleep mode when done
        elif len(data) >= 2 and data[0] == 0xE0 and data[1] == 0xB6:  # soft reset
            self.regs[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00"


class SHT4x:
    def __init__(self, temperature=21.5, humidity=45.0, serial=0x0C4D8E2A):
        self.temperature, self.humidity, self.serial = temperature, humidity, serial
        self.out = b""
        self.corrupt = 0  # answers still to send with a wrong CRC

    @staticmethod
    def ticks(temperature, humidity):
        st = round((temperature + 45) * 65535 / 175)
        srh = round((humidity + 6) * 65535 / 125)
        return min(max(st, 0), 65535), min(max(srh, 0), 65535)

    def _words(self, a, b):
        out = bytearray()
        for w in (a, b):
            d = w.to_bytes(2, "big")
            crc = _crc8_31(d)
            if self.corrupt:
                crc ^= 0x01
            out += d + bytes([crc])
        if self.corrupt:
            self.corrupt -= 1
        return bytes(out)

    def write(self, data):
        if not data:
            return
        cmd = data[0]
        if cmd == 0xFD:
            self.out = self._words(*self.ticks(self.temperature, self.humidity))
        elif cmd == 0x89:
            self.out = self._words(self.serial >> 16, self.serial & 0xFFFF)
        elif cmd == 0x94:
            self.out = b""

    def read(self, n):
        out, self.out = self.out[:n], self.out[n:]
        return out + b"\xff" * (n - len(out))  # nothing measured: a NACKed read reads as ones


class DS18B20(OneWireDevice):
    def __init__(self, serial=b"\x01\x02\x03\x04\x05\x06", temperature=21.0):
        rom = b"\x28" + bytes(serial)
        super().__init__(rom + bytes([_crc8_maxim(rom)]), self._handle)
        self.temperature = temperature
        self.t_reg = 0x0550  # power-on value, +85 degC
        self.corrupt = 0
        self.bus_reset()

    def bus_reset(self):
        self.mode = "rom"  # expecting a ROM command
        self.selected = False
        self.rx = b""

    def scratchpad(self):
        t = self.t_reg & 0xFFFF
        sp = bytes([t & 0xFF, t >> 8, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10])
        crc = _crc8_maxim(sp)
        if self.corrupt:
            self.corrupt -= 1
            crc ^= 0x01
        return sp + bytes([crc])

    def _handle(self, written):
        out = b""
        for b in written:
            if self.mode == "rom":
                if b == 0xCC:  # SKIP ROM
                    self.selected, self.mode = True, "fn"
                elif b == 0x55:  # MATCH ROM: the next 8 bytes
                    self.mode, self.rx = "match", b""
                else:
                    self.mode = "idle"
            elif self.mode == "match":
                self.rx += bytes([b])
                if len(self.rx) == 8:
                    self.selected = self.rx == self.rom
                    self.mode = "fn"
            elif self.mode == "fn" and self.selected:
                if b == 0x44:  # CONVERT T
                    self.t_reg = round(self.temperature * 16) & 0xFFFF
                elif b == 0xBE:  # READ SCRATCHPAD
                    out += self.scratchpad()
                self.mode = "idle"
        return out


class PulseSource:
    """A meter's pulse output on an input pin (idle high, a pulse pulls it low)."""

    def __init__(self, bus, pin):
        self.bus, self.pin = bus, pin
        bus.set_pin(pin, 1)

    def pulse(self, n=1, bounce=0):
        for _ in range(n):
            # a bouncing contact: its edges at one instant, whatever the time scale (one set_pin)
            self.bus.set_pin(self.pin, *(0, 1) * (bounce + 1))

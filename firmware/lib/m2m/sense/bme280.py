# Bosch BME280 over I2C, forced mode, x1 oversampling. Compensation: the integer formulas of the
# BME280 datasheet (BST-BME280-DS002, 4.2.3: temperature int32, pressure int64, humidity int32;
# calibration layout table 16) as in Bosch's BME280_driver (github.com/boschsensortec/BME280_driver
# bme280.c compensate_temperature / compensate_pressure / compensate_humidity, integer build).
from micropython import const

from m2m.sense import SensorError

_CHIP_ID = const(0x60)  # register 0xD0 "id" (datasheet 5.4.1)
_SKIPPED = const(0x80000)  # a 20-bit result read while that measurement is off or not done


def _s16(v):
    return v - 65536 if v & 0x8000 else v


def _s8(v):
    return v - 256 if v & 0x80 else v


class BME280:
    QUANT = ("temperature", "humidity", "pressure")
    RANGE = ((-40, 85), (0, 100), (30000, 110000))  # operating range, datasheet table 1

    def __init__(self, i2c, addr=0x76):
        self.i2c = i2c
        self.addr = addr
        cid = i2c.readfrom_mem(addr, 0xD0, 1)[0]  # OSError(19) when nothing answers
        if cid != _CHIP_ID:
            raise SensorError("0x%02x is not a BME280 (chip id 0x%02x, want 0x60)" % (addr, cid))
        c = i2c.readfrom_mem(addr, 0x88, 26)
        w = [c[i] | c[i + 1] << 8 for i in range(0, 24, 2)]
        self.T = (w[0], _s16(w[1]), _s16(w[2]))
        self.P = (w[3],) + tuple(_s16(x) for x in w[4:12])
        h = i2c.readfrom_mem(addr, 0xE1, 7)
        # dig_H4 = E4[7:0] E5[3:0], dig_H5 = E6[7:0] E5[7:4], both signed 12-bit (the MSB byte signed)
        self.H = (c[25], _s16(h[0] | h[1] << 8), h[2], _s8(h[3]) * 16 | (h[4] & 0x0F),
                  _s8(h[5]) * 16 | (h[4] >> 4), _s8(h[6]))
        self._buf = bytearray(8)

    def start(self):
        # ctrl_hum (0xF2) before ctrl_meas (0xF4): osrs_h x1; osrs_t x1, osrs_p x1, forced mode
        self.i2c.writeto_mem(self.addr, 0xF2, b"\x01")
        self.i2c.writeto_mem(self.addr, 0xF4, b"\x25")
        return 10  # t_measure max 9.3 ms at x1/x1/x1 (datasheet 9.1)

    def read(self):
        if self.i2c.readfrom_mem(self.addr, 0xF3, 1)[0] & 0x08:
            raise SensorError("BME280 still measuring")
        b = self._buf
        self.i2c.readfrom_mem_into(self.addr, 0xF7, b)
        adc_p = b[0] << 12 | b[1] << 4 | b[2] >> 4
        adc_t = b[3] << 12 | b[4] << 4 | b[5] >> 4
        adc_h = b[6] << 8 | b[7]
        if adc_t == _SKIPPED or adc_p == _SKIPPED or adc_h == 0x8000:
            raise SensorError("BME280 returned no measurement (forced mode not started?)")
        t_fine, t = self.temperature(adc_t)
        return t / 100, self.humidity(adc_h, t_fine) / 1024, self.pressure(adc_p, t_fine) / 256

    def temperature(self, adc_t):
        # (t_fine, temperature in 0.01 degC)
        T1, T2, T3 = self.T
        v1 = (((adc_t >> 3) - (T1 << 1)) * T2) >> 11
        v2 = (((((adc_t >> 4) - T1) * ((adc_t >> 4) - T1)) >> 12) * T3) >> 14
        t_fine = v1 + v2
        return t_fine, (t_fine * 5 + 128) >> 8

    def pressure(self, adc_p, t_fine):
        # Pa in Q24.8 (int64 formula)
        P1, P2, P3, P4, P5, P6, P7, P8, P9 = self.P
        v1 = t_fine - 128000
        v2 = v1 * v1 * P6
        v2 = v2 + ((v1 * P5) << 17)
        v2 = v2 + (P4 << 35)
        v1 = ((v1 * v1 * P3) >> 8) + ((v1 * P2) << 12)
        v1 = (((1 << 47) + v1) * P1) >> 33
        if v1 == 0:
            raise SensorError("BME280 calibration gives a zero divisor")
        p = 1048576 - adc_p
        n = ((p << 31) - v2) * 3125
        p = n // v1 if n >= 0 else -((-n) // v1)  # C division truncates toward zero
        v1 = (P9 * (p >> 13) * (p >> 13)) >> 25
        v2 = (P8 * p) >> 19
        return ((p + v1 + v2) >> 8) + (P7 << 4)

    def humidity(self, adc_h, t_fine):
        # %RH in Q22.10 (int32 formula)
        H1, H2, H3, H4, H5, H6 = self.H
        v = t_fine - 76800
        v = ((((adc_h << 14) - (H4 << 20) - (H5 * v)) + 16384) >> 15) * (
            ((((((v * H6) >> 10) * (((v * H3) >> 11) + 32768)) >> 10) + 2097152) * H2 + 8192) >> 14)
        v = v - (((((v >> 15) * (v >> 15)) >> 7) * H1) >> 4)
        v = 0 if v < 0 else (419430400 if v > 419430400 else v)
        return v >> 12

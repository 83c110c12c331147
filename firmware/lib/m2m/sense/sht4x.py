# Sensirion SHT4x over I2C: high-repeatability measurement (0xFD), two words each followed by a
# CRC-8 (polynomial 0x31, init 0xFF); conversion formulas and command table from the SHT4x datasheet
# (sections 4.4 "Checksum calculation", 4.5 "Command overview", 4.6 "Conversion of signal output";
# the datasheet's check value CRC(0xBEEF) = 0x92 is also in m5stack/M5Unit-ENV src/utility.cpp).
# Waits: 10 ms after 0xFD (high repeatability, 8.3 ms max in the datasheet's timing table) and after
# 0x89 (serial number), as Sensirion's own driver waits (github.com/Sensirion/embedded-i2c-sht4x
# sht4x_i2c.c: sht4x_measure_high_precision_ticks and sht4x_serial_number sleep 10 * 1000 us).
from m2m.sense import SensorError, crc8_31


class SHT4x:
    QUANT = ("temperature", "humidity")
    RANGE = ((-40, 125), (0, 100))

    def __init__(self, i2c, addr=0x44):
        self.i2c = i2c
        self.addr = addr
        self._buf = bytearray(6)
        self.serial = self._cmd(0x89, 10)  # serial number: proves the device is there (OSError 19)

    def _cmd(self, cmd, wait_ms):
        from m2m import hal

        self.i2c.writeto(self.addr, bytes((cmd,)))
        hal.sleep_ms(wait_ms)
        return self._words()

    def _words(self):
        b = self._buf
        self.i2c.readfrom_into(self.addr, b)
        if crc8_31(b[0:2]) != b[2] or crc8_31(b[3:5]) != b[5]:
            raise SensorError("SHT4x CRC mismatch at 0x%02x (%s)" % (self.addr, bytes(b).hex()))
        return b[0] << 8 | b[1], b[3] << 8 | b[4]

    def start(self):
        self.i2c.writeto(self.addr, b"\xfd")
        return 10  # high repeatability: 8.3 ms max; Sensirion's driver waits 10 ms

    def read(self):
        st, srh = self._words()
        rh = -6 + 125 * srh / 65535
        return -45 + 175 * st / 65535, 0.0 if rh < 0 else (100.0 if rh > 100 else rh)

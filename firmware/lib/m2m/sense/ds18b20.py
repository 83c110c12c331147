# Maxim DS18B20 over 1-Wire (hal.OneWire): CONVERT T (0x44), then after the conversion time READ
# SCRATCHPAD (0xBE): 9 bytes, the last a Dallas CRC-8 of the first 8; temperature = int16 / 16 degC
# at 12 bits (DS18B20 datasheet: "Operation - measuring temperature", "Function commands", table of
# the scratchpad, power-on value +85 degC; table 3 "Thermometer resolution configuration": 12 bit,
# 750 ms max conversion time (tCONV), the factory default R1=R0=1); the same commands, family
# code and int16 / 16 as micropython-lib's micropython/drivers/sensor/ds18x20/ds18x20.py.
from m2m.sense import SensorError, crc8_maxim


class DS18B20:
    QUANT = ("temperature",)
    RANGE = ((-55, 125),)

    def __init__(self, ow, rom=None):
        self.ow = ow
        if rom is None:
            roms = [r for r in ow.scan() if r[0] == 0x28]  # family code 0x28
            if not roms:
                raise OSError(19)
            rom = roms[0]
        self.rom = bytes(rom)
        if crc8_maxim(self.rom[:7]) != self.rom[7]:
            raise SensorError("1-Wire ROM %s fails its CRC" % self.rom.hex())
        self._buf = bytearray(9)

    def _select(self):
        if not self.ow.reset():
            raise OSError(19)  # no presence pulse
        self.ow.writebyte(0x55)  # MATCH ROM
        self.ow.write(self.rom)

    def start(self):
        self._select()
        self.ow.writebyte(0x44)
        return 750

    def read(self):
        self._select()
        self.ow.writebyte(0xBE)
        b = self._buf
        self.ow.readinto(b)
        if crc8_maxim(b[:8]) != b[8]:
            raise SensorError("DS18B20 %s scratchpad CRC mismatch (%s)" % (self.rom.hex(), bytes(b).hex()))
        raw = b[0] | b[1] << 8
        if raw == 0x0550:
            # +85 degC is the register's power-on value: no conversion ran (a real 85 degC is lost)
            raise SensorError("DS18B20 %s returned its power-on value (no conversion)" % self.rom.hex())
        return ((raw - 65536 if raw & 0x8000 else raw) / 16,)


def on_pin(pin, rom=None):
    # the driver on a 1-Wire bus at GPIO `pin` (the sampler's opener, m2m.sense.build)
    from m2m import hal

    return DS18B20(hal.OneWire(hal.Pin(pin)), rom)

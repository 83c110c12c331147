# Stand-in of micropython-lib's `onewire` (micropython/drivers/bus/onewire/onewire.py, frozen into
# the ESP32 port by ports/esp32/boards/manifest.py): the same class and methods, no read(n);
# reset(required=True) raises OneWireError. Bytes go over the simulated bus (M2M_BUS); the
# bit-level calls (readbit, writebit) are not modelled.
import _m2m_sim as S


class OneWireError(Exception):
    pass


class OneWire:
    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin):
        self.pin = pin
        self.pin.init(pin.OPEN_DRAIN, pin.PULL_UP)  # an int here fails as on the port

    def _id(self):
        return self.pin._id

    def reset(self, required=False):
        r = S.bus_call("ow_reset", pin=self._id())
        ok = bool(r and r["presence"])
        if required and not ok:
            raise OneWireError
        return ok

    def readbit(self):
        raise OSError(95)  # EOPNOTSUPP: bit-level timing is not modelled

    def writebit(self, value):
        raise OSError(95)

    def _read(self, n):
        r = S.bus_call("ow_read", pin=self._id(), n=n)
        data = bytes.fromhex(r["data"]) if r else b""
        return data + b"\xff" * (n - len(data))  # an idle bus reads as ones

    def readbyte(self):
        return self._read(1)[0]

    def readinto(self, buf):
        data = self._read(len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def writebyte(self, value):
        self.write(bytes((value,)))

    def write(self, buf):
        S.bus_call("ow_write", pin=self._id(), data=bytes(buf).hex())

    def select_rom(self, rom):
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def scan(self):
        r = S.bus_call("ow_scan", pin=self._id())
        return [bytearray(bytes.fromhex(x)) for x in r["roms"]] if r else []

    def crc8(self, data):
        # Dallas/Maxim CRC-8 (extmod/modonewire.c onewire_crc8)
        crc = 0
        for b in data:
            for _ in range(8):
                mix = (crc ^ b) & 1
                crc >>= 1
                if mix:
                    crc ^= 0x8C
                b >>= 1
        return crc

# Test helper (MicroPython): an AXP2101 as 256 8-bit registers behind the two I2C calls a register
# driver uses (readfrom_mem_into / writeto_mem, as machine.I2C). Written from XPowersLib's register
# map (lewisxhe/XPowersLib src/REG/AXP2101Constants.h: IC_TYPE 0x03 reads CHIP_ID 0x4A; slave
# address 0x34), independent of m2m.axp2101. Nothing answers at another address (OSError 19 =
# ENODEV, what the ESP32 port raises for a missing device).


class FakeAXP2101:
    def __init__(self, addr=0x34, chip_id=0x4A, log=None, present=True):
        self.addr = addr
        self.regs = bytearray(256)
        self.regs[0x03] = chip_id
        self.writes = []  # (register, value) in order
        self.log = log  # a shared list: ("i2c", register, value) per written byte
        self.present = present

    def _check(self, addr):
        if not self.present or addr != self.addr:
            raise OSError(19)

    def readfrom_mem_into(self, addr, reg, buf, addrsize=8):
        self._check(addr)
        for i in range(len(buf)):
            buf[i] = self.regs[(reg + i) & 0xFF]

    def readfrom_mem(self, addr, reg, n, addrsize=8):
        buf = bytearray(n)
        self.readfrom_mem_into(addr, reg, buf)
        return bytes(buf)

    def writeto_mem(self, addr, reg, buf, addrsize=8):
        self._check(addr)
        for i in range(len(buf)):
            r = (reg + i) & 0xFF
            self.regs[r] = buf[i]
            self.writes.append((r, buf[i]))
            if self.log is not None:
                self.log.append(("i2c", r, buf[i]))

    # rail state as the fake reads it (XPowersLib: isEnableDC3 = DC_ONOFF_DVM_CTRL 0x80 bit 2,
    # isEnableBLDO1 = LDO_ONOFF_CTRL0 0x90 bit 4, DC3 voltage in DC_VOL2_CTRL 0x84 bits 6-0)
    def dc3_on(self):
        return bool(self.regs[0x80] & 0x04)

    def bldo1_on(self):
        return bool(self.regs[0x90] & 0x10)

    def dc3_mv(self):
        c = self.regs[0x84] & 0x7F
        if c < 71:
            return c * 10 + 500
        if c < 88:
            return c * 20 - 200
        return c * 100 - 7200

# Modbus RTU master over a UART (hal.UART): Read Holding Registers (0x03) and Read Input Registers
# (0x04), CRC-16/MODBUS, a response timeout, exception responses. From the Modbus Application
# Protocol Specification V1.1b3 (6.3, 6.4: request/response PDUs; 7: exception responses, function
# code + 0x80, codes 01-0B) and Modbus over Serial Line V1.02 (2.5.1.2 RTU framing, 6.2.2 CRC
# generation: polynomial 0xA001 reflected, init 0xFFFF, low byte sent first).
import struct

from m2m import hal

_BUF = 5 + 2 * 125  # the largest response to a read of 125 registers (the spec's limit)

EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "server device failure", 5: "acknowledge", 6: "server device busy",
              10: "gateway path unavailable", 11: "gateway target device failed to respond"}


class ModbusError(Exception):
    # an exception response: .code is the Modbus exception code
    def __init__(self, unit, fc, code):
        self.code = code
        super().__init__("Modbus unit %d function %d: exception %d (%s)"
                           % (unit, fc, code, EXCEPTIONS.get(code, "unknown")))


def crc16(data, n=None):
    crc = 0xFFFF
    for i in range(len(data) if n is None else n):
        crc ^= data[i]
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class ModbusRTU:
    # de: an output Pin driving an RS-485 transceiver's DE/RE (high while sending), for transceivers
    # without automatic direction control; it is released after the frame's time on the wire
    # (11 bits a character at uart.baudrate, Modbus over Serial Line 2.5.1) plus a millisecond.
    def __init__(self, uart, timeout_ms=500, retries=1, de=None):
        self.uart = uart
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.de = de
        if de is not None:
            de.value(0)
        self._req = bytearray(8)
        self._rsp = bytearray(_BUF)
        self.errors = 0  # CRC failures and timeouts seen

    def _flush(self):
        while self.uart.any():
            self.uart.readinto(self._rsp)

    def read_registers(self, unit, addr, count, fc=3):
        # a tuple of `count` unsigned 16-bit registers; ModbusError for an exception response,
        # OSError(110) when the unit stays silent, ValueError for a corrupt frame (after retries)
        if fc not in (3, 4) or not 1 <= count <= 125 or not 1 <= unit <= 247:
            raise ValueError("Modbus read: function 3 or 4, 1-125 registers, unit 1-247")
        q = self._req
        struct.pack_into(">BBHH", q, 0, unit, fc, addr, count)
        c = crc16(q, 6)
        q[6] = c & 0xFF
        q[7] = c >> 8
        err = None
        for _ in range(self.retries + 1):
            self._flush()
            if self.de is not None:
                self.de.value(1)
                self.uart.write(q)
                hal.sleep_ms(8 * 11000 // getattr(self.uart, "baudrate", 9600) + 1)
                self.de.value(0)
            else:
                self.uart.write(q)
            try:
                return self._response(unit, fc, count)
            except (OSError, ValueError) as e:
                self.errors += 1
                err = e
        raise err

    def _response(self, unit, fc, count):
        r = self._rsp
        want = 5 + 2 * count
        got = 0
        mv = memoryview(r)
        deadline = hal.ticks_add(hal.ticks_ms(), self.timeout_ms)
        while got < want:
            if got >= 5 and r[1] == fc | 0x80:
                break  # exception response: 5 bytes
            left = hal.ticks_diff(deadline, hal.ticks_ms())
            if left <= 0:
                if got:
                    raise ValueError("Modbus unit %d: frame cut after %d bytes" % (unit, got))
                raise OSError(110)
            if not self.uart.wait(min(left, 50)):
                continue
            got += self.uart.readinto(mv[got:want])
        if r[1] == fc and r[2] != 2 * count:
            self._flush()
            raise ValueError("Modbus unit %d: unexpected answer (%d data bytes for %d registers)"
                             % (unit, r[2], count))
        if r[1] == fc | 0x80:
            n = 5
        else:
            n = want
        if crc16(r, n - 2) != r[n - 2] | r[n - 1] << 8:
            raise ValueError("Modbus unit %d: CRC mismatch" % unit)
        if r[0] != unit:
            raise ValueError("Modbus: answer from unit %d, asked %d" % (r[0], unit))
        if n == 5:
            raise ModbusError(unit, fc, r[2])
        if r[1] != fc or r[2] != 2 * count:
            raise ValueError("Modbus unit %d: unexpected answer (function %d, %d bytes)" % (unit, r[1], r[2]))
        return struct.unpack_from(">%dH" % count, r, 3)

    def read_holding(self, unit, addr, count=1):
        return self.read_registers(unit, addr, count, 3)

    def read_input(self, unit, addr, count=1):
        return self.read_registers(unit, addr, count, 4)


class ModbusSensor:
    # sampler adapter: registers of one unit as readings; each entry of `regs` is
    # (quantity, fc, address, scale) -> value = register (unsigned 16 bits) * scale
    def __init__(self, bus, unit, regs):
        self.bus = bus
        self.unit = unit
        self.regs = tuple(regs)
        self.QUANT = tuple(r[0] for r in self.regs)
        self.RANGE = None

    def start(self):
        return 0

    def read(self):
        out = []
        for q, fc, addr, scale in self.regs:
            out.append(self.bus.read_registers(self.unit, addr, 1, fc)[0] * scale)
        return tuple(out)


def opened(e, regs):
    # the sensor of a sense.sensors entry `e` (type modbus; regs: (quantity, fc, address, scale)),
    # its UART opened now (the sampler's opener, m2m.sense.build)
    u = e.get("uart") or {}
    kw = {k: u[k] for k in ("tx", "rx") if k in u}
    de = hal.Pin(u["de"], hal.Pin.OUT, value=0) if u.get("de") is not None else None
    return ModbusSensor(ModbusRTU(hal.UART(u.get("id", 2), u.get("baud", 9600), **kw),
                                  e.get("timeout_ms", 500), de=de), e.get("unit", 1), regs)

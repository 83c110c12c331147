"""The ESP32 / ESP32-S3 ROM loader's side of esptool's serial protocol, for the virtual device's
download mode: SLIP frames in, SLIP frames out, into a whole-flash image of the board's size.

Facts from espressif/esptool (esptool/loader.py, targets/esp32.py, targets/esp32s3.py; the constants
are read from the installed esptool's target classes): SLIP framing (0xC0, 0xDB 0xDC / 0xDB 0xDD);
requests `<BBHI` (0, op, length, checksum) and responses `<BBHI` (1, op, length, value) followed by the
data and, from the ROM of every chip but the ESP8266, four status bytes (status, error, 0, 0);
opcodes (ESP_CMDS); the checksum (XOR from 0xEF) of FLASH_DATA / FLASH_DEFL_DATA payloads; error codes
(util.py: 0x05 invalid message, 0x07 checksum error, 0x06 "running result is wrong"); SYNC answered
eight times; chip identification by the CHIP_DETECT_MAGIC register (ESP32: MAGIC_VALUE) or by
GET_SECURITY_INFO's chip id (ESP32-S3: IMAGE_CHIP_ID), which the ESP32 ROM does not support;
SPI_FLASH_MD5 answered by the ROM as 32 hex characters; READ_FLASH_SLOW's 64-byte blocks; SPI flash
commands run through the SPI peripheral's registers (RDID 0x9F read back from W0; esptool's
DETECTED_FLASH_SIZES maps its third byte to the size); the crystal estimated from UART_CLKDIV.

Not modelled: the flasher stub (use esptool's --no-stub; MEM_* uploads are refused), flash
encryption and secure download mode, eFuses (they read as zeros: no MAC, revision 0), USB-OTG /
USB-Serial-JTAG, timing (erases are instant), the ROM's boot messages other than `waiting for download`.
Unconfirmed: which error the ROM gives for a region past the end of flash is not in esptool's sources
(esptool refuses such writes itself when it knows the flash size); it is answered 0x06 ("running
result is wrong"), the generic failure.
"""

import hashlib
import os
import struct
import zlib

SLIP_END, SLIP_ESC = 0xC0, 0xDB
ERR_INVALID, ERR_FAILED, ERR_CHECKSUM = 0x05, 0x06, 0x07
CHECKSUM_MAGIC = 0xEF
WINBOND = 0xEF  # RDID manufacturer byte; the third byte is log2(size) as esptool's DETECTED_FLASH_SIZES reads it
SYNC_VALUE = 0x20120707  # any non-zero value: the ROM's (a stub answers 0); esptool only checks non-zero


def rom_class(chip):
    from esptool.targets import CHIP_DEFS

    return CHIP_DEFS[chip]


def slip(data):
    return b"\xc0" + data.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


class Flash:
    """A whole-flash image: the vfs partition is the device's own image file, everything else a
    sparse file beside it (bootloader, partition table, MicroPython)."""

    def __init__(self, size, vfs_path, vfs_offset, rest_path):
        self.size = size
        self.vfs_path, self.vfs_offset = str(vfs_path), vfs_offset
        self.vfs_size = os.path.getsize(vfs_path)
        if not os.path.exists(rest_path):
            with open(rest_path, "wb") as f:
                f.truncate(0)
        self.rest_path = str(rest_path)

    def _parts(self, offset, length):
        """(path, file offset, flash offset, length) pieces covering the range."""
        end = offset + length
        a, b = self.vfs_offset, self.vfs_offset + self.vfs_size
        pieces = []
        pos = offset
        while pos < end:
            if a <= pos < b:
                n = min(end, b) - pos
                pieces.append((self.vfs_path, pos - a, pos, n))
            else:
                n = (min(end, a) if pos < a else end) - pos
                pieces.append((self.rest_path, pos, pos, n))
            pos += n
        return pieces

    def read(self, offset, length):
        out = bytearray()
        for path, foff, _, n in self._parts(offset, length):
            with open(path, "rb") as f:
                f.seek(foff)
                got = f.read(n)
            out += got + b"\xff" * (n - len(got))  # a sparse or short file reads as erased flash
        return bytes(out)

    def write(self, offset, data):
        for path, foff, fl, n in self._parts(offset, len(data)):
            with open(path, "r+b") as f:
                end = f.seek(0, 2)
                if end < foff:
                    f.write(b"\xff" * (foff - end))
                f.seek(foff)
                f.write(data[fl - offset:fl - offset + n])

    def erase(self, offset, length):
        for pos in range(offset, offset + length, 1 << 20):
            n = min(1 << 20, offset + length - pos)
            self.write(pos, b"\xff" * n)


class RomLoader:
    """feed(bytes from esptool) -> bytes to send back. `on_run` is called when FLASH_END /
    FLASH_DEFL_END asks the ROM to run the flashed app."""

    def __init__(self, chip, flash, on_run=None):
        self.chip = chip
        self.rom = rom_class(chip)
        self.flash = flash
        self.on_run = on_run
        self.buf = bytearray()
        self.in_frame = False
        self.regs = {}
        self.begin = None  # (offset, size, block size, next seq) of a FLASH_BEGIN
        self.defl = None  # (offset, size, decompressor, written) of a FLASH_DEFL_BEGIN
        self.log = []

    # ---- framing ----
    def feed(self, data):
        out = bytearray()
        for b in data:
            if b == SLIP_END:
                if self.in_frame and self.buf:
                    out += self._frame(self._unslip(bytes(self.buf)))
                    self.buf.clear()
                self.in_frame = True
            elif self.in_frame:
                self.buf.append(b)
        return bytes(out)

    @staticmethod
    def _unslip(data):
        return data.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb")

    def _reply(self, op, value=0, data=b"", status=0, error=0):
        body = data + bytes((status, error, 0, 0))
        return slip(struct.pack("<BBHI", 1, op, len(body), value) + body)

    def _frame(self, pkt):
        if len(pkt) < 8 or pkt[0] != 0:
            return b""  # not a request: the ROM ignores it
        _, op, length, chk = struct.unpack_from("<BBHI", pkt)
        data = pkt[8:8 + length]
        self.log.append(op)
        handler = getattr(self, "_op_%02x" % op, None)
        if handler is None or len(data) != length:
            return self._reply(op, status=1, error=ERR_INVALID)
        try:
            return handler(op, data, chk)
        except struct.error:
            return self._reply(op, status=1, error=ERR_INVALID)

    # ---- commands (opcodes: esptool loader.py ESP_CMDS) ----
    def _op_08(self, op, data, chk):  # SYNC: answered eight times
        if data != b"\x07\x07\x12\x20" + 32 * b"\x55":
            return self._reply(op, status=1, error=ERR_INVALID)
        return self._reply(op, SYNC_VALUE) * 8

    def _op_0a(self, op, data, chk):  # READ_REG
        (addr,) = struct.unpack_from("<I", data)
        return self._reply(op, self.read_reg(addr))

    def _op_09(self, op, data, chk):  # WRITE_REG
        addr, value, mask, _delay = struct.unpack_from("<IIII", data)
        old = self.regs.get(addr, 0)
        self.write_reg(addr, (old & ~mask) | (value & mask))
        return self._reply(op)

    def _op_0b(self, op, data, chk):  # SPI_SET_PARAMS
        return self._reply(op)

    def _op_0d(self, op, data, chk):  # SPI_ATTACH
        return self._reply(op)

    def _op_0f(self, op, data, chk):  # CHANGE_BAUDRATE: a pty has no baud rate
        return self._reply(op)

    def _op_14(self, op, data, chk):  # GET_SECURITY_INFO: ESP32-S2 and later ROMs only
        if not self.rom.SECURITY_INFO_SUPPORTED:
            return self._reply(op, status=1, error=ERR_INVALID)
        info = struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self.rom.IMAGE_CHIP_ID, 0)
        return self._reply(op, data=info)

    def _region_ok(self, offset, size):
        return offset + size <= self.flash.size

    def _op_02(self, op, data, chk):  # FLASH_BEGIN: erase, then expect FLASH_DATA blocks
        erase, blocks, block, offset = struct.unpack_from("<IIII", data)
        if not self._region_ok(offset, erase):
            return self._reply(op, status=1, error=ERR_FAILED)
        self.flash.erase(offset, erase)
        self.begin = [offset, erase, block, 0]
        return self._reply(op)

    def _op_03(self, op, data, chk):  # FLASH_DATA
        size, seq = struct.unpack_from("<II", data)
        payload = data[16:16 + size]
        if self.begin is None:
            return self._reply(op, status=1, error=ERR_FAILED)
        if self._checksum(payload) != chk:
            return self._reply(op, status=1, error=ERR_CHECKSUM)
        offset, _erase, block, _ = self.begin
        at = offset + seq * block
        if not self._region_ok(at, len(payload)):
            return self._reply(op, status=1, error=ERR_FAILED)
        self.flash.write(at, payload)
        return self._reply(op)

    def _op_04(self, op, data, chk):  # FLASH_END: <I> 0 reboot, 1 run user code; both leave the loader
        self.begin = None
        return self._end(op, data)

    def _op_10(self, op, data, chk):  # FLASH_DEFL_BEGIN
        size, blocks, block, offset = struct.unpack_from("<IIII", data)
        if not self._region_ok(offset, size):
            return self._reply(op, status=1, error=ERR_FAILED)
        self.flash.erase(offset, size)
        self.defl = [offset, size, zlib.decompressobj(), 0]
        return self._reply(op)

    def _op_11(self, op, data, chk):  # FLASH_DEFL_DATA
        size, seq = struct.unpack_from("<II", data)
        payload = data[16:16 + size]
        if self.defl is None:
            return self._reply(op, status=1, error=ERR_FAILED)
        if self._checksum(payload) != chk:
            return self._reply(op, status=1, error=ERR_CHECKSUM)
        offset, total, d, written = self.defl
        try:
            raw = d.decompress(payload)
        except zlib.error:
            return self._reply(op, status=1, error=0x0B)  # util.py 0x10B: deflate failed
        if written + len(raw) > total or not self._region_ok(offset + written, len(raw)):
            return self._reply(op, status=1, error=ERR_FAILED)
        self.flash.write(offset + written, raw)
        self.defl[3] = written + len(raw)
        return self._reply(op)

    def _op_12(self, op, data, chk):  # FLASH_DEFL_END
        self.defl = None
        return self._end(op, data)

    def _end(self, op, data):
        # esptool's soft_reset(False) on the ROM: flash_begin(0, 0), flash_finish(False) ("run user
        # code"); an ESP32 whose GPIO0 is released boots its app either way
        if len(data) >= 4 and self.on_run:
            self.on_run()
        return self._reply(op)

    def _op_13(self, op, data, chk):  # SPI_FLASH_MD5: the ROM answers 32 hex characters
        addr, size = struct.unpack_from("<II", data)
        if not self._region_ok(addr, size):
            return self._reply(op, status=1, error=ERR_FAILED)
        md5 = hashlib.md5()
        for pos in range(addr, addr + size, 1 << 20):
            md5.update(self.flash.read(pos, min(1 << 20, addr + size - pos)))
        return self._reply(op, data=md5.hexdigest().encode())

    def _op_0e(self, op, data, chk):  # READ_FLASH_SLOW: always a 64-byte buffer
        addr, size = struct.unpack_from("<II", data)
        if size > 64 or not self._region_ok(addr, size):
            return self._reply(op, status=1, error=ERR_FAILED)
        return self._reply(op, data=self.flash.read(addr, size).ljust(64, b"\xff"))

    def _op_05(self, op, data, chk):  # MEM_BEGIN: the stub loader is not modelled
        return self._reply(op, status=1, error=ERR_FAILED)

    @staticmethod
    def _checksum(data):
        c = CHECKSUM_MAGIC
        for b in data:
            c ^= b
        return c

    # ---- registers ----
    def read_reg(self, addr):
        r = self.rom
        if addr == r.CHIP_DETECT_MAGIC_REG_ADDR and r.USES_MAGIC_VALUE:
            return r.MAGIC_VALUE
        if addr == getattr(r, "UART_CLKDIV_REG", None):
            # the crystal esptool estimates: baud * divider / 1e6 * XTAL_CLK_DIVIDER -> 40 MHz at 115200
            return round(40e6 / r.XTAL_CLK_DIVIDER / 115200)
        return self.regs.get(addr, 0)

    def write_reg(self, addr, value):
        r = self.rom
        base = r.SPI_REG_BASE
        self.regs[addr] = value
        if addr == base and value & (1 << 18):  # SPI_CMD_REG, SPI_CMD_USR: run the user command
            cmd = self.regs.get(base + r.SPI_USR2_OFFS, 0) & 0xFF
            w0 = base + r.SPI_W0_OFFS
            if cmd == 0x9F:  # RDID
                self.regs[w0] = WINBOND | (0x40 << 8) | ((self.flash.size.bit_length() - 1) << 16)
            else:
                self.regs[w0] = 0  # status registers: idle, nothing protected
            self.regs[addr] = value & ~(1 << 18)  # done

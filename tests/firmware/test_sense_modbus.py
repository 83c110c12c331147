# The Modbus master's RS-485 direction pin and frame checks against a scripted UART (the protocol
# itself is tested against pymodbus in tests/host/test_modbus.py).
from m2m.sense.modbus import ModbusRTU, crc16


class Pin:
    def __init__(self):
        self.log = []

    def value(self, v):
        self.log.append(v)


class UART:
    baudrate = 9600

    def __init__(self, answer, pin=None):
        self.answer = answer
        self.rx = b""
        self.pin = pin
        self.sent = []

    def write(self, buf):
        # what the DE line showed while the frame was written
        self.sent.append((bytes(buf), self.pin.log[-1] if self.pin else None))
        self.rx = self.answer
        return len(buf)

    def any(self):
        return len(self.rx)

    def wait(self, ms):
        return bool(self.rx)

    def readinto(self, mv):
        n = min(len(mv), len(self.rx))
        mv[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n


def frame(body):
    c = crc16(body)
    return body + bytes((c & 0xFF, c >> 8))


def test_de_pin_high_only_while_sending():
    de = Pin()
    u = UART(frame(b"\x01\x03\x02\x00\x2a"), de)
    m = ModbusRTU(u, de=de)
    assert m.read_holding(1, 0) == (42,)
    assert u.sent[0][1] == 1 and de.log == [0, 1, 0]


def test_corrupt_and_foreign_frames_are_errors():
    bad = bytearray(frame(b"\x01\x03\x02\x00\x2a"))
    bad[4] ^= 1
    for answer, words in ((bytes(bad), "CRC mismatch"), (frame(b"\x02\x03\x02\x00\x2a"), "answer from unit 2"),
                          (frame(b"\x01\x03\x04\x00\x2a\x00\x01"), "unexpected answer")):
        m = ModbusRTU(UART(answer), retries=0, timeout_ms=50)
        try:
            m.read_holding(1, 0)
        except ValueError as e:
            assert words in str(e), (words, str(e))
        else:
            raise AssertionError("accepted %r" % answer)

"""The firmware's Modbus RTU master (m2m.sense.modbus, in MicroPython, over the stand-in UART 2 at
M2M_UART2) against pymodbus's RTU server (m2mkit.sim.modbus): holding and input registers, exception
responses, a silent unit, the CRC against pymodbus's own."""

import pytest

from m2mkit.sim.modbus import ModbusServer
from m2mkit.testing import run_micropython

MASTER = """
from m2m import hal
from m2m.sense.modbus import ModbusRTU, ModbusError
m = ModbusRTU(hal.UART(2, 9600, tx=17, rx=16), timeout_ms=300)
def q(*a):
    try:
        print(m.read_registers(*a))
    except ModbusError as e:
        print('exception', e.code, e)
    except OSError as e:
        print('oserror', e.errno)
"""


def run(srv, code):
    rc, out, err = run_micropython(MASTER + code, env={"M2M_UART2": srv.address_str})
    assert rc == 0, out + err
    return out.strip().split("\n")


def test_holding_and_input_registers():
    with ModbusServer({1: {"holding": [230, 0, 5, 65535], "input": [1234, 42]}, 7: {"input": [9]}}) as srv:
        out = run(srv, "q(1, 0, 4, 3); q(1, 1, 1, 4); q(7, 0, 1, 4); print(m.read_input(1, 0, 2))")
        assert out == ["(230, 0, 5, 65535)", "(42,)", "(9,)", "(1234, 42)"]
        srv.set(1, "input", 0, [1240])
        assert run(srv, "q(1, 0, 1, 4)") == ["(1240,)"]


def test_exception_codes():
    with ModbusServer({1: {"holding": [1, 2, 3]}}) as srv:
        out = run(srv, "q(1, 100, 2, 3); q(1, 0, 1, 4)")
        assert out[0].startswith("exception 2 ") and "illegal data address" in out[0]
        assert out[1].startswith("exception 2 ")  # unit 1 has no input registers


def test_silent_unit_times_out_after_retries():
    with ModbusServer({1: {"holding": [1]}}) as srv:
        out = run(srv, "q(5, 0, 1, 3); print(m.errors)")
        assert out == ["oserror 110", "2"]  # one try and one retry
        srv.silent = True
        assert run(srv, "q(1, 0, 1, 3)") == ["oserror 110"]
        srv.silent = False
        assert run(srv, "q(1, 0, 1, 3)") == ["(1,)"]


def test_bad_requests_are_refused_with_what_to_do():
    with ModbusServer({1: {"holding": [1]}}) as srv:
        out = run(srv, """
for a in ((1, 0, 0, 3), (1, 0, 1, 6), (0, 0, 1, 3)):
    try:
        m.read_registers(*a)
    except ValueError as e:
        print(e)
""")
        assert out == ["Modbus read: function 3 or 4, 1-125 registers, unit 1-247"] * 3


@pytest.mark.parametrize("frame", ["010300000001", "0104000a0002", "f70300640010", "110300000000"])
def test_crc_matches_pymodbus(frame):
    from pymodbus.framer.rtu import FramerRTU

    rc, out, err = run_micropython("from m2m.sense.modbus import crc16\nprint(crc16(bytes.fromhex(%r)))" % frame)
    want = FramerRTU.compute_CRC(bytes.fromhex(frame))
    # pymodbus returns the CRC byte-swapped for sending big-endian; the wire order is low byte first
    assert int(out) in (want, ((want & 0xFF) << 8) | want >> 8), out + err
    c = int(out)
    assert bytes([c & 0xFF, c >> 8]) == want.to_bytes(2, "big")

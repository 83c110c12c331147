"""What it takes to power a simulated modem: the AXP2101 register model on the simulated bus, the
modem's supply and level-shifter gates (LilyGO T-SIM7080G-S3) and the flow-control gate (Walter)."""

import json
import socket
import time

import pytest

from m2mkit import boards
from m2mkit.sim.axp2101 import AXP2101, link_modem
from m2mkit.sim.bus import BusSim
from m2mkit.sim.modem import ModemSim
from m2mkit.vdev.device import modem_for

from test_modem_sim import BANNERS, NEVER, Uart

SCALE = 25.0
S3 = boards.load("lilygo-t-sim7080g-s3")
WALTER = boards.load("dptechnics-walter")


def wr(bus, reg, *values, addr=0x34):
    r = bus.handle({"op": "i2c_write", "bus": 0, "addr": addr, "data": bytes([reg, *values]).hex()})
    assert r == {}, r


def rd(bus, reg, n=1, addr=0x34):
    wr(bus, reg, addr=addr)
    return bytes.fromhex(bus.handle({"op": "i2c_read", "bus": 0, "addr": addr, "n": n})["data"])


@pytest.fixture
def bus():
    b = BusSim()  # requests are handled in-process here: no server needed
    b.i2c[(0, 0x34)] = pmu = AXP2101(battery_mv=3987)
    b.pmu = pmu
    return b


# ---- the AXP2101 register model (facts: lewisxhe/XPowersLib src/XPowersAXP2101.hpp) ------------------
def test_chip_id_and_power_on_rails(bus):
    assert rd(bus, 0x03) == b"\x4a"  # IC_TYPE reads XPOWERS_AXP2101_CHIP_ID
    assert bus.pmu.rail_on("DC1") and bus.pmu.rail_mv("DC1") == 3300
    assert not any(bus.pmu.rail_on(n) for n in ("DC3", "BLDO1", "BLDO2"))
    assert bus.pmu.rail_mv("DC3") == 0


def test_dc3_and_bldo_voltages_and_enables(bus):
    wr(bus, 0x84, 102)  # setDC3Voltage(3000): (3000 - 1600) / 100 + 88
    assert bus.pmu.rail_mv("DC3") == 0  # set but not enabled
    wr(bus, 0x80, rd(bus, 0x80)[0] | 0x04)  # enableDC3: bit 2 of DC_ONOFF_DVM_CTRL
    assert bus.pmu.rail_mv("DC3") == 3000
    wr(bus, 0x84, 70)  # the 10 mV range: 500 + 70 * 10
    assert bus.pmu.rail_mv("DC3") == 1200
    wr(bus, 0x84, 80)  # the 20 mV range: 80 * 20 - 200
    assert bus.pmu.rail_mv("DC3") == 1400
    wr(bus, 0x96, 28, 28)  # BLDO1 / BLDO2 at 500 + 28 * 100 in one auto-incrementing write
    wr(bus, 0x90, 0x30)  # enable BLDO1 (bit 4) and BLDO2 (bit 5)
    assert (bus.pmu.rail_mv("BLDO1"), bus.pmu.rail_mv("BLDO2")) == (3300, 3300)
    assert rd(bus, 0x96, 2) == bytes([28, 28])  # plain registers read back
    wr(bus, 0x80, 0x01)
    assert bus.pmu.rail_mv("DC3") == 0 and bus.pmu.rail_on("DC1")


def test_battery_voltage_and_charge_status(bus):
    assert rd(bus, 0x34, 2) == b"\x00\x00"  # the ADC channel is off
    wr(bus, 0x30, 0x01)  # enableBattVoltageMeasure: bit 0 of ADC_CHANNEL_CTRL
    hi, lo = rd(bus, 0x34, 2)
    assert ((hi & 0x1F) << 8 | lo) == 3987  # readRegisterH5L8: millivolts
    assert rd(bus, 0x00)[0] & 0x08  # STATUS1 bit 3: battery present
    assert rd(bus, 0x00)[0] & 0x20 == 0  # no VBUS
    assert rd(bus, 0x01)[0] >> 5 == 2  # discharging
    bus.pmu.vbus_mv, bus.pmu.charge = 5000, "cc"
    s2 = rd(bus, 0x01)[0]
    assert s2 >> 5 == 1 and s2 & 0x07 == 2  # charging, constant-current state
    assert rd(bus, 0x00)[0] & 0x20
    wr(bus, 0x01, 0xFF)  # status is read-only
    assert rd(bus, 0x01)[0] == s2
    bus.pmu.battery_mv = None
    assert rd(bus, 0x00)[0] & 0x08 == 0


# ---- supply and level shifter (T-SIM7080G-S3) -----------------------------------------------------
def pulse(sim, pin=41, active=1, modem_s=1.2):
    sim.pin(pin, active)
    time.sleep(modem_s / SCALE)
    sim.pin(pin, 1 - active)


@pytest.fixture
def powered_by_pmu(bus):
    sim = ModemSim(model="sim7080g", time_scale=SCALE, timeline=NEVER, power_on=False, pwrkey_pin=41,
                   supply_mv=0, uart_mv=0).start()
    link_modem(bus.pmu, sim)
    u = Uart(sim.uart_address)
    yield sim, u, bus
    u.close()
    sim.stop()


def rails_on(bus, dc3=102, bldo1=28):
    wr(bus, 0x84, dc3)
    wr(bus, 0x96, bldo1)
    wr(bus, 0x80, 0x05)  # DC1 + DC3
    wr(bus, 0x90, 0x10)  # BLDO1


def test_pwrkey_without_supply_does_nothing(powered_by_pmu):
    sim, u, bus = powered_by_pmu
    pulse(sim)
    time.sleep(4.0 / SCALE)
    assert sim.status()["power"] == "off" and sim.status()["boots"] == 0
    u.send(b"AT\r")
    assert u.quiet(0.2) == b""
    rails_on(bus)
    pulse(sim)
    assert u.expect(BANNERS["sim7080g"]) == BANNERS["sim7080g"]
    assert u.cmd(b"AT") == b"AT\r\r\nOK\r\n"


def test_supply_below_vbat_range_does_not_boot(powered_by_pmu):
    sim, u, bus = powered_by_pmu
    rails_on(bus, dc3=70)  # DC3 enabled at 1.2 V: the wrong code
    pulse(sim)
    time.sleep(4.0 / SCALE)
    assert sim.status()["power"] == "off"
    assert sim.status()["supply_mv"] == 1200


def test_no_level_shifter_no_bytes(powered_by_pmu):
    sim, u, bus = powered_by_pmu
    rails_on(bus, bldo1=0)  # BLDO1 on at 0.5 V
    pulse(sim)
    time.sleep(5.0 / SCALE)
    assert sim.status()["power"] == "on"  # the modem runs ...
    u.send(b"AT\r")
    assert u.quiet(0.2) == b""  # ... but nothing crosses the shifter
    wr(bus, 0x96, 28)
    assert u.cmd(b"AT") == b"AT\r\r\nOK\r\n"


def test_dropping_dc3_cuts_the_modem(powered_by_pmu):
    sim, u, bus = powered_by_pmu
    rails_on(bus)
    pulse(sim)
    u.expect(BANNERS["sim7080g"])
    wr(bus, 0x80, 0x01)  # DC3 off
    assert sim.status()["power"] == "off"
    u.send(b"AT\r")
    assert u.quiet(0.2) == b""
    wr(bus, 0x80, 0x05)  # back on: it waits for its power key again
    time.sleep(4.0 / SCALE)
    assert sim.status()["power"] == "off"


def test_board_wiring_puts_the_pmu_on_the_bus():
    with BusSim() as bus:
        sim = modem_for(S3, SCALE, bus=bus)
        try:
            assert isinstance(bus.i2c[(S3["i2c"]["id"], 0x34)], AXP2101)
            pulse(sim)
            time.sleep(4.0 / SCALE)
            assert sim.status()["power"] == "off"
            rails_on(bus)
            pulse(sim)
            u = Uart(sim.uart_address)
            assert u.expect(BANNERS["sim7080g"]) == BANNERS["sim7080g"]
            u.close()
        finally:
            sim.stop()


# ---- flow control (Walter) ----------------------------------------------------------------------
def control(sim, req):
    with socket.create_connection(sim.control_address) as c:
        c.sendall((json.dumps(req) + "\n").encode())
        return json.loads(c.makefile().readline())


def walter_uart(**kw):
    line = {"op": "uart", "id": 2, "baudrate": 115200, "tx": 48, "rx": 14, "rts": 21, "cts": 47,
            "flow": ["rts", "cts"]}
    line.update(kw)
    return line


def test_walter_modem_silent_until_rts_is_configured():
    sim = modem_for(WALTER, SCALE)
    try:
        u = Uart(sim.uart_address)
        time.sleep(4.0 / SCALE)
        assert sim.status()["power"] == "on"
        u.send(b"AT\r")
        assert u.quiet(0.2) == b""  # RTS floating: the GM02SP holds its output
        assert control(sim, walter_uart(flow=[]))["tx_open"] is False  # opened without flow control
        assert control(sim, walter_uart(rts=None, cts=None))["tx_open"] is False
        assert control(sim, walter_uart(rts=5))["tx_open"] is False  # RTS on the wrong pin
        r = control(sim, walter_uart(id=1, tx=43, rx=44, rts=None, cts=None, flow=[]))
        assert r == {"ok": True, "modem_uart": False, "tx_open": False}  # another UART: ignored
        assert control(sim, walter_uart())["tx_open"] is True
        assert control(sim, walter_uart(id=1, tx=43, rx=44, flow=[]))["tx_open"] is True
        assert u.cmd(b"AT") == b"AT\r\r\nOK\r\n"
        assert control(sim, walter_uart(flow=["cts"]))["tx_open"] is False  # re-init without RTS
        bad = control(sim, walter_uart(flow="rts"))
        assert bad["ok"] is False and "flow" in bad["error"]
        assert control(sim, {"op": "pin", "pin": 45, "value": 1, "hold": True})["ok"]
    finally:
        u.close()
        sim.stop()


def test_supply_control_op():
    sim = ModemSim(model="sim7080g", time_scale=SCALE, power_on=False, pwrkey_pin=41, supply_mv=0).start()
    try:
        r = control(sim, {"op": "supply", "mv": 3000})
        assert r["ok"] and r["supply_ok"] and r["power"] == "off"
        assert control(sim, {"op": "supply"})["ok"] is False
    finally:
        sim.stop()


# ---- Walter's RESET line across ESP32 resets and deep sleep -----------------------------------------
def test_unheld_reset_line_floats_and_resets_the_modem():
    sim = modem_for(WALTER, SCALE)
    try:
        u = Uart(sim.uart_address)
        control(sim, walter_uart())
        u.expect(BANNERS["gm02s"])
        assert sim.status()["boots"] == 1
        control(sim, {"op": "pin", "pin": 45, "value": 1, "hold": True})  # driven high and held
        assert control(sim, {"op": "mcu_reset"})["power"] == "on"  # the pad keeps its level
        assert sim.status()["boots"] == 1
        control(sim, {"op": "pin", "pin": 45, "value": 1})  # driven high, not held
        assert control(sim, {"op": "mcu_reset"})["power"] == "off"  # floats low: held in reset
        u.send(b"AT\r")
        assert u.quiet(0.2) == b""
        control(sim, {"op": "pin", "pin": 45, "value": 1})  # the firmware drives it again
        assert u.expect(BANNERS["gm02s"]) == BANNERS["gm02s"]  # a fresh boot: PSM state lost
        assert sim.status()["boots"] == 2
        u.close()
    finally:
        sim.stop()

# Modem bring-up as the real boards need it, with the hal's hardware replaced by recording fakes:
# the T-SIM7080G-S3's AXP2101 rails before PWRKEY (cycled at a cold boot only), Walter's RESET line
# held inactive before any AT and its UART opened with flow control, plain UARTs without it, and the
# battery in app.health(). Every fake writes into one event list, so the tests read the order.
# m2m: timeout=60
import json
import os
import time

from m2m import app, board, hal
from m2m.modem import ModemError
from pmu_fake import FakeAXP2101

EV = []


def load_board(name):
    with open((os.getenv("M2M_REPO") or ".") + "/boards/%s.json" % name) as f:
        return json.load(f)


class FakePin:
    # a GPIO with the ESP32 port's pad hold: while held, level changes are not applied
    # (ports/esp32/machine_pin.c; docs/esp32/quickref.rst "hold=")
    OUT = 3
    IN = 1
    pins = {}

    def __init__(self, id, mode=-1, pull=-1, value=None, hold=None):
        # machine.Pin(n) is one pad: a second object for the same pin sees its level and hold
        old = FakePin.pins.get(id)
        self.id = id
        self.held = old.held if old else False
        self.level = old.level if old else None
        FakePin.pins[id] = self
        EV.append(("pin", id, value, hold))
        self.init(value=value, hold=hold)

    def init(self, mode=-1, pull=-1, value=None, hold=None):
        if hold is not None:
            self.held = False
        if value is not None:
            self.value(value)
        if hold is not None:
            self.held = bool(hold)
            if mode == -1 and value is None:
                EV.append(("hold", self.id, bool(hold)))

    def value(self, v=None):
        if v is None:
            return self.level
        if self.held:
            EV.append(("ignored", self.id, v))
            return
        if v != self.level:
            was = self.level
            self.level = v
            EV.append(("level", self.id, v))
            Rig.current.pin_changed(self.id, was, v)


class FakeUART:
    # the modem's UART: answers only while Rig.current says the modem is on (ESP-IDF's
    # uart_hw_flowcontrol_t: RTS 1, CTS 2)
    RTS = 1
    CTS = 2

    def __init__(self, id, baudrate=115200, **kw):
        EV.append(("uart", id, baudrate, kw))
        self.rx = b""

    def write(self, buf):
        cmd = bytes(buf).rstrip(b"\r")
        EV.append(("tx", cmd))
        r = Rig.current
        if r.modem_on():
            self.rx += r.answer(cmd)
        return len(buf)

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def any(self):
        return len(self.rx)

    def wait(self, timeout_ms):
        if not self.rx:
            time.sleep_ms(min(timeout_ms, 5))
        return bool(self.rx)


class FakeADC:
    def __init__(self, pin, atten=None):
        EV.append(("adc", pin, atten))

    def read_uv(self):
        return 1950000


class Rig:
    # installs the fakes into m2m.hal for one test; the modem is a small model of the board:
    # pwrkey boards switch on at a PWRKEY pulse (only with a supply), reset boards at a RESET pulse
    current = None

    def __init__(self, name, cause=None, pmu=None, modem_on=False):
        EV[:] = []
        FakePin.pins = {}
        self.b = load_board(name)
        m = self.b["modem"]
        self.pwrkey = (m.get("pwrkey") or {}).get("pin")
        self.reset = (m.get("reset") or {}).get("pin")
        self.cgmm = {"sim7080g": b"SIMCOM_SIM7080", "sim7000g": b"SIMCOM_SIM7000G", "bg95": b"BG95-M3",
                     "gm02s": b"GM02SP"}[m["model"]]
        self.pmu = pmu
        self.on = modem_on
        self.cause = hal.PWRON_RESET if cause is None else cause
        self.saved = {}

    def __enter__(self):
        Rig.current = self
        for k in ("Pin", "UART", "I2C", "ADC", "sleep_ms", "reset_cause", "gpio_deep_sleep_hold"):
            self.saved[k] = getattr(hal, k)
        hal.Pin = FakePin
        hal.UART = FakeUART
        hal.ADC = FakeADC
        hal.I2C = self.i2c
        hal.sleep_ms = lambda ms: EV.append(("sleep", ms))
        hal.reset_cause = lambda: self.cause
        hal.gpio_deep_sleep_hold = lambda on: EV.append(("deep_sleep_hold", on))
        board._board = self.b
        board._cycled = False
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            setattr(hal, k, v)
        board._board = None
        board._cycled = False
        Rig.current = None

    def i2c(self, id=0, scl=None, sda=None, freq=400000):
        EV.append(("i2c_bus", id, scl, sda))
        if self.pmu is None:
            return FakeAXP2101(present=False)
        return self.pmu

    def supplied(self):
        # LilyGO: DC3 at 3000 mV feeds the SIM7080G (its VBAT range, SIM7080 hardware design:
        # 2.7-4.8 V) and BLDO1 powers the level shifter, without which the UART carries nothing
        if self.pmu is None:
            return True
        return self.pmu.dc3_on() and 2700 <= self.pmu.dc3_mv() <= 4800 and self.pmu.bldo1_on()

    def modem_on(self):
        return self.on and self.supplied()

    def pin_changed(self, pin, was, v):
        # a pulse (the line back to idle after being driven active) boots the modem
        if pin == self.pwrkey and was == 1 and v == 0 and self.supplied():
            self.on = True
        if pin == self.reset and was == 0 and v == 1:
            self.on = True

    def answer(self, cmd):
        if cmd == b"AT+CGMM":
            return b"\r\n" + self.cgmm + b"\r\n\r\nOK\r\n"
        return b"\r\nOK\r\n"


def index(ev, pred):
    for i, e in enumerate(EV):
        if pred(e):
            return i
    raise AssertionError("no such event in %r" % (EV,))


def index_after(start, pred):
    for i in range(start + 1, len(EV)):
        if pred(EV[i]):
            return i
    raise AssertionError("no such event after %d in %r" % (start, EV))


def i2c_write(reg, test=None):
    return lambda e: e[0] == "i2c" and e[1] == reg and (test is None or test(e[2]))


def first_tx(e):
    return e[0] == "tx"


# ---- T-SIM7080G-S3: the AXP2101 rails ----
def test_cold_boot_cycles_dc3_then_powers_rails_then_pulses_pwrkey():
    pmu = FakeAXP2101(log=EV)
    pmu.regs[0x80] = 0x05  # DC1 on, and DC3 still on from before the ESP32's reset
    with Rig("lilygo-t-sim7080g-s3", pmu=pmu) as r:
        dev = app.modem_check()
        assert dev.NAME == "sim7080g"
        assert r.modem_on()
        # the PMU bus is the board's i2c section
        assert ("i2c_bus", 0, 7, 15) in EV
        dc3_off = index(EV, i2c_write(0x80, lambda v: not v & 0x04))
        pause = index(EV, lambda e: e == ("sleep", 200))
        dc3_mv = index(EV, i2c_write(0x84, lambda v: v == 0x66))
        dc3_on = index(EV, i2c_write(0x80, lambda v: v & 0x04))
        bldo1_mv = index(EV, i2c_write(0x96, lambda v: v & 0x1F == 28))
        bldo1_on = index(EV, i2c_write(0x90, lambda v: v & 0x10))
        key = index(EV, lambda e: e == ("level", 41, 1))
        assert dc3_off < pause < dc3_mv < dc3_on < bldo1_mv < bldo1_on < key, EV
        # DC1 (the ESP32-S3's own supply) was never switched off
        for e in EV:
            if e[0] == "i2c" and e[1] == 0x80:
                assert e[2] & 1, e
        # no AT went out before the supply was on
        assert index(EV, first_tx) > bldo1_on
        # BLDO2 (GNSS antenna) on at 3300 mV, the TS pin measurement off
        assert pmu.regs[0x97] & 0x1F == 28 and pmu.regs[0x90] & 0x20
        assert pmu.regs[0x50] & 0x1F == 0x10


def test_deep_sleep_wake_keeps_the_modem_running():
    pmu = FakeAXP2101(log=EV)
    pmu.regs[0x80] = 0x05
    pmu.regs[0x84] = 0x66
    pmu.regs[0x90] = 0x30
    with Rig("lilygo-t-sim7080g-s3", cause=hal.DEEPSLEEP_RESET, pmu=pmu, modem_on=True) as r:
        app.modem_check()
        assert ("sleep", 200) not in EV
        for e in EV:
            if e[0] == "i2c" and e[1] == 0x80:
                assert e[2] & 0x04, "DC3 switched off at a deep-sleep wake: %r" % (e,)
            assert e[0] != "level", "the modem answered: no PWRKEY pulse (it toggles power) %r" % (e,)
        assert r.modem_on()


def test_soft_reset_and_a_second_bring_up_do_not_cycle():
    pmu = FakeAXP2101(log=EV)
    with Rig("lilygo-t-sim7080g-s3", cause=hal.SOFT_RESET, pmu=pmu):
        board.modem_supply()
        assert ("sleep", 200) not in EV
    with Rig("lilygo-t-sim7080g-s3", pmu=pmu):
        board.modem_supply()
        assert EV.count(("sleep", 200)) == 1
        board.modem_supply()  # once per boot
        assert EV.count(("sleep", 200)) == 1


def test_without_the_rails_the_modem_stays_silent():
    # the fake modem really needs the supply: pulsing PWRKEY alone does nothing
    pmu = FakeAXP2101(log=EV)
    with Rig("lilygo-t-sim7080g-s3", pmu=pmu) as r:
        from m2m import modem
        from m2m.at import AT

        md = dict(r.b["modem"])
        md["pwrkey"] = dict(md["pwrkey"], boot_ms=300)
        m = modem.Modem(AT(board.modem_uart(), timeout_ms=100), md)
        assert not m.power_on()
        assert ("level", 41, 1) in EV and ("level", 41, 0) in EV  # the key was pulsed
        assert not r.modem_on()


def test_silent_pmu_is_a_clear_error():
    with Rig("lilygo-t-sim7080g-s3", pmu=None):
        try:
            app.modem_check()
        except ModemError as e:
            msg = str(e)
        else:
            raise AssertionError("ModemError expected")
        assert msg.startswith("the PMU at 0x34 on I2C0 (SCL 7, SDA 15) did not answer"), msg
        assert "board.json" in msg
        assert not [e for e in EV if e[0] == "tx"]  # gave up before talking to the modem


def test_wrong_chip_is_a_clear_error():
    with Rig("lilygo-t-sim7080g-s3", pmu=FakeAXP2101(chip_id=0x03)):
        try:
            board.modem_supply()
        except ModemError as e:
            assert "the PMU at 0x34 on I2C0" in str(e) and "not an AXP2101" in str(e), str(e)
        else:
            raise AssertionError("ModemError expected")


# ---- Walter: flow control and the held RESET line ----
def test_walter_uart_has_flow_control_and_reset_is_held_before_any_at():
    with Rig("dptechnics-walter") as r:
        dev = app.modem_check()
        assert dev.NAME == "gm02s"
        uart = [e for e in EV if e[0] == "uart"][0]
        assert uart[1:3] == (2, 115200)
        assert uart[3] == {"tx": 48, "rx": 14, "rts": 21, "cts": 47, "flow": FakeUART.RTS | FakeUART.CTS}
        # GPIO45 driven high (reset inactive) and pad-held, before the first AT
        held = index(EV, lambda e: e == ("pin", 45, 1, True))
        assert held < index(EV, first_tx)
        # GPIO45 is a digital pad of the S3: its hold lasts through deep sleep only with this
        assert held < index(EV, lambda e: e == ("deep_sleep_hold", True)) < index(EV, first_tx)
        # the modem was silent: one reset pulse, with the hold released around it and re-applied
        rel = index(EV, lambda e: e == ("hold", 45, False))
        low = index(EV, lambda e: e == ("level", 45, 0))
        high = index_after(low, lambda e: e == ("level", 45, 1))
        rehold = index(EV, lambda e: e == ("hold", 45, True))
        assert held < rel < low < high < rehold, EV
        assert ("sleep", 100) in EV
        assert not [e for e in EV if e[0] == "ignored"]
        assert FakePin.pins[45].held and FakePin.pins[45].level == 1
        assert r.modem_on()


def test_walter_running_modem_is_not_reset():
    with Rig("dptechnics-walter", cause=hal.DEEPSLEEP_RESET, modem_on=True):
        app.modem_check()
        assert ("level", 45, 0) not in EV
        assert FakePin.pins[45].held


def test_boards_without_rts_cts_open_a_plain_uart():
    for name, uid, tx, rx in (("lilygo-t-sim7000g", 1, 27, 26), ("esp32-devkitc-bg95", 2, 17, 16),
                              ("lilygo-t-sim7080g-s3", 1, 5, 4)):
        with Rig(name):
            board.modem_uart()
            assert EV[-1] == ("uart", uid, 115200, {"tx": tx, "rx": rx}), EV[-1]


def test_pwrkey_boards_pins_are_not_held():
    with Rig("lilygo-t-sim7000g") as r:
        app.modem_check()
        assert r.modem_on()
        assert [e for e in EV if e[0] == "pin"] == [("pin", 4, 0, None)]
        assert not [e for e in EV if e[0] in ("hold", "deep_sleep_hold")]


# ---- battery in app.health() ----
def test_health_reads_the_battery_through_the_pmu():
    pmu = FakeAXP2101(log=EV)
    pmu.regs[0x00] = 0x08  # battery present
    pmu.regs[0x34] = 0x0F
    pmu.regs[0x35] = 0xA0
    pmu.regs[0x01] = (1 << 5) | 3  # charging, constant voltage
    with Rig("lilygo-t-sim7080g-s3", pmu=pmu):
        h = app.health()
        assert h["battery_mv"] == 4000 and h["charge"] == "cv"
        assert pmu.regs[0x30] & 1  # the battery-voltage ADC channel was switched on


def test_health_reads_the_battery_adc_with_its_divider():
    with Rig("lilygo-t-sim7000g"):
        h = app.health()
        assert h["battery_mv"] == 3900  # 1.95 V at the pin, divider 2.0
        assert ("adc", 35, None) in EV  # the hal's default attenuation is 11 dB (its contract)


def test_health_survives_a_silent_pmu_and_boards_without_a_battery():
    with Rig("lilygo-t-sim7080g-s3", pmu=None):
        h = app.health()
        assert h["battery_mv"] is None and h["board"] == "lilygo-t-sim7080g-s3"
    with Rig("dptechnics-walter"):
        assert "battery_mv" not in app.health()

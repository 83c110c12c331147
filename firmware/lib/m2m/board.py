# The board this device is: a copy of boards/<name>.json written to /board.json at deploy time,
# and the board's hardware opened from it (modem UART, I2C bus, PMU rails, battery).
import json

from m2m import hal

_board = None
_cycled = False  # the modem's supply was cycled (or found running) since this boot


def load(path="/board.json"):
    # Returns the board dict, or None on a device deployed without one.
    global _board
    if _board is None:
        try:
            with open(path) as f:
                _board = json.load(f)
        except OSError:
            return None
    return _board


def _get(b):
    return (load() or {}) if b is None else b


def modem_uart(b=None):
    # The modem's UART from modem.uart: id, baud and the pins the board gives; hardware flow
    # control on when it gives RTS / CTS (Walter: QuickSpot/walter-micropython walter_modem/core.py
    # opens UART 2 with flow=UART.RTS|UART.CTS). Unset pins are left out, not passed as None.
    u = (_get(b).get("modem") or {}).get("uart") or {}
    kw = {}
    flow = 0
    for k in ("tx", "rx", "rts", "cts"):
        if u.get(k) is not None:
            kw[k] = u[k]
    if "rts" in kw:
        flow |= hal.UART.RTS
    if "cts" in kw:
        flow |= hal.UART.CTS
    if flow:
        kw["flow"] = flow
    return hal.UART(u.get("id", 1), u.get("baud", 115200), **kw)


def i2c(b=None):
    # The board's I2C bus (its "i2c" section), None when it has none
    c = _get(b).get("i2c")
    if not c:
        return None
    return hal.I2C(c.get("id", 0), scl=c["scl"], sda=c["sda"], freq=c.get("freq", 400000))


def i2c_device(cls, b, *a):
    # cls(the board's I2C bus, *a) (an I2C sensor's driver), OSError 19 when the board has no bus:
    # the sensor is then missing
    bus = i2c(b)
    if bus is None:
        raise OSError(19)
    return cls(bus, *a)


def _pmu_conf(b):
    pe = (_get(b).get("modem") or {}).get("power_enable")
    return pe if pe and pe.get("type") == "pmu" else None


def _pmu_error(b, pe, why):
    from m2m.modem import ModemError

    c = _get(b).get("i2c") or {}
    return ModemError("the PMU at 0x%02x on I2C%s (SCL %s, SDA %s) %s" % (
        pe.get("i2c_addr", 0x34), c.get("id", "?"), c.get("scl"), c.get("sda"), why))


def pmu(b=None):
    # The PMU that powers the modem (modem.power_enable with type "pmu"), None when the board has
    # none; ModemError when it is missing, silent or of an unknown kind
    b = _get(b)
    pe = _pmu_conf(b)
    if pe is None:
        return None
    if pe.get("chip") != "axp2101":
        raise _pmu_error(b, pe, "is a %r: only the axp2101 is supported (board.json modem.power_enable.chip)"
                         % pe.get("chip"))
    bus = i2c(b)
    if bus is None:
        raise _pmu_error(b, pe, "has no bus: board.json needs an i2c section (id, scl, sda)")
    from m2m.axp2101 import AXP2101

    try:
        return AXP2101(bus, pe.get("i2c_addr", 0x34))
    except OSError as e:
        raise _pmu_error(b, pe, "did not answer: %s; check the i2c pins in board.json" % e)
    except ValueError as e:
        raise _pmu_error(b, pe, "answered wrongly: %s" % e)


def modem_supply(b=None, cold=None):
    # Switch on the modem's supply rails (modem.power_enable.rails, in the board's order: voltage,
    # then enable). At a cold boot the first rail, the modem's main supply, is first held off for
    # cycle_off_ms so that the modem starts from a clean power-up (LilyGO-T-SIM7080G
    # examples/ModemResetExample: DC3 off, 200 ms, unless waking from deep sleep). Not after a
    # deep-sleep wake (the modem keeps its PSM state) nor a soft reset (the chip, and the modem,
    # kept running: ports/esp32/modmachine.c reports SOFT_RESET), and once per boot.
    # Returns the PMU, or None when the board has none.
    global _cycled
    b = _get(b)
    p = pmu(b)
    if p is None:
        return None
    pe = _pmu_conf(b)
    rails = pe.get("rails") or ()
    if cold is None:
        cold = not _cycled and hal.reset_cause() not in (hal.DEEPSLEEP_RESET, hal.SOFT_RESET)
    try:
        if cold and rails:
            p.disable(rails[0]["name"])
            hal.sleep_ms(pe.get("cycle_off_ms", 200))
        for r in rails:
            p.set_voltage(r["name"], r["mv"])
            p.enable(r["name"])
        # XPowersLib's begin() turns the TS-pin measurement off (no NTC fitted: charging would stop)
        p.ts_pin_off()
        p.measure_battery()
    except OSError as e:
        raise _pmu_error(b, pe, "stopped answering: %s" % e)
    _cycled = True
    return p


def battery(b=None):
    # {"battery_mv": mV or None, "charge": state} from the PMU; {"battery_mv": mV} from the
    # battery_adc pin and its divider (hal.ADC reads with 11 dB attenuation); None when the board
    # cannot measure its battery. A silent PMU raises OSError, another chip ValueError.
    b = _get(b)
    pe = _pmu_conf(b)
    if pe is not None:
        bus = i2c(b)
        if bus is None or pe.get("chip") != "axp2101":
            return None
        from m2m.axp2101 import AXP2101

        p = AXP2101(bus, pe.get("i2c_addr", 0x34))
        p.measure_battery()
        return {"battery_mv": p.battery_mv(), "charge": p.charge_state()}
    a = b.get("battery_adc")
    if a:
        return {"battery_mv": int(hal.ADC(a["pin"]).read_uv() * a.get("divider", 1) / 1000)}
    return None

# The board's PMU (modem.power_enable with type "pmu"): the modem's supply rails and the battery
# through it. Loaded by m2m.board only on a board that has one (LilyGO T-SIM7080G's AXP2101).
from m2m import board, hal
from m2m.board import _get, _pmu_conf, i2c


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
    # True when the main supply was held off now (the modem is then known to be off), else False.
    b = _get(b)
    p = pmu(b)
    if p is None:
        return False
    pe = _pmu_conf(b)
    rails = pe.get("rails") or ()
    if cold is None:
        cold = not board._cycled and hal.reset_cause() not in (hal.DEEPSLEEP_RESET, hal.SOFT_RESET)
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
    board._cycled = True
    return bool(cold and rails)


def battery(b):
    # {"battery_mv": mV or None, "charge": state}; None for a chip other than the axp2101 or without
    # a bus. A silent PMU raises OSError
    pe = _pmu_conf(b)
    bus = i2c(b)
    if bus is None or pe.get("chip") != "axp2101":
        return None
    from m2m.axp2101 import AXP2101

    p = AXP2101(bus, pe.get("i2c_addr", 0x34))
    p.measure_battery()
    return {"battery_mv": p.battery_mv(), "charge": p.charge_state()}

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


def modem_supply(b=None, cold=None):
    # Switch on the modem's supply rails when the board has a PMU (m2m.boardpmu.modem_supply, loaded
    # only then: a board without one holds none of its code nor its names). True when that held the
    # modem's main supply off first, so the modem is known to be off: at a cold boot (cold None: not
    # after a deep-sleep wake or a soft reset, once per boot) or a supply cycle (cold=True)
    b = _get(b)
    if _pmu_conf(b) is None:
        return False
    from m2m import boardpmu

    return boardpmu.modem_supply(b, cold)


def battery(b=None):
    # {"battery_mv": mV or None, "charge": state} from the PMU (m2m.boardpmu); {"battery_mv": mV}
    # from the battery_adc pin and its divider (hal.ADC reads with 11 dB attenuation); None when the
    # board cannot measure its battery. A silent PMU raises OSError, another chip ValueError.
    b = _get(b)
    if _pmu_conf(b) is not None:
        from m2m import boardpmu

        return boardpmu.battery(b)
    a = b.get("battery_adc")
    if a:
        return {"battery_mv": int(hal.ADC(a["pin"]).read_uv() * a.get("divider", 1) / 1000)}
    return None

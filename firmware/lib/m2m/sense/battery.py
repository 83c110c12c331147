# Battery voltage: from an ADC pin through the board's divider (board.json battery_adc: pin,
# divider, optional scale and offset_mv for a per-board calibration: V = (uV * divider / 1000 *
# scale + offset_mv) / 1000), or from the AXP2101 PMU where the board has one (T-SIM7080G-S3).
class Battery:
    QUANT = ("battery",)
    RANGE = ((0, 6),)

    def __init__(self, adc=None, divider=1.0, scale=1.0, offset_mv=0, pmu=None):
        self.adc = adc
        self.k = divider * scale
        self.off = offset_mv
        self.pmu = pmu
        if pmu is not None:
            pmu.measure_battery()

    def start(self):
        return 0

    def read(self):
        if self.pmu is not None:
            mv = self.pmu.battery_mv()
            if mv is None:
                raise OSError(19)  # the PMU sees no battery
            return (mv / 1000,)
        return ((self.adc.read_uv() * self.k / 1000 + self.off) / 1000,)


def from_board(b):
    # the board's battery sensor, None when it cannot measure one
    from m2m import board, hal

    pe = (b.get("modem") or {}).get("power_enable") or {}
    if pe.get("type") == "pmu" and pe.get("chip") == "axp2101":
        from m2m.axp2101 import AXP2101

        return Battery(pmu=AXP2101(board.i2c(b), pe.get("i2c_addr", 0x34)))
    a = b.get("battery_adc")
    if not a:
        return None
    return Battery(hal.ADC(a["pin"]), a.get("divider", 1.0), a.get("scale", 1.0), a.get("offset_mv", 0))


def opened(b):
    # from_board for the sampler: OSError 19 (the sensor missing) when the board measures no battery
    s = from_board(b)
    if s is None:
        raise OSError(19)
    return s

# Data usage: bytes sent and received per day and per billing month, persisted in NVS, with a soft
# and a hard monthly cap (issue #8). Contract: docs/CONTRACTS.md (SIM section).
#
# count(tx, rx) is called by the socket layer for every send / receive; allowed(kind) by the
# reporter with kind "telemetry", "alarm" or "summary". Counters are written to flash only when
# usage.save_kb bytes or usage.save_min minutes have gone uncounted, at a day or month rollover, at
# a cap, and at save() (shutdown): a power cut loses at most that much. Days and billing months are
# UTC; the billing month starts on usage.billing_day. Before the clock is set (epoch before 2020)
# no rollover happens.
import struct

from micropython import const

from m2m import hal

_NS = "m2m"
_KEY = "usage"
_FMT = "<iiQQQQB"  # day, month, day tx, day rx, month tx, month rx, flags
_SOFT = const(1)  # soft cap reported this month
_HARD = const(2)  # hard cap reported this month
_SUMMARY = const(4)  # the daily summary went out today
_CLOCK_SET = const(1577836800)  # 2020-01-01

_cfg = None
# [day, month, day_tx, day_rx, month_tx, month_rx, flags]
c = [0, 0, 0, 0, 0, 0, 0]
_unsaved = 0
_saved_at = 0
_now = hal.epoch  # seconds since 1970 (tests replace it)


def _civil(days):
    # (year, month, day) of a day number since 1970-01-01 (H. Hinnant's days_from_civil inverse)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


def period(t, billing_day):
    # (day number, billing month number) of epoch seconds t; the month number counts months
    # since year 0 and names the month in which the billing period started
    day = int(t) // 86400
    y, m, d = _civil(day)
    n = y * 12 + m - 1
    if d < billing_day:
        n -= 1
    return day, n


def setup(cfg):
    # read the config and the saved counters (call once at boot)
    global _cfg, _saved_at
    _cfg = cfg["usage"]
    try:
        buf = bytearray(struct.calcsize(_FMT))
        if hal.NVS(_NS).get_blob(_KEY, buf) == len(buf):
            c[:] = list(struct.unpack(_FMT, buf))
    except OSError:
        pass
    _saved_at = hal.ticks_ms()
    _roll()


def save():
    # write the counters to flash now (shutdown, rollover, caps)
    global _unsaved, _saved_at
    try:
        n = hal.NVS(_NS)
        n.set_blob(_KEY, struct.pack(_FMT, *c))
        n.commit()
    except OSError:
        return False
    _unsaved = 0
    _saved_at = hal.ticks_ms()
    return True


def _roll():
    # start a new day / billing month when the clock has passed into one
    if _cfg is None:
        from m2m import config

        setup(config.load())
        return True
    t = _now()
    if t < _CLOCK_SET:
        return False
    day, mon = period(t, _cfg["billing_day"])
    changed = False
    if day != c[0]:
        c[0], c[2], c[3] = day, 0, 0
        c[6] &= ~_SUMMARY
        changed = True
    if mon != c[1]:
        c[1], c[4], c[5] = mon, 0, 0
        c[6] &= ~(_SOFT | _HARD)
        changed = True
    if changed:
        save()
    return changed


def _cap(key):
    kb = _cfg[key]
    return None if kb is None else kb * 1024


def _caps():
    # post the cap events the first time the month's total passes them
    total = c[4] + c[5]
    hard = _cap("hard_cap_kb")
    soft = _cap("soft_cap_kb")
    from m2m import events

    if hard is not None and total >= hard and not c[6] & _HARD:
        c[6] |= _HARD | _SOFT
        events.post("usage.hard_cap", alarm=True, month_bytes=total, cap=hard)
        save()
    elif soft is not None and total >= soft and not c[6] & _SOFT:
        c[6] |= _SOFT
        events.post("usage.soft_cap", alarm=True, month_bytes=total, cap=soft)
        save()


def count(tx, rx):
    # bytes sent and received on the network (the socket layer calls this)
    global _unsaved
    _roll()
    c[2] += tx
    c[3] += rx
    c[4] += tx
    c[5] += rx
    _unsaved += tx + rx
    _caps()
    if _unsaved and (_unsaved >= _cfg["save_kb"] * 1024 or
                     hal.ticks_diff(hal.ticks_ms(), _saved_at) >= _cfg["save_min"] * 60000):
        save()


def level():
    # 0 under the caps, 1 past the soft cap, 2 past the hard cap (this billing month)
    _roll()
    total = c[4] + c[5]
    hard = _cap("hard_cap_kb")
    soft = _cap("soft_cap_kb")
    if hard is not None and total >= hard:
        return 2
    if soft is not None and total >= soft:
        return 1
    return 0


def allowed(kind):
    # may the reporter send this kind ("telemetry", "alarm", "summary") now?
    if kind == "alarm":
        return True
    if kind not in ("telemetry", "summary"):
        raise ValueError("usage.allowed kind must be 'telemetry', 'alarm' or 'summary', not %r" % kind)
    import sys

    sim = sys.modules.get("m2m.net.sim")
    if sim is not None and not sim.telemetry_allowed():
        return False
    lv = level()
    if kind == "telemetry":
        return lv == 0
    return lv == 0 or (lv == 1 and not c[6] & _SUMMARY)


def summary_sent():
    # the reporter sent today's summary: under the soft cap, the next one tomorrow
    c[6] |= _SUMMARY


def stats():
    # what a report or the console shows
    _roll()
    return {"day_tx": c[2], "day_rx": c[3], "month_tx": c[4], "month_rx": c[5], "level": level()}

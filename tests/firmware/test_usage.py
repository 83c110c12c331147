# m2m.net.usage: day and billing-month counters, rollovers on the (injected) clock, caps and what
# they allow, persistence in NVS across a reboot, and what a power cut may lose.
import sys

from m2m import config, events, hal

events.log = False
DAY = 86400
T0 = 1773532740  # 2026-03-14 23:59:00 UTC
clock = [T0]


def fresh(**kw):
    # a reboot: RAM state gone, NVS kept
    import m2m.net

    sys.modules.pop("m2m.net.usage", None)
    if hasattr(m2m.net, "usage"):
        delattr(m2m.net, "usage")
    from m2m.net import usage as u

    u._now = lambda: clock[0]
    u.setup(config.validate({"usage": usage_cfg(**kw)}))
    return u


def usage_cfg(**kw):
    d = {"billing_day": 15}
    d.update(kw)
    return d


def wipe():
    clock[0] = T0
    n = hal.NVS("m2m")
    try:
        n.erase_key("usage")
        n.commit()
    except OSError:
        pass
    events.clear()


def kinds():
    out = []
    while True:
        e = events.take()
        if e is None:
            return out
        out.append(e[0])


def test_civil_dates_and_billing_periods():
    from m2m.net import usage

    assert usage._civil(19782) == (2024, 2, 29)
    assert usage._civil(11017) == (2000, 3, 1)
    assert usage._civil(20818) == (2026, 12, 31)
    assert usage._civil(0) == (1970, 1, 1)
    feb = 2026 * 12 + 1
    assert usage.period(20526 * DAY, 15) == (20526, feb)  # 14 March: the period began 15 Feb
    assert usage.period(20527 * DAY, 15) == (20527, feb + 1)
    assert usage.period(20526 * DAY, 1) == (20526, feb + 1)


def test_day_and_month_rollover():
    wipe()
    u = fresh()
    u.count(1000, 200)
    s = u.stats()
    assert (s["day_tx"], s["day_rx"], s["month_tx"], s["month_rx"]) == (1000, 200, 1000, 200)
    clock[0] += 120  # 15 March 00:01: a new day and a new billing month
    u.count(10, 1)
    s = u.stats()
    assert (s["day_tx"], s["month_tx"]) == (10, 10)
    clock[0] += DAY  # 16 March: new day, same month
    u.count(5, 0)
    s = u.stats()
    assert (s["day_tx"], s["month_tx"]) == (5, 15)


def test_counters_survive_a_reboot_and_a_power_cut_loses_at_most_save_kb():
    wipe()
    u = fresh(save_kb=64)
    u.count(40 * 1024, 0)  # below save_kb: only in RAM
    u = fresh(save_kb=64)  # power cut
    assert u.stats()["month_tx"] == 0
    u.count(70 * 1024, 0)  # past save_kb: written
    u.count(100, 0)
    u = fresh(save_kb=64)
    assert u.stats()["month_tx"] == 70 * 1024
    u.count(5, 5)
    assert u.save()  # shutdown
    u = fresh(save_kb=64)
    assert u.stats()["month_tx"] == 70 * 1024 + 5 and u.stats()["day_rx"] == 5


def test_save_after_save_min_minutes():
    wipe()
    u = fresh(save_min=1)
    u.count(10, 0)
    hal_sleep = hal.ticks_ms()
    u._saved_at = hal.ticks_add(hal_sleep, -61000)  # a minute since the last write
    u.count(10, 0)
    u = fresh(save_min=1)
    assert u.stats()["month_tx"] == 20


def test_soft_cap_allows_alarms_and_one_summary_a_day():
    wipe()
    u = fresh(soft_cap_kb=1, hard_cap_kb=4)
    clock[0] += 120  # 15 March: a fresh billing month
    assert u.allowed("telemetry") and u.allowed("summary") and u.allowed("alarm")
    u.count(1000, 100)
    assert kinds() == ["usage.soft_cap"]
    assert not u.allowed("telemetry") and u.allowed("alarm") and u.allowed("summary")
    u.summary_sent()
    assert not u.allowed("summary")
    u.count(10, 0)
    assert kinds() == []  # reported once
    clock[0] += DAY
    assert u.allowed("summary") and not u.allowed("telemetry")
    # across a reboot the cap holds and is not reported again
    u.save()
    u = fresh(soft_cap_kb=1, hard_cap_kb=4)
    u.count(1, 0)
    assert kinds() == [] and u.level() == 1


def test_hard_cap_stops_all_but_alarms_until_the_next_billing_month():
    wipe()
    u = fresh(soft_cap_kb=1, hard_cap_kb=2)
    clock[0] += 120
    u.count(3000, 0)
    assert kinds() == ["usage.hard_cap"]
    assert u.allowed("alarm") and not u.allowed("summary") and not u.allowed("telemetry")
    u = fresh(soft_cap_kb=1, hard_cap_kb=2)  # reboot: still capped (the cap event saved the counters)
    assert u.level() == 2 and not u.allowed("telemetry")
    clock[0] += 31 * DAY  # 15 April: a new billing month
    assert u.allowed("telemetry") and u.level() == 0
    u.count(3000, 0)
    assert kinds() == ["usage.hard_cap"]


def test_no_rollover_before_the_clock_is_set():
    wipe()
    u = fresh()
    u.count(100, 0)
    clock[0] = 1000  # an ESP32 that lost its clock: 1970 + 1000 s
    u.count(100, 0)
    assert u.stats()["day_tx"] == 200


def test_bad_kind_says_what_to_use():
    from m2m.net import usage

    try:
        usage.allowed("telemetri")
    except ValueError as e:
        assert "'telemetry', 'alarm' or 'summary'" in str(e)
    else:
        raise AssertionError("no ValueError")

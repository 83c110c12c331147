# Modem.power_on(known_off=True): a modem whose supply was just cut (the PMU's cold cycle) is pulsed
# at once, without the AT probes that cost two probe timeouts on a modem that is off; without it, a
# modem that answers is never pulsed.
from m2m.modem import Modem


class _R:
    def __init__(self, ok):
        self.ok = ok
        self.lines = []


class FakeAT:
    def __init__(self):
        self.log = []
        self.on = False
        self.on_unresponsive = None
        self.unresponsive = False

    def urc(self, prefix, handler):
        pass

    def cmd(self, c, **kw):
        self.log.append(c)
        if not self.on:
            raise OSError(110, "no answer")
        return _R(True)

    def poll(self, timeout_ms=0):
        return 0

    def reset(self):
        pass


class M(Modem):
    BANNERS = (b"RDY",)

    def _pulse(self, ms):
        self.at.log.append("PULSE")
        self.at.on = not self.at.on
        return True


def test_known_off_pulses_without_probing():
    at = FakeAT()
    assert M(at, {"pwrkey": {"pin": 5}}).power_on(known_off=True)
    assert at.log[0] == "PULSE" and at.log[1:] == ["AT"], at.log


def test_unknown_state_probes_first_and_never_pulses_a_running_modem():
    at = FakeAT()
    at.on = True
    assert M(at, {"pwrkey": {"pin": 5}}).power_on()
    assert at.log == ["AT"]
    at = FakeAT()
    assert M(at, {"pwrkey": {"pin": 5}}).power_on()
    assert at.log[:2] == ["AT", "PULSE"], at.log  # the probe (with its retry) of the silent modem, then the key


def test_power_and_ping_refuse_the_asyncio_driver():
    # one synchronous loop on the device: under AsyncAT, ping() used to read .ok off a coroutine
    from m2m.at import AsyncAT
    from m2m.modem import ModemError

    class U:
        def write(self, b):
            return len(b)

        def readinto(self, b):
            return 0

        def any(self):
            return 0

        def wait(self, ms):
            return False

    m = Modem(AsyncAT(U()), None)
    for fn in (m.ping, m.power_on):
        try:
            fn()
        except ModemError as e:
            assert "synchronous driver" in str(e)
        else:
            assert False, "no error from " + repr(fn)


def test_a_booting_modem_on_a_fixed_supply_is_not_reset():
    # Walter: no PWRKEY, a RESET line; the modem boots with the ESP32 and answers a little later
    class Late(FakeAT):
        n = 0

        def cmd(self, c, **kw):
            self.n += 1
            if self.n == 3:
                self.on = True
            return FakeAT.cmd(self, c, **kw)

    at = Late()
    assert M(at, {"reset": {"pin": 45, "active": 0, "pulse_ms": 100, "boot_ms": 5000}}).power_on()
    assert "PULSE" not in at.log, at.log
    at = FakeAT()  # a board with a PWRKEY: the silent modem is off, so it is pulsed
    assert M(at, {"pwrkey": {"pin": 5}}).power_on() and "PULSE" in at.log


class _Status:
    # the board's STATUS input as the engine reads it (hal.Pin.value)
    def __init__(self, level):
        self.level = level

    def value(self):
        return self.level


def _with_status(at, level):
    m = M(at, {"pwrkey": {"pin": 25, "boot_ms": 1200}, "status_pin": 34})
    m._status = _Status(level)
    return m


class TimedAT(FakeAT):
    def cmd(self, c, **kw):
        self.log.append((c, kw.get("timeout_ms"), kw.get("retries", 0)))
        if not self.on:
            raise OSError(110, "no answer")
        return _R(True)


def test_status_low_pulses_after_one_short_probe():
    # BG95 hardware design 3.6.2.1: STATUS low once the module is off: one 100 ms probe, no retry
    at = TimedAT()
    assert _with_status(at, 0).power_on()
    assert at.log[0] == ("AT", 100, 0) and at.log[1] == "PULSE", at.log
    assert at.log.count("PULSE") == 1, at.log


def test_status_low_but_answering_is_never_pulsed():
    # a line wired wrong (or not driven): the modem answers, so it runs whatever the pin says
    from m2m import events

    at = FakeAT()
    at.on = True
    assert _with_status(at, 0).power_on()
    assert at.log == ["AT"], at.log
    seen = []
    while True:
        e = events.take()
        if e is None:
            break
        seen.append(e[0])
    assert "modem.status_mismatch" in seen, seen


def test_status_high_never_pulses_a_running_modem():
    at = FakeAT()
    at.on = True
    assert _with_status(at, 1).power_on()
    assert at.log == ["AT"], at.log
    # high but silent (still booting, or hung): waited for, never pulsed (the key would switch it off)
    at = FakeAT()
    assert not _with_status(at, 1).power_on()
    assert "PULSE" not in at.log and len(at.log) >= 2, at.log

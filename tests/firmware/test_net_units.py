# m2m.net.network helpers: the 0-100 quality figure, eDRX codes, the APN table, band numbers, and the
# recovery ladder's order and capped waits (a stand-in modem that answers everything).
import os

from m2m import config, events
from m2m.modem import band_number
from m2m.net import network

# the networks' state files go to this file's own folder (pytest's tmp_path for it,
# m2mkit.testing.run_file): never a path another suite or worker writes
STATE = os.getenv("M2M_TEST_TMP") + "/"


def test_quality():
    q = network.quality
    assert q({"rsrp": -140, "rsrq": -20}) == 0
    assert q({"rsrp": -80, "rsrq": -5}) == 100
    assert q({"rsrp": -110, "rsrq": None}) == 50  # RSRP alone
    assert q({"rsrp": -110, "rsrq": -12.5}) == 50  # 0.7 * 50 + 0.3 * 50
    assert type(q({"rsrp": -95, "rsrq": -10.5})) is int
    assert q({"rssi": -88}) == 50 and q({}) is None
    assert q({"rsrp": -30, "rsrq": 0}) == 100 and q({"rsrp": -150, "rsrq": -30}) == 0  # clamped


def test_edrx_codes_and_apn_table():
    from m2m.net import netcfg  # the CONFIG step's module (loaded for the step, then dropped)

    assert netcfg.edrx_code(5.12) == "0000" and netcfg.edrx_code(20.48) == "0010"
    assert netcfg.edrx_code(100) == "0110" and netcfg.edrx_code(99999) == "1111"
    assert netcfg.apn_for("901405100000000") == "iot.1nce.net" and netcfg.apn_for("001011234567890") is None


def test_band_number():
    assert band_number(b'"LTE BAND 20"') == 20 and band_number(b"EUTRAN-BAND3") == 3
    assert band_number(b"NO SERVICE") is None


class _R:
    ok = True
    lines = []
    error = None


class _AT:
    unresponsive = False

    def __init__(self):
        self.sent = []

    def cmd(self, c, **kw):
        self.sent.append(c)
        return _R()

    def reset(self):
        pass


class _Modem:
    NAME = "fake"
    imsi = None

    def __init__(self):
        self.at = _AT()
        self.cycles = 0

    def power_cycle(self):
        self.cycles += 1
        return True

    def init(self):
        return {}

    def set_apn(self, *a):
        pass

    def pending(self, names, ms=0):
        return False

    def take_event(self, names=None):
        return None


def test_recovery_ladder_order_and_capped_waits():
    events.log = False
    cfg = config.validate({"net": {"reg_timeout_s": 120, "recovery_max_s": 900}})
    n = network.Network(_Modem(), cfg, state_dir=STATE)
    n.state = network.NAMES.index("register")
    seen = []
    for i in range(7):
        n._recover("test")
        e = None
        while True:
            x = events.take()
            if x is None:
                break
            if x[0] == "net.recovery":
                e = x[2]
        seen.append((e["step"], e["wait_s"]))
    events.log = True
    assert [s for s, _ in seen] == ["reselect", "radio", "powerkey", "hardreset", "hardreset",
                                    "hardreset", "hardreset"], seen
    assert [w for _, w in seen] == [120, 240, 480, 900, 900, 900, 900], seen
    assert n.counts["recovery"] == 7 and n.modem.cycles == 5
    assert "AT+COPS=2" in n.modem.at.sent and "AT+CFUN=0" in n.modem.at.sent


def test_a_failed_power_step_sets_the_modem_up_again():
    # a power-key cycle after which the modem does not answer: the next step starts from the AT
    # sync (init script, SIM, config), not from a registration wait on an unconfigured modem
    events.log = False
    cfg = config.validate({})
    m = _Modem()
    m.power_cycle = lambda: False
    n = network.Network(m, cfg, state_dir=STATE)
    n.state = network.NAMES.index("register")
    n.level = 2
    n._recover("test")
    kinds = []
    while True:
        x = events.take()
        if x is None:
            break
        kinds.append(x[0])
    events.log = True
    assert "net.recovery_failed" in kinds and n.state == network.NAMES.index("sync"), kinds
    assert n.level == 3  # the hard reset comes next if the sync fails too


def test_one_at_timeout_is_retried_a_streak_calls_for_recovery():
    # a single timeout (a slow answer) retries the state; only the driver's streak of consecutive
    # timeouts (at.unresponsive) goes to the recovery path, which starts at the power key
    events.log = False
    n = network.Network(_Modem(), config.validate({}), state_dir=STATE)
    n.state = network.NAMES.index("attached")

    def boom():
        raise OSError(110, "no answer to AT+CSQ")

    n._step = boom
    assert n.step() == 1000 and n.failed is None
    n.modem.at.unresponsive = True
    assert n.step() == 0 and n.failed is not None
    del n._step
    events.clear()
    n._step()  # the recovery runs
    kinds = []
    while True:
        x = events.take()
        if x is None:
            break
        kinds.append((x[0], x[2].get("step")))
    events.log = True
    assert ("net.recovery", "powerkey") in kinds, kinds


class _NameFirstAT(_AT):
    # +COPS? answers the long name until AT+COPS=3,2 (the format a restarted modem forgot)
    def __init__(self):
        super().__init__()
        self.numeric = False

    def cmd(self, c, **kw):
        self.sent.append(c)
        r = _R()
        if c == "AT+COPS=3,2":
            self.numeric = True
        elif c == "AT+COPS?":
            r = _R()
            r.lines = [b'+COPS: 0,2,"00101",7' if self.numeric else b'+COPS: 0,0,"Test Network",7']
        return r


def test_a_plmn_given_as_a_name_is_asked_again_as_a_number_and_is_not_roaming():
    from m2m import creg
    from m2m.net import netup

    events.log = False
    m = _Modem()
    m.at = _NameFirstAT()
    m.imsi = "001010123456789"
    n = network.Network(m, config.validate({}), state_dir=STATE)
    reg = creg.parse(b'+CEREG: 1,1,"0001","00000001",7')
    netup._registered(n, reg)
    while events.take() is not None:
        pass
    events.log = True
    assert n.plmn == "00101" and n.roaming is False, (n.plmn, n.roaming)
    assert m.at.sent.count("AT+COPS=3,2") == 1


def test_a_memory_error_retries_the_step_and_pdp_never_goes_without_an_apn():
    # a MemoryError in a step is the heap's, not the link's: it reaches the caller (the supervisor's
    # Guard retries the state after its back-off) without starting a recovery; and a registration
    # reached without a finished CONFIG step (no APN set) configures before the PDP context
    from m2m.net import netup

    events.log = False
    n = network.Network(_Modem(), config.validate({}), state_dir=STATE)
    n.state = network.NAMES.index("config")

    def boom():
        raise MemoryError("memory allocation failed, allocating 592 bytes")

    n._step = boom
    try:
        n.step()
        assert False
    except MemoryError:
        pass
    assert n.failed is None and n.state == network.NAMES.index("config")
    del n._step
    assert n.apn is None
    n.state = network.NAMES.index("pdp")
    netup._pdp(n)
    assert n.state == network.NAMES.index("config")
    n._config()
    assert n.apn == "" and n.state == network.NAMES.index("register")
    events.clear()
    events.log = True

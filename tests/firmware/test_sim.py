# m2m.net.sim against a fake card behind a fake AT driver: the PIN is entered only when safe (all 3
# tries left, never twice when refused, never the PUK), the NVS record survives a reboot, binding.
import sys

from m2m import events, hal
from m2m.modem import _fields

events.log = False


class R:
    def __init__(self, ok, lines=(), error=None):
        self.ok = ok
        self.lines = [ln.encode() for ln in lines]
        self.error = error


class Card:
    def __init__(self, pin="1234", left=3, present=True, iccid="8949000000000000017"):
        self.pin = pin
        self.left = left
        self.present = present
        self.iccid = iccid
        self.ready = pin is None
        self.sent = []


class FakeAT:
    def __init__(self, card, counter=True, family="quectel"):
        self.card = card
        self.counter = counter
        self.family = family

    def cmd(self, c, resp=None, timeout_ms=None, **kw):
        card = self.card
        card.sent.append(c)
        if not card.present and c != "AT+CGSN":
            return R(False, error=("CME", 10))
        if c == "AT+CPIN?":
            st = "READY" if card.ready else ("SIM PIN" if card.left else "SIM PUK")
            return R(True, ["+CPIN: " + st])
        if c.startswith("AT+CPIN="):
            if card.ready or not card.left:
                return R(False, error=("CME", 3))
            if c == 'AT+CPIN="%s"' % card.pin:
                card.ready, card.left = True, 3
                return R(True)
            card.left -= 1
            return R(False, error=("CME", 16))
        if c == 'AT+QPINC="SC"' and self.counter:
            return R(True, ['+QPINC: "SC",%d,10' % card.left])
        if c == "AT+QCCID":
            return R(True, ["+QCCID: " + card.iccid])
        if c == "AT+CGSN":
            return R(True, ["864000000000005"])
        if c == "AT+CIMI":
            return R(True, ["001010000000001"]) if card.ready else R(False, error=("CME", 11))
        if c == "AT+CNUM":
            return R(True, ['+CNUM: "","+15550001",145'])
        return R(False, error=("CME", 4))


class FakeModem:
    INIT = (("AT+CGSN", (), 1000, 0, "imei"), ("AT+QCCID", (), 1000, 1, "iccid"),
            ("AT+CIMI", (), 1000, 1, "imsi"))

    def __init__(self, card, name="bg95", **kw):
        self.NAME = name
        self.at = FakeAT(card, **kw)
        self.imei = self.iccid = self.imsi = None

    def run(self, script):
        from m2m.modem import Modem

        for step in script:
            r = self.at.cmd(step[0])
            if r.ok:
                setattr(self, step[4], Modem.answer(self, r, step[4]))

    def wait_event(self, names, ms):
        hal.sleep_ms(1)


def fresh_sim():
    # a reboot: the module's RAM state is gone, the NVS record stays
    import m2m.net

    for name in ("sim", "simpin"):
        sys.modules.pop("m2m.net." + name, None)
        if hasattr(m2m.net, name):
            delattr(m2m.net, name)
    from m2m.net import sim

    return sim


def simpin():
    # the SIM step's own module (m2m.net.sim.check loads it and drops it again)
    from m2m.net import simpin

    return simpin


def wipe_nvs():
    n = hal.NVS("m2m")
    try:
        n.erase_key("sim_pin")
        n.commit()
    except OSError:
        pass


def cfg(**sim):
    from m2m import config

    return config.validate({"sim": sim})


def kinds():
    out = []
    while True:
        e = events.take()
        if e is None:
            return out
        out.append((e[0], e[2].get("reason"), e[2].get("alarm")))


def test_correct_pin_unlocks_and_reads_identity():
    wipe_nvs()
    events.clear()
    sim = fresh_sim()
    card = Card()
    m = FakeModem(card)
    assert sim.check(m, cfg(pin="1234")) == "ready"
    assert card.left == 3 and card.sent.count('AT+CPIN="1234"') == 1
    assert sim.info["iccid"] == card.iccid and sim.info["imsi"] == "001010000000001"
    assert sim.info["msisdn"] == "+15550001" and sim.info["pin_left"] == 3
    assert sim.telemetry_allowed() and kinds() == []


def test_wrong_pin_is_entered_once_and_leaves_two_tries():
    wipe_nvs()
    events.clear()
    sim = fresh_sim()
    card = Card(pin="1234")
    m = FakeModem(card)
    assert sim.check(m, cfg(pin="9999")) == "pin_refused"
    assert card.left == 2
    assert kinds() == [("sim.pin_refused", "wrong_pin", True)]
    # the same boot, the next check: not entered again
    assert sim.check(m, cfg(pin="9999")) == "pin_refused"
    # a reboot (or a reset loop): the record says refused, and the counter is below 3 anyway
    for counter in (True, False):
        sim = fresh_sim()
        m = FakeModem(card, counter=counter)
        assert sim.check(m, cfg(pin="9999")) == "pin_refused"
    assert card.left == 2 and card.sent.count('AT+CPIN="9999"') == 1
    assert "AT+CPIN=" not in " ".join(c for c in card.sent if "9999" not in c)


def test_pin_not_entered_below_three_tries():
    wipe_nvs()
    events.clear()
    sim = fresh_sim()
    card = Card(pin="1234", left=2)
    m = FakeModem(card)
    assert sim.check(m, cfg(pin="1234")) == "pin_refused"
    assert card.left == 2 and not [c for c in card.sent if c.startswith("AT+CPIN=")]
    assert kinds() == [("sim.pin_refused", "tries_left", True)]


def test_unreadable_counter_and_a_lost_outcome_counts_as_refused():
    # the device reset while AT+CPIN was on the wire: the record says "trying"; without a counter
    # that attempt counts as refused
    wipe_nvs()
    sim = fresh_sim()
    card = Card(pin="1234")
    simpin()._remember(simpin()._fp(card.iccid, "9999"), 1)  # "trying"
    sim = fresh_sim()
    m = FakeModem(card, counter=False, name="gm02s")
    assert sim.check(m, cfg(pin="9999")) == "pin_refused"
    assert card.left == 3 and not [c for c in card.sent if c.startswith("AT+CPIN=")]
    # with a counter still at 3 the attempt was not spent: it may be made
    sim = fresh_sim()
    m = FakeModem(card)
    events.clear()
    assert sim.check(m, cfg(pin="1234")) == "ready"


def test_a_good_pin_is_entered_again_after_a_modem_restart():
    wipe_nvs()
    sim = fresh_sim()
    card = Card(pin="1234")
    m = FakeModem(card)
    assert sim.check(m, cfg(pin="1234")) == "ready"
    card.ready = False  # the modem was power-cycled by recovery: the card asks again
    assert sim.check(m, cfg(pin="1234")) == "ready"
    assert card.sent.count('AT+CPIN="1234"') == 2


def test_puk_is_never_entered_and_absent_is_reported():
    wipe_nvs()
    events.clear()
    sim = fresh_sim()
    card = Card(pin="1234", left=0)
    m = FakeModem(card)
    assert sim.check(m, cfg(pin="1234")) == "puk_needed"
    assert not [c for c in card.sent if c.startswith("AT+CPIN=")]
    assert kinds() == [("sim.puk_needed", None, True)]
    card = Card(present=False)
    assert sim.check(FakeModem(card), cfg(pin="1234", ready_ms=0)) == "absent"
    assert kinds() == [("sim.absent", None, True)]


def test_no_pin_configured_is_reported():
    wipe_nvs()
    events.clear()
    sim = fresh_sim()
    card = Card(pin="1234")
    assert sim.check(FakeModem(card), cfg()) == "pin_refused"
    assert kinds() == [("sim.pin_refused", "no_pin", True)]


def test_binding_mismatch_is_tamper_and_stops_telemetry():
    wipe_nvs()
    events.clear()
    sim = fresh_sim()
    card = Card(pin=None)
    st = sim.check(FakeModem(card), cfg(bind_iccid=card.iccid, bind_imei="864000000000005"))
    assert st == "ready" and sim.telemetry_allowed()
    card = Card(pin=None, iccid="8949000000000000025")  # swapped
    assert sim.check(FakeModem(card), cfg(bind_iccid="8949000000000000017")) == "tamper"
    assert not sim.telemetry_allowed()
    assert kinds() == [("sim.tamper", None, True)]
    from m2m.net import usage

    assert not usage.allowed("telemetry") and not usage.allowed("summary") and usage.allowed("alarm")
    assert sim.check(FakeModem(Card(pin=None)), cfg(bind_imei="864000000000013")) == "tamper"


def test_spic_answer_is_read_for_simcom():
    sim = fresh_sim()

    class SpicAT(FakeAT):
        def cmd(self, c, resp=None, timeout_ms=None, **kw):
            if c == "AT+SPIC":
                return R(True, ["+SPIC: 2,10,3,10"])
            return FakeAT.cmd(self, c, resp, timeout_ms)

    m = FakeModem(Card(), name="sim7080g")
    m.at = SpicAT(m.at.card)
    assert simpin().pin_tries(m) == 2
    assert simpin().pin_tries(FakeModem(Card(), name="gm02s")) is None
    assert _fields(b' "SC",3,10') == ["SC", 3, 10]


def test_cpin_answers_map_to_states():
    sim = fresh_sim()

    class OneAT:
        def __init__(self, r):
            self.r = r

        def cmd(self, c, resp=None, timeout_ms=None, **kw):
            return self.r

    m = FakeModem(Card())
    for r, st in ((R(True, ["+CPIN: NOT READY"]), "busy"), (R(True, ["+CPIN: READY"]), "ready"),
                  (R(True, ["+CPIN: SIM PUK"]), "puk"), (R(True, ["+CPIN: NOT INSERTED"]), "absent"),
                  (R(False, error=("CME", 14)), "busy"), (R(False, error=("CME", 13)), "absent"),
                  (R(True, ["+CPIN: PH-SIM PIN"]), "other")):
        m.at = OneAT(r)
        assert simpin().state(m) == st, (r.lines, st)


def test_each_alarm_once_until_the_sim_is_ready_again():
    # the network asks again every few minutes: one alarm, not one per ask
    wipe_nvs()
    events.clear()
    sim = fresh_sim()
    card = Card(pin="1234", left=2)
    m = FakeModem(card)
    for _ in range(3):
        assert sim.check(m, cfg(pin="1234")) == "pin_refused"
    assert kinds() == [("sim.pin_refused", "tries_left", True)]
    card.left, card.ready = 3, True  # someone unlocked it
    assert sim.check(m, cfg(pin="1234")) == "ready"
    card.ready, card.left = False, 2
    assert sim.check(m, cfg(pin="1234")) == "pin_refused"
    assert kinds() == [("sim.pin_refused", "tries_left", True)]
    swapped = FakeModem(Card(pin=None, iccid="8949000000000000025"))
    for _ in range(2):
        assert sim.check(swapped, cfg(bind_iccid="8949000000000000017")) == "tamper"
    assert kinds() == [("sim.tamper", None, True)]


def test_the_step_code_is_dropped_after_each_check():
    # the attached device does not hold the SIM step's code; the boot-long state survives it
    sim = fresh_sim()
    m = FakeModem(Card(pin="1234"))
    assert sim.check(m, cfg(pin="1234")) == "ready"
    assert "m2m.net.simpin" not in sys.modules and sim.info["iccid"] == m.at.card.iccid
    assert sim._tried  # a PIN was entered this boot: kept where the next step finds it
    assert sim.check(m, cfg(pin="1234")) == "ready"

"""SIM-card behaviour beyond core.Card: the PIN counter SIMCom reports, the subscriber number, and
swapping the card for another one (another ICCID / IMSI / PIN) over the control channel.

Sources: 3GPP TS 27.007 7.1 (+CNUM: [<alpha>],<number>,<type>; 145 = international number), SIMCom's
SIM800 series AT manual (AT+SPIC "times remain to input SIM PIN/PUK", PIN1 first); that the SIM70x0
answer alike is ASSUMED docs/ASSUMED.md#A-SIMCOM-SPIC.

Not modelled: PIN2 / PUK2 counters (reported as 3 and 10), card removal detection pins, eUICC
profiles, the SIM's own files (EF_MSISDN is the msisdn attribute).
"""

from .core import Card, CmeError, make_iccid


def at_SPIC(modem, cmd):
    """AT+SPIC -> +SPIC: <pin1>,<puk1>,<pin2>,<puk2> (SIMCom)."""
    if cmd.kind == "test":
        return
    modem.require_sim(ready=False)
    c = modem.card
    modem.info("+SPIC: %d,%d,3,10" % (c.pin_left, c.puk_left))


def at_CNUM(modem, cmd):
    """AT+CNUM: the subscriber number stored on the card, or just OK when it holds none."""
    if cmd.kind == "test":
        return
    if cmd.kind != "exec":
        raise CmeError(4)
    modem.require_sim()
    number = getattr(modem.card, "msisdn", None)
    if number:
        modem.info('+CNUM: "","%s",%d' % (number, 145 if number.startswith("+") else 129))


def swap(sim, iccid=None, imsi=None, pin=None, puk="12345678", msisdn=None):
    """Put another card in the modem of a ModemSim (runs on the simulator's loop). The old card is
    pulled (the modem reports it gone, as sim_remove does); the new one is read at the modem's next
    boot or CFUN cycle, as a hot-inserted card is. Returns the new card."""
    m = sim.modem
    if imsi is not None and not (str(imsi).isdigit() and len(str(imsi)) == 15):
        raise ValueError("an IMSI is 15 digits, not %r" % (imsi,))
    if pin is not None and not (str(pin).isdigit() and 4 <= len(str(pin)) <= 8):
        raise ValueError("a SIM PIN is 4 to 8 digits, not %r" % (pin,))
    imsi = str(imsi) if imsi else m.card.imsi[:5] + "%010d" % ((int(m.card.imsi[5:]) + 1) % 10 ** 10)
    iccid = str(iccid) if iccid else make_iccid(imsi)
    m.sim_remove()
    card = Card(None if pin is None else str(pin), str(puk), iccid, imsi)
    card.msisdn = msisdn
    m.card = sim.card = card
    return card

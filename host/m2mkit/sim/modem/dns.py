"""The simulated modem's DNS: names resolved from a host-side table, and the dialects' DNS commands.

Table: ``localhost`` and every name under the reserved ``.test`` and ``.localhost`` domains (RFC 6761
sections 6.2 and 6.3) resolve to 127.0.0.1, so tests and the demo can give brokers names; ``add()``
sets more (``ModemSim.dns.add("broker.example", "127.0.0.1")``). Any other name fails as an unknown
name does on the modem. Opening a socket by name resolves it here too (the bridged connection goes
to the address; TLS keeps the name for SNI).

Commands (facts from public drivers of these modems):
- SIMCom ``AT+CDNSGIP="<name>"[,<retries>,<timeout ms>]``: OK, then ``+CDNSGIP: 1,"<name>","<ip>"``
  or ``+CDNSGIP: 0,<err>`` (Zephyr's SIMCom SIM7080 driver, its DNS part, parses exactly these two
  forms). The error number: ASSUMED docs/ASSUMED.md#A-SIM-DNS-ERR.
- Quectel ``AT+QIDNSGIP=<contextID>,"<name>"``: OK, then ``+QIURC: "dnsgip",<err>,<count>,<ttl>``
  and one ``+QIURC: "dnsgip","<ip>"`` per address (a public BG96 driver's getIpAddressByName_BG96
  reads these); a failure is ``+QIURC: "dnsgip",<err>`` with 565 "DNS parse failed" (the Quectel
  TCP/IP error table as RT-Thread's at_device EC20 driver lists it).
- Sequans ``AT+SQNDNSLKUP="<name>"[,<ip type>]``: ``+SQNDNSLKUP: <name>,<ip>`` then OK (Renesas'
  RYZ014A cellular driver, a Sequans Monarch module, sends and reads it so). The quotes around the
  answer's fields and the error for an unknown name: ASSUMED docs/ASSUMED.md#A-SIM-DNS-ERR.

Not modelled: DNS servers (AT+CDNSCFG / AT+QIDNSCFG are not answered), IPv6 answers, TTLs that
expire, lookups that take longer than one radio round trip.
"""

import ipaddress

from .core import CmeError, Malformed

DEFAULT = {"localhost": "127.0.0.1"}
LOCAL_DOMAINS = (".test", ".localhost")  # RFC 6761 6.2 / 6.3: never real names


class Resolver:
    def __init__(self):
        self.table = dict(DEFAULT)
        self.lookups = 0

    def add(self, name, ip):
        ipaddress.IPv4Address(ip)  # ValueError for anything but a dotted quad
        self.table[name.lower()] = ip

    def resolve(self, name):
        """The address of name (an address is its own), or None for an unknown name."""
        self.lookups += 1
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            pass
        n = name.lower().rstrip(".")
        if n in self.table:
            return self.table[n]
        if n.endswith(LOCAL_DOMAINS):
            return "127.0.0.1"
        return None


SIMCOM_ERR = 8  # ASSUMED docs/ASSUMED.md#A-SIM-DNS-ERR
QUECTEL_ERR = 565  # "DNS parse failed" (Quectel's TCP/IP error table, see above)
SEQUANS_ERR = 3  # ASSUMED docs/ASSUMED.md#A-SIM-DNS-ERR


def resolver(modem):
    """The modem's table (kept across its reboots: it stands for the network's DNS)."""
    r = getattr(modem, "dns", None)
    if r is None:
        r = modem.dns = Resolver()
    return r


def _ready(modem):
    return modem.registered() and modem.attached


async def at_CDNSGIP(modem, cmd):
    if cmd.kind != "set":
        raise Malformed("CDNSGIP")
    name = cmd.str(0)
    cmd.int(1, 0, lo=0, hi=3)
    cmd.int(2, 10000, lo=1000, hi=60000)
    ip = resolver(modem).resolve(name) if _ready(modem) else None
    line = '+CDNSGIP: 1,"%s","%s"' % (name, ip) if ip else "+CDNSGIP: 0,%d" % SIMCOM_ERR
    modem.spawn(modem._later(modem.NET_RTT, modem.urc, line))


async def at_QIDNSGIP(modem, cmd):
    if cmd.kind != "set":
        raise Malformed("QIDNSGIP")
    ctx = cmd.int(0, lo=1, hi=16)
    name = cmd.str(1)
    ip = resolver(modem).resolve(name) if ctx in getattr(modem, "qiact", ()) else None

    async def answer():
        await modem.clock.sleep(modem.NET_RTT)
        if ip:
            modem.urc('+QIURC: "dnsgip",0,1,600')
            modem.urc('+QIURC: "dnsgip","%s"' % ip)
        else:
            modem.urc('+QIURC: "dnsgip",%d' % QUECTEL_ERR)

    modem.spawn(answer())


async def at_SQNDNSLKUP(modem, cmd):
    if cmd.kind != "set":
        raise Malformed("SQNDNSLKUP")
    name = cmd.str(0)
    cmd.int(1, 0, lo=0, hi=2)  # <ip type>, optional
    ip = resolver(modem).resolve(name) if _ready(modem) else None
    await modem.clock.sleep(modem.NET_RTT)
    if not ip:
        raise CmeError(SEQUANS_ERR)
    modem.info('+SQNDNSLKUP: "%s","%s"' % (name, ip))

"""Host-side simulator of the cellular modems m2mkit supports, heard through their UART.

``ModemSim(model=...)`` serves one simulated modem: a loopback TCP port is its UART wire (the unix
hal's ``M2M_MODEM``), a second loopback port takes JSON-line control requests and the firmware's
GPIO lines (``M2M_GPIO``). Models: ``sim7080g``, ``sim7000g``, ``bg95``, ``bg96``, ``gm02s``
(``MODELS``). One core (core.py: command line, SIM, registration, PDP, sockets, PSM, power, faults,
time) plus one dialect class per family (simcom.py, quectel.py, sequans.py) whose tables and
``at_*`` handlers follow the vendors' AT manuals; a new model subclasses its closest sibling.

What it models: echo and line endings, V.25ter / 27.007 result codes and +CME ERROR in the three
AT+CMEE forms, boot banners and boot time, SIM PIN/PUK with real retry counters, a registration
timeline with +CREG/+CGREG/+CEREG URCs for every n, signal, COPS scans that take minutes, PDP,
sockets bridged to real loopback TCP/UDP with TLS ended in the modem and verified against the CA
the host uploaded, the SIM7080G's DTLS 1.2 / 1.0 with a pre-shared key (a real handshake and records
by python-mbedtls, the PSK table converted and kept as the modem keeps it), PSM / eDRX requests, PWRKEY pulses, power-down messages, faults, per-socket
byte and round-trip counters, and .atlog recording. Modem time runs at ``time_scale`` times real
time.

What it does NOT model:
- RF and the real network: no cells, bands, measurements, handover, coverage or interference;
  signal values are whatever you set. Registration follows the timeline, not radio conditions.
- Real network timing: latency is a fixed radio round trip (NET_RTT) plus loopback; no
  throughput limits, retransmissions, packet loss (use faults), NAT timeouts or carrier firewalls.
- UDP loss only as the ``udp_loss`` control op's independent, seeded drops (udploss.py): no bursts,
  reordering, duplication or delay of datagrams.
- PSM and eDRX sleeping: timers are accepted, read back and reported in +CEREG, but the modem never
  sleeps, never becomes unreachable and draws no current; network-granted values equal requests.
- SIM cards beyond PIN1 / PUK1 (card.py): PIN2 / PUK2 counters are fixed at 3 / 10, no
  card-detect pin; a swapped or hot-inserted card is read only at the next boot or CFUN
  cycle; AT+SPIC only on the SIMCom models, no PIN counter command on the GM02S.
- The eUICC (euicc.py) answers only GetEuiccData, GetProfilesInfo and EnableProfile (no profile
  download, ES9+ / ES11, notifications, DisableProfile / DeleteProfile over ES10, EuiccInfo, memory
  reset, icons, profile policy rules); one STORE DATA block per request (no P1 11 segments); only
  the ISD-R AID selects (any other AID, the USIM's too, answers as absent); channels 1-3, no
  extended channels, no basic-channel APDUs (AT+CSIM / AT+CRSM); every ES10 answer comes through
  61xx / GET RESPONSE as on T=0; the refresh is a fixed 2 s with the same URCs on every model
  (ASSUMED docs/ASSUMED.md#A-ESIM-REFRESH), no SIM toolkit proactive commands on the wire, no
  eIM / SM-DP+ (a network-initiated swap is the control op).
- SMS, voice, USSD, phonebook, SIM toolkit; GNSS / GPS; FOTA and firmware updates; the modems'
  built-in MQTT / HTTP / CoAP / LwM2M clients; DNS servers and IPv6 answers (dns.py resolves
  names from a host-side table: localhost, *.test, *.localhost and names added); listening sockets, "UDP SERVICE",
  transparent / online data modes, PPP (ATD*99#) and CMUX.
- Baud-rate changes: AT+IPR to another rate is answered OK and then both sides read noise until a
  power cycle (no auto-bauding); hardware flow control beyond require_flow (nothing is sent until the
  host announces RTS), DTR / RI lines, UART sleep (AT+CSCLK).
- Settings saved with AT&W (echo and CMEE reset on every boot); vendor NV items beyond the CA files,
  CGDCONT and PSM / eDRX requests, which survive reboots.
- TLS details: hostname checks, client certificates, PSK, cipher / version restrictions and
  certificate time checks are not enforced; only the chain against the uploaded CA is.
- DTLS on any other model (BG95: settings stored and read back, the open answers an error; SIM7000G
  and GM02S: the open fails), DTLS with certificates, cipher suite settings, DTLS session resumption;
  the SIM7080G's DTLS offers the PSK table's first identity.
- Current draw, voltage warnings, temperature, and the dozens of vendor commands not listed in the
  dialect files (they answer ERROR, like an unknown command).
"""

from .core import Malformed, CmeError, REG_STATES
from .server import MODELS, ModemSim, SimulatorBug

__all__ = ["ModemSim", "MODELS", "REG_STATES", "CmeError", "Malformed", "SimulatorBug"]

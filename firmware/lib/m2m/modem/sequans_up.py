# The Sequans dialects' bring-up scripts (m2m.modem.sequans): the init script with the identity reads,
# the RAT, band and APN settings. Read through m2m.modem.up.data(), loaded with the bring-up code
# and dropped with it once the network is attached. One class per dialect class, of the same
# name and inheritance. Sources: see m2m/modem/sequans.py.
from m2m.modem import OPT, USER

_T = 1000


class GM02S:
    INIT = (
        ("ATE0", (), _T),  # echo is already off on Walter; harmless
        ("AT+CMEE=1", (), _T),
        # n=5: stat, tac, ci, AcT, cause and the PSM timers (the Walter library's default)
        ("AT+CEREG=5", (), _T),
        ("AT+CTZR=1", (), _T, OPT),
        ("AT+CGMM", (), _T, 0, "cgmm"),
        ("AT+CGMR", (), _T, 0, "firmware"),
        ("AT+CGSN", (), _T, 0, "imei"),
        ("AT+SQNCCID", (), 2000, OPT, "iccid"),  # +SQNCCID: "<iccid>","<operator>"
        ("AT+CIMI", (), 2000, OPT, "imsi"),
    )
    # AT+SQNMODEACTIVE=1 LTE-M, 2 NB-IoT (Walter library); "auto" is not offered, so it means
    # LTE-M (ASSUMED docs/ASSUMED.md#A-GM02S-RAT-AUTO); the new RAT is used after the next reset
    # (Walter docs: switching RAT needs one)
    RAT = {
        "lte-m": (("AT+CFUN=0", (), 15000), ("AT+SQNMODEACTIVE=1", (), 5000)),
        "nb-iot": (("AT+CFUN=0", (), 15000), ("AT+SQNMODEACTIVE=2", (), 5000)),
        "auto": (("AT+CFUN=0", (), 15000), ("AT+SQNMODEACTIVE=1", (), 5000)),
    }
    # AT+SQNBANDSEL=<mode 0 LTE-M | 1 NB-IoT>,<operator profile>,"<bands>" (read form in the gm02s
    # transcript: +SQNBANDSEL: 0,standard,"1,2,3,..."), written with the radio off (CFUN=0):
    # ASSUMED docs/ASSUMED.md#A-GM02S-BANDSEL-CFUN0
    BANDS = (
        ('AT+SQNBANDSEL=0,"standard","{bands}"', (), 5000),
        ('AT+SQNBANDSEL=1,"standard","{bands}"', (), 5000, OPT),
    )
    # the GM02S attaches with context 1 as defined: the APN must be set before AT+CFUN=1
    APN = (
        ('AT+CGDCONT=1,"IP","{apn}"', (), 5000),
        ('AT+CGAUTH=1,{auth},"{user}","{password}"', (), 5000, USER),
    )

# The SIMCom dialects' bring-up scripts (m2m.modem.simcom): the init script with the identity reads,
# the RAT, band and APN settings. Read through m2m.modem.up.data(), loaded with the bring-up code
# and dropped with it once the network is attached. One class per dialect class, of the same
# name and inheritance. Sources: see m2m/modem/simcom.py.
from m2m.modem import OPT, USER

_T = 1000


class SIM7080G:
    INIT = (
        ("ATE0", (), _T),
        ("AT+CMEE=1", (), _T),  # numeric +CME ERROR codes
        ("AT+CEREG=2", (), _T),  # registration URCs with tac / ci / AcT
        ("AT+CLTS=1", (), _T, OPT),  # network time URCs (*PSUTTZ, DST, +CTZV)
        ("AT+CGMM", (), _T, 0, "cgmm"),
        ("AT+CGMR", (), _T, 0, "firmware"),  # "Revision:1951B16SIM7080"
        ("AT+CGSN", (), _T, 0, "imei"),
        ("AT+CCID", (), 2000, OPT, "iccid"),  # bare number, no "+CCID:" (TinyGSM note)
        ("AT+CIMI", (), 2000, OPT, "imsi"),  # +CME ERROR without a SIM: identity stays None
    )
    # AT+CNMP: 38 = LTE only. AT+CMNB: 1 Cat-M, 2 NB-IoT, 3 both. No GSM keys: the SIM7080 has
    # no 2G radio (ASSUMED docs/ASSUMED.md#A-SIM7080-NOGSM), the SIM7000G adds them
    RAT = {
        "lte-m": (("AT+CNMP=38", (), 5000), ("AT+CMNB=1", (), 5000)),
        "nb-iot": (("AT+CNMP=38", (), 5000), ("AT+CMNB=2", (), 5000)),
        "auto": (("AT+CNMP=38", (), 5000), ("AT+CMNB=3", (), 5000)),
    }
    # AT+CBANDCFG="CAT-M"|"NB-IOT",<band>[,<band>...]
    BANDS = (
        ('AT+CBANDCFG="CAT-M",{bands}', (), 5000),
        ('AT+CBANDCFG="NB-IOT",{bands}', (), 5000),
    )
    # PDP context 1 for the attach; AT+CNCFG gives application bearer 0 (ip_type 1 = IPv4) a user
    # and password "if needed" (SIMCom TCP/UDP note), so it runs only when a user is given
    APN = (
        ('AT+CGDCONT=1,"IP","{apn}"', (), 5000),
        ('AT+CNCFG=0,1,"{apn}","{user}","{password}",{auth}', (), 5000, USER),
    )


class SIM7000G(SIM7080G):
    # GSM fallback: AT+CNMP 13 GSM only, 51 GSM and LTE only (2 automatic, 38 LTE only; TinyGSM's
    # SIM7000 examples and Adafruit FONA setPreferredMode list these), AT+CMNB as for LTE
    RAT = dict(SIM7080G.RAT, **{
        "gsm": (("AT+CNMP=13", (), 5000),),
        "lte-m+gsm": (("AT+CNMP=51", (), 5000), ("AT+CMNB=1", (), 5000)),
        "nb-iot+gsm": (("AT+CNMP=51", (), 5000), ("AT+CMNB=2", (), 5000)),
        "auto+gsm": (("AT+CNMP=51", (), 5000), ("AT+CMNB=3", (), 5000)),
    })
    # the SIM7000 has no AT+CNCFG bearer profile here: AT+CNACT=1,"<apn>" carries the APN.
    # user / password are not supported on this path: ASSUMED docs/ASSUMED.md#A-SIM7000-APN-AUTH
    APN = (('AT+CGDCONT=1,"IP","{apn}"', (), 5000),)

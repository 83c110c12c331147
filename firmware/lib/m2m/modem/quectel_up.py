# The Quectel dialects' bring-up scripts (m2m.modem.quectel): the init script with the identity reads,
# the RAT, band and APN settings. Read through m2m.modem.up.data(), loaded with the bring-up code
# and dropped with it once the network is attached. One class per dialect class, of the same
# name and inheritance. Sources: see m2m/modem/quectel.py.
from m2m.modem import OPT

_T = 1000
_CFG = 5000  # AT+QCFG writes NV: allow a little longer


class BG95:
    INIT = (
        ("ATE0", (), _T),
        ("AT+CMEE=1", (), _T),
        ("AT+CEREG=2", (), _T),
        # URCs go to the main UART only when told so (the factory default may be the USB AT port),
        # ASSUMED docs/ASSUMED.md#A-QUECTEL-URCPORT; harmless where the setting does not exist
        ('AT+QURCCFG="urcport","uart1"', (), _T, OPT),
        ("AT+CTZR=1", (), _T, OPT),  # time-zone URCs (+CTZV)
        ("AT+CGMM", (), _T, 0, "cgmm"),
        ("AT+CGMR", (), _T, 0, "firmware"),  # "BG95M3LAR02A03"
        ("AT+CGSN", (), _T, 0, "imei"),
        ("AT+QCCID", (), 2000, OPT, "iccid"),  # "+QCCID: 8944..."
        ("AT+CIMI", (), 2000, OPT, "imsi"),
    )
    # "nwscanmode",3: LTE only. "iotopmode": 0 eMTC, 1 NB-IoT, 2 both. "nwscanseq": 02 eMTC,
    # 03 NB-IoT, 01 GSM, in search order. The trailing 1 applies the setting at once.
    RAT = {
        "lte-m": (('AT+QCFG="nwscanmode",3,1', (), _CFG), ('AT+QCFG="iotopmode",0,1', (), _CFG),
                  ('AT+QCFG="nwscanseq",02,1', (), _CFG)),
        "nb-iot": (('AT+QCFG="nwscanmode",3,1', (), _CFG), ('AT+QCFG="iotopmode",1,1', (), _CFG),
                   ('AT+QCFG="nwscanseq",03,1', (), _CFG)),
        "auto": (('AT+QCFG="nwscanmode",3,1', (), _CFG), ('AT+QCFG="iotopmode",2,1', (), _CFG),
                 ('AT+QCFG="nwscanseq",0203,1', (), _CFG)),
    }
    # with GSM: "nwscanmode",0 (all RATs) or 1 (GSM only) and 01 in the search order (mbed-os
    # QUECTEL_BG96_CellularNetwork.cpp set_access_technology_impl: GSM 010203 + mode 1, all 020301 +
    # mode 0 + iotopmode 2); the network's order follows the config's list: LTE first
    RAT.update({
        "gsm": (('AT+QCFG="nwscanmode",1,1', (), _CFG), ('AT+QCFG="nwscanseq",010203,1', (), _CFG)),
        "lte-m+gsm": (('AT+QCFG="nwscanmode",0,1', (), _CFG), ('AT+QCFG="iotopmode",0,1', (), _CFG),
                      ('AT+QCFG="nwscanseq",0201,1', (), _CFG)),
        "nb-iot+gsm": (('AT+QCFG="nwscanmode",0,1', (), _CFG), ('AT+QCFG="iotopmode",1,1', (), _CFG),
                       ('AT+QCFG="nwscanseq",0301,1', (), _CFG)),
        "auto+gsm": (('AT+QCFG="nwscanmode",0,1', (), _CFG), ('AT+QCFG="iotopmode",2,1', (), _CFG),
                     ('AT+QCFG="nwscanseq",020301,1', (), _CFG)),
    })
    # AT+QCFG="band",<gsm mask>,<eMTC mask>,<NB-IoT mask>[,<effect>]: hex masks, band n = bit n-1
    BANDS = (('AT+QCFG="band",0,{mask},{mask},1', (), _CFG),)
    # AT+QICSGP=<contextID>,<type 1 IPv4>,<APN>,<user>,<password>,<auth>
    APN = (('AT+QICSGP=1,1,"{apn}","{user}","{password}",{auth}', (), 5000),)


class BG96(BG95):
    pass

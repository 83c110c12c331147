# The objects the client serves. Resource ids: the OMA LwM2M registry's object definitions
# (github.com/OpenMobileAlliance/lwm2m-registry 0.xml 1.xml 3.xml 4.xml 5.xml 7.xml; IPSO 5700
# Sensor Value, 5701 Sensor Units, 5601 / 5602 Min / Max Measured Value, as Zephyr's
# lwm2m_resource_ids.h lists them). Values are read when asked: nothing is copied into a table.
import gc
import sys

from micropython import const

from m2m import hal
from m2m.lwm2m.model import Model, Obj

_BOOTSTRAP = const(1)  # the Client's states (m2m.lwm2m.client NAMES)
_REGISTER = const(2)

# 0 Security: URI, Bootstrap-Server, Security Mode (0 PSK, 3 NoSec), identity, server key, secret
# key, Short Server ID, Client Hold Off Time. Only a bootstrap server writes it (no R / W here).
SECURITY = {0: "s", 1: "b", 2: "i", 3: "o", 4: "o", 5: "o", 10: "i", 11: "i"}
# 1 Server: Short Server ID, Lifetime, Default pmin / pmax, Disable, Disable Timeout, Notification
# Storing, Binding, Registration Update Trigger
SERVER = {0: "iR", 1: "iRW", 2: "iRW", 3: "iRW", 4: "E", 5: "iRW", 6: "bRW", 7: "sRW", 8: "E"}
# 3 Device: Manufacturer, Model Number, Serial Number, Firmware Version, Reboot, Factory Reset,
# Available Power Sources, Power Source Voltage, Battery Level, Memory Free (KiB), Error Code,
# Reset Error Code, Current Time, UTC Offset, Supported Binding and Modes
DEVICE = {0: "sR", 1: "sR", 2: "sR", 3: "sR", 4: "E", 5: "E", 6: "iR*", 7: "iR*", 9: "iR",
          10: "iR", 11: "iR*", 12: "E", 13: "tRW", 14: "sRW", 16: "sR"}
# 4 Connectivity Monitoring: Network Bearer, Available Network Bearer, Radio Signal Strength
# (dBm), Link Quality, IP Addresses, APN, Cell ID, SMNC, SMCC
CONNMON = {0: "iR", 1: "iR*", 2: "iR", 3: "iR", 4: "sR*", 7: "sR*", 8: "iR", 9: "iR", 10: "iR"}
# 5 Firmware Update: Package, Package URI, Update, State, Update Result, PkgName, PkgVersion,
# Firmware Update Protocol Support (0 CoAP), Firmware Update Delivery Method (0 pull)
FIRMWARE = {0: "oW", 1: "sRW", 2: "E", 3: "iR", 5: "iR", 6: "sR", 7: "sR", 8: "iR*", 9: "iR"}
# 7 Connectivity Statistics: SMS Tx / Rx Counter, Tx Data, Rx Data (KiB), Max / Average Message
# Size, Start, Stop, Collection Period
CONNSTATS = {0: "iR", 1: "iR", 2: "iR", 3: "iR", 4: "iR", 5: "iR", 6: "E", 7: "E", 8: "uRW"}
# IPSO sensors (3303 Temperature, 3304 Humidity, 3323 Pressure, 3316 Voltage, 3300 Generic):
# Min / Max Measured Value, Reset Min and Max, Sensor Value, Sensor Units
IPSO = {5601: "fR", 5602: "fR", 5605: "E", 5700: "fR", 5701: "sR"}
# 3200 Digital Input (registry 3200.xml): 5500 Digital Input State (Boolean, R, the one Mandatory
# resource: "The current state of a digital input") and a pulse count as 5501 Digital Input Counter
# (Integer, R); the object has no Sensor Value or Units. The state is the pulse pin's level read
# through the hal when asked (Polarity 5502 not served: False, "Normal"): an S0 / reed output idles
# high on the pull-up (True) and pulls the pin low while a pulse lasts (False).
DIGITAL = {5500: "bR", 5501: "iR"}
# network rat -> Network Bearer (0 GSM, 6 LTE-FDD; ASSUMED docs/ASSUMED.md#A-LWM2M-BEARER for NB-IoT)
_BEARER = {"gsm": 0, "lte-m": 6, "nb-iot": 6}


def _plmn(sig, part):
    p = (sig or {}).get("plmn")
    if not p or len(p) < 5:
        return None
    return int(p[:3]) if part == 0 else int(p[3:])


def build(cfg, client, network=None, sampler=None, stats=None):
    cfg_l = cfg.get("lwm2m", {})
    m = Model()
    sec = m.objs[0] = Obj(0, SECURITY, multi=True)
    srv = m.objs[1] = Obj(1, SERVER, multi=True)
    # 3 Device
    dev = m.objs[3] = Obj(3, DEVICE)
    try:
        import binascii

        serial = binascii.hexlify(hal.unique_id()).decode()
    except Exception:
        serial = cfg.get("device", {}).get("id") or ""
    from m2m import VERSION

    dev.add(0, {
        0: cfg_l.get("manufacturer") or "m2mkit",
        1: cfg_l.get("model") or sys.platform,
        2: serial,
        3: VERSION,
        4: client.reboot,
        5: client.factory_reset,
        6: {0: 1},  # internal battery (OMA 3.xml: 1)
        9: lambda: client.battery_level(),
        10: lambda: gc.mem_free() // 1024,
        11: lambda: client.errors or {0: 0},
        12: client.reset_errors,
        13: lambda: int(hal.epoch()) + client.clock_offset,
        14: "+00:00",
        16: "UQ" if cfg_l.get("queue_mode") else "U",
    })
    dev.on_write = client.device_written
    # 4 Connectivity Monitoring
    if network is not None:
        def sig(k):
            def f():
                s = getattr(network, "signal", None) or {}
                return s.get(k)
            return f

        def bearer():
            return _BEARER.get(getattr(network, "rat", None) or "", None)

        def ci():
            s = getattr(network, "signal", None) or {}
            c = s.get("ci")
            return int(c, 16) if isinstance(c, str) else c

        cm = m.objs[4] = Obj(4, CONNMON)
        cm.add(0, {
            0: bearer, 1: {0: 6}, 2: lambda: sig("rsrp")() if sig("rsrp")() is not None else sig("rssi")(),
            3: sig("quality"), 7: {0: cfg.get("net", {}).get("apn") or ""}, 8: ci,
            9: lambda: _plmn(getattr(network, "signal", None), 1),
            10: lambda: _plmn(getattr(network, "signal", None), 0),
        })
    # 5 Firmware Update
    fw = m.objs[5] = Obj(5, FIRMWARE)
    fw.add(0, {1: "", 2: client.fw_update, 3: 0, 5: 0, 8: {0: 0}, 9: 0})
    fw.on_write = client.fw_written
    # 7 Connectivity Statistics (bytes counted by the endpoint's datagrams)
    st = m.objs[7] = Obj(7, CONNSTATS)
    st.add(0, {0: 0, 1: 0, 2: lambda: client.traffic()[0] // 1024, 3: lambda: client.traffic()[1] // 1024,
               6: client.stats_start, 7: client.stats_stop, 8: 0})
    # IPSO sensors from the sampler's readings
    if sampler is not None:
        from m2m.sense import ipso

        pins = {}  # a pulse input's reading name (as m2m.sense.build names it) -> its GPIO
        for e in (cfg.get("sense") or {}).get("sensors") or ():
            if type(e) is dict and e.get("type") == "pulses" and "pin" in e:
                pins[(e["id"] + ".pulses") if e.get("id") else "pulses"] = e["pin"]
        for name in sampler.names():
            oid = ipso(name)
            o = m.objs.get(oid)
            if o is None:
                o = m.objs[oid] = Obj(oid, DIGITAL if oid == 3200 else IPSO, multi=True)
            o.add(len(o.inst), _digital(sampler, name, pins.get(name)) if oid == 3200 else _sensor(sampler, name))
    return m


# ---- the Client's construction (Client.__init__): dropped with build once it is made ----
def init(self, cfg, network, sampler, outbox, stack, name, state):
    from m2m.lwm2m.client import _bs

    lw = cfg.get("lwm2m", {})
    self.cfg = cfg
    self.name = lw.get("endpoint") or name or cfg.get("device", {}).get("id")
    if not self.name:
        raise ValueError("lwm2m: set lwm2m.endpoint or device.id (the endpoint name)")
    self.lifetime = lw.get("lifetime_s", 86400)
    self.queue = lw.get("queue_mode", False)
    self.awake_ms = lw.get("awake_s", 93) * 1000
    self.send_telemetry = lw.get("send", False)
    self.dtls_modem = lw.get("dtls") == "modem"  # the modem ends DTLS (m2m.lwm2m.mdtls)
    self.stack = stack
    self.outbox = outbox
    self.network = network
    self.sampler = sampler
    self.errors = None
    self.tx_bytes = self.rx_bytes = 0
    self.clock_offset = 0  # s: a server's Write of Current Time (/3/0/13) against hal.epoch()
    self.ep = None
    self.tr = None
    self.loc = None  # the registration's location path ["rd", "xyz"]
    self.obs = []
    self.sending = None  # the Send in flight: last outbox seq
    self.sent = 0
    self.fw_job = None
    self.model = m = build(cfg, self, network, sampler)
    self.attrs = None  # Write-Attributes, once a server writes some (m2m.lwm2m.notify)
    self.names = {}  # reading name -> (oid, iid) of its IPSO object (Send)
    if sampler is not None:
        from m2m.sense import ipso

        for name in sampler.names():
            o = ipso(name)
            self.names[name] = (o, sum(1 for n in self.names.values() if n[0] == o))
    server = lw.get("server")
    bs = lw.get("bootstrap")
    psk = _psk(self, lw)
    self.state_file = state  # objects 0 and 1 as the bootstrap server wrote them (kept across reboots)
    self.bs_uri = bs
    self.bootstrapped = False  # the server account came from a bootstrap (this boot or kept)
    if bs:
        m.objs[0].add(0, {0: bs, 1: True, 2: 0 if psk else 3, 3: psk[0] if psk else b"",
                          5: psk[1] if psk else b"", 10: 0})
        self.state = _BOOTSTRAP
        if state and _bs().load(self):
            self.state = _REGISTER
    elif server:
        _account(self, 0, server, 1, psk)
        self.state = _REGISTER
    else:
        raise ValueError("lwm2m: set lwm2m.server (coap://HOST:PORT) or lwm2m.bootstrap")
    self.due = hal.ticks_ms()  # when the state's next action is due
    self.wake = None  # queue mode: when to sleep
    self.tries = 0
    self.pending = None  # the registration interface request in flight
    self.reg = (None, None)  # lifetime and binding the server was told
    m.objs[1].on_write = self._server_written
    self._close_later = False  # Bootstrap-Finish answered: the next Register opens the server
    self._after = None  # run once the answer went out (Reboot)


def _psk(self, lw):
    if not lw.get("psk_key"):
        return None
    import binascii

    return ((lw.get("psk_identity") or self.name).encode(), binascii.unhexlify(lw["psk_key"]))


def _account(self, iid, uri, ssid, psk):
    m = self.model
    m.objs[0].add(iid, {0: uri, 1: False, 2: 0 if psk else 3, 3: psk[0] if psk else b"",
                        5: psk[1] if psk else b"", 10: ssid})
    lw = self.cfg.get("lwm2m", {})
    m.objs[1].add(0, {0: ssid, 1: self.lifetime, 6: True, 7: "UQ" if self.queue else "U",
                      4: self._disable, 8: self._update_trigger,
                      2: lw.get("pmin", 0), 3: lw.get("pmax", 0)})


def _digital(sampler, name, pin):
    def count():
        r = sampler.latest(name)
        return None if r is None else int(r[0])

    def state():
        # Pin(id) alone does not configure the pad (ports/esp32/machine_pin.c mp_pin_make_new: "pin
        # mode given, so configure this GPIO" only with more arguments); value() is gpio_get_level
        return bool(hal.Pin(pin).value())

    return {5501: count} if pin is None else {5500: state, 5501: count}


def _sensor(sampler, name):
    mm = [None, None]

    def val():
        r = sampler.latest(name)
        if r is None:
            return None
        v = r[0]
        if mm[0] is None or v < mm[0]:
            mm[0] = v
        if mm[1] is None or v > mm[1]:
            mm[1] = v
        return float(v)

    def unit():
        r = sampler.latest(name)
        return r[1] if r else None

    def reset(arg):
        mm[0] = mm[1] = None

    def lo():
        val()
        return None if mm[0] is None else float(mm[0])

    def hi():
        val()
        return None if mm[1] is None else float(mm[1])

    return {5601: lo, 5602: hi, 5605: reset, 5700: val, 5701: unit}

# The modem layer without a network: detection, the dialects' data, and each dialect's command
# formatting and answer parsing, fed through the real AT driver from answers written the way the
# vendors' manuals (and the transcripts in shared/at-transcripts) show them.
# m2m: timeout=60
from m2m import modem
from m2m.at import AT
from m2m.modem import MODELS, ModemError, Modem, OPT, URC, USER, detect, model_class
from m2m.modem.quectel import BG95, BG96
from m2m.modem.sequans import GM02S
from m2m.modem.simcom import SIM7000G, SIM7080G
from m2m.modem.up import scripts as S  # a dialect's bring-up scripts (INIT, RAT, BANDS, APN)

ALL = (SIM7080G, SIM7000G, BG95, BG96, GM02S)
OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"


class FakeUART:
    # A modem that answers from a table: command (bytes, no CR) -> list of answers, one per call
    # (the last one repeats). An answer is bytes, or a tuple of chunks: the first goes out after
    # the command, each next one after the next write (the payload after a "> " prompt).
    def __init__(self, table=None):
        self.table = dict(table or {})
        self.rx = b""
        self.sent = []
        self.pending = []
        self.calls = {}

    def on(self, cmd, *answers):
        self.table[cmd] = list(answers)
        return self

    def push(self, data):
        # bytes the modem sends on its own (a URC)
        self.rx += data

    def write(self, buf):
        buf = bytes(buf)
        if self.pending:
            self.sent.append(buf)
            self.rx += self.pending.pop(0)
            return len(buf)
        cmd = buf.rstrip(b"\r")
        self.sent.append(cmd)
        self.calls[cmd] = self.calls.get(cmd, 0) + 1
        answers = self.table.get(cmd)
        if answers is None:
            self.rx += ERROR
            return len(buf)
        a = answers[0] if len(answers) == 1 else answers.pop(0)
        if isinstance(a, tuple):
            self.rx += a[0]
            self.pending = list(a[1:])
        else:
            self.rx += a
        return len(buf)

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def any(self):
        return len(self.rx)

    def wait(self, timeout_ms):
        return bool(self.rx)


def driver(table=None):
    u = FakeUART(table)
    return u, AT(u, timeout_ms=300)


def expect_error(fn, *words):
    try:
        fn()
    except ModemError as e:
        msg = str(e)
        for w in words:
            assert w in msg, (w, msg)
        return msg
    raise AssertionError("ModemError expected")


# ---- registry and detection ----
def test_registry_names_match_classes():
    assert sorted(MODELS) == ["bg95", "bg96", "gm02s", "sim7000g", "sim7080g"]
    for name in MODELS:
        assert model_class(name).NAME == name
    expect_error(lambda: model_class("sim800"), "sim800", "bg95", "sim7080g")


def test_detection_table():
    table = (
        (b"SIMCOM_SIM7080", SIM7080G),  # LilyGO T-SIM7080G issue log
        (b"SIMCOM_SIM7080G", SIM7080G),
        (b"SIMCOM_SIM7000G", SIM7000G),
        (b"SIMCOM_SIM7000E", SIM7000G),
        (b"BG95-M3", BG95),
        (b"BG95-M1", BG95),
        (b"BG77", BG95),  # bg77 transcript: same AT manual
        (b"BG96", BG96),
        (b"GM02SP", GM02S),
        (b"GM02S", GM02S),
    )
    for answer, cls in table:
        u, at = driver({b"AT+CGMM": [b"\r\n" + answer + b"\r\n" + OK]})
        assert detect(at) is cls, answer


def test_detection_with_echo_and_a_urc_in_the_answer():
    u, at = driver({b"AT+CGMM": [b"AT+CGMM\r\r\n+CEREG: 2\r\nBG96\r\n\r\nOK\r\n"]})
    assert detect(at) is BG96


def test_detection_falls_back_to_ati():
    # SIM7000G: "SIM7000G R1529" (sim7000g transcript); BG96: multi-line ATI (bg96 transcript)
    for ati, cls in ((b"\r\nSIM7000G R1529\r\n" + OK, SIM7000G),
                     (b"\r\nQuectel\r\nBG96\r\nRevision: BG96MAR02A07M1G\r\n" + OK, BG96)):
        u, at = driver({b"AT+CGMM": [ERROR], b"ATI": [ati]})
        assert detect(at) is cls


def test_unknown_modem_names_the_known_models():
    u, at = driver({b"AT+CGMM": [b"\r\nSARA-R410M-02B\r\n" + OK], b"ATI": [b"\r\nu-blox\r\n" + OK]})
    msg = expect_error(lambda: detect(at), "SARA-R410M-02B")
    for name in MODELS:
        assert name in msg, msg


def test_silent_modem_is_reported_as_such():
    u, at = driver({b"AT+CGMM": [b""], b"ATI": [b""]})
    expect_error(lambda: detect(at, timeout_ms=50), "no answer")


def test_create_prefers_the_board_model():
    u, at = driver()
    m = modem.create(at, {"name": "x", "modem": {"model": "bg96", "pwrkey": None, "reset": None}})
    assert type(m) is BG96 and u.sent == []


# ---- the dialects' data ----
def _scripts(cls):
    out = [("INIT", S(cls).INIT), ("BANDS", S(cls).BANDS), ("APN", S(cls).APN), ("PDP_UP", cls.PDP_UP),
           ("PDP_DOWN", cls.PDP_DOWN)]
    for k in S(cls).RAT:
        out.append(("RAT " + k, S(cls).RAT[k]))
    for k in cls.SOCKET_SETUP or {}:
        out.append(("SOCKET_SETUP " + k, cls.SOCKET_SETUP[k]))
    return out


PARAMS = {"apn": "internet", "user": "u", "password": "p", "auth": 3, "bands": "3,20",
          "mask": "80004", "sid": 1, "ssl_ctx": 0}


def test_scripts_are_well_formed():
    for cls in ALL:
        for name, script in _scripts(cls):
            assert isinstance(script, tuple) and script, (cls.NAME, name)
            for step in script:
                where = (cls.NAME, name, step)
                assert isinstance(step, tuple) and 3 <= len(step) <= 5, where
                cmd, resp, tmo = step[:3]
                flags = step[3] if len(step) > 3 else 0
                assert isinstance(cmd, str) and cmd.startswith("AT"), where
                assert cmd.format(**PARAMS).startswith("AT"), where
                assert resp is None or isinstance(resp, (bytes, tuple)), where
                assert isinstance(tmo, int) and 100 <= tmo <= 180000, where
                assert flags & ~(OPT | URC | USER) == 0, where
                if flags & URC:
                    assert isinstance(resp, bytes) and resp, where
                if len(step) == 5:
                    assert step[4] in ("cgmm", "imei", "imsi", "iccid", "firmware"), where


def test_init_echo_off_first_and_reads_the_identity():
    for cls in ALL:
        cmds = [s[0] for s in S(cls).INIT]
        assert cmds[0] == "ATE0", cls.NAME
        assert "AT+CMEE=1" in cmds and any(c.startswith("AT+CEREG=") for c in cmds), cls.NAME
        keys = [s[4] for s in S(cls).INIT if len(s) > 4]
        assert sorted(keys) == ["cgmm", "firmware", "iccid", "imei", "imsi"], cls.NAME


def test_tables_are_data():
    for cls in ALL:
        assert isinstance(cls.CGMM, tuple) and cls.CGMM and all(isinstance(c, str) for c in cls.CGMM)
        assert cls.BANNERS and all(isinstance(b, bytes) for b in cls.BANNERS)
        assert len(cls.PWRKEY_MS) == 3 and all(isinstance(v, int) and v > 0 for v in cls.PWRKEY_MS)
        names = set()
        for prefix, name in cls.URCS:
            assert isinstance(prefix, bytes) and isinstance(name, str), (cls.NAME, prefix)
            names.add(name)
        for need in ("reg", "sim", "sock_data", "sock_closed", "pdp_down", "time"):
            assert need in names, (cls.NAME, need)
        lte = {"lte-m", "nb-iot", "auto"}
        gsm = {"gsm", "lte-m+gsm", "nb-iot+gsm", "auto+gsm"}
        # GSM where the modem has a 2G radio: all four keys, or none (SIM7080G, GM02S)
        assert set(S(cls).RAT) in (lte, lte | gsm), cls.NAME
        assert ("gsm" in S(cls).RAT) == (cls.NAME in ("bg95", "bg96", "sim7000g")), cls.NAME
        rule = cls.RECV_DATA if isinstance(cls.RECV_DATA, tuple) else cls.RECV_DATA["tcp"]
        assert isinstance(rule[0], bytes) and rule[0].endswith(b":") and rule[1] >= 0


def test_no_identity_string_is_claimed_twice():
    seen = {}
    for cls in ALL:
        for ident in cls.CGMM:
            assert ident not in seen, (ident, cls.NAME, seen.get(ident))
            seen[ident] = cls.NAME


def test_siblings_override_only_what_differs():
    # SIM7000G vs SIM7080G and BG96 vs BG95: everything else is inherited, not copied
    # (the bring-up scripts, in m2m.modem.<module>_up, follow the same rule)
    allowed = {
        SIM7000G: {"NAME", "CGMM", "ATI", "URCS", "PDP_UP", "PDP_DOWN", "SOCKET_IDS", "SOCKET_SETUP", "OPEN"},
        BG96: {"NAME", "CGMM", "ATI", "BANNERS", "SOCKET_SETUP", "OPEN"},  # CGMM, ATI: its registry entry
        S(SIM7000G): {"APN", "RAT"},  # RAT: the SIM7080's plus GSM
        S(BG96): set(),
    }
    for cls, names in allowed.items():
        own = set(k for k in cls.__dict__ if not k.startswith("__"))
        assert own <= names, (cls, own - names)
        parent = cls.__bases__[0]
        if not hasattr(cls, "NAME"):
            for k in ("INIT", "RAT", "BANDS"):
                if k == "RAT" and cls is S(SIM7000G):
                    for r in parent.RAT:
                        assert cls.RAT[r] is parent.RAT[r], r
                    continue
                assert getattr(cls, k) is getattr(parent, k), (cls, k)
            continue
        for k in ("SEND", "RECV", "RECV_DATA", "CLOSE", "PWRKEY_MS"):
            assert getattr(cls, k) is getattr(parent, k), (cls.NAME, k)
    assert S(BG96).__bases__[0] is S(BG95) and S(SIM7000G).__bases__[0] is S(SIM7080G)
    assert BG96.BANNERS == (b"RDY",) and BG95.BANNERS[-1] == b"APP RDY"


# ---- formatting ----
def test_socket_command_formatting():
    u, at = driver()
    expected = (
        (SIM7080G, 0, "tcp", 'AT+CAOPEN=0,0,"TCP","127.0.0.1",5683', "AT+CASEND=0,10",
         "AT+CARECV=0,512", "AT+CACLOSE=0"),
        (SIM7080G, 2, "dtls", 'AT+CAOPEN=2,0,"UDP","127.0.0.1",5683', "AT+CASEND=2,10",
         "AT+CARECV=2,512", "AT+CACLOSE=2"),
        (SIM7000G, 1, "udp", 'AT+CAOPEN=1,"127.0.0.1",5683', "AT+CASEND=1,10",
         "AT+CARECV=1,512", "AT+CACLOSE=1"),
        (BG95, 0, "udp", 'AT+QIOPEN=1,0,"UDP","127.0.0.1",5683,0,0', "AT+QISEND=0,10",
         "AT+QIRD=0,512", "AT+QICLOSE=0"),
        (BG95, 3, "tls", 'AT+QSSLOPEN=1,0,3,"127.0.0.1",5683,0', "AT+QSSLSEND=3,10",
         "AT+QSSLRECV=3,512", "AT+QSSLCLOSE=3"),
        (GM02S, 1, "tcp", 'AT+SQNSD=1,0,5683,"127.0.0.1",0,0,1', "AT+SQNSSENDEXT=1,10",
         "AT+SQNSRECV=1,512", "AT+SQNSH=1"),
        (GM02S, 2, "udp", 'AT+SQNSD=2,1,5683,"127.0.0.1",0,0,1', "AT+SQNSSENDEXT=2,10",
         "AT+SQNSRECV=2,512", "AT+SQNSH=2"),
    )
    for cls, sid, kind, o, s, r, c in expected:
        m = cls(at)
        assert m.open_cmd(sid, kind, "127.0.0.1", 5683) == o, (cls.NAME, m.open_cmd(sid, kind, "127.0.0.1", 5683))
        assert m.send_cmd(sid, kind, 10) == s
        assert m.recv_cmd(sid, kind, 512)[0] == r
        assert m.close_cmd(sid, kind) == c


def test_unsupported_socket_kinds_say_so():
    u, at = driver()
    for cls in (SIM7000G, BG96):
        m = cls(at)
        expect_error(lambda: m.open_cmd(0, "dtls", "h", 1), "dtls", cls.NAME)


def test_band_formatting():
    u, at = driver()
    assert SIM7080G(at).band_args([3, 8, 20]) == {"bands": "3,8,20"}
    # Quectel: band n is bit n-1 of a hex mask
    assert BG95(at).band_args([3, 8, 20]) == {"mask": "80084"}
    assert GM02S(at).band_args([20]) == {"bands": "20"}


def test_set_bands_rat_apn_send_the_templates():
    u, at = driver({b'AT+CBANDCFG="CAT-M",3,20': [OK], b'AT+CBANDCFG="NB-IOT",3,20': [OK],
                    b"AT+CNMP=38": [OK], b"AT+CMNB=2": [OK], b'AT+CGDCONT=1,"IP","iot.example"': [OK]})
    m = SIM7080G(at)
    assert m.set_bands([3, 20]) == 2
    assert m.set_rat("nb-iot") == 2
    assert m.set_apn("iot.example") == 1  # no user: AT+CNCFG is skipped
    expect_error(lambda: m.set_rat("5g"), "5g", "lte-m")
    u, at = driver({b'AT+QCFG="band",0,80004,80004,1': [OK],
                    b'AT+QICSGP=1,1,"apn","bob","pw",3': [OK]})
    m = BG95(at)
    assert m.set_bands([3, 20]) == 1
    assert m.set_apn("apn", "bob", "pw") == 1


# ---- answers parsed through the AT driver ----
def _identity_table(cls):
    # answers in each vendor's format
    t = {b"ATE0": [b"ATE0\r\r\nOK\r\n"]}
    for step in S(cls).INIT:
        t.setdefault(step[0].encode(), [OK])
    return t


def test_init_reads_identity_in_each_vendors_format():
    cases = (
        (SIM7080G, {b"AT+CGMM": b"SIMCOM_SIM7080", b"AT+CGMR": b"Revision:1951B16SIM7080",
                    b"AT+CCID": b"89883030000012345678", b"AT+CGSN": b"861234050123457",
                    b"AT+CIMI": b"001010123456789"},
         {"firmware": "1951B16SIM7080", "iccid": "89883030000012345678"}),
        (BG95, {b"AT+CGMM": b"BG95-M3", b"AT+CGMR": b"BG95M3LAR02A03",
                b"AT+QCCID": b"+QCCID: 89860318760243010000", b"AT+CGSN": b"866349041749536",
                b"AT+CIMI": b"001010123456789"},
         {"firmware": "BG95M3LAR02A03", "iccid": "89860318760243010000"}),
        (GM02S, {b"AT+CGMM": b"GM02SP", b"AT+CGMR": b"UE8.2.1.0",
                 b"AT+SQNCCID": b'+SQNCCID: "8901260852290270222",""', b"AT+CGSN": b"016169006438084",
                 b"AT+CIMI": b"310260859027022"},
         {"firmware": "UE8.2.1.0", "iccid": "8901260852290270222", "imei": "016169006438084"}),
    )
    for cls, answers, want in cases:
        t = _identity_table(cls)
        for cmd, line in answers.items():
            t[cmd] = [b"\r\n" + line + b"\r\n" + OK]
        u, at = driver(t)
        ident = cls(at).init()
        assert ident["model"] == cls.NAME
        assert ident["cgmm"] == answers[b"AT+CGMM"].decode()
        assert ident["imsi"] == answers[b"AT+CIMI"].decode()  # leading zeros kept
        for k, v in want.items():
            assert ident[k] == v, (cls.NAME, k, ident[k])


def test_sim_busy_is_asked_again_and_no_sim_is_none():
    t = _identity_table(BG95)
    t[b"AT+CGMM"] = [b"\r\nBG95-M3\r\n" + OK]
    t[b"AT+CIMI"] = [b"\r\n+CME ERROR: 14\r\n", b"\r\n001010123456789\r\n" + OK]
    t[b"AT+QCCID"] = [b"\r\n+CME ERROR: 10\r\n"]  # SIM not inserted: optional, stays None
    u, at = driver(t)
    ident = BG95(at).init()
    assert ident["imsi"] == "001010123456789" and u.calls[b"AT+CIMI"] == 2
    assert ident["iccid"] is None and u.calls[b"AT+QCCID"] == 1


def test_a_failing_required_step_names_the_command():
    t = _identity_table(GM02S)
    t[b"AT+CEREG=5"] = [b"\r\n+CME ERROR: 4\r\n"]
    u, at = driver(t)
    expect_error(lambda: GM02S(at).init(), "AT+CEREG=5", "CME")


def test_open_result_before_or_after_ok():
    # SIM7080: "+CAOPEN: 0,0" then OK (SIMCom TCP/UDP note); Quectel: OK then "+QIOPEN: 0,0"
    u, at = driver({b'AT+CASSLCFG=0,"SSL",0': [OK],
                    b'AT+CAOPEN=0,0,"TCP","10.0.0.1",80': [b"\r\n+CAOPEN: 0,0\r\n" + OK]})
    m = SIM7080G(at)
    assert m.sock_open(0, "tcp", "10.0.0.1", 80) == 0 and m.socket_kinds == {0: "tcp"}
    u, at = driver({b'AT+QIOPEN=1,0,"TCP","10.0.0.1",80,0,0': [OK + b"\r\n+QIOPEN: 0,0\r\n"]})
    m = BG95(at)
    assert m.sock_open(0, "tcp", "10.0.0.1", 80) == 0
    u, at = driver({b'AT+QIOPEN=1,1,"TCP","10.0.0.1",81,0,0': [OK + b"\r\n+QIOPEN: 1,566\r\n"]})
    expect_error(lambda: BG95(at).sock_open(1, "tcp", "10.0.0.1", 81), "566")
    u, at = driver({b'AT+CASSLCFG=0,"SSL",0': [OK],
                    b'AT+CAOPEN=0,0,"TCP","10.0.0.1",80': [b"\r\n+CAOPEN: 0,23\r\n" + OK]})
    expect_error(lambda: SIM7080G(at).sock_open(0, "tcp", "10.0.0.1", 80), "error 23")


def test_send_with_prompt_and_vendor_finals():
    payload = b"hello\r\nOK\r\n"
    n = b"%d" % len(payload)
    u, at = driver({b"AT+QISEND=0," + n: [(b"\r\n> ", b"\r\nSEND OK\r\n")]})
    m = BG95(at)
    m.socket_kinds[0] = "tcp"
    assert m.sock_send(0, payload) == len(payload) and u.sent[-1] == payload
    u, at = driver({b"AT+QISEND=0," + n: [(b"\r\n> ", b"\r\nSEND FAIL\r\n")]})
    m = BG95(at)
    m.socket_kinds[0] = "tcp"
    expect_error(lambda: m.sock_send(0, payload), "SEND FAIL")
    u, at = driver({b"AT+CASEND=0," + n: [(b"\r\n> ", OK)]})
    m = SIM7080G(at)
    m.socket_kinds[0] = "udp"
    assert m.sock_send(0, payload) == len(payload)
    u, at = driver({b"AT+SQNSSENDEXT=1," + n: [(b"\r\n> ", OK)]})
    m = GM02S(at)
    m.socket_kinds[1] = "tcp"
    assert m.sock_send(1, payload) == len(payload)


def test_receive_rules_for_each_dialect():
    data = b"\x00OK\r\n+QIURC: x\r\n\xff"
    n = b"%d" % len(data)
    cases = (
        (SIM7080G, 0, "tcp", b"AT+CARECV=0,100", b"\r\n+CARECV: " + n + b"," + data + b"\r\n" + OK),
        (BG95, 0, "tcp", b"AT+QIRD=0,100", b"\r\n+QIRD: " + n + b"\r\n" + data + b"\r\n" + OK),
        (BG95, 0, "udp", b"AT+QIRD=0,100",
         b'\r\n+QIRD: ' + n + b',"10.0.0.1",5683\r\n' + data + b"\r\n" + OK),
        (BG95, 2, "tls", b"AT+QSSLRECV=2,100", b"\r\n+QSSLRECV: " + n + b"\r\n" + data + b"\r\n" + OK),
        (GM02S, 1, "tcp", b"AT+SQNSRECV=1,100", b"\r\n+SQNSRECV: 1," + n + b"\r\n" + data + b"\r\n" + OK),
    )
    for cls, sid, kind, cmd, answer in cases:
        u, at = driver({cmd: [answer]})
        m = cls(at)
        m.socket_kinds[sid] = kind
        assert m.sock_recv(sid, 100) == data, (cls.NAME, kind)
    # nothing waiting
    for cls, cmd, answer in ((SIM7080G, b"AT+CARECV=0,100", b"\r\n+CARECV: 0\r\n" + OK),
                             (BG96, b"AT+QIRD=0,100", b"\r\n+QIRD: 0\r\n" + OK)):
        u, at = driver({cmd: [answer]})
        m = cls(at)
        m.socket_kinds[0] = "tcp"
        assert m.sock_recv(0, 100) == b""


def test_urc_table_names():
    u, at = driver()
    cases = (
        (SIM7080G, b"+CADATAIND: 0", "sock_data", [0]),
        (SIM7080G, b"+CASTATE: 0,0", "sock_closed", [0, 0]),
        (SIM7080G, b"+APP PDP: 0,DEACTIVE", "pdp_down", []),
        (SIM7000G, b"+APP PDP: DEACTIVE", "pdp_down", []),
        (SIM7000G, b'*PSUTTZ: 24/05/01,12:00:00","+08",0', "time", None),
        (BG95, b'+QIURC: "recv",0', "sock_data", [0]),
        (BG95, b'+QIURC: "closed",3', "sock_closed", [3]),
        (BG96, b'+QIURC: "pdpdeact",1', "pdp_down", [1]),
        (BG95, b'+QSSLURC: "recv",2', "sock_data", [2]),
        (GM02S, b"+SQNSRING: 1,267", "sock_data", [1, 267]),
        (GM02S, b"+SQNSH: 2", "sock_closed", [2]),
        (GM02S, b"+CGEV: NW PDN DEACT 1", "pdp_down", None),
        (GM02S, b"+CEREG: 5", "reg", [5]),
    )
    for cls, line, name, fields in cases:
        m = cls(at)
        assert m.urc_name(line) == name, (cls.NAME, line, m.urc_name(line))
        if fields is not None:
            assert m.urc_fields(line) == fields, (cls.NAME, line, m.urc_fields(line))


def test_urcs_become_events_between_and_during_commands():
    u, at = driver({b"AT+CSQ": [b'\r\n+QIURC: "recv",1\r\n+CSQ: 20,99\r\n' + OK]})
    m = BG95(at, None)
    r = at.cmd("AT+CSQ")
    assert r.lines == [b"+CSQ: 20,99"]  # the URC is not the answer
    u.push(b'\r\n+QIURC: "closed",1\r\n')
    at.poll(0)
    assert [e[0] for e in m.events] == ["sock_data", "sock_closed"]
    assert m.take_event(("sock_closed",)) == ("sock_closed", b'+QIURC: "closed",1')
    assert m.take_event() == ("sock_data", b'+QIURC: "recv",1') and m.take_event() is None


def test_pdp_up_waits_for_its_urc():
    u, at = driver({b"AT+CNACT=0,1": [OK + b"\r\n+APP PDP: 0,ACTIVE\r\n"]})
    assert SIM7080G(at).pdp_up() == 1
    u, at = driver({b'AT+CNACT=1,"iot"': [OK + b"\r\n+APP PDP: ACTIVE\r\n"]})
    assert SIM7000G(at).pdp_up(apn="iot") == 1
    u, at = driver({b"AT+CNACT=0,1": [OK]})
    m = SIM7080G(at)
    m.PDP_UP = (("AT+CNACT=0,1", b"+APP PDP: 0,ACTIVE", 200, URC),)
    expect_error(m.pdp_up, "+APP PDP: 0,ACTIVE")


# ---- power configuration ----
def test_power_config_from_board_data():
    u, at = driver()
    pk = {"pin": 41, "active": 1, "on_pulse_ms": 1000, "off_pulse_ms": 1300, "boot_ms": 5000}
    assert SIM7080G(at, {"model": "sim7080g", "pwrkey": pk}).power_config() == (41, 1, 1000, 1300, 5000)
    walter = {"model": "gm02s", "pwrkey": None,
              "reset": {"pin": 45, "active": 0, "pulse_ms": 100, "boot_ms": 5000}}
    assert GM02S(at, {"modem": walter}).power_config() == (45, 0, 100, 100, 5000)
    # no board: the dialect's defaults, and no pin to pulse
    assert BG95(at).power_config() == (None, 0) + BG95.PWRKEY_MS
    # a board that gives only some timings keeps the dialect's others
    assert BG96(at, {"pwrkey": {"pin": 25, "active": 1}}).power_config() == (25, 1) + BG95.PWRKEY_MS


def test_power_off_accepts_the_goodbye_line_as_the_answer():
    # SIM7080G: AT+CPOWD=1 answers "NORMAL POWER DOWN" instead of OK
    u, at = driver({b"AT+CPOWD=1": [b"\r\nNORMAL POWER DOWN\r\n"]})
    assert SIM7080G(at).power_off()
    # BG95: OK, then POWERED DOWN
    u, at = driver({b"AT+QPOWD=1": [OK + b"\r\nPOWERED DOWN\r\n"]})
    assert BG95(at).power_off()


def test_unresponsive_driver_posts_recovery():
    u, at = driver({b"AT": [b""]})
    at.max_timeouts = 2
    m = BG95(at)
    assert not m.ping(50) and not m.recovery_needed
    assert not m.ping(50) and m.recovery_needed
    # no PWRKEY on this (board-less) modem: nothing to pulse, so recovery cannot succeed
    assert m.ensure_responsive() is False


def test_detection_imports_only_the_matching_dialect():
    # a device must not pay the heap of every dialect to find out which one it has
    import sys
    from m2m import modem

    for mod in ("m2m.modem.simcom", "m2m.modem.quectel", "m2m.modem.sequans"):
        sys.modules.pop(mod, None)
    from m2m.modem import up

    assert up._match("BG95-M3") == "bg95"
    assert modem.model_class(up._match("BG95-M3")).NAME == "bg95"
    assert "m2m.modem.quectel" in sys.modules
    assert "m2m.modem.simcom" not in sys.modules and "m2m.modem.sequans" not in sys.modules


def test_secure_sockets_use_a_valid_ssl_context_on_every_socket_id():
    # Quectel: 12 sockets but SSL contexts 0..5, so a context can never be the socket id
    u, at = driver()
    for cls in ALL:
        m = cls(at)
        first, count = m.SOCKET_IDS
        for kind in ("tls", "dtls"):
            setup = (m.SOCKET_SETUP or {}).get(kind)
            if not setup:
                continue
            kw = m._sock(first + count - 1, kind)
            assert 0 <= kw["ssl_ctx"] <= 5, (cls.NAME, kind, kw)
            for step in setup:
                step[0].format(**kw)  # every placeholder of the setup script is filled


# ---- identity values are validated (issue 6: an out-of-sync modem's echo is no IMEI) ----
def test_identity_validators():
    from m2m.modem.up import valid_iccid, valid_imei, valid_imsi

    assert valid_imei("866349041749536") and valid_imei("016169006438084")
    assert not valid_imei("866349041749537")  # Luhn check digit wrong
    assert not valid_imei("86634904174953") and not valid_imei("AT") and not valid_imei("ATE0")
    for ok in ("89883030000012345678", "8901260852290270222", "8901260862291477114F",
               "8901260862291477114f", "891004234814455936"):
        assert valid_iccid(ok), ok
    for bad in ("ATE0", "AT", "12883030000012345678", "8988303000001234", "8988303000001234567890123",
                "89883030000012345X78", ""):
        assert not valid_iccid(bad), bad
    assert valid_imsi("001010123456789") and valid_imsi("310260859027022")
    assert not valid_imsi("AT") and not valid_imsi("00101012345678") and not valid_imsi("00101012345678X")


def test_init_never_stores_an_echo_as_identity():
    # stale echoes and stray lines before the real answers: the valid value is taken, or None
    t = _identity_table(BG95)
    t[b"AT+CGMM"] = [b"\r\nBG95-M3\r\n" + OK]
    t[b"AT+CGSN"] = [b"\r\nATE0\r\n\r\n866349041749536\r\n" + OK]
    t[b"AT+QCCID"] = [b"\r\nAT\r\n" + OK]  # only an echo: no ICCID rather than "AT"
    t[b"AT+CIMI"] = [b"\r\nAT+CGSN\r\n\r\n001010123456789\r\n" + OK]
    u, at = driver(t)
    m = BG95(at)
    ident = m.init()
    assert ident["imei"] == "866349041749536" and ident["iccid"] is None
    assert ident["imsi"] == "001010123456789"
    # an answer that is not an identity at all (a wrong Luhn digit, garbage) is refused too
    r = at.cmd("AT+CGSN")
    r.lines = [b"866349041749537"]
    assert m.answer(r, "imei") is None and m.answer(r) == "866349041749537"


def test_simcom_write_file_waits_for_download():
    # AT+CFSWFILE answers DOWNLOAD (not '>'): the file goes out only after it, then OK
    cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    cmd = b'AT+CFSWFILE=3,"ca.pem",0,%d,10000' % len(cert)
    u, at = driver({b"AT+CFSTERM": [OK], b"AT+CFSINIT": [OK],
                    cmd: [(b"\r\nDOWNLOAD\r\n", OK)]})
    m = SIM7080G(at)
    assert m.write_file("ca.pem", cert) == len(cert)
    assert u.sent == [b"AT+CFSTERM", b"AT+CFSINIT", cmd, cert, b"AT+CFSTERM"], u.sent
    # no DOWNLOAD (an error instead): nothing is written, the buffer is freed, the error named
    u, at = driver({b"AT+CFSTERM": [OK], b"AT+CFSINIT": [OK], cmd: [b"\r\n+CME ERROR: 3\r\n"]})
    expect_error(lambda: SIM7080G(at).write_file("ca.pem", cert), "ca.pem", "CME")
    assert cert not in u.sent and u.sent[-1] == b"AT+CFSTERM"
    for bad in (b"", b"x" * 10240):
        try:
            SIM7080G(at).write_file("big.pem", bad)
        except ValueError as e:
            assert "10239" in str(e)
        else:
            assert False

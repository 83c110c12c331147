"""The simulator's eUICC (m2mkit.sim.modem.euicc) on the wire, without the firmware: logical channels
(3GPP TS 27.007 +CCHO / +CGLA / +CCHC), the ISD-R's status words (ETSI TS 102 221 10.2.1), at most
3 channels (11.1.17), GET RESPONSE, and the control ops (delete, enable, network, channels)."""

import re
import socket
import time

import pytest

from m2mkit.sim.modem import ModemSim

EID = "89049032123451234512345678901235"
A = "89440000000000000011"
B = "89440000000000000029"
ISDR = "A0000005591010FFFFFFFF8900000100"


@pytest.fixture
def sim():
    s = ModemSim("bg95", time_scale=50)
    s.start()
    r = s.request({"op": "euicc", "action": "install", "eid": EID, "profiles": [
        {"iccid": A, "imsi": "001010000000011"}, {"iccid": B, "imsi": "001030000000022", "nickname": "b"}]})
    assert r["ok"], r
    yield s
    s.stop()


class Wire:
    def __init__(self, sim):
        for _ in range(200):  # the modem's boot (the UART is dead before it)
            if sim.request({"op": "status"})["power"] == "on":
                break
            time.sleep(0.02)
        self.c = socket.create_connection(sim.uart_address)
        self.buf = b""
        self.seen = ""  # everything read, URCs included
        self.cmd("AT+CMEE=1")

    def cmd(self, line, timeout=5):
        self.c.sendall(line.encode() + b"\r")
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(rb"\r\n(OK|ERROR|\+CME ERROR: \d+)\r\n", self.buf)
            if m and line.encode() in self.buf:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                self.seen += out.decode()
                return out.decode()
            self.c.settimeout(0.2)
            try:
                self.buf += self.c.recv(4096)
            except socket.timeout:
                pass
        raise AssertionError("no answer to %s: %r" % (line, self.buf))

    def apdu(self, ch, hexs):
        out = self.cmd('AT+CGLA=%d,%d,"%s"' % (ch, len(hexs), hexs))
        m = re.search(r'\+CGLA: (\d+),"([0-9A-F]*)"', out)
        assert m and int(m.group(1)) == len(m.group(2)), out
        return m.group(2)


def es10(w, ch, req):
    r = w.apdu(ch, "80E29100%02X%s" % (len(req) // 2, req))
    data = ""
    while r.startswith("61"):
        r = w.apdu(ch, "80C00000" + r[2:4])
        data += r[:-4]
        r = r[-4:]
    return data, r


def wait_ready(w):
    for _ in range(100):
        if "+CPIN: READY" in w.cmd("AT+CPIN?"):
            return
        time.sleep(0.05)
    raise AssertionError("SIM not ready")


def test_channels_status_words_and_get_response(sim):
    w = Wire(sim)
    wait_ready(w)
    assert "OK" in w.cmd("AT+CCHO=?")
    assert w.cmd('AT+CCHO="A0000000871002FF"').endswith("\r\nERROR\r\n")  # only the ISD-R selects here
    chans = [int(re.search(r"\+CCHO: (\d+)", w.cmd('AT+CCHO="%s"' % ISDR)).group(1)) for _ in range(3)]
    assert chans == [1, 2, 3]
    assert "+CME ERROR: 100" in w.cmd('AT+CCHO="%s"' % ISDR)  # no fourth channel
    data, sw = es10(w, 1, "BF3E035C015A")
    assert sw == "9000" and data == "BF3E125A10" + EID
    # Lc that does not match the data: 6700; P1 other than 91: 6A86; an unknown ES10 tag: 6A88;
    # a class other than 80: 6E00; an instruction other than STORE DATA / GET RESPONSE: 6D00;
    # malformed BER-TLV: 6A80; GET RESPONSE with nothing waiting: 6985; a Le beyond it: 6Cxx
    assert w.apdu(2, "80E2910007BF3E035C015A") == "6700"
    assert w.apdu(2, "80E2110006BF3E035C015A") == "6A86"
    assert w.apdu(2, "80E2910003BF7F00") == "6A88"
    assert w.apdu(2, "00E2910006BF3E035C015A") == "6E00"
    assert w.apdu(2, "80CA00005A") == "6D00"
    assert w.apdu(2, "80E2910003BF3E05") == "6A80"
    assert w.apdu(2, "80C0000010") == "6985"
    assert w.apdu(2, "80E2910006BF3E035C015A") == "6115"
    assert w.apdu(2, "80C0000020") == "6C15"
    assert "+CME ERROR: 50" in w.cmd('AT+CGLA=2,12,"80C00000"')  # <length> is not the hex count
    assert "+CME ERROR: 50" in w.cmd('AT+CGLA=4,10,"80C0000010"')  # no such session
    for c in chans:
        assert "OK" in w.cmd("AT+CCHC=%d" % c)
    assert "+CME ERROR: 50" in w.cmd("AT+CCHC=1")


def test_profiles_enable_refresh_and_control_ops(sim):
    w = Wire(sim)
    wait_ready(w)
    ch = int(re.search(r"\+CCHO: (\d+)", w.cmd('AT+CCHO="%s"' % ISDR)).group(1))
    data, sw = es10(w, ch, "BF2D035C015A")  # tagList: the ICCIDs only
    assert sw == "9000" and data == "BF2D1EA01CE30C5A0A98440000000000000011E30C5A0A98440000000000000092"
    data, sw = es10(w, ch, "BF3111A00C5A0A984400000000000000118101FF")  # A: enabled already
    assert sw == "9000" and data == "BF3103800102"
    data, sw = es10(w, ch, "BF3111A00C5A0A984400000000000000998101FF")  # not on the card
    assert data == "BF3103800101"
    data, sw = es10(w, ch, "BF3111A00C5A0A984400000000000000928101FF")  # B
    assert sw == "9000" and data == "BF3103800100"
    # the refresh: NOT READY, then READY with the new profile's identity; channels closed
    time.sleep(0.02)
    w.cmd("AT")
    assert "+CPIN: NOT READY" in w.seen
    wait_ready(w)
    assert B in w.cmd("AT+QCCID") and "001030000000022" in w.cmd("AT+CIMI")
    assert "+CME ERROR: 50" in w.cmd("AT+CCHC=%d" % ch)
    st = sim.request({"op": "euicc", "action": "status"})
    assert st["enabled"] == B and st["refreshes"] == 1 and st["channels"] == []
    # control: the enabled profile cannot be deleted, a disabled one can; a network state for one
    r = sim.request({"op": "euicc", "action": "delete", "iccid": B})
    assert not r["ok"] and "only a disabled profile" in r["error"]
    r = sim.request({"op": "euicc", "action": "delete", "iccid": A})
    assert r["ok"] and [p["iccid"] for p in r["profiles"]] == [B]
    r = sim.request({"op": "euicc", "action": "network", "iccid": B, "state": "nowhere"})
    assert not r["ok"] and "ok, denied, silent" in r["error"]
    r = sim.request({"op": "euicc", "action": "channels", "on": False})
    assert r["ok"] and r["logical_channels"] is False
    assert w.cmd("AT+CCHO=?").endswith("\r\nERROR\r\n")
    r = sim.request({"op": "euicc", "action": "fly"})
    assert not r["ok"] and "install, enable" in r["error"]


def test_a_plain_uicc_has_no_isdr():
    with ModemSim("bg95", time_scale=50) as s:  # a dialect with the commands: the card says no
        w = Wire(s)
        wait_ready(w)
        assert w.cmd("AT+CCHO=?").endswith("\r\nOK\r\n")
        assert w.cmd('AT+CCHO="%s"' % ISDR).endswith("\r\nERROR\r\n")
        assert s.request({"op": "euicc", "action": "status"})["euicc"] is None


@pytest.mark.parametrize("model,has", [("sim7080g", False), ("sim7000g", False), ("bg96", False),
                                       ("bg95", True), ("gm02s", True)])
def test_logical_channels_per_dialect(model, has):
    # SIM7080 V1.05, SIM7000 V1.06 and BG96 V2.2 AT manuals list no AT+CCHO / +CGLA / +CCHC
    # (simcom.py, quectel.py); BG95 and GM02S: ASSUMED docs/ASSUMED.md#A-ESIM-CCHO
    with ModemSim(model, time_scale=50) as s:
        w = Wire(s)
        for c in ("AT+CCHO=?", "AT+CGLA=?", "AT+CCHC=?"):
            assert w.cmd(c).endswith("\r\nOK\r\n" if has else "\r\nERROR\r\n"), (model, c)

# m2m: timeout=120
# Fuzz the AT parser: 100,000 random and garbled chunks (0..128 bytes) mixing valid responses, URCs,
# prompts, payloads, random bytes and truncations, with commands starting and being abandoned at
# random. Fixed seed. The parser must never raise, every event must have its documented shape, and
# after the garbage (plus the driver's resync: abort()) a clean AT+CGMM exchange parses exactly.
import random

from m2m.atparse import (
    ATParser, ATParseError, EV_FINAL, EV_LINE, EV_URC, EV_PROMPT, EV_DATA, EV_NOISE, EV_OVERFLOW,
)

SEED = 20240501
CHUNKS = 100000
LINE_MAX = 128
DATA_MAX = 256

PIECES = (
    b"\r\nOK\r\n", b"\r\nERROR\r\n", b"\r\n+CME ERROR: 10\r\n", b"\r\n+CMS ERROR: 500\r\n",
    b"AT+CGMM\r\r\nBG95-M3\r\n\r\nOK\r\n", b"\r\n+CEREG: 0,1\r\n", b"\r\n+CEREG: 5\r\n",
    b"\r\nRDY\r\n", b"\r\nAPP RDY\r\n", b"\r\n+CPIN: READY\r\n", b"\r\n+SYSSTART\r", b"\n",
    b"\r\nDST: 1\r\n", b"\r\n*PSUTTZ: 24/05/01,10:00:00\",\"+08\",1\r\n", b"\r\n> ", b">",
    b"\r\nSEND OK\r\n", b"\r\nSEND FAIL\r\n", b"\r\n+QIURC: \"recv\",0\r\n",
    b"\r\n+QIRD: 10\r\n\r\nOK\r\n\x00\xff@\r\n\r\nOK\r\n", b"\r\n+QIRD: 1500\r\n",
    b"\r\n+CARECV: 6,\r\nOK\r\n\r\nOK\r\n", b"\r\n+CARECV: 0\r\n", b"+CARECV: 99999999,",
    b"\r\n+SQNSRECV: 1,4\r\nabcd\r\nOK\r\n", b"\r\n+CIPRXGET: 2,3,0\r\n\r\n\n\r\nOK\r\n",
    b"\x00\xff\xfe@", b"@", b"X" * 200, b"\r\nNO CARRIER\r\n", b"0, SEND OK\r\n",
    b"\r\n+CEREG: 3,1,\"9FC5\",\"011FCC67\",9\r\n",
)

RULES = (
    None, None, None, (b"+QIRD:", 0, False), (b"+CARECV:", 0, True), (b"+SQNSRECV:", 1, False),
    (b"+CIPRXGET: 2,", 0, False),
)
CMDS = (b"AT+CGMM", b"AT+CEREG?", b"AT+CIMI", b"AT+QIRD=0,1500", b"AT+CARECV=0,100",
        b"AT+QISEND=0,5", b"AT")


def corpus(rnd, size):
    out = bytearray()
    while len(out) < size:
        k = rnd(4)
        if k < 9:
            pc = PIECES[rnd(5) % len(PIECES)]
            if k == 8:
                pc = pc[:rnd(6) % (len(pc) + 1)]  # truncated
            out += pc
        elif k < 13:
            for _ in range(rnd(6)):
                out.append(rnd(8))  # random bytes
        else:
            out += b"\r\n" if k == 13 else b"\r"
    return bytes(out)


def check(ev):
    k = ev[0]
    assert type(ev) is tuple and 1 <= k <= 7, ev
    if k == EV_FINAL:
        assert len(ev) == 4 and ev[1] in (True, False) and type(ev[3]) is bytes
        assert (ev[2] is None) == ev[1]
    elif k in (EV_LINE, EV_URC, EV_NOISE):
        line = ev[1]
        assert type(line) is bytes and len(line) <= LINE_MAX, ev
        assert b"\r" not in line and b"\n" not in line, ev
    elif k == EV_DATA:
        assert type(ev[1]) is bytes and len(ev[1]) <= DATA_MAX
    elif k == EV_OVERFLOW:
        assert type(ev[1]) is int and ev[1] > 0
    else:
        assert ev == (EV_PROMPT,)


def clean_exchange(p, events):
    # what a driver does after a timeout: abandon the command, then talk again
    p.abort()
    p.feed(b"\r\n")
    del events[:]
    p.begin(b"AT+CGMM")
    p.feed(b"AT+CGMM\r\r\nSIMCOM_SIM7080G\r\n\r\nOK\r\n")
    assert events == [(EV_LINE, b"SIMCOM_SIM7080G"), (EV_FINAL, True, None, b"OK")], events
    del events[:]


def test_fuzz_random_chunks_then_resync():
    random.seed(SEED)
    rnd = random.getrandbits
    data = corpus(rnd, 1 << 16)
    mv = memoryview(data)
    events = []
    counts = [0] * 8
    p = ATParser(events.append, LINE_MAX, DATA_MAX)
    pos = 0
    n = len(data)
    for i in range(CHUNKS):
        r = rnd(8)
        if not p.busy and r < 24:
            cmd = CMDS[r % len(CMDS)]
            p.begin(cmd, data=RULES[r % len(RULES)], prompt=r & 1,
                    finals=(b"SEND OK",) if r & 2 else None, fails=(b"SEND FAIL",))
        elif p.busy and r > 250:
            p.abort()
        size = rnd(8) % 129  # up to 128: both the byte-wise and the chunked path
        if pos + size > n:
            pos = rnd(12)
        piece = mv[pos:pos + size]
        pos += size
        t = i & 3
        try:
            if t == 0:
                p.feed(bytes(piece))
            elif t == 1:
                p.feed(bytearray(piece))
            elif t == 2:
                p.feed(piece)
            else:
                b = bytearray(128)
                b[0:size] = piece
                p.feed(b, size)
        except ATParseError:
            raise AssertionError("the byte stream must never raise")
        for ev in events:
            check(ev)
            counts[ev[0]] += 1
            if ev[0] == EV_PROMPT and r & 4:
                p.payload_sent(b"hello\r\nOK\r\n")
        del events[:]
        if i % 20000 == 19999:
            clean_exchange(p, events)
    clean_exchange(p, events)
    # the mix really exercised every kind of event
    for k in (EV_FINAL, EV_LINE, EV_URC, EV_PROMPT, EV_DATA, EV_NOISE, EV_OVERFLOW):
        assert counts[k] > 50, (k, counts)


def test_fuzz_resync_without_abort():
    # garbage straight before a response: the response's own line ends resync the parser; the
    # final result still arrives, and the last two events are exactly the answer
    random.seed(SEED + 1)
    rnd = random.getrandbits
    for i in range(300):
        events = []
        p = ATParser(events.append, LINE_MAX, DATA_MAX)
        junk = bytes(rnd(8) for _ in range(rnd(7)))
        p.feed(junk)
        del events[:]
        p.begin(b"AT+CGMM")
        p.feed(b"\r\nSIMCOM_SIM7080G\r\n\r\nOK\r\n")
        assert events[-2:] == [(EV_LINE, b"SIMCOM_SIM7080G"), (EV_FINAL, True, None, b"OK")], (
            junk, events)

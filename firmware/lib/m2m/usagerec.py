# Signed, chained usage records (format: docs/CONTRACTS.md "Usage records").
# HMAC-SHA256 is RFC 2104 over hashlib.sha256 (MicroPython's hashlib has sha256 with update / digest,
# digest once, no hexdigest and no hmac module: docs.micropython.org library/hashlib.html; the ESP32
# port builds it with MICROPY_PY_HASHLIB_SHA256 (1), micropython ports/esp32/mpconfigport.h); the tag is
# truncated to its first 16 bytes (RFC 2104 section 5: at least half the hash output, >= 80 bits).
#
# The chain head (n, s) and each meter's last recorded end (b, t1) live in a state file written
# atomically (temporary file, rename). Order per record: the state with the record as "pending",
# then the outbox append (flushed), then the state without it. At start a pending record is looked for
# among the outbox's unacknowledged USAGE records and appended when it is not there, so a power cut
# at any moment neither loses a record nor makes a second, different one with the same number.
import binascii
import hashlib
import json
import os

from micropython import const

_BLOCK = const(64)  # SHA-256 block size (RFC 2104 "B")
_TAG = const(16)  # bytes of the HMAC kept


class Signer:
    # HMAC-SHA256 with a fixed key: the padded keys are made once (RFC 2104 section 2)
    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        k = bytearray(_BLOCK)
        k[:len(key)] = key
        i = bytearray(_BLOCK)
        for j in range(_BLOCK):
            i[j] = k[j] ^ 0x36
            k[j] ^= 0x5C
        self._ipad = bytes(i)
        self._opad = bytes(k)

    def mac(self, msg):
        h = hashlib.sha256(self._ipad)
        h.update(msg)
        o = hashlib.sha256(self._opad)
        o.update(h.digest())
        return o.digest()

    def tag(self, msg):
        # the record's "s": the first 16 bytes of the HMAC, lower-case hex
        return binascii.hexlify(self.mac(msg)[:_TAG]).decode()


def load_key(path="/certs/usage.key"):
    # the device's usage secret (hex); never printed
    try:
        with open(path) as f:
            return binascii.unhexlify(f.read().strip())
    except (OSError, ValueError):
        raise ValueError("no usage key in %s: provision the device again (m2mkit provision writes it)" % path)


def message(dev, m, n, a, b, k, u, t0, t1, p):
    # what the signature covers: <device id>|m|n|a|b|k|u|t0|t1|p
    return ("%s|%s|%d|%d|%d|%s|%s|%d|%d|%s" % (dev, m, n, a, b, k, u, t0, t1, p)).encode()


def payload(m, n, a, b, k, u, t0, t1, p, s):
    return ('{"m":"%s","n":%d,"a":%d,"b":%d,"k":"%s","u":"%s","t0":%d,"t1":%d,"p":"%s","s":"%s"}'
            % (m, n, a, b, k, u, t0, t1, p, s)).encode()


def check_name(what, v):
    # meter names and units go into JSON and the signed message unquoted: a small alphabet
    ok = 0 < len(v) <= 32
    for c in v:
        if not (c.isalpha() or c.isdigit() or c in "_.-/"):
            ok = False
    if not ok or (what == "meter" and "/" in v):
        raise ValueError("%s %r: use 1-32 letters, digits, '_', '.' or '-'" % (what, v))


class Chain:
    # One device's record chain over its outbox (kind USAGE). meters: name -> [b, t1] of the last
    # record. extra: a dict saved with the state (the meters' live counters).
    def __init__(self, device_id, key, outbox, path="/meter.json"):
        self.dev = device_id
        self.signer = Signer(key)
        self.outbox = outbox
        self.path = path
        self.n = 0
        self.s = ""
        self.meters = {}
        self.extra = {}
        pending = None
        try:
            with open(path) as f:
                st = json.load(f)
            self.n, self.s, self.meters, self.extra = st["n"], st["s"], st["m"], st.get("x") or {}
            pending = st.get("pend")
        except OSError:
            pass
        except (ValueError, KeyError, TypeError):
            raise ValueError("%s is corrupt: the usage chain cannot go on; restore it or start a new "
                             "chain (the host reports the restart)" % path)
        if pending:
            self._finish(pending.encode(), self._in_outbox(pending.encode()))

    def _in_outbox(self, rec):
        from m2m.outbox import USAGE

        for r in self.outbox.peek(100000, (USAGE,)):
            if r[2] == rec:
                return True
        return False

    def begin(self, m, counter, t):
        # a new meter: its first record starts here
        if m not in self.meters:
            self.meters[m] = [counter, t]
            self._save(None)

    def record(self, m, b, k, u, t1):
        # Sign and store the next record of meter m (counter now b, time t1); returns its number.
        a, t0 = self.meters[m]
        n = self.n + 1
        s = self.signer.tag(message(self.dev, m, n, a, b, k, u, t0, t1, self.s))
        rec = payload(m, n, a, b, k, u, t0, t1, self.s, s)
        self._save(rec.decode())  # pending: a cut before the append is finished at the next start
        self._finish(rec, False)
        return n

    def _finish(self, rec, stored):
        if not stored:
            from m2m.outbox import USAGE

            self.outbox.append(USAGE, rec)
        d = json.loads(rec)
        self.n = d["n"]
        self.s = d["s"]
        self.meters[d["m"]] = [d["b"], d["t1"]]
        self._save(None)

    def _save(self, pending):
        st = {"n": self.n, "s": self.s, "m": self.meters, "x": self.extra}
        if pending:
            st["pend"] = pending
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.rename(tmp, self.path)  # littlefs DESIGN.md: a rename is atomic

    def save(self):
        self._save(None)

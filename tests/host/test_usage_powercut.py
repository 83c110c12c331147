"""Power cuts while metering: the firmware's Meters (a pulse meter, save_n 1) and the outbox run in
MicroPython on a LittleFS image (VfsLfs2 over a file, one write() per block program), and the
interpreter is killed with SIGKILL at 60 random moments while a simulated meter hands it pulses;
RTC memory goes with it (no state folder: a power cut, not a reset).

The meter hands over one pulse at a time and waits for the device to say it counted it (after the
count's flash save); a pulse in flight when the power goes either reached the counter or not (as a
pulse during a power cut). After every restart, exactly:
- no confirmed pulse is lost and none is invented: the count is the confirmed count, or one more when
  a pulse was in flight;
- at the end, the records verify with no finding at all, and the billed total (the sum of b - a) is
  the number of pulses the device counted: no pulse billed twice or left out across the cuts.
"""

import json
import os
import random
import select
import signal
import subprocess
import time

from m2mkit import usage
from m2mkit.testing import _prelude, micropython, mpy_env

CYCLES = 60
DEV = "meter-pc"
KEY = bytes.fromhex("a7" * 32)

CHILD = """
import os, sys, vfs

class Flash:
    # a flash chip in a host file: one write() per program, so a kill falls between programs
    def __init__(self, path):
        self.f = open(path, "r+b")
    def readblocks(self, n, buf, off=0):
        self.f.seek(n * 4096 + off)
        self.f.readinto(buf)
    def writeblocks(self, n, buf, off=0):
        self.f.seek(n * 4096 + off)
        self.f.write(buf)
    def ioctl(self, op, arg):
        if op == 4:
            return 256
        if op == 5:
            return 4096
        if op == 6:
            return 0
        return 0

bd = Flash(%(img)r)
if %(fresh)r:
    vfs.VfsLfs2.mkfs(bd)
vfs.mount(vfs.VfsLfs2(bd), "/fs")
if %(fresh)r:
    with open("/fs/k", "w") as f:
        f.write(%(key)r)
from m2m.outbox import USAGE, Outbox
from m2m.meter import Meters
cfg = {"meters": [{"name": "water", "type": "pulses", "pin": 4, "k": "0.5", "unit": "L", "debounce_ms": -1}],
       "interval_s": 3600, "save_n": 1, "save_s": 60, "key_file": "/fs/k", "state": "/fs/meter.json"}
ob = Outbox("/fs/ob", segment_bytes=2048, max_segments=120)
ms = Meters(cfg, ob, %(dev)r)
src = ms.meters[0].src
print("BOOT", src.count)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    c = line[0]
    if c == "p":
        src._edge(src.pin)
        ms.step()
        print("C", src.count)
    elif c == "r":
        print("R", ms.record()[0])
    elif c == "d":
        for r in ob.peek(100000, (USAGE,)):
            print("U", r[2].decode())
        print("END", ob.stats()["dropped"])
"""


class Child:
    def __init__(self, img, fresh):
        code = _prelude() + CHILD % {"img": str(img), "fresh": fresh, "key": KEY.hex(), "dev": DEV}
        self.p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", code], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=mpy_env(), bufsize=0)
        self.buf = b""

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")

    def line(self, timeout=20):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                return None
            got = os.read(self.p.stdout.fileno(), 65536)
            if not got:
                return None
            self.buf += got
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.decode()

    def kill(self):
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            f.close()


def test_billed_total_equals_counted_pulses_across_power_cuts(tmp_path):
    rng = random.Random(20261214)
    img = tmp_path / "flash.img"
    img.write_bytes(b"\xff" * 256 * 4096)
    confirmed = 0  # the count the device last confirmed
    in_flight = False  # a pulse sent, not yet confirmed
    cuts_in_flight = 0
    for cycle in range(CYCLES + 1):
        ch = Child(img, cycle == 0)
        try:
            boot = ch.line()
            assert boot and boot.startswith("BOOT "), f"cycle {cycle}: {boot!r} {ch.p.stderr.read()!r}"
            count = int(boot.split()[1])
            where = f"cycle {cycle}: boot count {count}, confirmed {confirmed}, pulse in flight {in_flight}"
            assert confirmed <= count <= confirmed + in_flight, where
            confirmed = count
            in_flight = False
            if cycle == CYCLES:
                break
            # pulses (and now and then a record) for a random while, then the power goes
            deadline = time.monotonic() + rng.uniform(0.01, 0.25)
            while time.monotonic() < deadline:
                if rng.random() < 0.05 or time.monotonic() + 0.004 > deadline and rng.random() < 0.3:
                    ch.send("r")
                    if time.monotonic() + 0.002 > deadline:
                        break  # the cut comes while the record is being signed and stored
                    assert ch.line().startswith("R "), where
                else:
                    ch.send("p")
                    in_flight = True
                    # the cut may come while the device handles it
                    if time.monotonic() + 0.002 > deadline:
                        break
                    got = ch.line()
                    assert got == f"C {confirmed + 1}", f"{where}: {got!r}"
                    confirmed += 1
                    in_flight = False
            cuts_in_flight += in_flight
        finally:
            if ch.p.poll() is None and cycle < CYCLES:
                time.sleep(rng.uniform(0, 0.003))
                ch.kill()
    # the last boot: one record of what was counted, then every record the outbox holds
    ch.send("r")
    assert ch.line().startswith("R ")
    ch.send("d")
    recs = []
    while True:
        ln = ch.line()
        assert ln is not None
        if ln.startswith("END "):
            assert ln == "END 0"  # nothing dropped for space
            break
        recs.append(json.loads(ln[2:]))
    ch.send("")
    ch.p.stdin.close()
    ch.p.wait(10)
    findings, accepted = usage.verify([(DEV, r) for r in recs], {DEV: KEY})
    assert findings == [], [f.line() for f in findings]
    billed = sum(r["b"] - r["a"] for r in accepted[DEV])
    assert billed == confirmed and confirmed > CYCLES * 5, (billed, confirmed)
    assert recs[0]["a"] == 0 and recs[-1]["b"] == confirmed
    print(f"{len(recs)} records, {confirmed} pulses, {cuts_in_flight} cuts with a pulse in flight")

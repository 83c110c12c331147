"""Power loss on the virtual device: its main.py appends readings to the outbox and acknowledges
them in a loop, and the interpreter is killed with SIGKILL (the bridge's power cut: no finalisers, no
unmount) at 60 random moments, then started again on the same flash image.

After every restart, exactly:
- the outbox opens and no record is torn or corrupt (LittleFS commits an append at its flush);
- no acknowledged record comes back: the pointer is at least the last ack() that returned, and at
  most the one in flight when the power went (that one may come back once: it was never confirmed);
- no unacknowledged record is lost: the pending records are every sequence number from the pointer
  to the last append, each with its own payload, including every append that returned;
- nothing was dropped for space, and the numbering goes on from where it stopped.

With write-back (sync_every=4, alarms synced at once) the same holds for every record that was on
flash (seq <= synced when its append returned); of the readings appended but not synced, at most
three are lost, whole, and their numbers are given again.
"""

import os
import random
import signal
import time

import serial

from m2mkit import boards, image
from m2mkit.vdev.device import VirtualDevice

BOARD = "esp32-devkitc-bg95"
CYCLES = 60

MAIN = b"""
from m2m.outbox import Outbox
ob = Outbox("/ob", segment_bytes=400, max_segments=64, sync_every=SYNC)
s = ob.stats()
recs = ob.peek(10000)
bad = 0
for r in recs:
    if r[1] not in (1, 2) or r[2] != b"r%d" % r[0]:
        bad += 1
print("BOOT %d %d %d %d %d %s" % (s["acked_upto"], s["next_seq"], s["torn"], s["dropped"], bad,
                                  ",".join(str(r[0]) for r in recs)))
i = 0
while True:
    seq = ob.append(2 if SYNC > 1 and i % 7 == 6 else 1, b"r%d" % ob.next)
    print("A %d %d" % (seq, ob.synced))
    i += 1
    if i % 4 == 0:
        up = min(seq - 1 - i % 3, ob.synced)
        print("k %d" % up)
        ob.ack(up)
        print("K %d" % up)
"""


class Reader:
    """Lines from the console; `pending` keeps a line that has not ended yet."""

    def __init__(self, ser):
        self.ser = ser
        self.pending = b""

    def lines(self, data):
        self.pending += data.replace(b"\r", b"")
        *done, self.pending = self.pending.split(b"\n")
        return [ln.strip().decode("ascii", "replace") for ln in done]

    def until(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines(self.ser.read(4096)):
                if line.startswith(prefix):
                    return line
        return None

    def read_for(self, seconds):
        out = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out += self.lines(self.ser.read(4096))
        return out


def _cut_power(dev, ser):
    """Freeze the interpreter where it is (SIGSTOP), stop the bridge (so it does not start it again),
    SIGKILL it, and return what it had printed that the test had not read yet: on the port, in the
    bridge, and in the interpreter's pty."""
    pid = dev.bridge.proc.pid
    os.kill(pid, signal.SIGSTOP)
    dev.bridge.stop()
    dev._thread.join(5)
    os.kill(pid, signal.SIGKILL)
    dev.bridge.proc.wait()
    rest = b""
    while True:
        got = ser.read(4096)
        if not got:
            break
        rest += got
    rest += bytes(dev.bridge.pending_out)
    while True:
        try:
            got = os.read(dev.bridge.child, 4096)
        except OSError:  # EIO once the interpreter's side is gone, EAGAIN when empty
            break
        if not got:
            break
        rest += got
    return rest


def test_outbox_survives_power_cuts_at_random_moments(tmp_path):
    _power_cuts(tmp_path, 1, CYCLES, 20261201)


def test_write_back_outbox_loses_only_unsynced_readings_at_power_cuts(tmp_path):
    _power_cuts(tmp_path, 4, 50, 20261202)


def _power_cuts(tmp_path, sync_every, cycles, seed):
    rng = random.Random(seed)
    flash = tmp_path / "flash.img"
    main = MAIN.replace(b"SYNC", b"%d" % sync_every)
    flash.write_bytes(image.build(boards.load(BOARD), extra={"/main.py": main}))
    done_ack = 0  # the last ack() that returned
    tried_ack = 0  # the last ack() called
    confirmed = 0  # the last append() that returned
    synced = 0  # the highest record on flash when an append() returned
    pointer = 0
    appended_total = 0
    lost_total = 0
    for cycle in range(cycles):
        dev = VirtualDevice(BOARD, flash=flash)
        try:
            dev.start()
            ser = serial.Serial(dev.port, 115200, timeout=0.02)
            reader = Reader(ser)
            boot = reader.until("BOOT ", 20)
            assert boot, f"cycle {cycle}: no BOOT line from the device"
            parts = boot.split(" ")
            acked, nxt, torn, dropped, bad = map(int, parts[1:6])
            pending = [int(x) for x in parts[6].split(",")] if len(parts) > 6 and parts[6] else []
            where = (f"cycle {cycle}: {boot} (acked {done_ack}, in flight {tried_ack}, appended {confirmed}, "
                     f"synced {synced})")
            assert torn == 0 and bad == 0 and dropped == 0, where
            assert done_ack <= acked <= max(done_ack, tried_ack), where  # nothing acked comes back
            assert acked >= pointer, where
            assert nxt > synced, where  # every record on flash is still there
            if sync_every == 1:
                assert nxt > confirmed, where  # every append that returned is still there
            assert confirmed - (nxt - 1) <= sync_every - 1, where  # at most the unsynced are lost
            lost_total += max(0, confirmed - (nxt - 1))
            assert pending == list(range(acked + 1, nxt)), where  # nothing unacknowledged lost
            pointer = done_ack = tried_ack = acked
            confirmed = synced = nxt - 1
            # run for a random while, then cut the power
            lines = reader.read_for(rng.uniform(0.02, 0.6))
            lines += reader.lines(_cut_power(dev, ser))  # a line cut short is left out
            for line in lines:
                kind, _, n = line.partition(" ")
                if kind == "A":
                    a, b = map(int, n.split())
                    confirmed, synced = a, max(synced, b)
                    appended_total += 1
                elif kind == "k":
                    tried_ack = int(n)
                elif kind == "K":
                    done_ack = int(n)
            ser.close()
        finally:
            dev.stop()
    assert appended_total > cycles * 5, f"too little traffic to cut into: {appended_total} appends"
    if sync_every > 1:
        assert lost_total > 0, "no cut fell between a reading and its sync: the test saw no write-back"

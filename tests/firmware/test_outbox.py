# The durable outbox: append / peek / ack, restarts, wrap when full, records torn at every byte (on a
# filesystem that tears writes: the host's), and power cut at every few bytes programmed on LittleFS
# (MicroPython's VfsLfs2 over a RAM flash that stops mid-write).
# m2m: timeout=240
# m2m: heapsize=2M
import os
import time

import vfs

from m2m import outbox
from m2m.outbox import ALARM, EVENT, TELEMETRY, USAGE, Outbox

# this file's own folder (pytest's tmp_path for it, m2mkit.testing.run_file): never a shared path
TMP = os.getenv("M2M_TEST_TMP")
_n = [0]


def _tmpdir():
    _n[0] += 1
    d = TMP + "/outbox-%d" % _n[0]
    return d


def _rmtree(d):
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        os.remove(d + "/" + n)
    os.rmdir(d)


def _read(p):
    with open(p, "rb") as f:
        return f.read()


def _write(p, data):
    with open(p, "wb") as f:
        f.write(data)


def _seqs(ob, n=1000):
    return [r[0] for r in ob.peek(n)]


def test_append_peek_ack():
    d = _tmpdir()
    ob = Outbox(d)
    assert ob.append(TELEMETRY, b"t1") == 1
    assert ob.append(ALARM, b"a1") == 2
    assert ob.append(EVENT, b"") == 3
    assert ob.peek(10) == [(1, TELEMETRY, b"t1"), (2, ALARM, b"a1"), (3, EVENT, b"")]
    assert ob.peek(1) == [(1, TELEMETRY, b"t1")]
    assert ob.peek(10, kinds=(ALARM,)) == [(2, ALARM, b"a1")]
    assert ob.pending() == 3
    ob.ack(2)
    assert ob.peek(10) == [(3, EVENT, b"")]
    assert ob.pending() == 1
    ob.ack(1)  # behind the pointer: nothing changes
    ob.ack(99)  # beyond what exists: up to the last record
    assert ob.peek(10) == [] and ob.pending() == 0
    s = ob.stats()
    assert (s["appended"], s["acked"], s["dropped"], s["torn"]) == (3, 3, 0, 0)
    assert ob.append(TELEMETRY, b"t2") == 4
    ob.close()
    _rmtree(d)


def test_bad_input_says_what_to_do():
    d = _tmpdir()
    ob = Outbox(d)
    for kind, payload, words in ((TELEMETRY, bytes(outbox.MAX_PAYLOAD + 1), "split it"), (0, b"x", "1..255")):
        try:
            ob.append(kind, payload)
        except ValueError as e:
            assert words in str(e)
        else:
            raise AssertionError("no ValueError")
    assert ob.pending() == 0
    ob.close()
    _rmtree(d)
    for kw in ({"segment_bytes": 10}, {"max_segments": 0}):
        try:
            Outbox(d, **kw)
        except ValueError as e:
            assert "give at least" in str(e)
        else:
            raise AssertionError("no ValueError for %r" % kw)
    _write(d, b"a file")
    try:
        Outbox(d)
    except OSError as e:
        assert "remove it or give another path" in str(e)
    else:
        raise AssertionError("no OSError")
    os.remove(d)


def test_restart_resumes_exactly():
    d = _tmpdir()
    ob = Outbox(d, segment_bytes=100)
    for i in range(20):
        ob.append(TELEMETRY, b"reading %d" % i)
    ob.ack(7)
    ob.close()
    ob = Outbox(d, segment_bytes=100)
    assert _seqs(ob) == list(range(8, 21))
    assert ob.peek(1) == [(8, TELEMETRY, b"reading 7")]
    assert ob.append(TELEMETRY, b"after") == 21
    assert ob.stats()["torn"] == 0
    ob.close()
    # without close (a power cut leaves the file open): the same
    ob2 = Outbox(d, segment_bytes=100)
    ob2.ack(21)
    ob3 = Outbox(d, segment_bytes=100)
    assert ob3.peek(5) == [] and ob3.append(TELEMETRY, b"x") == 22
    ob3.close()
    ob2.close()
    _rmtree(d)


def test_acked_segments_are_removed():
    d = _tmpdir()
    ob = Outbox(d, segment_bytes=60)
    for i in range(12):
        ob.append(TELEMETRY, b"0123456789")  # 22 bytes a record: two a segment
    assert len(ob.segs) == 6
    ob.ack(7)
    assert ob.segs == [7, 9, 11]  # the segment holding 7 stays until 8 is acknowledged too
    assert len([n for n in os.listdir(d) if n[0] == "s"]) == 3
    ob.ack(12)
    assert len(ob.segs) == 1  # the tail stays for appending
    ob.close()
    _rmtree(d)


def test_full_drops_oldest_segment_counted_and_reported():
    d = _tmpdir()
    drops = []
    ob = Outbox(d, segment_bytes=60, max_segments=3, on_drop=drops.append)
    for i in range(10):
        ob.append(TELEMETRY, b"r%08d" % i)  # 22 bytes a record: two a segment
    # 10 records in 5 segments of 2, three kept: 1-4 dropped, two at a time
    assert drops == [2, 2]
    assert ob.stats()["dropped"] == 4
    assert _seqs(ob) == [5, 6, 7, 8, 9, 10]
    assert ob.pending() == 6
    # acknowledged records dropped for space are not counted
    ob.ack(8)
    for i in range(6):
        ob.append(TELEMETRY, b"r%08d" % i)
    assert ob.stats()["dropped"] == 4 + 2  # 9 and 10 went unacknowledged; 7 and 8 had been acked
    assert _seqs(ob) == [11, 12, 13, 14, 15, 16]
    ob.close()
    # a restart keeps the bound and the numbering
    ob = Outbox(d, segment_bytes=60, max_segments=3)
    assert _seqs(ob) == [11, 12, 13, 14, 15, 16] and ob.append(TELEMETRY, b"x") == 17
    assert len(ob.segs) == 3
    ob.close()
    _rmtree(d)


def test_full_carries_alarms_and_usage_forward():
    # priority: when the oldest segment goes for space, its unacknowledged alarm and usage records are
    # appended again (new numbers, same payload); telemetry goes
    d = _tmpdir()
    drops = []
    ob = Outbox(d, segment_bytes=60, max_segments=3, on_drop=drops.append)
    ob.append(USAGE, b"u-0000001")  # 21 bytes
    ob.append(TELEMETRY, b"t-0000001")
    for i in range(4):
        ob.append(TELEMETRY, b"t-%07d" % (i + 2))
    ob.append(TELEMETRY, b"t-0000006")  # a fourth segment: the first (usage + t1) goes
    assert ob.stats()["carried"] == 1 and drops == [1]
    got = ob.peek(20)
    assert [p for _, k, p in got if k == USAGE] == [b"u-0000001"]
    assert b"t-0000001" not in [p for _, _, p in got]
    assert [r[0] for r in got] == list(range(3, 3 + len(got)))  # numbering stays contiguous
    ob.close()
    # keep=() turns the rule off
    d2 = _tmpdir()
    ob = Outbox(d2, segment_bytes=60, max_segments=3, keep=())
    ob.append(ALARM, b"a-0000001")
    for i in range(6):
        ob.append(TELEMETRY, b"t-%07d" % i)
    assert ALARM not in [k for _, k, _ in ob.peek(20)] and ob.stats()["dropped"] == 2
    ob.close()
    _rmtree(d)
    _rmtree(d2)


def test_drain_in_batches_returns_each_record_once():
    d = _tmpdir()
    ob = Outbox(d, segment_bytes=100)
    for i in range(50):
        ob.append(ALARM if i % 7 == 0 else TELEMETRY, b"p%d" % i)
    seen = []
    n = 0
    while True:
        n += 1
        batch = ob.peek(1 + n % 5)
        if not batch:
            break
        seen += [r[0] for r in batch]
        # sometimes only part of the batch is acknowledged (the rest comes again)
        upto = batch[-1][0] if n % 3 else batch[0][0]
        if n % 3 == 0:
            del seen[len(seen) - len(batch) + 1 :]
        ob.ack(upto)
        if n % 4 == 0:
            ob.append(TELEMETRY, b"late%d" % n)
    assert seen == list(range(1, ob.next)), seen
    # kinds: alarms peeked ahead do not move the pointer
    ob.append(TELEMETRY, b"x")
    ob.append(ALARM, b"y")
    assert [r[2] for r in ob.peek(5, kinds=(ALARM,))] == [b"y"]
    assert [r[2] for r in ob.peek(5)] == [b"x", b"y"]
    ob.close()
    _rmtree(d)


def test_torn_last_record_at_every_byte():
    d = _tmpdir()
    payload = b"the last reading"
    ob = Outbox(d)
    ob.append(TELEMETRY, b"first")
    ob.append(ALARM, b"second")
    ob.append(TELEMETRY, payload)
    ob.close()
    seg = d + "/" + [n for n in os.listdir(d) if n[0] == "s"][0]
    whole = _read(seg)
    rec = 12 + len(payload)
    for cut in range(rec):
        _write(seg, whole[: len(whole) - rec + cut])
        for name in os.listdir(d):
            if name != seg.rpartition("/")[2]:
                os.remove(d + "/" + name)
        ob = Outbox(d)
        assert ob.peek(10) == [(1, TELEMETRY, b"first"), (2, ALARM, b"second")], cut
        assert ob.stats()["torn"] == (1 if cut else 0), cut
        assert ob.append(EVENT, b"next") == 3, cut
        assert ob.peek(10)[-1] == (3, EVENT, b"next"), cut
        assert ob.stats()["torn"] == (1 if cut else 0), cut  # not counted again when read
        ob.close()
        ob = Outbox(d)  # and once more after the torn segment was left behind
        assert _seqs(ob) == [1, 2, 3], cut
        assert ob.append(EVENT, b"more") == 4
        ob.close()
    _rmtree(d)


def test_corrupt_byte_in_a_record_is_detected():
    d = _tmpdir()
    ob = Outbox(d)
    for i in range(4):
        ob.append(TELEMETRY, b"reading %d" % i)
    ob.close()
    seg = d + "/" + [n for n in os.listdir(d) if n[0] == "s"][0]
    whole = bytearray(_read(seg))
    whole[-3] ^= 0x40  # a flipped bit in the last payload
    _write(seg, whole)
    ob = Outbox(d)
    assert _seqs(ob) == [1, 2, 3] and ob.stats()["torn"] == 1
    ob.close()
    _rmtree(d)


def test_torn_ack_pointer_at_every_byte():
    d = _tmpdir()
    ob = Outbox(d)
    for i in range(6):
        ob.append(TELEMETRY, b"r%d" % i)
    ob.ack(2)
    ob.ack(4)
    ob.close()
    journal = _read(d + "/ack")
    assert len(journal) == 16
    for cut in range(8):
        _write(d + "/ack", journal[: 8 + cut])
        ob = Outbox(d)
        assert _seqs(ob) == [3, 4, 5, 6], cut  # back to the last whole entry: 3 and 4 come again
        ob.close()
    # a garbled entry (bad CRC) is ignored
    bad = bytearray(journal)
    bad[9] ^= 1
    _write(d + "/ack", bad)
    ob = Outbox(d)
    assert _seqs(ob) == [3, 4, 5, 6]
    ob.close()
    _rmtree(d)


def test_ack_journal_is_compacted():
    d = _tmpdir()
    ob = Outbox(d)
    for i in range(200):
        ob.append(TELEMETRY, b"x")
        ob.ack(i + 1)
    assert len(_read(d + "/ack")) <= 8 * 64  # _ACK_ENTRIES (a const: not visible outside)
    ob.close()
    ob = Outbox(d)
    assert ob.peek(5) == [] and ob.append(TELEMETRY, b"y") == 201
    ob.close()
    # a compaction cut before its rename leaves ack.new beside ack: the higher pointer wins
    _write(d + "/ack.new", _read(d + "/ack")[:8])
    ob = Outbox(d)
    assert ob.acked == 200
    ob.close()
    _rmtree(d)


# ---- power cut on LittleFS ----
class PowerCut(Exception):
    pass


class Flash:
    # NOR flash in RAM for VfsLfs2: erase sets 0xFF, a program ANDs bits in; `budget` bytes may be
    # programmed, then the next program stops at that byte (the rest never reaches the chip) and the
    # "power" is gone
    def __init__(self, blocks=24, data=None):
        self.blocks = blocks
        if data is None:
            data = bytearray(blocks * 4096)
            for i in range(len(data)):
                data[i] = 0xFF
        self.data = data
        self.budget = -1

    def readblocks(self, n, buf, off=0):
        # no allocation: LittleFS also reads from finalisers, while the heap is locked
        a = n * 4096 + off
        d = self.data
        for i in range(len(buf)):
            buf[i] = d[a + i]

    def writeblocks(self, n, buf, off=None):
        a = n * 4096 + (off or 0)
        k = len(buf)
        if self.budget >= 0:
            if self.budget < k:
                k = self.budget
                for i in range(k):
                    self.data[a + i] &= buf[i]
                # the test remounts a copy of what the chip holds now; later writes to this one (the
                # cut mount's files being finalised) must not fail, so it takes them as usual
                self.budget = -1
                raise PowerCut()
            self.budget -= k
        for i in range(k):
            self.data[a + i] &= buf[i]

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return 4096
        if op == 6:  # erase
            a = arg * 4096
            for i in range(a, a + 4096):
                self.data[i] = 0xFF
        return 0


_OPTS = {"readsize": 32, "progsize": 32, "lookahead": 32}


def _mount(flash, at="/fl"):
    try:
        vfs.umount(at)
    except OSError:
        pass
    vfs.mount(vfs.VfsLfs2(flash, **_OPTS), at)


def _fresh_flash():
    f = Flash()
    vfs.VfsLfs2.mkfs(f, **_OPTS)
    return f


def test_power_cut_during_append_on_littlefs():
    # every 5th byte programmed while appending a record: after the cut the record is whole or
    # absent, the earlier ones are intact, and appending goes on with the next number
    base = _fresh_flash()
    _mount(base)
    ob = Outbox("/fl/ob", segment_bytes=256)
    for i in range(5):
        ob.append(TELEMETRY, b"before %d" % i)
    ob.close()
    vfs.umount("/fl")
    image = bytes(base.data)
    cut = 0
    seen_whole = seen_absent = 0
    while True:
        f = Flash(data=bytearray(image))
        _mount(f)
        ob = Outbox("/fl/ob", segment_bytes=256)
        f.budget = cut
        try:
            ob.append(ALARM, b"the cut record")
            finished = True
        except PowerCut:
            finished = False
        f.budget = -1
        # power back: mount what the flash holds (a copy: the cut mount's open files, finalised
        # later, must not write to it)
        f = Flash(data=bytearray(f.data))
        _mount(f)
        ob = Outbox("/fl/ob", segment_bytes=256)
        got = ob.peek(20)
        assert [r[2] for r in got[:5]] == [b"before %d" % i for i in range(5)], cut
        if len(got) == 6:
            assert got[5] == (6, ALARM, b"the cut record"), cut
            seen_whole += 1
        else:
            assert len(got) == 5, (cut, got)
            seen_absent += 1
        nxt = ob.append(EVENT, b"after")
        assert nxt == len(got) + 1, cut
        assert ob.peek(20)[-1] == (nxt, EVENT, b"after")
        ob.close()
        vfs.umount("/fl")
        if finished:
            break
        cut += 5
    assert seen_absent > 3 and seen_whole > 3, (seen_absent, seen_whole)
    print("append cuts: absent", seen_absent, "whole", seen_whole)


def test_power_cut_while_carrying_forward_on_littlefs():
    # a cut at every 7th byte of an append that drops a segment holding an unacknowledged usage
    # record: the usage record survives (once, or twice when the cut fell between its copy and the
    # removal), no unacknowledged telemetry is lost but the dropped segment's
    base = _fresh_flash()
    _mount(base)
    ob = Outbox("/fl/ob", segment_bytes=60, max_segments=3)
    ob.append(USAGE, b"u-0000001")
    for i in range(5):
        ob.append(TELEMETRY, b"t-%07d" % (i + 1))  # 3 segments: (u, t1) (t2, t3) (t4, t5)
    ob.close()
    vfs.umount("/fl")
    image = bytes(base.data)
    cut = 0
    twice = 0
    while True:
        f = Flash(data=bytearray(image))
        _mount(f)
        ob = Outbox("/fl/ob", segment_bytes=60, max_segments=3)
        f.budget = cut
        try:
            ob.append(TELEMETRY, b"t-0000006")
            finished = True
        except PowerCut:
            finished = False
        f.budget = -1
        f = Flash(data=bytearray(f.data))
        _mount(f)
        ob = Outbox("/fl/ob", segment_bytes=60, max_segments=3)
        got = ob.peek(20)
        pay = [r[2] for r in got]
        assert pay.count(b"u-0000001") in (1, 2), (cut, pay)
        twice += pay.count(b"u-0000001") == 2
        for i in range(2, 6):
            assert b"t-%07d" % i in pay, (cut, pay)
        assert [r[0] for r in got] == list(range(got[0][0], got[0][0] + len(got))), (cut, got)
        if finished:
            assert pay.count(b"u-0000001") == 1 and b"t-0000006" in pay and b"t-0000001" not in pay
        ob.close()
        vfs.umount("/fl")
        if finished:
            break
        cut += 7
    assert twice > 0  # some cut fell between the copy and the removal


def test_power_cut_during_ack_and_segment_change_on_littlefs():
    # a cut at every 9th byte of an ack that also removes segments and of an append that starts a
    # segment and drops the oldest: acknowledged records never come back, nothing unacknowledged is lost
    base = _fresh_flash()
    _mount(base)
    ob = Outbox("/fl/ob", segment_bytes=60, max_segments=4)
    for i in range(8):
        ob.append(TELEMETRY, b"r%08d" % i)  # 22 bytes: two a segment, four segments
    ob.ack(3)
    ob.close()
    vfs.umount("/fl")
    image = bytes(base.data)
    for op in ("ack", "append"):
        cut = 0
        while True:
            f = Flash(data=bytearray(image))
            _mount(f)
            ob = Outbox("/fl/ob", segment_bytes=60, max_segments=4)
            f.budget = cut
            try:
                if op == "ack":
                    ob.ack(6)
                else:
                    ob.append(ALARM, b"new segment")  # a fifth segment: the oldest (1-2, acked) goes
                finished = True
            except PowerCut:
                finished = False
            f.budget = -1
            f = Flash(data=bytearray(f.data))
            _mount(f)
            ob = Outbox("/fl/ob", segment_bytes=60, max_segments=4)
            seqs = _seqs(ob)
            if op == "ack":
                assert seqs in ([4, 5, 6, 7, 8], [7, 8]), (cut, seqs)
                if finished:
                    assert seqs == [7, 8]
            else:
                assert seqs in ([4, 5, 6, 7, 8], [4, 5, 6, 7, 8, 9]), (cut, seqs)
                assert ob.stats()["dropped"] == 0
            ob.close()
            vfs.umount("/fl")
            if finished:
                break
            cut += 9


# ---- write-back ----
def test_write_back_syncs_every_n_and_at_once_for_other_kinds():
    d = _tmpdir()
    ob = Outbox(d, sync_every=4)
    for i in range(3):
        ob.append(TELEMETRY, b"t%d" % i)
    assert ob.synced == 0 and ob.peek(10) == [] and ob.pending() == 3  # not made yet: not sent
    ob.ack(3)  # nothing unsynced can be acknowledged
    assert ob.stats()["acked_upto"] == 0
    ob.append(TELEMETRY, b"t3")
    assert ob.synced == 4 and _seqs(ob) == [1, 2, 3, 4]
    ob.append(TELEMETRY, b"t4")
    assert ob.synced == 4 and _seqs(ob) == [1, 2, 3, 4]
    ob.append(ALARM, b"a")  # an alarm is synced at once, and the reading before it with it
    assert ob.synced == 6 and _seqs(ob) == [1, 2, 3, 4, 5, 6]
    ob.append(TELEMETRY, b"t5")
    ob.close()  # close syncs
    ob = Outbox(d, sync_every=4)
    assert _seqs(ob) == [1, 2, 3, 4, 5, 6, 7] and ob.synced == 7
    ob.close()
    _rmtree(d)


def test_write_back_time_bound():
    d = _tmpdir()
    ob = Outbox(d, sync_every=100, sync_ms=30)
    ob.append(TELEMETRY, b"t")
    ob.sync_due()
    assert ob.synced == 0
    time.sleep_ms(40)
    assert _seqs(ob) == [1]  # peek runs sync_due
    ob.close()
    _rmtree(d)


class CountingFlash(Flash):
    erases = 0

    def ioctl(self, op, arg):
        if op == 6:
            self.erases += 1
        return super().ioctl(op, arg)


def _erases_per_record(sync_every, n=48):
    f = CountingFlash()
    vfs.VfsLfs2.mkfs(f, **_OPTS)
    _mount(f)
    ob = Outbox("/fl/ob", segment_bytes=4096, sync_every=sync_every)
    f.erases = 0
    for i in range(n):
        ob.append(TELEMETRY, b"reading %03d: 21.5 Cel 40 %%RH 3.71 V, a sampling round of about 100 bytes" % i)
    ob.sync()
    e = f.erases
    ob.close()
    vfs.umount("/fl")
    return e / n


def test_write_back_erases_about_one_block_per_sync():
    every = _erases_per_record(1)
    back = _erases_per_record(8)
    print("erases per record: synced each", every, "every 8th", back)
    assert every >= 0.8 and back <= every / 4, (every, back)


def test_write_back_power_cut_loses_only_unsynced_readings_on_littlefs():
    # the power goes with readings appended but not synced: they are gone whole, everything synced
    # is there, nothing is torn, and the numbers go on from the last synced record
    base = _fresh_flash()
    _mount(base)
    ob = Outbox("/fl/ob", segment_bytes=1024, sync_every=4)
    for i in range(10):
        ob.append(TELEMETRY, b"reading %d with enough bytes to leave the inline limit behind" % i)
    assert ob.synced == 8
    f = Flash(data=bytearray(base.data))  # the chip as the power cut leaves it (nothing closed)
    _mount(f)
    ob2 = Outbox("/fl/ob", segment_bytes=1024, sync_every=4)
    got = ob2.peek(20)
    assert [r[0] for r in got] == list(range(1, 9)) and ob2.stats()["torn"] == 0, got
    assert got[7][2] == b"reading 7 with enough bytes to leave the inline limit behind"
    assert ob2.append(ALARM, b"after") == 9 and _seqs(ob2)[-1] == 9
    ob2.close()
    vfs.umount("/fl")


def test_opening_and_dropping_code_is_not_held():
    # m2m.outboxx (open, drop the oldest segment) is loaded for the call and dropped again
    import sys

    import m2m

    d = _tmpdir()
    ob = Outbox(d, segment_bytes=64, max_segments=2)
    assert "m2m.outboxx" not in sys.modules and not hasattr(m2m, "outboxx")
    for i in range(12):
        ob.append(TELEMETRY, b"reading %d" % i)
    assert ob.stats()["dropped"] > 0
    assert "m2m.outboxx" not in sys.modules and not hasattr(m2m, "outboxx")
    ob.close()
    _rmtree(d)


def test_write_back_from_the_config():
    from m2m import config

    d = _tmpdir()
    ob = outbox.from_config(config.validate({"outbox": {"sync_every": 4, "sync_s": 5}}), d)
    assert (ob.sync_every, ob.sync_ms) == (4, 5000)
    ob.append(TELEMETRY, b"t")
    assert ob.synced == 0
    ob.close()
    ob = outbox.from_config(config.validate({}), d)
    assert ob.sync_every == 1 and ob.synced == 1  # the default: every append synced
    ob.close()
    _rmtree(d)

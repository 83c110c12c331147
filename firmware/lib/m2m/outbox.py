# The durable outbox: every reading, alarm and event is appended on flash before any send, and
# removed only once the broker has acknowledged it. Contract and flash costs: docs/CONTRACTS.md.
# Opening an outbox and dropping a segment for space live in m2m.outboxx (loaded per call: heap).
#
# Records sit in append-only segment files <path>/s<first seq, 8 hex digits>:
#   crc32 (4, over the next 8 bytes and the payload) | seq (4) | kind (1) | 0xA5 (1) | length (2)
# little-endian, then the payload. The acknowledged-up-to pointer is an append-only journal
# <path>/ack of 8-byte entries (seq, crc32 of seq); the highest valid entry wins.
#
# Power loss: on LittleFS (MicroPython's VfsLfs2) a file's new bytes are committed by
# lfs_file_sync, which file.flush() calls (micropython extmod/vfs_lfsx_file.c), and "if power is lost
# the filesystem will fall back to the last known good state" (littlefs README.md): an append is
# whole or absent. On a filesystem that can tear a write at any byte (FAT, the host's) the CRC finds
# the torn record at restart: it is dropped and appending goes on in a new segment.
#
# Flash wear: one sync per append; past the inline limit (128 bytes: cache_size 4 * 32 in
# micropython extmod/vfs_lfsx.c, inline_max in lib/littlefs/lfs2.c) each sync copies the segment's
# incomplete last block to a fresh one (lfs2_ctz_extend): about one block erase per record. The
# pointer is written once per ack() (once per drained batch): 8 bytes into an inline file.
#
# Write-back (sync_every > 1 and / or sync_ms): telemetry records are written at once but synced
# every sync_every records, when the oldest unsynced one is sync_ms old, or with the next record of
# any other kind (alarms, events, usage, orders are synced before append returns): about one erase
# per sync instead of per record. A power cut before the sync loses the unsynced records whole
# (LittleFS falls back to the last sync; elsewhere the CRC drops a torn tail), at most
# sync_every - 1 readings or sync_ms of them; their numbers are given again. A record counts as
# made once synced (seq <= synced): only those are peeked, sent and acknowledged.
import binascii
import os
import struct
import sys

from micropython import const

TELEMETRY = const(1)
ALARM = const(2)
EVENT = const(3)
USAGE = const(4)
ORDER = const(5)  # replenishment and service requests (m2m.orders)

_HDR = const(12)
_MAGIC = const(0xA5)
MAX_PAYLOAD = const(1024)
_ACK_ENTRIES = const(64)  # the ack journal is rewritten (one entry) when it holds this many


def from_config(cfg, path="/outbox"):
    # an Outbox with the config's write-back (outbox.sync_every, outbox.sync_s)
    oc = cfg["outbox"]
    return Outbox(path, sync_every=oc["sync_every"], sync_ms=oc["sync_s"] * 1000)


def _x():
    # what runs now and then (opening, dropping a segment for space) lives in m2m.outboxx, loaded
    # for the call and dropped after (_x_done)
    from m2m import outboxx

    return outboxx


def _x_done():
    sys.modules.pop("m2m.outboxx", None)
    try:
        delattr(sys.modules["m2m"], "outboxx")
    except (KeyError, AttributeError):
        pass


class Outbox:
    def __init__(self, path="/outbox", segment_bytes=4096, max_segments=16, on_drop=None, keep=(ALARM, USAGE),
                 sync_every=1, sync_ms=0):
        self.path = path
        # write-back for telemetry: records are synced every `sync_every` telemetry records, or once
        # the oldest unsynced one is `sync_ms` old (sync_due(), also run by peek()), or at once with
        # any other kind; only synced records are ever peeked. 1: every append is synced (default).
        self.sync_every = sync_every
        self.sync_ms = sync_ms
        self.synced = 0  # the highest seq on flash (what a power cut keeps)
        self.syncs = 0
        self._unsynced = 0
        self._since = 0
        self.segment_bytes = segment_bytes
        self.max_segments = max_segments
        self.on_drop = on_drop  # on_drop(n): n unacknowledged records dropped for space
        # priority: unacknowledged records of these kinds are carried forward (appended again, with
        # new numbers) when their segment is dropped for space, up to half a segment each time
        self.keep = keep
        self._hdr = bytearray(_HDR)
        self._hv = memoryview(self._hdr)
        self._buf = bytearray(8)
        self._chunk = bytearray(64)
        self._cv = memoryview(self._chunk)
        self._cursor = None  # (segment, offset, seq): where the first unacknowledged record starts
        self._last = None  # (seq, segment, end offset) of the last record peek() returned
        self.appended = 0
        self.acked_count = 0
        self.dropped = 0
        self.carried = 0
        self.torn = 0
        self._f = None  # the tail segment, open for appending
        self._tail_bytes = 0
        self._bad = []  # segments found torn while peeking (reported once)
        if segment_bytes < 32 or max_segments < 1:
            raise ValueError("outbox of %d segments of %d bytes: give at least 1 segment of 32 bytes"
                             % (max_segments, segment_bytes))
        self.segs = []
        self.acked = 0
        self._ack_entries = 0
        self.next = 1
        try:
            _x().open_outbox(self)  # folder, pointer, segments, where appending goes on
        finally:
            _x_done()
        self.synced = self.next - 1

    # ---- records ----
    def _name(self, first):
        return "%s/s%08x" % (self.path, first)

    def _read_record(self, f, payload=True):
        # (seq, kind, payload or length) of the next valid record, or None at the end or at a torn
        # or corrupt record (nothing after it in this segment is trusted)
        h = self._hdr
        if f.readinto(h) != _HDR:
            return None
        crc, seq, kind, magic, n = struct.unpack("<IIBBH", h)
        if magic != _MAGIC or n > MAX_PAYLOAD or seq == 0:
            return None
        c = binascii.crc32(self._hv[4:])
        if payload:
            data = f.read(n) if n else b""
            if len(data) != n or binascii.crc32(data, c) != crc:
                return None
            return seq, kind, data
        left = n
        while left:  # CRC in chunks: nothing allocated per record but the slice
            k = left if left < 64 else 64
            if f.readinto(self._cv[:k]) != k:
                return None
            c = binascii.crc32(self._cv[:k], c)
            left -= k
        return (seq, kind, n) if c == crc else None

    def _new_segment(self):
        if self._f:
            self._f.close()  # lfs_file_close syncs: what the old tail held is on flash
            self._f = None
            self._synced_now()
        self.segs.append(self.next)
        self._f = open(self._name(self.next), "ab")
        self._tail_bytes = 0
        if len(self.segs) > self.max_segments:
            try:
                x = _x()
                while len(self.segs) > self.max_segments:
                    x.drop_oldest(self)
            finally:
                _x_done()

    def append(self, kind, payload):
        # Store one record and flush it to flash; returns its sequence number.
        n = len(payload)
        if n > MAX_PAYLOAD:
            raise ValueError("outbox record of %d bytes: at most %d, split it" % (n, MAX_PAYLOAD))
        if not 0 < kind < 256:
            raise ValueError("outbox kind %r: give 1..255 (TELEMETRY, ALARM, EVENT, USAGE, ORDER)" % kind)
        if self._f is None or (self._tail_bytes and self._tail_bytes + _HDR + n > self.segment_bytes):
            self._new_segment()
        self.appended += 1
        seq = self._write(kind, payload)
        if kind != TELEMETRY or self.sync_every <= 1:
            self.sync()
        else:
            self._unsynced += 1
            if self._unsynced == 1 and self.sync_ms:
                from m2m import hal

                self._since = hal.ticks_ms()
            if self._unsynced >= self.sync_every:
                self.sync()
        return seq

    def sync(self):
        # Put every appended record on flash (lfs_file_sync); a no-op when nothing is waiting.
        if self.synced < self.next - 1 and self._f is not None:
            self._f.flush()
            self._synced_now()

    def _synced_now(self):
        self.synced = self.next - 1
        self._unsynced = 0
        self.syncs += 1

    def sync_due(self):
        # The time bound of write-back: sync once the oldest unsynced record is sync_ms old.
        if self._unsynced and self.sync_ms:
            from m2m import hal

            if hal.ticks_diff(hal.ticks_ms(), self._since) >= self.sync_ms:
                self.sync()

    def _write(self, kind, payload):
        seq = self.next
        n = len(payload)
        h = self._hdr
        struct.pack_into("<IBBH", h, 4, seq, kind, _MAGIC, n)
        struct.pack_into("<I", h, 0, binascii.crc32(payload, binascii.crc32(self._hv[4:])))
        f = self._f
        f.write(h)
        if n:
            f.write(payload)
        self._tail_bytes += _HDR + n
        self.next = seq + 1
        return seq

    # ---- reading and acknowledging ----
    def peek(self, n=8, kinds=None):
        # Up to n unacknowledged records [(seq, kind, payload)], oldest first; kinds: only these
        # kinds (e.g. (ALARM,) to send alarms ahead; they are acknowledged when the pointer passes).
        self.sync_due()
        out = []
        top = self.synced  # nothing leaves before it is on flash
        segs = self.segs
        i = len(segs) - 1
        while i > 0 and segs[i] > self.acked + 1:
            i -= 1
        i = max(i, 0)
        cur = self._cursor
        self._last = None
        while i < len(segs) and len(out) < n:
            first = segs[i]
            i += 1
            with open(self._name(first), "rb") as f:
                if cur and cur[0] == first and cur[2] == self.acked + 1:
                    f.seek(cur[1])  # straight to the first unacknowledged record
                while len(out) < n:
                    r = self._read_record(f)
                    if r is not None and r[0] > top:
                        return out
                    if r is None:
                        if f.read(1) and first not in self._bad and first != segs[-1]:
                            self._bad.append(first)
                            self.torn += 1
                        break
                    if r[0] > self.acked and (kinds is None or r[1] in kinds):
                        out.append(r)
                        if kinds is None:
                            self._last = (r[0], first, f.tell())
        return out

    def ack(self, upto):
        # Everything up to seq `upto` has been delivered: persist the pointer (one 8-byte journal
        # append), then remove the segments it has passed.
        upto = min(upto, self.synced)  # only what is on flash was ever peeked
        if upto <= self.acked:
            return
        b = self._buf
        struct.pack_into("<I", b, 0, upto)
        struct.pack_into("<I", b, 4, binascii.crc32(memoryview(b)[:4]))
        name = self.path + "/ack"
        if self._ack_entries >= _ACK_ENTRIES:
            tmp = name + ".new"
            with open(tmp, "wb") as f:
                f.write(b)
            os.rename(tmp, name)  # littlefs DESIGN.md: moves are atomic
            self._ack_entries = 1
        else:
            with open(name, "ab") as f:
                f.write(b)
            self._ack_entries += 1
        self.acked_count += upto - max(self.acked, (self.segs[0] - 1) if self.segs else 0)
        self.acked = upto
        last = self._last
        self._cursor = (last[1], last[2], upto + 1) if last and last[0] == upto else None
        segs = self.segs
        while len(segs) > 1 and segs[1] - 1 <= upto:
            os.remove(self._name(segs.pop(0)))

    def pending(self):
        # unacknowledged records still stored
        if not self.segs:
            return 0
        return max(0, self.next - 1 - max(self.acked, self.segs[0] - 1))

    def stats(self):
        return {"appended": self.appended, "acked": self.acked_count, "dropped": self.dropped,
                "carried": self.carried, "torn": self.torn, "pending": self.pending(), "segments": len(self.segs),
                "next_seq": self.next, "acked_upto": self.acked, "synced": self.synced, "syncs": self.syncs}

    def close(self):
        if self._f:
            self._synced_now()  # close syncs
            self._f.close()
            self._f = None

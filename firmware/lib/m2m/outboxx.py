# The parts of m2m.outbox that run now and then: opening an outbox (its folder, the acknowledged-up-to
# pointer, the segments and where appending goes on) and dropping the oldest segment for space. The
# Outbox loads this module for the call and drops it again, so its code is not held on the heap
# between (format and guarantees: m2m/outbox.py and docs/CONTRACTS.md).
import binascii
import os
import struct

from micropython import const

_HDR = const(12)


def open_outbox(ob):
    path = ob.path
    try:
        os.mkdir(path)
    except OSError:
        pass
    try:
        names = os.listdir(path)
    except OSError:
        raise OSError("outbox folder %s cannot be made (a file of that name?): remove it or give "
                      "another path" % path)
    ob.segs = sorted(int(n[1:], 16) for n in names if n[0] == "s" and len(n) == 9)
    ob.acked = _load_ack(ob)
    ob.next = ob.acked + 1
    _open_tail(ob)


def _load_ack(ob):
    # the highest valid entry of the pointer journal (ack, and ack.new of a rewrite cut short)
    best = 0
    ob._ack_entries = 0
    b = ob._buf
    for name in ("/ack", "/ack.new"):
        try:
            f = open(ob.path + name, "rb")
        except OSError:
            continue
        with f:
            while f.readinto(b) == 8:
                ob._ack_entries += 1
                seq, crc = struct.unpack("<II", b)
                if binascii.crc32(memoryview(b)[:4]) == crc and seq > best:
                    best = seq
    return best


def _scan(ob, name):
    # (last valid seq or 0, valid bytes, file bytes) of one segment
    last = 0
    good = 0
    with open(name, "rb") as f:
        while True:
            r = ob._read_record(f, False)
            if r is None:
                break
            last = r[0]
            good += _HDR + r[2]
        size = f.seek(0, 2)
    return last, good, size


def _open_tail(ob):
    # find where appending goes on: the last segment, unless it ends in a torn record
    segs = ob.segs
    while segs:
        first = segs[-1]
        last, good, size = _scan(ob, ob._name(first))
        if good == size and size < ob.segment_bytes:
            ob.next = max(ob.next, (last or first - 1) + 1)
            ob._tail_bytes = size
            ob._f = open(ob._name(first), "ab")
            return
        if good != size:
            ob.torn += 1
            ob._bad.append(first)
        if good == 0:
            # nothing valid (a record torn while the segment was being started): forget it
            os.remove(ob._name(first))
            segs.pop()
            continue
        ob.next = max(ob.next, last + 1)
        break  # full or torn: the next append starts a new segment


def drop_oldest(ob):
    # the oldest segment goes first; its unacknowledged records are counted and reported, but those
    # of a `keep` kind are appended again first (a power cut in between leaves them twice, never lost)
    first = ob.segs[0]
    end = ob.segs[1]  # first seq after this segment (the new tail exists)
    lost = end - max(first, ob.acked + 1)
    if lost > 0 and ob.keep:
        room = ob.segment_bytes // 2
        with open(ob._name(first), "rb") as f:
            while True:
                r = ob._read_record(f)
                if r is None:
                    break
                if r[0] > ob.acked and r[1] in ob.keep and _HDR + len(r[2]) <= room:
                    room -= _HDR + len(r[2])
                    ob._write(r[1], r[2])
                    ob.carried += 1
                    lost -= 1
    ob.sync()  # the carried copies are on flash before their old segment goes
    ob.segs.pop(0)
    if ob._cursor and ob._cursor[0] == first:
        ob._cursor = None
    os.remove(ob._name(first))
    if lost > 0:
        ob.dropped += lost
        if ob.on_drop:
            ob.on_drop(lost)
        else:
            try:
                from m2m import events

                events.post("outbox.dropped", n=lost)
            except ImportError:
                pass

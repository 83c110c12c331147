# Send (OMA core 6.4.3, transport 6.4: POST /dp) of the outbox's telemetry records in SenML CBOR,
# acknowledged in the outbox on 2.04. `self` is the Client, which loads this module (and the CBOR
# encoder) when telemetry waits and drops both once the Send is made.
from m2m import coap, hal
from m2m.lwm2m import SENML_CBOR
from m2m.lwm2m.client import _event


def _f32(v):
    # a reading at the precision an ESP32 float carries (single): its CBOR then takes 5 bytes, not 9
    import struct

    return struct.unpack("<f", struct.pack("<f", v))[0]


def step(self, recs):
    # recs: the outbox's telemetry records waiting [(seq, kind, payload)] (the Client peeked them)
    from m2m.report.contract import unpack_readings

    ob = self.outbox
    leaves = []
    last = None
    for seq, kind, payload in recs:
        try:
            for name, v, unit, t in unpack_readings(payload):
                at = self.names.get(name)
                if at is not None and type(v) in (int, float):
                    # a pulse count is 3200's Digital Input Counter, the others IPSO Sensor Value
                    rid = 5501 if at[0] == 3200 else 5700
                    leaves.append((at[0], at[1], rid, v if type(v) is int else _f32(v), t))
        except (ValueError, TypeError, IndexError):
            pass  # not readings: MQTT's reporter sends such records to /events; skipped here
        last = seq
    if not leaves:
        ob.ack(last)
        return
    after = self.cfg["lwm2m"].get("send_time_after_s", 5)
    body = encode(leaves, not after or hal.epoch() - min(x[4] for x in leaves) >= after)

    def done(r):
        self.sending = None
        if r is not None and r.code == coap.CHANGED:
            ob.ack(last)
            self.sent += 1
            _event("lwm2m.send", records=len(leaves), seq=last)

    self.sending = last
    self.wake = hal.ticks_ms()
    self.ep.request(coap.POST, ("dp",), (), body, cf=SENML_CBOR, on_done=done)


# The readings' time (RFC 8428 4.5.3: "If either the Base Time or Time value is missing, the missing
# attribute is considered to have a value of zero"; a time below 2**28 is relative to "now", zero
# meaning the measurement "was made roughly 'now'" at the receiver). A Send whose readings are all
# younger than lwm2m.send_time_after_s (5 s) when it is built goes without bt / t, 6 bytes less
# (README "Figures"); one that carries a reading that waited (the outbox's backlog after an outage, a
# Send built again after a timeout) carries every reading's own time.
# Bound: the server takes "now" when the copy it accepts arrives. A lost datagram is retransmitted
# as the same message (RFC 7252 4.2: same Message ID, processed once, 4.5), so no time can be added
# on a retry, and the last retransmission leaves at most MAX_TRANSMIT_SPAN (45 s, RFC 7252 4.8.2)
# after the first: a reading sent without its time is stamped at most send_time_after_s + 45 s + the
# path's latency late (one ACK or none lost: send_time_after_s + the latency). A Send left unanswered
# for MAX_TRANSMIT_WAIT (93 s) is built again from the outbox, by then with its time. The default 5 s
# is above what a fresh reading waits for its Send (milliseconds; an Update's round trip in queue
# mode, which wakes with an Update first) and small beside that bound.
def encode(leaves, timed=True):
    # [(oid, iid, rid, value, t)] -> the SenML CBOR pack (RFC 8428 6: labels bn -2, bt -3, n 0, v 2,
    # t 6), written straight with the CBOR encoder (no SenML module, no dict per record)
    from m2m.lwm2m.cbor import _head, dumps

    # the names' common start goes once as the base name (SenML names are bn + n, RFC 8428 4.5)
    bt = min(x[4] for x in leaves) if timed else None
    names = ["/%d/%d/%d" % x[:3] for x in leaves]
    bn = names[0]
    for n in names:
        while not n.startswith(bn):
            bn = bn[:-1]
    if len(bn) < len(names[0]) and (len(names) - 1) * len(bn) <= len(bn) + 2:
        bn = ""  # too short to pay for itself
    out = bytearray()
    _head(out, 4, len(leaves))
    for i, (oid, iid, rid, v, t) in enumerate(leaves):
        n = names[i][len(bn):]  # empty: one name for all, the base name alone names them
        head = i == 0
        dt = timed and t != bt
        _head(out, 5, 1 + (n != "") + (head and bn != "") + (head and timed) + dt)
        if head and bn:
            out.append(0x21)  # bn (-2)
            dumps(bn, out)
        if head and timed:
            out.append(0x22)  # bt (-3)
            dumps(bt, out)
        if n:
            out.append(0x00)  # n (0)
            dumps(n, out)
        out.append(0x02)  # v (2)
        dumps(v, out)
        if dt:
            out.append(0x06)  # t (6)
            dumps(t - bt, out)
    return bytes(out)

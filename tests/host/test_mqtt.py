"""MQTT reporting end to end: the firmware (m2m.report.mqtt over m2m.net.sock, umqtt.simple from the
registry) in the real MicroPython, a simulated modem of each dialect, a real Mosquitto, and an
independent paho subscriber that checks the SenML it receives; outages (broker stopped, link
dropped, modem rebooted) lose nothing and duplicate nothing after dedup by sequence number; TLS
with the test CA, and a broker certificate from another CA refused with the reason said."""

import json
import os
import subprocess
import time

import pytest

from m2mkit.broker import Broker, Subscriber, free_port
from m2mkit.sim.modem import ModemSim
from m2mkit.testing import _prelude, micropython, mpy_env

SCALE = 20
MODELS = ("sim7080g", "sim7000g", "bg95", "bg96", "gm02s")

# The device: Network (issue 8) brings the modem up, the Reporter drains the outbox. Phases are
# driven by the test through flag files: at GO<n> the device makes K readings, then runs the loop
# until the outbox is empty or its time is up, and says so.
DEVICE = """
import json, os
from m2m import hal, loop, config, outbox
from m2m.at import AT
from m2m import modem
from m2m.net import sock
from m2m.net.network import Network
from m2m.report import mqtt, contract
import m2m.net
cfg = config.validate({"device": {"id": "dev-1"}, "net": {"apn": "internet"},
                       "mqtt": {"broker": os.getenv("BROKER"), "keepalive": 60, "batch": 4,
                                "units": os.getenv("UNITS") or "status"}})
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=3000)
m = modem.create(at, {"model": os.getenv("MODEL")})
net = Network(m, cfg, state_dir=os.getenv("DIR") + "/")
tls = None
if os.getenv("CA"):
    tls = {"ca": os.getenv("CA")}
st = sock.Stack(m, kind="tls" if tls else "tcp", timeout_ms=8000, tls=tls, on_fail=m2m.net.link_failed)
ob = outbox.Outbox(os.getenv("DIR") + "/outbox")
rep = mqtt.Reporter(st, ob, cfg, "dev-1", up=net.attached, config_path=os.getenv("DIR") + "/config.json")
K = int(os.getenv("K"))
SQUEEZE = int(os.getenv("SQUEEZE") or 0)
if SQUEEZE:
    import gc
    from m2m import events

    class Squeeze:
        # The Reporter's first connects run on a heap filled but for a hole of SQUEEZE bytes (a
        # real MemoryError in the real code path); the filling is let go once it has failed 3 times.
        def __init__(self, rep):
            self.rep = rep
            self.tries = 0

        def step(self):
            r = self.rep
            if r.memory_errors >= 3 or self.tries >= 12 or not r.up() \
                    or hal.ticks_diff(r.wait_until, hal.ticks_ms()) > 0:
                return r.step()
            self.tries += 1
            gc.collect()
            hole = bytearray(SQUEEZE)
            fill = None
            size = 4096
            while size >= 16:
                try:
                    fill = [fill, bytearray(size)]
                except MemoryError:
                    size //= 2
            hole = None
            try:
                return r.step()
            finally:
                fill = None
                gc.collect()

    rep_service = Squeeze(rep)
else:
    rep_service = rep
phase = 0
n = 0
while True:
    flag = os.getenv("DIR") + "/GO%d" % phase
    while True:
        try:
            os.stat(flag)
            break
        except OSError:
            loop.run([net], max_ms=200)
    if phase == int(os.getenv("PHASES")):
        break
    made = []
    if os.getenv("BAD"):  # a telemetry record that holds no readings
        made.append(ob.append(outbox.TELEMETRY, b"\xffnot readings"))
    if os.getenv("ALARM"):  # an alarm between readings: it goes to /events on its own
        made.append(ob.append(outbox.ALARM, json.dumps({"kind": "alarm", "t": hal.epoch(), "name": "temperature", "level": "high"})))
    for i in range(K):
        n += 1
        rs = [("temperature", 20 + n / 10, "Cel", hal.epoch()), ("humidity", 40 + n % 7, "%RH", hal.epoch()),
              ("battery", 3.7, "V", hal.epoch())]
        if os.getenv("NEWNAME") and phase >= 1:  # a reading name that appears only now
            rs.append(("pressure", 99870.0, "Pa", hal.epoch()))
        seq = ob.append(outbox.TELEMETRY, contract.pack_readings(rs))
        made.append(seq)
    print(json.dumps({"phase": phase, "made": made}))
    limit = int(os.getenv("PHASE_MS"))
    loop.run([net, rep_service], until=lambda: ob.pending() == 0 and rep.client.connected(), max_ms=limit)
    print(json.dumps({"phase": phase, "pending": ob.pending(), "error": rep.last_error, "dups": rep.client.dups,
                      "memory_errors": rep.memory_errors}))
    cmds = int(os.getenv("CMDS") or 0)
    if cmds:  # answer that many /cmd payloads the test publishes
        print(json.dumps({"listening": True}))
        loop.run([net, rep], until=lambda: rep.answered >= cmds, max_ms=limit)
        print(json.dumps({"answered": rep.answered, "cfg_batch": cfg["mqtt"]["batch"]}))
    phase += 1
print(json.dumps({"done": True}))
"""


class Device:
    def __init__(self, tmp, sim, broker_url, model, phases, k=5, phase_ms=120000, ca=None, cmds=0, alarm=False, bad=False,
                 squeeze=0, units="status", newname=False):
        self.dir = tmp
        env = {"M2M_MODEM": "%s:%d" % tuple(sim.uart_address), "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
               "M2M_TIME_SCALE": str(SCALE), "MODEL": model, "BROKER": broker_url, "DIR": str(tmp),
               "K": str(k), "PHASES": str(phases), "PHASE_MS": str(phase_ms), "CMDS": str(cmds), "ALARM": "1" if alarm else "", "BAD": "1" if bad else "",
               "SQUEEZE": str(squeeze), "UNITS": units, "NEWNAME": "1" if newname else ""}
        if ca:
            env["CA"] = ca
        self.p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + DEVICE],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=mpy_env(env))
        self.lines = []

    def go(self, phase, timeout=60):
        (self.dir / f"GO{phase}").write_text("")
        made = self._until(lambda d: d.get("phase") == phase and "made" in d, timeout)
        end = self._until(lambda d: d.get("phase") == phase and "pending" in d, timeout)
        return made["made"], end

    def _until(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("{"):
                d = json.loads(line)
                if pred(d):
                    return d
        raise AssertionError("device did not get there:\n" + "".join(self.lines[-60:]))

    def stop(self):
        self.p.kill()
        self.p.wait()


UNITS = {"temperature": "Cel", "humidity": "%RH", "battery": "V", "pressure": "Pa"}


def senml_groups(messages, each=False):
    """{seq: [records]} from telemetry messages, checking each is valid SenML JSON (RFC 8428); the
    readings carry no unit (mqtt.units "status", the default: the status has them) or, with `each`,
    their own."""
    out = []
    for topic, payload, _ in messages:
        assert topic == "m2mkit/dev-1/telemetry"
        recs = json.loads(payload)
        assert isinstance(recs, list) and recs
        bn = None
        for r in recs:
            assert set(r) <= {"bn", "bt", "n", "u", "v", "vs", "vb", "t"}, r
            bn = r.get("bn", bn)
            assert bn == "dev-1:"
            if "n" not in r:  # the group's sequence number: the device's own record
                out.append((r["v"], []))
            else:
                assert isinstance(r["v"], (int, float))
                assert r.get("u") == (UNITS[r["n"]] if each else None), r
                out[-1][1].append(r["n"])
    return out


def collect(sub, want, timeout=60):
    """Sequence numbers as they arrive (duplicates kept), until every wanted one has come."""
    seen = []
    deadline = time.monotonic() + timeout
    while not set(want) <= set(seen) and time.monotonic() < deadline:
        msgs = sub.wait(1, timeout=1, topic="m2mkit/dev-1/telemetry")
        for seq, names in senml_groups(msgs):
            assert names == ["temperature", "humidity", "battery"]
            seen.append(seq)
    return seen


def exactly_once_in_order(seen, want):
    dedup = []
    for s in seen:
        if s not in dedup:
            dedup.append(s)
    got = [s for s in dedup if s in want]
    assert got == want, (seen, want)


@pytest.mark.parametrize("model", MODELS)
def test_readings_reach_a_subscriber_as_senml(model, broker, subscriber, tmp_path):
    sub = subscriber("m2mkit/dev-1/telemetry")
    status = subscriber("m2mkit/dev-1/status")
    with ModemSim(model=model, time_scale=SCALE) as sim:
        dev = Device(tmp_path, sim, broker.url, model, phases=1)
        try:
            made, end = dev.go(0)
            assert end["pending"] == 0, dev.lines
            exactly_once_in_order(collect(sub, made), made)
            # not a retained replay: one status, at the connect, with the units of the readings waiting
            # in the outbox (learnt before the status went out)
            live = [json.loads(m[1]) for m in status.wait(3, timeout=3) if not m[2]]
            assert live == [{"state": "online", "units": {"temperature": "Cel", "humidity": "%RH", "battery": "V"}}]
        finally:
            dev.stop()  # a power cut: the broker publishes the last will
    assert [m[1] for m in status.wait(1, timeout=10) if not m[2]] == [b"offline"]


def _outage(model, tmp_path, break_it, mend_it, broker=None):
    own = broker or Broker(tls=False).start()
    sub = Subscriber(own.url, topics=("m2mkit/dev-1/telemetry",))
    try:
        with ModemSim(model=model, time_scale=SCALE) as sim:
            dev = Device(tmp_path, sim, own.url, model, phases=3, phase_ms=30000)
            try:
                made0, end0 = dev.go(0)
                assert end0["pending"] == 0, dev.lines
                seen = collect(sub, made0)
                sub = break_it(sim, own, sub)
                made1, end1 = dev.go(1)  # readings made during the outage
                assert end1["pending"] > 0, dev.lines  # they could not go out
                sub = mend_it(sim, own, sub)
                made2, end2 = dev.go(2, timeout=120)
                assert end2["pending"] == 0, "".join(dev.lines[-40:])
                seen += collect(sub, made1 + made2)
                exactly_once_in_order(seen, made0 + made1 + made2)
            finally:
                dev.stop()
            return dev.lines
    finally:
        sub.close()
        if broker is None:
            own.stop()


def test_broker_stopped_then_started(tmp_path):
    port = free_port()
    b = Broker(tls=False, port=port).start()

    def stop(sim, br, sub):
        sub.close()
        br.stop()
        return sub

    def start(sim, br, sub):
        br.port = port
        br.start()
        return Subscriber(br.url, topics=("m2mkit/dev-1/telemetry",))

    try:
        lines = _outage("bg95", tmp_path, stop, start, broker=b)
    finally:
        b.stop()
    # the broker went away, not the link: no network recovery for it
    assert not [ln for ln in lines if "net.link_failed" in ln or "net.recovery" in ln], "".join(lines)


@pytest.mark.parametrize("model", ("sim7080g", "gm02s"))
def test_link_dropped(model, tmp_path):
    def drop(sim, br, sub):
        sim.fault("sockets_refused", enable=True)
        sim.fault("far_end_close")
        return sub

    def mend(sim, br, sub):
        sim.fault("sockets_refused", enable=False)
        return sub

    _outage(model, tmp_path, drop, mend)


def test_modem_rebooted(tmp_path):
    def reboot(sim, br, sub):
        sim.fault("sockets_refused", enable=True)
        sim.fault("reboot")
        return sub

    def mend(sim, br, sub):
        sim.fault("sockets_refused", enable=False)
        return sub

    _outage("bg96", tmp_path, reboot, mend)


@pytest.mark.parametrize("model", ("sim7080g", "bg95", "gm02s"))
def test_tls_with_the_test_ca(model, broker, subscriber, tmp_path):
    sub = subscriber("m2mkit/dev-1/telemetry", tls=True)
    with open(broker.ca_file) as f:
        ca = f.read()
    with ModemSim(model=model, time_scale=SCALE) as sim:
        dev = Device(tmp_path, sim, broker.tls_url, model, phases=1, ca=ca)
        try:
            made, end = dev.go(0)
            assert end["pending"] == 0, dev.lines
            exactly_once_in_order(collect(sub, made), made)
        finally:
            dev.stop()


@pytest.mark.parametrize("model", ("sim7080g", "bg96", "gm02s"))
def test_broker_certificate_from_another_ca_is_refused(model, broker, tmp_path):
    with open(broker.other_ca_file) as f:
        other = f.read()
    with ModemSim(model=model, time_scale=SCALE) as sim:
        dev = Device(tmp_path, sim, broker.tls_url, model, phases=1, phase_ms=20000, ca=other)
        try:
            made, end = dev.go(0)
        finally:
            dev.stop()
    assert end["pending"] == len(made)  # nothing went to a broker the device cannot trust
    assert "certificate" in end["error"], end  # and the device says why
    assert any(ln.startswith("mqtt: connecting to") and "certificate" in ln for ln in dev.lines)


def test_commands_answered_on_cmd_res(broker, subscriber, tmp_path):
    res = subscriber("m2mkit/dev-1/cmd/res")
    cmds = [b'{"id": "1", "cmd": "ping"}', b"not json", b'{"id": "2", "cmd": "fly"}',
            b'{"id": "3", "cmd": "set", "config": {"mqtt.batch": "many"}}',
            b'{"id": "4", "cmd": "set", "config": {"mqtt.batch": 2}}']
    with ModemSim(model="sim7080g", time_scale=SCALE) as sim:
        dev = Device(tmp_path, sim, broker.url, "sim7080g", phases=1, cmds=len(cmds))
        try:
            dev.go(0)
            dev._until(lambda d: d.get("listening"), 30)
            for c in cmds:
                res.publish("m2mkit/dev-1/cmd", c)
            end = dev._until(lambda d: "answered" in d, 60)
        finally:
            dev.stop()
    replies = [json.loads(m[1]) for m in res.wait(len(cmds), timeout=10)]
    assert end["answered"] == len(cmds)
    assert replies[0] == {"id": "1", "ok": True, "pong": True}
    assert replies[1]["ok"] is False and replies[1]["id"] is None and "JSON" in replies[1]["error"]
    assert replies[2]["ok"] is False and replies[2]["id"] == "2" and "unknown command" in replies[2]["error"]
    assert replies[3]["ok"] is False and replies[3]["id"] == "3"
    assert replies[4] == {"id": "4", "ok": True, "set": ["mqtt.batch"]}
    assert end["cfg_batch"] == 2  # the bad set changed nothing, the good one applied
    assert json.loads((tmp_path / "config.json").read_text())["mqtt"]["batch"] == 2  # and was saved


class _LossyBroker:
    """Just enough of an MQTT 3.1.1 broker to lose one PUBACK: the first telemetry PUBLISH is met by
    a closed connection; everything else is acknowledged. Records each PUBLISH (flags, packet id)."""

    def __init__(self):
        import socket
        import threading

        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.publishes = []
        self.dropped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            try:
                self._session(c)
            except (OSError, ValueError):
                pass
            c.close()

    @staticmethod
    def _read(c, n):
        b = b""
        while len(b) < n:
            d = c.recv(n - len(b))
            if not d:
                raise ValueError("closed")
            b += d
        return b

    def _session(self, c):
        while True:
            h = self._read(c, 1)[0]
            n = sh = 0
            while True:
                b = self._read(c, 1)[0]
                n |= (b & 0x7F) << sh
                sh += 7
                if not b & 0x80:
                    break
            body = self._read(c, n)
            kind = h & 0xF0
            if kind == 0x10:
                c.sendall(b"\x20\x02\x00\x00")
            elif kind == 0x30:
                tl = body[0] << 8 | body[1]
                topic = body[2:2 + tl].decode()
                pid = body[2 + tl] << 8 | body[3 + tl]
                self.publishes.append((topic, h & 0x0F, pid))
                if topic.endswith("/telemetry") and not self.dropped:
                    self.dropped = True
                    return  # the link goes: no PUBACK
                c.sendall(bytes((0x40, 2, pid >> 8, pid & 0xFF)))
            elif kind == 0x80:
                c.sendall(bytes((0x90, 3, body[0], body[1], 1)))
            elif kind == 0xC0:
                c.sendall(b"\xd0\x00")
            elif kind == 0xE0:
                return

    def close(self):
        self.srv.close()


def test_qos1_sent_again_with_dup_and_the_same_packet_id(tmp_path):
    b = _LossyBroker()
    try:
        with ModemSim(model="bg95", time_scale=SCALE) as sim:
            dev = Device(tmp_path, sim, "mqtt://127.0.0.1:%d" % b.port, "bg95", phases=1, k=1)
            try:
                made, end = dev.go(0)
            finally:
                dev.stop()
    finally:
        b.close()
    assert end["pending"] == 0 and end["dups"] == 1, dev.lines
    tele = [p for p in b.publishes if p[0].endswith("/telemetry")]
    assert len(tele) == 2, b.publishes
    (_, first_flags, first_pid), (_, again_flags, again_pid) = tele
    assert first_flags == 0b0010  # QoS 1
    assert again_flags == 0b1010  # QoS 1 with DUP (MQTT 3.1.1 3.3.1.1)
    assert again_pid == first_pid


def test_an_alarm_goes_to_events_between_telemetry(broker, subscriber, tmp_path):
    sub = subscriber("m2mkit/dev-1/telemetry", "m2mkit/dev-1/events")
    with ModemSim(model="gm02s", time_scale=SCALE) as sim:
        dev = Device(tmp_path, sim, broker.url, "gm02s", phases=1, k=2, alarm=True)
        try:
            made, end = dev.go(0)
        finally:
            dev.stop()
    assert end["pending"] == 0
    msgs = sub.wait(2, timeout=10)
    assert msgs[0][0] == "m2mkit/dev-1/events"  # the alarm, first in the outbox, first out
    ev = json.loads(msgs[0][1])
    assert ev["seq"] == made[0] and ev["kind"] == "alarm" and ev["level"] == "high"
    assert [g[0] for g in senml_groups(msgs[1:])] == made[1:]  # then the readings, one message


def test_a_record_without_readings_does_not_block_the_outbox(broker, subscriber, tmp_path):
    sub = subscriber("m2mkit/dev-1/telemetry", "m2mkit/dev-1/events")
    with ModemSim(model="bg95", time_scale=SCALE) as sim:
        dev = Device(tmp_path, sim, broker.url, "bg95", phases=1, k=2, bad=True)
        try:
            made, end = dev.go(0)
        finally:
            dev.stop()
    assert end["pending"] == 0, dev.lines
    msgs = sub.wait(2, timeout=10)
    assert msgs[0][0] == "m2mkit/dev-1/events"
    ev = json.loads(msgs[0][1])
    assert ev["seq"] == made[0] and ev["kind"] == "bad_record"
    assert [g[0] for g in senml_groups(msgs[1:])] == made[1:]


def test_out_of_memory_at_connect_is_said_once_and_recovered_from(broker, subscriber, tmp_path):
    # The DevKitC's first connect ran out of heap now and then and the Reporter retried without a
    # word: a MemoryError is posted once as the event mqtt.memory, the Reporter collects, backs
    # off and connects once memory is there again; nothing made in the meantime is lost.
    sub = subscriber("m2mkit/dev-1/telemetry")
    with ModemSim(model="bg95", time_scale=SCALE) as sim:
        dev = Device(tmp_path, sim, broker.url, "bg95", phases=1, k=3, squeeze=1024)
        try:
            made, end = dev.go(0)
        finally:
            dev.stop()
    assert end["pending"] == 0 and end["memory_errors"] >= 3, "".join(dev.lines[-40:])
    said = [ln for ln in dev.lines if ln.startswith("event: mqtt.memory")]
    assert len(said) == 1 and "free=" in said[0], "".join(dev.lines[-40:])
    assert len([ln for ln in dev.lines if "mqtt: out of memory" in ln]) == 1
    exactly_once_in_order(collect(sub, made), made)

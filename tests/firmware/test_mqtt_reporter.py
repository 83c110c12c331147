# The Reporter's /cmd queue when the heap runs out: a MemoryError while handling a command (loading
# m2m.report.cmd on a fragmented heap) leaves the payload queued for the next try; any other failure
# takes it off. The heap is really exhausted here (filled, then the command handled).
import gc
import json
import os

from m2m import config, outbox
from m2m.report import contract, mqtt

# this file's own folder (pytest's tmp_path for it, m2mkit.testing.run_file): never a shared path
TMP = os.getenv("M2M_TEST_TMP")
_n = [0]


class Client:
    # stands in for the MQTT connection only: what the Reporter publishes is recorded
    id = "dev-1"

    def __init__(self):
        self.sent = []

    def topic(self, leaf):
        return "m2mkit/dev-1/" + leaf

    def publish(self, topic, msg, retain=False, qos=1):
        self.sent.append((topic, msg))


def _reporter():
    _n[0] += 1
    cfg = config.validate({"device": {"id": "dev-1"}, "mqtt": {"broker": "mqtt://127.0.0.1:1883"}})
    ob = outbox.Outbox(TMP + "/rep-%d" % _n[0])
    rep = mqtt.Reporter(None, ob, cfg, "dev-1")
    rep.client = Client()
    return rep


def _fill(hole):
    # everything taken but a hole of `hole` bytes (freed just before the call under test)
    h = bytearray(hole) if hole else None
    keep = None
    size = 4096
    while size >= 16:
        try:
            keep = [keep, bytearray(size)]
        except MemoryError:
            size //= 2
    h = None
    return keep


def test_a_command_hit_by_memory_error_stays_queued_and_is_answered_later():
    # with holes of every size up to 3 KB the MemoryError lands at every point of loading and
    # running the /cmd code: each command is answered exactly once when memory is back
    rep = _reporter()
    hit = 0
    for i, hole in enumerate(range(0, 3072, 64)):
        rep.cmds.append(b'{"id": "%d", "cmd": "ping"}' % i)
        gc.collect()
        fill = _fill(hole)
        try:
            rep._commands()
        except MemoryError:
            hit += 1
        fill = None
        gc.collect()
        if rep.cmds:
            assert rep.cmds == [b'{"id": "%d", "cmd": "ping"}' % i], rep.cmds
            rep._commands()
        assert rep.cmds == []
    answered = [json.loads(m)["id"] for _, m in rep.client.sent]
    assert answered == [str(i) for i in range(len(answered))] and len(answered) == 48, answered
    assert hit > 3, hit


def test_a_command_that_fails_otherwise_is_taken_off():
    rep = _reporter()

    def boom(args):
        raise OSError(5, "the layer's own failure")

    contract.EXTRA["boom"] = boom
    try:
        rep.cmds.append(b'{"id": "2", "cmd": "boom"}')
        try:
            rep._commands()
        except OSError:
            pass
        assert rep.cmds == []
    finally:
        del contract.EXTRA["boom"]


def test_dns_and_tls_code_is_loaded_with_the_reporter_when_the_broker_needs_it():
    # loaded while the heap is young, not at the first connect after the network's bring-up
    import sys

    from m2m.net import sock

    def made(url, kind):
        sys.modules.pop("m2m.net.sockx", None)
        cfg = config.validate({"device": {"id": "dev-1"}, "mqtt": {"broker": url}})
        mqtt.Reporter(sock.Stack(None, kind=kind), outbox.Outbox(TMP + "/rep-dns-%d" % len(url)), cfg, "dev-1")
        return "m2m.net.sockx" in sys.modules

    assert not made("mqtt://10.0.0.1:1883", "tcp")
    assert made("mqtt://broker.example:1883", "tcp")
    assert made("mqtts://10.0.0.1:8883", "tls")

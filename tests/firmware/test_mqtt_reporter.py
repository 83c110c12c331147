# The Reporter's /cmd queue when the heap runs out: a MemoryError while handling a command (loading
# m2m.report.cmd on a fragmented heap) leaves the payload queued for the next try; any other failure
# takes it off. The heap is really exhausted here (filled, then the command handled).
import gc
import json

from m2m import config, outbox
from m2m.report import contract, mqtt

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
    import time

    _n[0] += 1
    cfg = config.validate({"device": {"id": "dev-1"}, "mqtt": {"broker": "mqtt://127.0.0.1:1883"}})
    ob = outbox.Outbox("/tmp/m2m-rep-%d-%d" % (time.ticks_us(), _n[0]))
    rep = mqtt.Reporter(None, ob, cfg, "dev-1")
    rep.client = Client()
    return rep


def _fill():
    # everything but a few hundred bytes taken
    keep = None
    size = 4096
    while size >= 16:
        try:
            keep = [keep, bytearray(size)]
        except MemoryError:
            size //= 2
    return keep


def test_a_command_hit_by_memory_error_stays_queued_and_is_answered_later():
    rep = _reporter()
    rep.cmds.append(b'{"id": "1", "cmd": "ping"}')
    gc.collect()
    fill = _fill()
    try:
        rep._commands()
        raised = False
    except MemoryError:
        raised = True
    fill = None
    gc.collect()
    assert raised and rep.cmds == [b'{"id": "1", "cmd": "ping"}']
    rep._commands()
    assert rep.cmds == [] and json.loads(rep.client.sent[0][1]) == {"id": "1", "ok": True, "pong": True}


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

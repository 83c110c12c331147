"""The Send's time (lwm2m.send_time_after_s): the firmware's client (real MicroPython, scaled clock)
sends readings taken just now without a time, which the host server takes as its own "now" (RFC 8428
4.5.3: a record without a time was made "roughly now" at the receiver), and readings that waited in
the outbox with their own time. The outage is a UDP relay on loopback that drops what the device
sends: the time-less Send is retransmitted unchanged (RFC 7252 4.2: the same message, same Message
ID) until the client gives up (MAX_TRANSMIT_WAIT, 4.8.2), and the Send built again from the outbox
carries the reading's time, which the host server decodes to the device's timestamp."""

import json
import os
import socket
import subprocess
import threading
import time

import cbor2
from aiocoap import Message

from m2mkit import testing
from m2mkit.lwm2m import ServerThread

SCALE = 20  # device seconds per real second: MAX_TRANSMIT_WAIT (93 s) in under 5 s

DEVICE = r"""
import json, os
from m2m import hal
from m2m.sense.sampler import Sampler
from m2m.lwm2m.client import Client
from m2m.outbox import Outbox
from m2m.report.contract import pack_readings
cfg = json.loads(%(cfg)r)
D = %(dir)r

class Thermo:
    QUANT = ("temperature",)
    RANGE = None
    def start(self):
        return 0
    def read(self):
        return (21.5,)

def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False

smp = Sampler(lambda readings, urgent: None)
smp.add("t", Thermo(), interval_s=3600)
ob = Outbox(D + "/outbox")
c = Client(cfg, sampler=smp, outbox=ob)
n = 0
while not exists(D + "/stop"):
    if exists(D + "/add%%d" %% n):  # the test asks for a reading taken now
        t = int(hal.epoch())
        ob.append(1, pack_readings([("temperature", 20.5 + n, "Cel", t)]))
        with open(D + "/t%%d" %% n, "w") as f:
            f.write(str(t))
        n += 1
    hal.sleep_ms(min(c.step(), 50))
c.close()
"""


class Relay:
    """A UDP relay between the device and the server; `drop` loses what the device sends."""

    def __init__(self, server):
        self.server = server
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(0.1)
        self.port = self.s.getsockname()[1]
        self.device = None
        self.drop = False
        self.dropped = []  # datagrams from the device lost while dropping
        self.passed = []  # datagrams from the device forwarded
        self.run = True
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while self.run:
            try:
                d, src = self.s.recvfrom(2048)
            except OSError:
                continue
            if src == self.server:
                if self.device:
                    self.s.sendto(d, self.device)
                continue
            self.device = src
            if self.drop:
                self.dropped.append(d)
            else:
                self.passed.append(d)
                self.s.sendto(d, self.server)

    def close(self):
        self.run = False
        self.t.join(2)
        self.s.close()


def sends(datagrams):
    # the SenML records of the Sends (POST /dp) among datagrams, one list per datagram
    out = []
    for d in datagrams:
        m = Message.decode(d)
        if m.opt.uri_path == ("dp",):
            out.append(cbor2.loads(m.payload))
    return out


def until(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def test_fresh_readings_go_without_time_and_a_backlog_with_its_own(tmp_path):
    with ServerThread(log=None) as srv:
        relay = Relay(srv.address)
        cfg = {"device": {"id": "dev-t"},
               "lwm2m": {"server": "coap://127.0.0.1:%d" % relay.port, "lifetime_s": 86400, "send": True,
                         "send_time_after_s": 30}}
        p = subprocess.Popen([testing.micropython(), "-X", "heapsize=512K", "-c",
                              testing._prelude() + DEVICE % {"cfg": json.dumps(cfg), "dir": str(tmp_path)}],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=testing.mpy_env({"M2M_TIME_SCALE": str(SCALE)}))
        try:
            reg = until(lambda: next(iter(srv.server.registrations.values()), None), 30, "registration")

            # a reading taken now: no bt / t on the wire, the server's clock at its arrival
            before = time.time()
            (tmp_path / "add0").touch()
            until(lambda: reg.sent, 30, "the first Send")
            after = time.time()
            (rec,) = sends(relay.passed)
            assert all(-3 not in r and 6 not in r for r in rec), rec
            ((name, value, t),) = reg.sent[0]
            assert (name, value) == ("/3303/0/5700", 20.5)
            assert before <= t <= after, (before, t, after)

            # an outage: the time-less Send of a fresh reading is lost with its 4 retransmissions,
            # all the same datagram; after the client gives up, the Send built again carries the
            # reading's time (then older than 30 s on the device clock), decoded to it exactly
            relay.drop = True
            (tmp_path / "add1").touch()
            until(lambda: len(relay.dropped) >= 5, 30, "the Send and its 4 retransmissions lost")
            relay.drop = False
            lost = relay.dropped[:5]
            assert len(set(lost)) == 1 and all(-3 not in r for r in sends(lost)[0]), sends(lost)
            until(lambda: len(reg.sent) >= 2, 30, "the Send after the outage")
            t1 = int((tmp_path / "t1").read_text())
            assert reg.sent[1] == [("/3303/0/5700", 21.5, t1)], (reg.sent, t1)
            assert sends(relay.passed)[-1][0][-3] == t1
            assert len(reg.sent) == 2  # nothing of the lost Send reached the server
        finally:
            (tmp_path / "stop").touch()
            try:
                p.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
            relay.close()

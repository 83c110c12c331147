"""The LwM2M client over the simulated modem's UDP sockets (m2m.net.sock) with 20 % of datagrams
lost both ways (the simulator's seeded udp_loss): registration and notifications complete by
retransmission, and an Execute whose answer was lost is answered again from the deduplication
cache, never run twice."""

import json
import subprocess
import threading
import time

import aiocoap
from aiocoap.numbers.constants import TransportTuning

from m2mkit import testing
from m2mkit.sim.modem import ModemSim
from test_lwm2m_client import Code, Server, _observe, config

SCALE = 10


class Scaled(TransportTuning):
    # the server's retransmissions on the device's clock (RFC 7252 4.8 timing, SCALE times faster),
    # so that they all fall within the device's EXCHANGE_LIFETIME as they would unscaled
    ACK_TIMEOUT = 2.0 / SCALE


def ask(server, code, path, tries=5):
    """One request, asked again (a new exchange) when all its retransmissions were lost; the
    answer and how many exchanges failed."""
    failed = 0
    for _ in range(tries):
        try:
            return server.request(code, path, timeout=60, transport_tuning=Scaled()), failed
        except aiocoap.error.Error:
            failed += 1
    raise AssertionError("%s %s: no answer in %d exchanges" % (code, path, tries))


DEVICE = r"""
import json, os
from m2m import hal
from m2m.at import AT
from m2m import modem
from m2m.net import sock
from m2m.lwm2m.client import Client
from simctl import attach
at = AT(hal.UART(1, 115200), timeout_ms=2000)
m = modem.create(at, {"model": "bg95"})
attach(m)
st = sock.Stack(m, kind="udp", timeout_ms=3000)
cfg = json.loads(%(cfg)r)

class Sampler:  # stands in for the sensors: a temperature that rises by 1 each second
    t0 = hal.ticks_ms()
    def names(self):
        return ["temperature"]
    def latest(self, name):
        return (20.0 + hal.ticks_diff(hal.ticks_ms(), self.t0) // 1000, "Cel", 0)

c = Client(cfg, sampler=Sampler(), stack=st)
print("ready")
dups = 0
while True:
    try:
        os.stat(%(stop)r)
        break
    except OSError:
        pass
    hal.sleep_ms(min(c.step(), 20))
    if c.ep.dups != dups:  # told as it happens: the test goes on with Executes until one came
        dups = c.ep.dups
        print("dup", dups)
print(json.dumps({"dups": c.ep.dups, "retransmits": c.ep.retransmits}))
c.close()
"""


def test_registration_notifications_and_execute_once_under_20_percent_loss(tmp_path):
    server = Server()
    stop = tmp_path / "stop"
    try:
        with ModemSim(model="bg95", time_scale=SCALE) as sim:
            r = sim.request({"op": "udp_loss", "probability": 0.2, "seed": 7})
            assert r["ok"], r
            env = testing.mpy_env({"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
                                   "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
                                   "M2M_TIME_SCALE": str(SCALE)})
            code = DEVICE % {"cfg": json.dumps(config(server, lifetime_s=600)), "stop": str(stop)}
            p = subprocess.Popen([testing.micropython(), "-X", "heapsize=512K", "-c", testing._prelude() + code],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            lines = []
            reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
            reader.start()
            try:
                server.wait("register", timeout=120)
                # notifications: pmax 1 s of device time; 6 of them arrive through the loss
                assert ask(server, Code.PUT, "/3303/0/5700?pmax=1")[0].code == Code.CHANGED
                for attempt in range(3):  # the Observe itself may be lost whole, as any exchange
                    try:
                        first, notes = _observe(server, "/3303/0/5700", 6, timeout=120, transport_tuning=Scaled())
                        break
                    except aiocoap.error.Error:
                        assert attempt < 2
                assert first.code == Code.CONTENT and len(notes) == 6
                vals = [float(n[1]) for n in notes]
                assert vals == sorted(vals)
                # Executes of Reset Error Code (at least 12, and on until the device saw a duplicate:
                # about one in eight runs of 12 had none, the loss being random): a retransmitted one
                # is answered from the dedup cache, not run again; an exchange that failed whole may
                # or may not have run
                ok = failed = 0
                while ok < 12 or (ok < 48 and not any(ln.startswith("dup ") for ln in lines)):
                    r, f = ask(server, Code.POST, "/3/0/12")
                    assert r.code == Code.CHANGED
                    ok += 1
                    failed += f
                lost = sim.request({"op": "udp_loss", "probability": 0})
            finally:
                stop.write_text("")
                p.wait(timeout=120)
                reader.join(10)
                out = "".join(lines)
        assert lost["dropped_up"] > 0 and lost["dropped_down"] > 0, lost
        runs = out.count("event: lwm2m.execute arg= path=/3/0/12")
        assert ok <= runs <= ok + failed, (ok, failed, runs, out[-3000:])
        stats = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{") and "dups" in ln][-1]
        print("loss test:", ok, failed, runs, stats, lost)
        assert stats["dups"] >= 1 and stats["retransmits"] >= 1, stats
    finally:
        server.stop()

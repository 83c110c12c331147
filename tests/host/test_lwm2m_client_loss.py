"""The LwM2M client over the simulated modem's UDP sockets (m2m.net.sock) with 20 % of datagrams
lost both ways (the simulator's seeded udp_loss): registration and notifications complete by
retransmission, and an Execute whose answer was lost is answered again from the deduplication
cache, never run twice."""

import json
import subprocess
import time

from m2mkit import testing
from m2mkit.sim.modem import ModemSim
from test_lwm2m_client import Code, Server, _observe, config

SCALE = 10

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
while True:
    try:
        os.stat(%(stop)r)
        break
    except OSError:
        pass
    hal.sleep_ms(min(c.step(), 20))
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
            try:
                server.wait("register", timeout=120)
                # notifications: pmax 1 s of device time; 6 of them arrive through the loss
                assert server.request(Code.PUT, "/3303/0/5700?pmax=1", timeout=120).code == Code.CHANGED
                first, notes = _observe(server, "/3303/0/5700", 6, timeout=120)
                assert first.code == Code.CONTENT and len(notes) == 6
                vals = [float(n[1]) for n in notes]
                assert vals == sorted(vals)
                # 15 Executes of Reset Error Code: each runs once, retransmitted ones are answered
                for _ in range(15):
                    assert server.request(Code.POST, "/3/0/12", timeout=120).code == Code.CHANGED
                lost = sim.request({"op": "udp_loss", "probability": 0})
            finally:
                stop.write_text("")
                out, _ = p.communicate(timeout=120)
        assert lost["dropped_up"] > 0 and lost["dropped_down"] > 0, lost
        assert out.count("event: lwm2m.execute arg= path=/3/0/12") == 15, out[-3000:]
        stats = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{") and "dups" in ln][-1]
        assert stats["dups"] >= 1 and stats["retransmits"] >= 1, stats
    finally:
        server.stop()

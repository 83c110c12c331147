"""The supervisor's plugin seam for LwM2M (m2m.lwm2m.service): with the real Network over the
simulated BG95, the client waits for the attach, registers over the modem's UDP sockets, serves
Connectivity Monitoring (/4/0) from the network's status, and deregisters at close."""

import json
import subprocess

from m2mkit import testing
from m2mkit.sim.modem import ModemSim
from test_lwm2m_client import Code, Server, config

SCALE = 10

DEVICE = r"""
import json, os
from m2m import hal, loop, config, modem
from m2m.at import AT
from m2m.net.network import Network
import m2m.lwm2m
cfg = config.validate(json.loads(%(cfg)r))
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=3000)
m = modem.create(at, {"model": "bg95"})
net = Network(m, cfg, state_dir=%(dir)r + "/")
svc = m2m.lwm2m.service({"cfg": cfg, "id": "dev-svc", "net": net, "outbox": None, "sampler": None})
print("before attach", svc.step(), svc.client)
loop.run([net, svc], until=lambda: svc.client is not None and svc.client.registered(), max_ms=300000)
net.read_signal()
def stop():
    try:
        os.stat(%(stop)r)
        return True
    except OSError:
        return False
loop.run([net, svc], until=stop, max_ms=600000)
svc.close()
"""


def test_service_registers_after_attach_and_serves_connectivity(tmp_path):
    server = Server()
    stop = tmp_path / "stop"
    try:
        with ModemSim(model="bg95", time_scale=SCALE) as sim:
            env = testing.mpy_env({"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
                                   "M2M_GPIO": "%s:%d" % tuple(sim.control_address),
                                   "M2M_TIME_SCALE": str(SCALE)})
            cfg = config(server)
            cfg["device"]["id"] = None
            code = DEVICE % {"cfg": json.dumps(cfg), "dir": str(tmp_path), "stop": str(stop)}
            p = subprocess.Popen([testing.micropython(), "-X", "heapsize=512K", "-c", testing._prelude() + code],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            try:
                reg = server.wait("register", timeout=120)[0]
                plmn = sim.request({"op": "status"})["operator"]  # the network the modem is on
                assert reg["ep"] == "dev-svc"  # the supervisor's device id
                assert server.request(Code.GET, "/4/0/7/0").payload == b"internet"
                mcc = server.request(Code.GET, "/4/0/10")
                mnc = server.request(Code.GET, "/4/0/9")
                bearer = server.request(Code.GET, "/4/0/0")
            finally:
                stop.write_text("")
                out = p.communicate(timeout=120)[0]
        assert "before attach 1000 None" in out, out
        assert (int(mcc.payload), int(mnc.payload)) == (int(plmn[:3]), int(plmn[3:])), (plmn, out)  # integers
        assert bearer.payload == b"6", out  # LTE-M (ASSUMED docs/ASSUMED.md#A-LWM2M-BEARER)
        assert server.wait("deregister")
    finally:
        server.stop()

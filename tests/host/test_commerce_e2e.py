"""The order flow end to end: the firmware (m2m.orders on a sampler that reads a Modbus level
transmitter, the Reporter over the simulated modem) in the real MicroPython, a real Mosquitto,
`m2mkit commerce serve` and a real HTTP supplier. One need becomes exactly one order at the supplier
and its confirmation reaches the device, through a broker restart (which forgets every session), two
device reboots (SIGKILL) and a commerce service killed and started again; the device's repeated
requests are never a second order; a refill and a new shortage are the second order; a device that
lost its orders state (a new filesystem) while still short orders again under a new id epoch instead
of being answered with an old order's status."""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from m2mkit.broker import Broker, free_port
from m2mkit.commerce import Store, publish
from m2mkit.commerce_supplier import Supplier
from m2mkit.sim.modbus import ModbusServer
from m2mkit.sim.modem import ModemSim
from m2mkit.testing import _prelude, micropython, mpy_env

SCALE = 20
M2MKIT = str(Path(sys.executable).parent / "m2mkit")

DEVICE = """
import json, os
from m2m import hal, loop, config, outbox, modem, orders
from m2m.at import AT
from m2m.net import sock
from m2m.net.network import Network
from m2m.report import mqtt
from m2m.sense import build
import m2m.net
D = os.getenv("DIR")
cfg = config.validate({"device": {"id": "dev-1"}, "net": {"apn": "internet"},
    "mqtt": {"broker": os.getenv("BROKER"), "keepalive": 60},
    "sense": {"battery": False, "sensors": [{"type": "modbus", "id": "ink", "uart": {"id": 2}, "unit": 1,
        "interval_s": 5, "regs": [{"name": "level", "fc": 3, "addr": 0, "scale": 0.1, "unit": "%"}]}]},
    "orders": {"rules": [{"item": "ink-black", "reading": "ink.level", "below": 15, "rearm": 50, "qty": 2}],
               "check_s": 5, "repeat_s": 30}})
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=3000)
m = modem.create(at, {"model": "bg95"})
net = Network(m, cfg, state_dir=D + "/")
st = sock.Stack(m, kind="tcp", timeout_ms=8000, on_fail=m2m.net.link_failed)
ob = outbox.Outbox(D + "/outbox")
sm = build.sampler(cfg, lambda r, u: None, {})
rep = mqtt.Reporter(st, ob, cfg, "dev-1", up=net.attached)
o = orders.Orders(ob, cfg, "dev-1", level=orders.sampler_level(sm), path=D + "/orders.json")
last = [None]

class Show:
    def step(self):
        s = o.status()["ink-black"]
        now = (s, o.requests, rep.client.connected(), sm.latest("ink.level") is not None)
        if now != last[0]:
            last[0] = now
            print(json.dumps({"status": s, "requests": o.requests, "connected": now[2], "level": now[3]}))
        return 200

loop.run([net, sm, rep, o, Show()])
"""


class Device:
    """The device (a board: ESP32 and modem lose power together at a reboot)."""

    def __init__(self, d, broker_url, modbus):
        self.d, self.url, self.modbus = d, broker_url, modbus
        self.lines = []
        self.p = self.sim = None

    def boot(self):
        self.sim = ModemSim(model="bg95", time_scale=SCALE).start()
        env = {"M2M_MODEM": "%s:%d" % tuple(self.sim.uart_address),
               "M2M_GPIO": "%s:%d" % tuple(self.sim.control_address), "M2M_UART2": self.modbus.address_str,
               "M2M_TIME_SCALE": str(SCALE), "BROKER": self.url, "DIR": str(self.d)}
        self.p = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + DEVICE],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=mpy_env(env))
        self.q = queue.Queue()
        threading.Thread(target=lambda p=self.p, q=self.q: [q.put(ln) for ln in p.stdout] + [q.put(None)],
                         daemon=True).start()

    def until(self, pred, timeout=40):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line.rstrip())
            if line.startswith("{"):
                d = json.loads(line)
                if pred(d):
                    return d
        raise AssertionError("the device did not get there:\n" + "\n".join(self.lines[-50:]))

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        self.sim.stop()


class Commerce:
    def __init__(self, broker_url, db, supplier_url):
        self.args = [M2MKIT, "commerce", "serve", "--broker", broker_url, "--db", str(db), "--supplier", supplier_url]
        self.p = None

    def start(self):
        self.p = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.p.stdout.readline().startswith("commerce: listening")

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        self.p.stdout.close()


def test_one_need_one_order_through_restarts(tmp_path):
    port = free_port()
    broker = Broker(tls=False, port=port).start()
    sup = Supplier()
    modbus = ModbusServer({1: {"holding": [400]}}).start()  # the ink tank at 40.0 %
    dev = Device(tmp_path, broker.url, modbus)
    com = Commerce(broker.url, tmp_path / "commerce.db", sup.url)
    try:
        com.start()
        dev.boot()
        dev.until(lambda d: d["connected"] and d["level"])
        com.kill()  # the service is down when the need arises
        modbus.set(1, "holding", 0, [120])  # 12.0 %
        d = dev.until(lambda d: d["status"][1] == "open" and d["requests"] >= 2)
        oid = d["status"][0]
        assert re.fullmatch(r"dev-1:ink-black:[0-9a-f]{8}-1", oid), oid
        broker.stop()  # forgets the service's session and the requests it held for it
        broker.port = port
        broker.start()
        dev.kill()  # and the device loses power meanwhile
        dev.boot()
        d = dev.until(lambda d: d["status"][1] == "open" and d["connected"])
        assert d["status"][0] == oid  # the same order after the reboot
        com.start()
        d = dev.until(lambda d: d["status"][1] == "confirmed", timeout=60)
        assert d["status"] == [oid, "confirmed", d["status"][2], "S-1"]
        assert list(sup.orders) == ['"%s"' % oid] and len(sup.posts) == 1
        body = sup.orders['"%s"' % oid][0]
        assert (body["item"], body["qty"], body["device"]) == ("ink-black", 2, "dev-1")
        assert body["reason"].startswith("ink.level 12.0 below 15")
        # the request delivered twice more (as a broker may redeliver it): still one order
        st = Store(str(tmp_path / "commerce.db"))
        raw = st.order(oid)["request"]
        st.close()
        for _ in range(2):
            publish(broker.url, "m2mkit/dev-1/orders", raw.encode())
        time.sleep(0.5)
        assert len(sup.orders) == 1 and len(sup.posts) == 1
        # another reboot: the confirmation was kept, no request goes out
        dev.kill()
        dev.boot()
        d = dev.until(lambda d: d["connected"] and d["level"])
        assert d["status"][1] == "confirmed" and d["requests"] == 0
        com.kill()
        st = Store(str(tmp_path / "commerce.db"))
        o = st.order(oid)
        st.close()
        assert o["state"] == "confirmed" and o["posts"] == 1 and o["requests"] >= 1
        assert o["device_status"] == "confirmed"
        # refilled, then empty again: the second need is the second order
        com.start()
        modbus.set(1, "holding", 0, [900])
        time.sleep(1.5)  # a few sensor reads and rule checks at 90 % (30 s of device time)
        modbus.set(1, "holding", 0, [50])
        oid2 = oid[:-1] + "2"
        d = dev.until(lambda d: d["status"][0] == oid2 and d["status"][1] == "confirmed", timeout=60)
        assert len(sup.orders) == 2 and len(sup.posts) == 2
        # the orders state is lost (a new filesystem) while the tank is still low: the need numbers
        # start at 1 again, under a new epoch: a third order, not the first one's old "confirmed"
        dev.kill()
        os.remove(tmp_path / "orders.json")
        dev.boot()
        d = dev.until(lambda d: d["status"][1] == "confirmed" and d["status"][0] not in (oid, oid2), timeout=60)
        assert re.fullmatch(r"dev-1:ink-black:[0-9a-f]{8}-1", d["status"][0]), d
        assert len(sup.orders) == 3 and len(sup.posts) == 3
    finally:
        for stop in (dev.kill, com.kill, broker.stop, sup.close, modbus.stop):
            try:
                stop()
            except Exception:
                pass

"""The device's LwM2M client (m2m.lwm2m) end to end: the real MicroPython interpreter runs the client
over loopback UDP against an LwM2M server made of aiocoap (a real CoAP stack, not ours): register,
Read /3/0 in TLV, SenML JSON and SenML CBOR (decoded with cbor2), Write, Execute, Discover,
Write-Attributes and Observe with pmin / pmax, Update on lifetime, Deregister on shutdown, a
100 KB firmware package pulled block-wise, queue mode, bootstrap, Send from the outbox."""

import asyncio
import json
import os
import socket
import subprocess
import threading
import time

import aiocoap
import aiocoap.resource as resource
import cbor2
import pytest
from aiocoap import Code, Message

from m2mkit import testing

ACCEPT_TLV, SENML_JSON, SENML_CBOR, LINK = 11542, 110, 112, 40

# The device side: a simulated temperature sensor (its value is what the test writes to a file)
# read by the real sampler, and the client stepped by one loop until the stop file appears.
DEVICE = r"""
import json, os
from m2m import hal
from m2m.sense.sampler import Sampler
from m2m.lwm2m.client import Client
cfg = json.loads(%(cfg)r)
TFILE = %(tfile)r
STOP = %(stop)r

class Thermo:  # stands in for the sensor hardware
    QUANT = ("temperature",)
    RANGE = None
    def start(self):
        return 0
    def read(self):
        with open(TFILE) as f:
            return (float(f.read()),)

def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False

smp = Sampler(lambda readings, urgent: None)
smp.add("t", Thermo(), interval_s=0.2)
ob = None
if cfg["lwm2m"].get("send"):
    from m2m.outbox import Outbox
    from m2m.report.contract import pack_readings
    ob = Outbox(%(obdir)r)
    for i in range(3):
        ob.append(1, pack_readings([("temperature", 20.5 + i, "Cel", 1767225600 + i)]))
c = Client(cfg, sampler=smp, outbox=ob)
%(extra)s
while not exists(STOP):
    w = min(c.step(), smp.step(), 50)
    hal.sleep_ms(w)
c.close()
print("closed", c.state)
"""


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    """A small LwM2M server on aiocoap: registrations, Send, bootstrap, a firmware file."""

    def __init__(self, bootstrap_writes=None, queue_hold=False):
        self.port = free_port()
        self.regs = {}
        self.log = []  # (what, details)
        self.sends = []
        self.files = {}
        self.bootstrap_writes = bootstrap_writes
        self.queued = []  # (coroutine factory, future) held until the device wakes (queue mode)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self):
        self.ctx = await aiocoap.Context.create_server_context(_Root(self), bind=("127.0.0.1", self.port))

    def call(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def wait(self, what, n=1, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            hits = [d for w, d in self.log if w == what]
            if len(hits) >= n:
                return hits
            time.sleep(0.05)
        raise AssertionError("no %s (x%d) within %d s; log: %s" % (what, n, timeout, self.log))

    def uri(self, path):
        reg = list(self.regs.values())[-1]
        return reg["remote"] + path

    def request(self, code, path, payload=b"", timeout=60, **opts):
        async def go():
            m = Message(code=code, uri=self.uri(path), payload=payload, **opts)
            return await self.ctx.request(m).response
        return self.call(go(), timeout)

    def stop(self):
        self.call(self.ctx.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class _Root(resource.Resource, resource.PathCapable):
    # one resource for the whole tree: aiocoap's Site hands sub-paths only to sub-sites
    def __init__(self, srv):
        super().__init__()
        self.parts = {"rd": _Rd(srv), "dp": _Dp(srv), "bs": _Bs(srv), "fw": _Files(srv)}

    async def render(self, request):
        p = request.opt.uri_path
        r = self.parts.get(p[0] if p else None)
        if r is None:
            return Message(code=Code.NOT_FOUND)
        return await r.render(request.copy(uri_path=p[1:]))


class _Rd(resource.Resource):
    def __init__(self, srv):
        super().__init__()
        self.srv = srv

    async def render(self, request):
        srv = self.srv
        path = request.opt.uri_path
        q = dict(x.partition("=")[::2] for x in request.opt.uri_query)
        if request.code == Code.POST and not path:
            loc = "r%d" % (len(srv.regs) + 1)
            srv.regs[loc] = {"ep": q.get("ep"), "lt": int(q.get("lt", 86400)), "b": q.get("b"),
                             "q": "Q" in q, "remote": request.remote.uri_base,
                             "links": request.payload.decode(), "lwm2m": q.get("lwm2m")}
            srv.log.append(("register", dict(srv.regs[loc], loc=loc, t=time.time())))
            return Message(code=Code.CREATED, location_path=["rd", loc])
        loc = path[0] if path else None
        if loc not in srv.regs:
            return Message(code=Code.NOT_FOUND)
        if request.code == Code.POST:
            srv.regs[loc]["remote"] = request.remote.uri_base
            srv.log.append(("update", {"loc": loc, "t": time.time(), "query": q}))
            for fut in srv.queued:
                fut.set_result(True)
            srv.queued = []
            return Message(code=Code.CHANGED)
        if request.code == Code.DELETE:
            del srv.regs[loc]
            srv.log.append(("deregister", {"loc": loc}))
            return Message(code=Code.DELETED)
        return Message(code=Code.METHOD_NOT_ALLOWED)


class _Dp(resource.Resource):
    def __init__(self, srv):
        super().__init__()
        self.srv = srv

    async def render_post(self, request):
        self.srv.sends.append((request.opt.content_format, request.payload))
        self.srv.log.append(("send", {"cf": request.opt.content_format, "payload": request.payload}))
        return Message(code=Code.CHANGED)


class _Bs(resource.Resource):
    def __init__(self, srv):
        super().__init__()
        self.srv = srv

    async def render_post(self, request):
        srv = self.srv
        srv.log.append(("bootstrap_request", {"query": list(request.opt.uri_query)}))
        base = request.remote.uri_base

        async def writes():
            await asyncio.sleep(0.2)
            for code, path, payload, cf in srv.bootstrap_writes:
                m = Message(code=code, uri=base + path, payload=payload)
                if cf is not None:
                    m.opt.content_format = cf
                r = await srv.ctx.request(m).response
                srv.log.append(("bs_op", {"path": path, "code": str(r.code)}))
            r = await srv.ctx.request(Message(code=Code.POST, uri=base + "/bs")).response
            srv.log.append(("bs_finish", {"code": str(r.code)}))

        asyncio.ensure_future(writes())
        return Message(code=Code.CHANGED)


class _Files(resource.Resource):
    def __init__(self, srv):
        super().__init__()
        self.srv = srv

    async def render_get(self, request):
        name = "/".join(request.opt.uri_path)
        b2 = request.opt.block2
        self.srv.log.append(("fw_get", {"block": b2.block_number if b2 else None}))
        return Message(payload=self.srv.files[name])


class Device:
    def __init__(self, tmp_path, cfg, extra="", scale=1.0, temp=21.0):
        self.tfile = str(tmp_path / "temp")
        self.stop_file = str(tmp_path / "stop")
        self.set_temp(temp)
        code = DEVICE % {"cfg": json.dumps(cfg), "tfile": self.tfile, "stop": self.stop_file,
                         "obdir": str(tmp_path / "outbox"), "extra": extra}
        env = testing.mpy_env({"M2M_TIME_SCALE": str(scale)})
        self.p = subprocess.Popen([testing.micropython(), "-X", "heapsize=512K", "-c", testing._prelude() + code],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    def set_temp(self, v):
        with open(self.tfile + ".new", "w") as f:
            f.write(str(v))
        os.replace(self.tfile + ".new", self.tfile)

    def stop(self, timeout=30):
        open(self.stop_file, "w").close()
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        self.out = out
        return out


def config(server, **lw):
    c = {"device": {"id": "dev-1"}, "net": {"apn": "internet"},
         "lwm2m": {"server": "coap://127.0.0.1:%d" % server.port, "lifetime_s": 3600}}
    c["lwm2m"].update(lw)
    return c


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def device(tmp_path):
    devs = []

    def make(cfg, **kw):
        d = Device(tmp_path, cfg, **kw)
        devs.append(d)
        return d

    yield make
    for d in devs:
        if d.p.poll() is None:
            d.stop()


def test_register_read_write_execute_discover_deregister(server, device):
    dev = device(config(server))
    reg = server.wait("register")[0]
    assert reg["ep"] == "dev-1" and reg["lt"] == 3600 and reg["b"] == "U" and reg["lwm2m"] == "1.1"
    links = reg["links"].split(",")
    assert "</3/0>" in links and "</5/0>" in links and "</3303/0>" in links
    assert not any(x.startswith("</0") for x in links)  # Security is never listed

    # Read /3/0 in the three formats; the manufacturer and serial agree across them
    r = server.request(Code.GET, "/3/0", accept=ACCEPT_TLV)
    assert r.code == Code.CONTENT and r.opt.content_format == ACCEPT_TLV
    assert r.payload[:8] == bytes((0xC6, 0x00)) + b"m2mkit"  # resource 0, length 6 in the type byte
    r = server.request(Code.GET, "/3/0", accept=SENML_JSON)
    recs = json.loads(r.payload)
    assert r.opt.content_format == SENML_JSON and recs[0]["bn"] == "/3/0/"
    js = {x["n"]: x for x in recs}
    assert js["0"]["vs"] == "m2mkit" and js["16"]["vs"] == "U" and "v" in js["10"]
    r = server.request(Code.GET, "/3/0", accept=SENML_CBOR)
    cb = cbor2.loads(r.payload)
    assert r.opt.content_format == SENML_CBOR and cb[0][-2] == "/3/0/"
    byname = {x[0]: x for x in cb}
    assert byname["0"][3] == "m2mkit" and byname["2"][3] == js["2"]["vs"]
    # one resource as text/plain
    r = server.request(Code.GET, "/3/0/16")
    assert r.code == Code.CONTENT and r.payload == b"U" and r.opt.content_format == 0

    # Write (replace) a writable resource, then read it back; a read-only one is refused
    r = server.request(Code.PUT, "/3/0/14", b"+01:00", content_format=0)
    assert r.code == Code.CHANGED
    assert server.request(Code.GET, "/3/0/14").payload == b"+01:00"
    assert server.request(Code.PUT, "/3/0/0", b"x", content_format=0).code == Code.METHOD_NOT_ALLOWED
    # partial update of the Server object in TLV: lifetime (res 1) = 7200
    r = server.request(Code.POST, "/1/0", bytes((0xC2, 0x01, 0x1C, 0x20)), content_format=ACCEPT_TLV)
    assert r.code == Code.CHANGED
    assert server.request(Code.GET, "/1/0/1").payload == b"7200"

    # Execute the Registration Update Trigger: an Update follows
    assert server.request(Code.POST, "/1/0/8").code == Code.CHANGED
    server.wait("update")
    assert server.request(Code.POST, "/3/0/0").code == Code.METHOD_NOT_ALLOWED  # not executable
    assert server.request(Code.GET, "/3/7").code == Code.NOT_FOUND
    assert server.request(Code.GET, "/0/0").code == Code.UNAUTHORIZED  # Security: bootstrap only

    # Discover with attributes written
    assert server.request(Code.PUT, "/3303/0/5700?pmin=2&pmax=30").code == Code.CHANGED
    r = server.request(Code.GET, "/3303/0", accept=LINK)
    assert r.opt.content_format == LINK
    assert "</3303/0/5700>;pmin=2;pmax=30" in r.payload.decode().split(",")
    assert server.request(Code.PUT, "/3303/0/5700?pmin=40&pmax=30").code == Code.BAD_REQUEST

    out = dev.stop()
    assert server.wait("deregister"), out
    assert "closed 6" in out

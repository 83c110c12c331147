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
from aiocoap.optiontypes import BlockOption

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
c = Client(cfg, sampler=smp, outbox=ob%(kw)s)
%(extra)s
while not exists(STOP):
    w = min(c.step(), smp.step(), 50)
    hal.sleep_ms(w)
c.close()
print("closed", c.state)
import sys
print("held", " ".join(sorted(k for k in sys.modules if k.startswith("m2m.lwm2m"))))
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
        self.refuse = 0  # Register requests to refuse (4.03) before accepting
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
        # UDP only, as m2mkit.lwm2m.server: aiocoap's default server transports also bind TCP on the
        # port and WebSocket on port + 3000 (aiocoap transports/ws.py), which free_port() never
        # checked ("address already in use" beside other test workers)
        self.ctx = await aiocoap.Context.create_server_context(_Root(self), bind=("127.0.0.1", self.port),
                                                                transports=["udp6"])

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

    async def needs_blockwise_assembly(self, request):
        return False  # Block2 of the firmware file is served by _Files itself

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
        if request.code == Code.POST and not path and srv.refuse:
            srv.refuse -= 1
            srv.log.append(("register_refused", {"ep": q.get("ep")}))
            return Message(code=Code.FORBIDDEN)
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
        # each Block2 piece served here (RFC 7959 2.4), so the log shows every request
        data = self.srv.files["/".join(request.opt.uri_path)]
        b2 = request.opt.block2
        num, szx = (b2.block_number, min(b2.size_exponent, 6)) if b2 else (0, 6)
        size = 16 << szx
        self.srv.log.append(("fw_get", {"block": num, "size": size}))
        part = data[num * size:(num + 1) * size]
        more = (num + 1) * size < len(data)
        return Message(payload=part, block2=BlockOption.BlockwiseTuple(num, more, szx))


class Device:
    def __init__(self, tmp_path, cfg, extra="", scale=1.0, temp=21.0, kw=""):
        self.tfile = str(tmp_path / "temp")
        self.stop_file = str(tmp_path / "stop")
        self.set_temp(temp)
        code = DEVICE % {"cfg": json.dumps(cfg), "tfile": self.tfile, "stop": self.stop_file,
                         "obdir": str(tmp_path / "outbox"), "extra": extra, "kw": kw}
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
    assert server.request(Code.PUT, "/3/0/14", b"", content_format=0).code == Code.CHANGED  # empty text
    assert server.request(Code.GET, "/3/0/14").payload == b""
    assert server.request(Code.PUT, "/3/0/14", b"+01:00", content_format=0).code == Code.CHANGED
    assert server.request(Code.PUT, "/3/0/0", b"x", content_format=0).code == Code.METHOD_NOT_ALLOWED
    # Current Time written: the device's clock goes on from it
    assert server.request(Code.PUT, "/3/0/13", b"1000000000", content_format=0).code == Code.CHANGED
    time.sleep(1.1)
    assert 1000000001 <= int(server.request(Code.GET, "/3/0/13").payload) <= 1000000010
    # partial update of the Server object in TLV: lifetime (res 1) = 7200
    r = server.request(Code.POST, "/1/0", bytes((0xC2, 0x01, 0x1C, 0x20)), content_format=ACCEPT_TLV)
    assert r.code == Code.CHANGED
    assert server.request(Code.GET, "/1/0/1").payload == b"7200"
    assert server.wait("update")[0]["query"] == {"lt": "7200"}  # the new lifetime told at once

    # Execute the Registration Update Trigger: an Update follows, naming nothing that did not change
    assert server.request(Code.POST, "/1/0/8").code == Code.CHANGED
    assert server.wait("update", 2)[1]["query"] == {}
    assert server.request(Code.POST, "/3/0/0").code == Code.METHOD_NOT_ALLOWED  # not executable
    assert server.request(Code.GET, "/3/7").code == Code.NOT_FOUND
    assert server.request(Code.GET, "/0/0").code == Code.UNAUTHORIZED  # Security: bootstrap only

    # Discover with attributes written
    assert server.request(Code.PUT, "/3303/0/5700?pmin=2&pmax=30").code == Code.CHANGED
    r = server.request(Code.GET, "/3303/0", accept=LINK)
    assert r.opt.content_format == LINK
    assert "</3303/0/5700>;pmin=2;pmax=30" in r.payload.decode().split(",")
    assert server.request(Code.PUT, "/3303/0/5700?pmin=40&pmax=30").code == Code.BAD_REQUEST

    # Disable with a Disable Timeout of 1 s: deregistered, then registered again
    assert server.request(Code.PUT, "/1/0/5", b"1", content_format=0).code == Code.CHANGED
    assert server.request(Code.POST, "/1/0/4").code == Code.CHANGED
    server.wait("deregister")
    server.wait("register", 2)

    out = dev.stop()
    assert "closed 6" in out
    assert "event: lwm2m.deregistered ok=True" in out, out
    assert server.wait("deregister", 2, timeout=5), out
    # what loads per operation is not held after it: the Write / Discover parser, the bootstrap, the
    # server's operations, the registration interface
    held = [x for x in out.splitlines() if x.startswith("held ")][0].split()
    assert "m2m.lwm2m.model" in held and "m2m.lwm2m.parse" not in held and "m2m.lwm2m.bs" not in held, held
    assert "m2m.lwm2m.ops" not in held and "m2m.lwm2m.reg" not in held, held


def _observe(server, path, n, accept=0, timeout=30, **opts):
    """Observe path; the first response and n notifications as (time, payload, observe seq)."""
    async def go():
        m = Message(code=Code.GET, uri=server.uri(path), observe=0, accept=accept, **opts)
        req = server.ctx.request(m)
        first = await req.response
        notes = []
        async for note in req.observation:
            notes.append((time.time(), note.payload, note.opt.observe))
            if len(notes) >= n:
                break
        req.observation.cancel()
        return first, notes
    return server.call(asyncio.wait_for(go(), timeout), timeout + 5)


def test_observe_temperature_pmin_pmax(server, device):
    dev = device(config(server), temp=21.0)
    server.wait("register")
    # pmax 2 s: a notification at least every 2 s while nothing changes; pmin 1 s
    assert server.request(Code.PUT, "/3303/0/5700?pmin=1&pmax=2").code == Code.CHANGED
    t0 = time.time()
    first, notes = _observe(server, "/3303/0/5700", 3)
    assert first.code == Code.CONTENT and float(first.payload) == 21.0 and first.opt.observe == 0
    assert [float(p) for _, p, _ in notes] == [21.0] * 3  # unchanged: pmax sent them
    seqs = [s for _, _, s in notes]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3  # a rising sequence (RFC 7641 4.4)
    assert notes[-1][0] - t0 >= 3.5  # three pmax periods of 2 s, not sooner

    # a change is notified, but not before pmin; gt=30 then only a crossing of 30 counts
    assert server.request(Code.PUT, "/3303/0/5700?pmax=60&gt=30").code == Code.CHANGED

    async def change_then_watch():
        m = Message(code=Code.GET, uri=server.uri("/3303/0/5700"), observe=0, accept=0)
        req = server.ctx.request(m)
        await req.response
        got = []
        dev.set_temp(25.0)  # below gt: no notification

        async def collect():
            async for note in req.observation:
                got.append((time.time(), float(note.payload)))
                if note.payload == b"31.0":
                    break
        task = asyncio.ensure_future(collect())
        await asyncio.sleep(2.5)
        before = list(got)
        dev.set_temp(31.0)  # crosses gt=30
        await asyncio.wait_for(task, 10)
        req.observation.cancel()
        return before, got
    before, got = server.call(change_then_watch(), 30)
    assert before == []  # 21 -> 25 did not cross 30, and pmax is 60 s
    assert got[-1][1] == 31.0
    dev.stop()


def test_update_on_lifetime_and_deregister(server, device):
    # lifetime 30 s on a device clock ten times faster: an Update every 2.7 s of real time
    dev = device(config(server, lifetime_s=30), scale=10)
    server.wait("register")
    ups = server.wait("update", 2, timeout=30)
    assert ups[0]["loc"] == "r1"
    dev.stop()
    server.wait("deregister")
    assert "event: lwm2m.deregistered ok=True" in dev.out


def test_firmware_package_pulled_blockwise(server, device, tmp_path):
    pkg = os.urandom(100 * 1024)
    server.files["pkg.bin"] = pkg
    fw = tmp_path / "fw.bin"
    dev = device(config(server, fw_file=str(fw)))
    server.wait("register")
    assert server.request(Code.GET, "/5/0/3").payload == b"0"  # Idle
    uri = "coap://127.0.0.1:%d/fw/pkg.bin" % server.port
    assert server.request(Code.PUT, "/5/0/1", uri.encode(), content_format=0).code == Code.CHANGED
    end = time.time() + 120
    state = None
    while time.time() < end:
        state = server.request(Code.GET, "/5/0/3").payload
        if state == b"2":
            break
        time.sleep(0.5)
    assert state == b"2", (state, server.request(Code.GET, "/5/0/5").payload)  # Downloaded
    assert fw.read_bytes() == pkg
    blocks = [d["block"] for w, d in server.log if w == "fw_get" and d["size"] == 512]
    assert blocks == list(range(200))  # 100 KB in 512-byte Block2 pieces, in order
    assert server.request(Code.POST, "/5/0/2").code == Code.CHANGED  # Update: state 3 Updating
    assert server.request(Code.GET, "/5/0/3").payload == b"3"
    dev.stop()


def test_queue_mode_requests_wait_for_the_wake(server, device):
    dev = device(config(server, queue_mode=True, awake_s=5, lifetime_s=30), scale=10)
    reg = server.wait("register")[0]
    assert reg["q"] and reg["b"] == "U"
    n_up = len([1 for w, _ in server.log if w == "update"])
    time.sleep(1.0)  # past 5 s of device time: asleep, its socket not read

    async def queued_read():
        fut = server.loop.create_future()
        server.queued.append(fut)  # released by the device's next Update
        await fut
        m = Message(code=Code.GET, uri=server.uri("/3/0/0"))
        return await server.ctx.request(m).response
    r = server.call(queued_read(), 60)
    assert r.code == Code.CONTENT and r.payload == b"m2mkit"
    assert len([1 for w, _ in server.log if w == "update"]) > n_up
    out = dev.stop()
    assert "event: lwm2m.sleep" in out and "event: lwm2m.wake" in out


def test_queue_mode_a_change_wakes_the_device_to_notify(server, device):
    dev = device(config(server, queue_mode=True, awake_s=20, lifetime_s=3600), scale=10, temp=21.0)
    server.wait("register")

    async def go():
        m = Message(code=Code.GET, uri=server.uri("/3303/0/5700"), observe=0, accept=0)
        req = server.ctx.request(m)
        assert float((await req.response).payload) == 21.0
        await asyncio.sleep(4)  # 40 s of device time: asleep since 20 s after the Observe
        asleep_updates = len([1 for w, _ in server.log if w == "update"])
        dev.set_temp(30.0)
        async for note in req.observation:
            if float(note.payload) == 30.0:
                break
        req.observation.cancel()
        return asleep_updates, len([1 for w, _ in server.log if w == "update"])
    before, after = server.call(go(), 60)
    assert before == 0 and after == 1  # woken by the change: an Update first, then the notification
    out = dev.stop()
    assert "event: lwm2m.sleep" in out and "event: lwm2m.wake" in out, out


def test_send_telemetry_from_outbox(server, device):
    dev = device(config(server, send=True))
    server.wait("register")
    sends = server.wait("send")
    assert sends[0]["cf"] == SENML_CBOR
    recs = cbor2.loads(sends[0]["payload"])
    bn = recs[0].get(-2, "")  # SenML names are base name + name (RFC 8428 4.5.1)
    assert [(bn + r.get(0, ""), r[2]) for r in recs] == [("/3303/0/5700", 20.5), ("/3303/0/5700", 21.5),
                                                        ("/3303/0/5700", 22.5)]
    assert recs[0][-3] == 1767225600 and recs[2][6] == 2  # base time, then relative times
    assert sends[0]["payload"].count(b"/3303/0/5700") == 1  # one name for the three: the base name
    out = dev.stop()
    # the Send's code and the CBOR encoder go once the Send is made; SenML is not used for it
    held = [x for x in out.splitlines() if x.startswith("held ")][0].split()
    assert not {"m2m.lwm2m.send", "m2m.lwm2m.cbor", "m2m.lwm2m.senml"} & set(held), held


def _tlv(kind, ident, value):
    n = len(value)
    t = kind << 6 | (0x20 if ident > 255 else 0)
    idb = ident.to_bytes(2 if ident > 255 else 1, "big")
    if n < 8:
        return bytes((t | n,)) + idb + value
    return bytes((t | 0x08,)) + idb + bytes((n,)) + value


def test_bootstrap_then_register(tmp_path, device):
    srv = Server()
    try:
        uri = ("coap://127.0.0.1:%d" % srv.port).encode()
        sec = _tlv(3, 0, uri) + _tlv(3, 1, b"\x00") + _tlv(3, 2, b"\x03") + _tlv(3, 10, b"\x01")
        server_obj = _tlv(3, 0, b"\x01") + _tlv(3, 1, (300).to_bytes(2, "big")) + _tlv(3, 7, b"U")
        srv.bootstrap_writes = [(Code.DELETE, "/0", b"", None), (Code.DELETE, "/1", b"", None),
                                (Code.PUT, "/0/1", sec, ACCEPT_TLV), (Code.PUT, "/1/0", server_obj, ACCEPT_TLV)]
        cfg = {"device": {"id": "dev-bs"}, "lwm2m": {"bootstrap": "coap://127.0.0.1:%d" % srv.port}}
        dev = device(cfg)
        assert srv.wait("bootstrap_request")[0]["query"] == ["ep=dev-bs"]
        ops = srv.wait("bs_op", 4)
        assert [o["code"] for o in ops] == ["2.02 Deleted", "2.02 Deleted", "2.04 Changed", "2.04 Changed"]
        assert srv.wait("bs_finish")[0]["code"] == "2.04 Changed"
        reg = srv.wait("register")[0]
        assert reg["ep"] == "dev-bs" and reg["lt"] == 300
        assert srv.request(Code.POST, "/1/0/8").code == Code.CHANGED  # the written account's trigger
        srv.wait("update")
        dev.stop()
    finally:
        srv.stop()


def test_bootstrap_kept_across_reboot(tmp_path, device):
    # a device that bootstrapped registers with the server it was given after a reboot (objects 0
    # and 1 kept in a file, the key never printed), and bootstraps again when that server refuses
    srv = Server()
    try:
        key = b"K3pt-s3cret-PSK!"
        uri = ("coap://127.0.0.1:%d" % srv.port).encode()
        sec = (_tlv(3, 0, uri) + _tlv(3, 1, b"\x00") + _tlv(3, 2, b"\x03") + _tlv(3, 3, b"dev-kept")
               + _tlv(3, 5, key) + _tlv(3, 10, b"\x01"))
        server_obj = _tlv(3, 0, b"\x01") + _tlv(3, 1, (300).to_bytes(2, "big")) + _tlv(3, 7, b"U")
        srv.bootstrap_writes = [(Code.DELETE, "/0", b"", None), (Code.DELETE, "/1", b"", None),
                                (Code.PUT, "/0/1", sec, ACCEPT_TLV), (Code.PUT, "/1/0", server_obj, ACCEPT_TLV)]
        cfg = {"device": {"id": "dev-kept"}, "lwm2m": {"bootstrap": "coap://127.0.0.1:%d" % srv.port}}
        state = tmp_path / "lwm2m_bs.cbor"
        kw = ", state=%r" % str(state)

        def boot():
            if os.path.exists(tmp_path / "stop"):
                os.remove(tmp_path / "stop")
            return device(cfg, kw=kw)

        dev = boot()
        srv.wait("bs_finish")
        assert srv.wait("register")[0]["lt"] == 300
        out = dev.stop()
        assert state.exists() and key in state.read_bytes()
        assert key.decode() not in out and key.hex() not in out

        dev = boot()  # the reboot: no bootstrap, the kept account registers
        reg = srv.wait("register", 2)[1]
        assert reg["ep"] == "dev-kept" and reg["lt"] == 300
        assert len(srv.wait("bootstrap_request")) == 1
        assert srv.request(Code.POST, "/1/0/8").code == Code.CHANGED  # the kept account's trigger
        srv.wait("update")
        out = dev.stop()
        assert key.decode() not in out and key.hex() not in out
        held = [x for x in out.splitlines() if x.startswith("held ")][0].split()
        assert "m2m.lwm2m.client" in held and "m2m.lwm2m.bs" not in held  # bootstrap code dropped once registered

        srv.refuse = 1  # the kept server refuses: bootstrap again, then register
        dev = boot()
        srv.wait("register_refused")
        assert len(srv.wait("bootstrap_request", 2)) == 2
        srv.wait("bs_finish", 2)
        assert srv.wait("register", 3)[2]["lt"] == 300
        assert state.exists()
        assert srv.request(Code.POST, "/3/0/5").code == Code.CHANGED  # Factory Reset: bootstrap next start
        assert not state.exists()
        dev.stop()
    finally:
        srv.stop()

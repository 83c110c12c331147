"""The host LwM2M server (m2mkit.lwm2m) against a small LwM2M client written here with aiocoap:
a CPython peer with its own encoders, not the firmware and not the server's codec."""

import asyncio
import json
import struct

import cbor2
import pytest
from aiocoap import Code, Context, Message, interfaces

from m2mkit.lwm2m import LwM2MError, Server

TLV, SENML_JSON, SENML_CBOR, TEXT, LINK = 11542, 110, 112, 0, 40

# the peer implements aiocoap's older resource interface (render + add_observation)
pytestmark = pytest.mark.filterwarnings("ignore:Request interface is changing:DeprecationWarning")


# --- the peer's own encoders (TS 1.1 §7.4.3 TLV, RFC 8428 SenML)

def _tlv(kind, ident, value):
    t = kind << 6 | (0x20 if ident > 255 else 0)
    idb = ident.to_bytes(2 if ident > 255 else 1, "big")
    n = len(value)
    if n < 8:
        return bytes([t | n]) + idb + value
    if n < 256:
        return bytes([t | 0x08]) + idb + bytes([n]) + value
    return bytes([t | 0x10]) + idb + n.to_bytes(2, "big") + value


def _raw(v):
    if isinstance(v, bool):
        return bytes([v])
    if isinstance(v, int):
        return v.to_bytes(4 if not -128 <= v < 128 else 1, "big", signed=True)
    if isinstance(v, float):
        return struct.pack(">d", v)
    if isinstance(v, bytes):
        return v
    return v.encode()


def _untlv(data):
    out, i = [], 0
    while i < len(data):
        t = data[i]
        idl = 2 if t & 0x20 else 1
        ll = (t >> 3) & 3
        ident = int.from_bytes(data[i + 1:i + 1 + idl], "big")
        j = i + 1 + idl
        n = int.from_bytes(data[j:j + ll], "big") if ll else t & 7
        j += ll
        out.append((t >> 6, ident, data[j:j + n]))
        i = j + n
    return out


class Peer(interfaces.ObservableResource):
    """A LwM2M client: objects as {"/o/i/r": value}, executes and writes recorded."""

    # types of the bootstrap-written resources it has no value of yet (OMA registry 0.xml, 1.xml)
    TYPES = {"/0/1/1": False, "/0/1/2": 0, "/0/1/10": 0, "/1/0/0": 0, "/1/0/1": 0, "/1/0/6": False}

    def __init__(self, ep, values=None):
        super().__init__()
        self.ep = ep
        self.values = dict(values or {
            "/3/0/0": "Open Mobile Alliance", "/3/0/1": "Lightweight M2M Client", "/3/0/9": 100,
            "/3303/0/5700": 21.5, "/3303/0/5701": "Cel", "/5/0/1": "", "/5/0/3": 0})
        self.executed = []
        self.writes = []
        self.attrs = {}
        self.observers = {}
        self.received = []  # (code, path) of every request
        self.block1 = []  # block numbers of Block1 requests as they arrive
        self.location = None
        self.server = None
        self.ctx = None

    async def start(self):
        self.ctx = await Context.create_server_context(self, bind=("127.0.0.1", 0), transports=["udp6"])
        return self

    async def stop(self):
        await self.ctx.shutdown()

    async def _ask(self, code, path, query=(), payload=b"", fmt=None):
        msg = Message(code=code, uri=f"coap://{self.server[0]}:{self.server[1]}/{path}", payload=payload)
        if query:
            msg.opt.uri_query = tuple(query)
        if fmt is not None:
            msg.opt.content_format = fmt
        return await asyncio.wait_for(self.ctx.request(msg).response, 20)

    def links(self):
        objs = sorted({tuple(int(x) for x in p.split("/")[1:3]) for p in self.values})
        return ",".join(f"</{o}/{i}>" for o, i in objs).encode()

    async def register(self, server, lt=300, b="U", queue=False, version="1.1", links=None):
        self.server = server
        q = [f"ep={self.ep}", f"lt={lt}", f"lwm2m={version}", f"b={b}"] + (["Q"] if queue else [])
        r = await self._ask(Code.POST, "rd", q, links if links is not None else self.links(), LINK)
        if r.code == Code.CREATED:
            self.location = "/".join(r.opt.location_path)
        return r

    async def update(self, query=()):
        return await self._ask(Code.POST, self.location, query)

    async def deregister(self):
        return await self._ask(Code.DELETE, self.location)

    async def send(self, records, cbor=True):
        if cbor:
            return await self._ask(Code.POST, "dp", (), cbor2.dumps(records), SENML_CBOR)
        return await self._ask(Code.POST, "dp", (), json.dumps(records).encode(), SENML_JSON)

    # encoders of this peer
    def under(self, path):
        return {p: v for p, v in self.values.items() if p == path or p.startswith(path.rstrip("/") + "/")}

    def encode(self, path, fmt):
        vals = self.under(path)
        parts = [int(x) for x in path.split("/")[1:] if x]
        if fmt == TLV:
            if len(parts) == 3:
                return _tlv(3, parts[2], _raw(vals[path]))
            if len(parts) == 2:
                return b"".join(_tlv(3, int(p.split("/")[3]), _raw(v)) for p, v in sorted(vals.items()))
            insts = sorted({int(p.split("/")[2]) for p in vals})
            return b"".join(_tlv(0, i, self.encode(f"{path}/{i}", TLV)) for i in insts)
        recs = []
        for i, (p, v) in enumerate(sorted(vals.items())):
            key = "vb" if isinstance(v, bool) else "v" if isinstance(v, (int, float)) else "vs"
            rec = {"n": p[len(path.rstrip("/")) + 1:] if len(parts) < 3 else "", key: v}
            if i == 0:
                rec["bn"] = path if len(parts) == 3 else path.rstrip("/") + "/"
            recs.append(rec)
        if fmt == SENML_JSON:
            return json.dumps(recs).encode()
        labels = {"bn": -2, "n": 0, "v": 2, "vs": 3, "vb": 4}
        return cbor2.dumps([{labels[k]: v for k, v in r.items()} for r in recs])

    def decode_write(self, path, fmt, payload):
        parts = [int(x) for x in path.split("/")[1:] if x]
        if fmt == TEXT:
            return {path: payload.decode()}
        if fmt == 42:  # opaque
            return {path: bytes(payload)}
        if fmt == TLV:
            out = {}
            for kind, ident, raw in _untlv(payload):
                p = "/".join(str(x) for x in parts[:2]) + f"/{ident}"
                old = self.values.get("/" + p, self.TYPES.get("/" + p))
                if isinstance(old, bool):
                    out["/" + p] = raw == b"\x01"
                elif isinstance(old, int):
                    out["/" + p] = int.from_bytes(raw, "big", signed=True)
                elif isinstance(old, float):
                    out["/" + p] = struct.unpack(">d" if len(raw) == 8 else ">f", raw)[0]
                else:
                    out["/" + p] = raw.decode()
            return out
        recs = json.loads(payload) if fmt == SENML_JSON else [
            {{-2: "bn", 0: "n", 2: "v", 3: "vs", 4: "vb"}[k]: v for k, v in r.items()} for r in cbor2.loads(payload)]
        bn, out = "", {}
        for r in recs:
            bn = r.get("bn", bn)
            out[bn + r.get("n", "")] = r.get("v", r.get("vs", r.get("vb")))
        return out

    # the client side of the device management interface
    async def needs_blockwise_assembly(self, request):
        if request.opt.block1 is not None:
            self.block1.append(request.opt.block1.block_number)
        return True

    async def render(self, request):
        path = "/" + "/".join(request.opt.uri_path)
        self.received.append((request.code, path))
        code = request.code
        if code == Code.GET:
            if request.opt.accept == LINK:
                links = [f"<{path}>" + "".join(f";{k}={v}" for k, v in self.attrs.get(path, {}).items())]
                links += [f"<{p}>" for p in sorted(self.under(path)) if p != path]
                return Message(code=Code.CONTENT, payload=",".join(links).encode(), content_format=LINK)
            if not self.under(path):
                return Message(code=Code.NOT_FOUND)
            fmt = TLV if request.opt.accept is None else request.opt.accept
            if fmt == TEXT:
                if path not in self.values:
                    return Message(code=Code.NOT_ACCEPTABLE)
                return Message(code=Code.CONTENT, payload=str(self.values[path]).encode(), content_format=TEXT)
            if fmt == 42 and isinstance(self.values.get(path), bytes):  # opaque
                return Message(code=Code.CONTENT, payload=self.values[path], content_format=42)
            if fmt not in (TLV, SENML_JSON, SENML_CBOR):
                return Message(code=Code.NOT_ACCEPTABLE)
            return Message(code=Code.CONTENT, payload=self.encode(path, fmt), content_format=fmt)
        if code == Code.PUT and not request.payload:
            self.attrs.setdefault(path, {}).update(q.split("=", 1) for q in request.opt.uri_query)
            return Message(code=Code.CHANGED)
        if code in (Code.PUT, Code.POST) and path == "/bs":
            self.bootstrap_finished = True
            return Message(code=Code.CHANGED)
        if code == Code.POST and path.count("/") == 3 and request.opt.content_format in (None, TEXT):
            self.executed.append((path, request.payload.decode()))
            return Message(code=Code.CHANGED)
        if code == Code.POST and path.count("/") == 1:
            inst = 1 + max([int(p.split("/")[2]) for p in self.under(path)] or [-1])
            entries = _untlv(request.payload)
            if entries and entries[0][0] == 0:  # one object instance TLV names the new instance
                inst, entries = entries[0][1], _untlv(entries[0][2])
            for kind, ident, raw in entries:
                self.values[f"{path}/{inst}/{ident}"] = raw
            return Message(code=Code.CREATED, location_path=(path[1:], str(inst)))
        if code in (Code.PUT, Code.POST):
            new = self.decode_write(path, request.opt.content_format, request.payload)
            self.writes.append((code, path, new))
            if code == Code.PUT and path.count("/") == 2:
                for p in list(self.under(path)):
                    del self.values[p]
            self.values.update(new)
            return Message(code=Code.CHANGED)
        if code == Code.DELETE:
            # Delete / keeps the bootstrap account and the Device object (as Wakaama f91cfe0
            # core/bootstrap.c bootstrap_handleDeleteAll: "static objects like the Device object")
            gone = self.under(path) if path != "/" else {
                p: v for p, v in self.values.items()
                if not (self.values.get("/".join(p.split("/")[:3]) + "/1") is True and p.startswith("/0/"))
                and not p.startswith("/3/")}
            for p in gone:
                del self.values[p]
            return Message(code=Code.DELETED if gone or path == "/" else Code.NOT_FOUND)
        return Message(code=Code.METHOD_NOT_ALLOWED)

    async def add_observation(self, request, sobs):
        path = "/" + "/".join(request.opt.uri_path)
        self.observers.setdefault(path, []).append((sobs, request.opt.accept))
        sobs.accept(lambda: self.observers[path].remove((sobs, request.opt.accept)))

    def set(self, path, value):
        self.values[path] = value
        for p, obs in self.observers.items():
            if path.startswith(p):
                for sobs, accept in list(obs):
                    fmt = TLV if accept is None else accept
                    sobs.trigger(Message(code=Code.CONTENT, payload=self.encode(p, fmt), content_format=fmt))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _setup(**kw):
    lines = []
    srv = Server(log=lines.append, **kw)
    addr = await srv.start("127.0.0.1", 0)
    peer = await Peer("dev1").start()
    return srv, addr, peer, lines


async def _until(cond, timeout=10):
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


# --- registration interface

def test_register_update_deregister():
    async def go():
        srv, addr, peer, lines = await _setup()
        r = await peer.register(addr, lt=120, b="U", version="1.1")
        assert r.code == Code.CREATED and peer.location.startswith("rd/")
        reg = srv.find("dev1")
        assert (reg.lifetime, reg.binding, reg.version, reg.queue) == (120, "U", "1.1", False)
        assert reg.objects() == ["/3/0", "/5/0", "/3303/0"]
        assert any("register ep=dev1 lt=120" in line for line in lines)
        r = await peer.update([f"lt=300"])
        assert r.code == Code.CHANGED and reg.lifetime == 300 and reg.updates == 1
        r = await peer.deregister()
        assert r.code == Code.DELETED and srv.registrations == {}
        with pytest.raises(LwM2MError, match="no client registered as 'dev1'"):
            srv.find("dev1")
        r = await peer.update()
        assert r.code == Code.NOT_FOUND
        await peer.stop()
        await srv.stop()
    run(go())


def test_lifetime_expiry_and_update_keeps_it():
    async def go():
        srv, addr, peer, lines = await _setup()
        other = await Peer("dev2").start()
        await peer.register(addr, lt=1)
        await other.register(addr, lt=1)
        for _ in range(4):  # dev2 updates within its lifetime, dev1 does not
            await asyncio.sleep(0.4)
            await other.update()
        assert [r.ep for r in srv.registrations.values()] == ["dev2"]
        assert any("dev1 expired" in line for line in lines)
        assert (await peer.update()).code == Code.NOT_FOUND
        await other.stop()
        await peer.stop()
        await srv.stop()
    run(go())


def test_register_bad_input_gets_4_00_with_reason():
    async def go():
        srv, addr, peer, lines = await _setup()
        peer.server = addr
        r = await peer._ask(Code.POST, "rd", ["lt=60"], b"</3/0>", LINK)
        assert r.code == Code.BAD_REQUEST and b"ep=" in r.payload
        r = await peer._ask(Code.POST, "rd", ["ep=x", "lt=soon"], b"</3/0>", LINK)
        assert r.code == Code.BAD_REQUEST and b"lifetime" in r.payload
        r = await peer._ask(Code.POST, "rd", ["ep=x"], b"3/0", LINK)
        assert r.code == Code.BAD_REQUEST and b"<uri>" in r.payload
        r = await peer._ask(Code.GET, "nothing")
        assert r.code == Code.NOT_FOUND
        r = await peer._ask(Code.POST, "dp", (), b"\xff\xff", SENML_CBOR)
        assert r.code == Code.BAD_REQUEST
        assert srv.registrations == {}
        await peer.stop()
        await srv.stop()
    run(go())


def test_register_again_replaces_the_old_registration():
    async def go():
        srv, addr, peer, lines = await _setup()
        await peer.register(addr)
        first = peer.location
        await peer.register(addr, lt=77)
        assert peer.location != first and len(srv.registrations) == 1
        assert srv.find("dev1").lifetime == 77
        await peer.stop()
        await srv.stop()
    run(go())


# --- device management

@pytest.mark.parametrize("fmt", ["tlv", "json", "cbor"])
def test_read_device_object_in_each_format(fmt):
    async def go():
        srv, addr, peer, lines = await _setup()
        await peer.register(addr)
        r = await srv.read("dev1", "/3/0", fmt)
        assert r.code == Code.CONTENT and r.format == {"tlv": TLV, "json": SENML_JSON, "cbor": SENML_CBOR}[fmt]
        assert r.value == {"/3/0/0": "Open Mobile Alliance", "/3/0/1": "Lightweight M2M Client", "/3/0/9": 100}
        assert any(line.startswith("lwm2m: -> read dev1 /3/0") and "2.05" in line for line in lines)
        await peer.stop()
        await srv.stop()
    run(go())


def test_read_text_float_and_errors():
    async def go():
        srv, addr, peer, lines = await _setup()
        await peer.register(addr)
        r = await srv.read("dev1", "/3303/0/5700", "text")
        assert r.value == "21.5"
        r = await srv.read("dev1", "/3303/0/5700", "tlv")
        assert r.value == {"/3303/0/5700": 21.5}
        r = await srv.read("dev1", "/3303/0", "cbor")
        assert r.value == {"/3303/0/5700": 21.5, "/3303/0/5701": "Cel"}
        r = await srv.read("dev1", "/9/0")
        assert r.code == Code.NOT_FOUND and not r.ok
        with pytest.raises(LwM2MError, match="LwM2M path"):
            await srv.read("dev1", "3/0")
        with pytest.raises(LwM2MError, match="one of text, opaque, tlv"):
            await srv.read("dev1", "/3/0", "xml")
        await peer.stop()
        await srv.stop()
    run(go())


@pytest.mark.parametrize("fmt", ["tlv", "json", "cbor", "text"])
def test_write_replace_and_partial(fmt):
    async def go():
        srv, addr, peer, lines = await _setup()
        await peer.register(addr)
        if fmt == "text":
            r = await srv.write("dev1", "/3303/0/5701", "K", fmt)
            assert r.code == Code.CHANGED and peer.values["/3303/0/5701"] == "K"
            return
        r = await srv.write("dev1", "/3303/0", {"/3303/0/5701": "K"}, fmt, partial=True)
        assert r.code == Code.CHANGED and peer.writes[-1][0] == Code.POST
        assert peer.values["/3303/0/5701"] == "K" and peer.values["/3303/0/5700"] == 21.5
        r = await srv.write("dev1", "/3303/0", {"/3303/0/5700": 3.25, "/3303/0/5701": "Far"}, fmt)
        assert r.code == Code.CHANGED and peer.writes[-1][0] == Code.PUT
        assert peer.under("/3303/0") == {"/3303/0/5700": 3.25, "/3303/0/5701": "Far"}
        await peer.stop()
        await srv.stop()
    run(go())


def test_large_write_goes_block_wise():
    async def go():
        srv, addr, peer, lines = await _setup()
        await peer.register(addr)
        blob = bytes(range(256)) * 12  # 3 KB: more than one CoAP message carries
        r = await srv.write("dev1", "/5/0/0", blob, "opaque")
        assert r.code == Code.CHANGED and peer.values["/5/0/0"] == blob
        assert peer.block1 == [0, 1, 2]  # Block1 (RFC 7959), 1024-byte blocks
        r = await srv.read("dev1", "/5/0/0", "opaque")  # read back whole: Block2 from the client
        assert r.format == 42 and r.value == blob
        assert (await srv.read("dev1", "/3/0/0", "opaque")).code == Code.NOT_ACCEPTABLE
        await peer.stop()
        await srv.stop()
    run(go())


def test_execute_discover_attributes_create_delete():
    async def go():
        srv, addr, peer, lines = await _setup()
        await peer.register(addr)
        r = await srv.execute("dev1", "/3/0/4")
        assert r.code == Code.CHANGED and peer.executed == [("/3/0/4", "")]
        await srv.execute("dev1", "/5/0/2", "0='now'")
        assert peer.executed[-1] == ("/5/0/2", "0='now'")
        with pytest.raises(LwM2MError, match="resource path"):
            await srv.execute("dev1", "/3/0")
        r = await srv.write_attributes("dev1", "/3303/0/5700", pmin=2, pmax=10, st=0.5)
        assert r.code == Code.CHANGED and peer.attrs["/3303/0/5700"] == {"pmin": "2", "pmax": "10", "st": "0.5"}
        with pytest.raises(LwM2MError, match="one of pmin"):
            await srv.write_attributes("dev1", "/3303/0/5700", every=3)
        r = await srv.discover("dev1", "/3303/0")
        assert r.code == Code.CONTENT and ("/3303/0/5700", {}) in r.value
        r = await srv.discover("dev1", "/3303/0/5700")
        assert r.value[0] == ("/3303/0/5700", {"pmin": "2", "pmax": "10", "st": "0.5"})
        r = await srv.create("dev1", "/3303", {"/3303/1/5700": 18.0})
        assert r.code == Code.CREATED and r.location == "/3303/1" and "/3303/1/5700" in peer.values
        r = await srv.delete("dev1", "/3303/1")
        assert r.code == Code.DELETED and "/3303/1/5700" not in peer.values
        r = await srv.create("dev1", "/3303/5", {"/3303/5/5700": 1.0})  # the server names the instance
        assert r.location == "/3303/5" and "/3303/5/5700" in peer.values
        await peer.stop()
        await srv.stop()
    run(go())


@pytest.mark.parametrize("fmt", ["tlv", "cbor"])
def test_observe_notify_and_cancel(fmt):
    async def go():
        srv, addr, peer, lines = await _setup()
        await peer.register(addr)
        seen = []
        r = await srv.observe("dev1", "/3303/0/5700", fmt, on_notify=lambda p, v: seen.append(v))
        assert r.value == {"/3303/0/5700": 21.5}
        assert len(peer.observers["/3303/0/5700"]) == 1
        peer.set("/3303/0/5700", 22.0)
        await _until(lambda: len(seen) == 1)  # (a state newer than an unacknowledged one replaces it)
        peer.set("/3303/0/5700", 22.5)
        await _until(lambda: len(seen) == 2)
        assert seen == [{"/3303/0/5700": 22.0}, {"/3303/0/5700": 22.5}]
        assert srv.find("dev1").notifications[-1] == ("/3303/0/5700", {"/3303/0/5700": 22.5})
        await srv.cancel("dev1", "/3303/0/5700")
        peer.set("/3303/0/5700", 23.0)  # answered with a Reset: the peer drops the observer
        await _until(lambda: not peer.observers["/3303/0/5700"])
        assert len(seen) == 2
        with pytest.raises(LwM2MError, match="no observation"):
            await srv.cancel("dev1", "/3303/0/5700")
        await peer.stop()
        await srv.stop()
    run(go())


def test_send_in_senml_cbor_and_json():
    async def go():
        srv, addr, peer, lines = await _setup(wall=lambda: 1800000000.5)
        peer.server = addr
        r = await peer.send([{0: "/3303/0/5700", 2: 1.5}])
        assert r.code == Code.FORBIDDEN  # not registered
        await peer.register(addr)
        r = await peer.send([{-2: "/3303/0/", 0: "5700", 2: 21.5, -3: 1700000000.0},
                             {0: "5701", 3: "Cel"}, {-2: "/3/0/", 0: "9", 2: 98}])
        assert r.code == Code.CHANGED
        r = await peer.send([{"bn": "/3304/0/", "n": "5700", "v": 40}], cbor=False)
        assert r.code == Code.CHANGED
        r = await peer.send([{-2: "/3304/0/", 0: "5700", 2: 41, 6: -60}])  # a minute before "now"
        assert r.code == Code.CHANGED
        sent = srv.find("dev1").sent
        assert sent[0] == [("/3303/0/5700", 21.5, 1700000000.0), ("/3303/0/5701", "Cel", 1700000000.0),
                           ("/3/0/9", 98, 1700000000.0)]
        # no time: "roughly now" at the receiver (RFC 8428 4.5.3), the server's clock at its arrival
        assert sent[1] == [("/3304/0/5700", 40, 1800000000.5)]
        assert sent[2] == [("/3304/0/5700", 41, 1800000000.5 - 60)]
        assert any("send dev1 cbor" in line for line in lines)
        await peer.stop()
        await srv.stop()
    run(go())


def test_queue_mode_requests_wait_for_the_client_to_wake():
    async def go():
        srv, addr, peer, lines = await _setup(awake_s=0.3)
        await peer.register(addr, queue=True)
        assert srv.find("dev1").queue
        await asyncio.sleep(0.5)  # the client's awake window has passed
        before = len(peer.received)
        read = asyncio.ensure_future(srv.read("dev1", "/3/0/0", "text"))
        exe = asyncio.ensure_future(srv.execute("dev1", "/3/0/4"))
        await asyncio.sleep(0.5)
        assert len(peer.received) == before and not read.done()  # nothing sent to a sleeping client
        assert any("queued until it wakes" in line for line in lines)
        await peer.update()  # it wakes
        assert (await read).value == "Open Mobile Alliance"
        assert (await exe).code == Code.CHANGED and peer.executed == [("/3/0/4", "")]
        assert peer.received[before:] == [(Code.GET, "/3/0/0"), (Code.POST, "/3/0/4")]
        # while it is awake, requests go at once
        assert (await srv.read("dev1", "/3/0/9", "text")).value == "100"
        await peer.stop()
        await srv.stop()
    run(go())


def test_queue_mode_binding_uq_of_lwm2m_1_0():
    async def go():
        srv, addr, peer, lines = await _setup()
        await peer.register(addr, b="UQ", version="1.0")
        assert srv.find("dev1").queue
        await peer.stop()
        await srv.stop()
    run(go())


def test_firmware_served_block_wise_and_uri_written():
    async def go():
        srv, addr, peer, lines = await _setup()
        await peer.register(addr)
        package = bytes(range(256)) * 400  # 100 KB
        r = await srv.push_firmware("dev1", "app.bin", package)
        assert r.code == Code.CHANGED
        uri = peer.values["/5/0/1"]
        assert uri == f"coap://127.0.0.1:{addr[1]}/fw/app.bin"
        # the peer pulls it with aiocoap's Block2 client, 512-byte blocks as a constrained client asks
        got, num = b"", 0
        while True:
            msg = Message(code=Code.GET, uri=uri, block2=(num, False, 5))
            resp = await peer.ctx.request(msg, handle_blockwise=False).response
            assert resp.code == Code.CONTENT and resp.opt.size2 == len(package)
            got += resp.payload
            if not resp.opt.block2.more:
                break
            num += 1
        assert got == package and srv.blocks_served["app.bin"] == 200
        resp = await peer.ctx.request(Message(code=Code.GET, uri=uri)).response  # aiocoap's own reassembly
        assert resp.payload == package
        resp = await peer.ctx.request(Message(code=Code.GET, uri=uri, block2=(999, False, 5)),
                                      handle_blockwise=False).response
        assert resp.code == Code.BAD_OPTION
        await peer.stop()
        await srv.stop()
    run(go())


def test_bootstrap_writes_security_and_server_then_finish():
    async def go():
        srv, addr, peer, lines = await _setup(bootstrap={"dev1": {"uri": "coap://127.0.0.1:5683", "lifetime": 600}})
        peer.values = {"/0/0/0": "coap://old:5683", "/0/0/1": True}
        peer.server = addr
        r = await peer._ask(Code.POST, "bs", ["ep=dev1"])
        assert r.code == Code.CHANGED
        await _until(lambda: "dev1" in srv.bootstrapped)
        assert getattr(peer, "bootstrap_finished", False)
        assert peer.values == {"/0/0/0": "coap://old:5683", "/0/0/1": True, "/0/1/0": "coap://127.0.0.1:5683", "/0/1/1": False, "/0/1/2": 3,
                               "/0/1/10": 1, "/1/0/0": 1, "/1/0/1": 600, "/1/0/6": False, "/1/0/7": "U"}
        r = await peer._ask(Code.POST, "bs", ["ep=stranger"])
        assert r.code == Code.BAD_REQUEST
        await peer.stop()
        await srv.stop()
    run(go())


def test_malformed_datagrams_and_payloads_never_stop_the_server():
    async def go():
        import random
        import socket

        srv, addr, peer, lines = await _setup()
        rnd = random.Random(10)
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(500):  # bytes that are mostly not CoAP at all
            raw.sendto(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 60))), addr)
        raw.close()
        peer.server = addr
        for i in range(150):  # CoAP requests with damaged queries and payloads
            junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 80)))
            path, fmt = rnd.choice([("rd", LINK), ("dp", SENML_CBOR), ("dp", SENML_JSON), ("bs", None), ("rd", None)])
            query = rnd.choice([[], ["ep=x", "lt=%s" % junk[:3].hex()], ["ep="], ["lt=-1", "ep=y"], ["b"]])
            if path == "rd" and "ep=x" in query:
                junk = b"<" + junk  # a link that starts well and then breaks
            r = await peer._ask(Code.POST, path, query, junk, fmt)
            assert r.code.is_successful() or 128 <= r.code < 160, (path, query, junk, r.code)
        r = await peer.register(addr)  # still serving
        assert r.code == Code.CREATED
        await peer.stop()
        await srv.stop()
    run(go())

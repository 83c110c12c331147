"""An LwM2M 1.1 server on aiocoap (NoSec, UDP): registration, bootstrap, Send, and the device
management operations towards registered clients, with queue mode and a firmware package served
block-wise.

Interfaces (OMA-TS-LightweightM2M_Core-V1_1, the "TS" below):
- Registration (§6.2, §8.2.5): POST /rd?ep=&lt=&lwm2m=&b=[&Q] with the object links -> 2.01 and a
  Location-Path rd/<n>; Update POST /rd/<n>; De-register DELETE /rd/<n>; a registration whose
  lifetime passes without an Update is removed.
- Bootstrap (§6.1, §8.2.2): POST /bs?ep= -> 2.04, then Delete /, Write /0/<i> and /1/<i> from the
  configured account, Bootstrap-Finish (POST /bs to the client).
- Send (§6.4.5): POST /dp with SenML JSON or CBOR -> 2.04.
- Device management and observation towards the client (§6.3, §6.4): read, write (PUT replace,
  POST partial update), execute, discover, write-attributes, create, delete, observe and cancel.
- Queue mode (§6.5): a client that registered with Q (or binding UQ of LwM2M 1.0) is taken to
  listen for `awake_s` after each message it sends; requests made while it sleeps are kept and sent
  after its next Update (or any other message).
The query names and defaults (lt 86400 s when absent, Q, pct) agree with Eclipse Wakaama's
(eclipse-wakaama/wakaama f91cfe0 core/internals.h: LWM2M_DEFAULT_LIFETIME, QUERY_QUEUE_MODE, QUERY_PCT).
A cancel is reactive (RFC 7641 §3.6): the next notification is answered with a Reset, which TS 1.1
§6.4.6 allows; aiocoap gives each request a fresh token, so a GET with Observe=1 on the
observation's token cannot be sent.
"""

import asyncio
import itertools
import os
import time

import aiocoap
from aiocoap import Code, Message, error, resource
from aiocoap.optiontypes import BlockOption

from . import codec

AWAKE_S = 93  # CoAP MAX_TRANSMIT_WAIT (RFC 7252 §4.8.2), what TS 1.1 §6.5 asks a queue-mode client to stay awake


class Registration:
    def __init__(self, location, ep, lifetime, version, binding, queue, links, remote, now):
        self.location = location
        self.ep = ep
        self.lifetime = lifetime
        self.version = version
        self.binding = binding
        self.queue = queue
        self.links = links
        self.remote = remote
        self.registered = now
        self.updated = now
        self.last_seen = now
        self.updates = 0
        self.pending = []  # queued requests: (description, coroutine factory, future)
        self.observations = {}  # path -> aiocoap request
        self.notifications = []  # (path, value)
        self.sent = []  # [(name, value, epoch time)] per Send

    def objects(self):
        return [u for u, _ in self.links if u != "/"]

    def __repr__(self):
        return f"<Registration {self.ep} /rd/{self.location} lt={self.lifetime} b={self.binding}>"


class Reply:
    """A client's answer: CoAP code, content format, payload and its decoded value."""

    def __init__(self, code, fmt=None, payload=b"", value=None, location=None):
        self.code = code
        self.format = fmt
        self.payload = payload
        self.value = value
        self.location = location

    @property
    def ok(self):
        return self.code.is_successful()

    def __repr__(self):
        return f"<Reply {self.code.dotted} {codec.NAMES.get(self.format, self.format)} {self.value!r}>"


class LwM2MError(Exception):
    """An operation that cannot be made: the message says why and what to do."""


class Server(resource.Resource):
    def __init__(self, log=print, bootstrap=None, awake_s=AWAKE_S, write_format=codec.TLV,
                 clock=time.monotonic, wall=time.time):
        super().__init__()
        self.log = log or (lambda line: None)
        self.bootstrap = dict(bootstrap or {})  # ep -> {"uri", "lifetime", "short_id", "binding"}
        self.awake_s = awake_s
        self.write_format = write_format
        self.clock = clock
        self.wall = wall  # epoch seconds: "now" for a Send's records that carry no time
        self.registrations = {}  # location -> Registration
        self.firmware = {}  # name -> bytes
        self.blocks_served = {}  # name -> count of Block2 responses
        self.bootstrapped = []  # endpoint names that got Bootstrap-Finish
        self.listeners = []  # fn(event, registration, **fields)
        self._loc = itertools.count(1)
        self.ctx = None
        self.address = None
        self._tasks = set()

    # --- lifecycle

    async def start(self, host="127.0.0.1", port=5683):
        # aiocoap binds with SO_REUSEPORT unless told not to: a second server on the same port would
        # then share its datagrams instead of failing
        os.environ.setdefault("AIOCOAP_REUSE_PORT", "0")
        self.ctx = await aiocoap.Context.create_server_context(self, bind=(host, port), transports=["udp6"])
        self.address = (host, self.ctx.request_interfaces[0].token_interface.message_interface._local_port())
        self._spawn(self._expire())
        self.log(f"lwm2m: listening on coap://{host}:{self.address[1]}")
        return self.address

    async def stop(self):
        for t in list(self._tasks):
            t.cancel()
        if self.ctx is not None:
            await self.ctx.shutdown()
            self.ctx = None

    def _spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def _event(self, kind, reg, **fields):
        for fn in list(self.listeners):
            fn(kind, reg, **fields)

    async def _expire(self):
        while True:
            now = self.clock()
            for loc, reg in list(self.registrations.items()):
                if now > reg.updated + reg.lifetime:
                    del self.registrations[loc]
                    self.log(f"lwm2m: {reg.ep} expired (no update within lt={reg.lifetime} s)")
                    self._drop(reg, "expired")
                    self._event("expired", reg)
            await asyncio.sleep(0.2)

    def _drop(self, reg, why):
        for path, req in list(reg.observations.items()):
            _forget(req)
        reg.observations.clear()
        for desc, _, fut in reg.pending:
            if not fut.done():
                fut.set_exception(LwM2MError(f"{reg.ep} {why} before '{desc}' could be sent"))
        reg.pending.clear()

    # --- the server side of the interfaces (aiocoap's Resource)

    async def needs_blockwise_assembly(self, request):
        # Block1 of large Register / Send payloads is assembled; the firmware resource does Block2 itself
        return not (request.opt.uri_path[:1] == ("fw",))

    async def render(self, request):
        path = request.opt.uri_path
        try:
            if path == ("rd",) and request.code == Code.POST:
                return self._register(request)
            if len(path) == 2 and path[0] == "rd" and request.code in (Code.POST, Code.DELETE):
                return self._update(request, path[1])
            if path == ("bs",) and request.code == Code.POST:
                return self._bootstrap_request(request)
            if path == ("dp",) and request.code == Code.POST:
                return self._send(request)
            if len(path) == 2 and path[0] == "fw" and request.code == Code.GET:
                return self._firmware(request, path[1])
        except BadRequest as e:
            self.log(f"lwm2m: <- {request.code} /{'/'.join(path)} from {request.remote.hostinfo}: "
                     f"4.00 {e}")
            return Message(code=Code.BAD_REQUEST, payload=str(e).encode())
        if path[:1] in (("rd",), ("bs",), ("dp",), ("fw",)):
            self.log(f"lwm2m: <- {request.code} /{'/'.join(path)}: 4.05 method not allowed here")
            return Message(code=Code.METHOD_NOT_ALLOWED)
        self.log(f"lwm2m: <- {request.code} /{'/'.join(path)}: 4.04 (the server has /rd, /bs, /dp, /fw)")
        return Message(code=Code.NOT_FOUND)

    def _query(self, request):
        q = {}
        for item in request.opt.uri_query:
            k, eq, v = item.partition("=")
            q[k] = v if eq else None
        return q

    def _links(self, request):
        if not request.payload:
            return None
        if request.opt.content_format not in (None, codec.LINK):
            raise BadRequest(f"object links in content format {request.opt.content_format} "
                             "(application/link-format, 40, expected)")
        try:
            return codec.parse_links(request.payload.decode())
        except (UnicodeError, codec.CodecError) as e:
            raise BadRequest(f"object links: {e}") from None

    @staticmethod
    def _lifetime(q, default):
        lt = q.get("lt")
        if lt is None:
            return default
        if not (lt.isdigit() and int(lt) > 0):
            raise BadRequest(f"lt={lt!r}: the lifetime is a number of seconds above 0")
        return int(lt)

    def _register(self, request):
        q = self._query(request)
        ep = q.get("ep")
        if not ep:
            raise BadRequest("Register without ep=<endpoint name>")
        links = self._links(request)
        if links is None:
            raise BadRequest("Register without object links in the payload")
        lifetime = self._lifetime(q, 86400)  # TS 1.1 Table 6.2.1.1-1: lt defaults to 86400 s
        binding = q.get("b") or "U"
        version = q.get("lwm2m") or "1.0"
        queue = "Q" in q or "Q" in binding
        for loc, old in list(self.registrations.items()):
            if old.ep == ep:  # a new Register of the same endpoint replaces the old registration
                del self.registrations[loc]
                self._drop(old, "registered again")
        now = self.clock()
        loc = str(next(self._loc))
        reg = Registration(loc, ep, lifetime, version, binding, queue, links, request.remote, now)
        self.registrations[loc] = reg
        self.log(f"lwm2m: <- register ep={ep} lt={lifetime} lwm2m={version} b={binding}"
                 f"{' Q' if queue else ''} {codec.show(links)} -> 2.01 /rd/{loc}")
        self._event("registered", reg)
        self._wake(reg)
        return Message(code=Code.CREATED, location_path=("rd", loc))

    def _update(self, request, loc):
        reg = self.registrations.get(loc)
        if reg is None:
            self.log(f"lwm2m: <- {'update' if request.code == Code.POST else 'deregister'} /rd/{loc}: "
                     "4.04 no such registration")
            return Message(code=Code.NOT_FOUND)
        if request.code == Code.DELETE:
            del self.registrations[loc]
            self.log(f"lwm2m: <- deregister {reg.ep} /rd/{loc} -> 2.02")
            self._drop(reg, "deregistered")
            self._event("deregistered", reg)
            return Message(code=Code.DELETED)
        q = self._query(request)
        links = self._links(request)
        reg.lifetime = self._lifetime(q, reg.lifetime)
        reg.binding = q.get("b") or reg.binding
        if links is not None:
            reg.links = links
        reg.remote = request.remote
        reg.updated = self.clock()
        reg.updates += 1
        self.log(f"lwm2m: <- update {reg.ep} /rd/{loc} lt={reg.lifetime}"
                 f"{' ' + codec.show(links) if links else ''} -> 2.04")
        self._event("updated", reg)
        self._wake(reg)
        return Message(code=Code.CHANGED)

    def _by_remote(self, remote):
        for reg in self.registrations.values():
            if reg.remote == remote:
                return reg
        return None

    def _send(self, request):
        fmt = request.opt.content_format
        try:
            if fmt == codec.SENML_CBOR:
                records = codec.senml_cbor_records(request.payload)
            elif fmt == codec.SENML_JSON:
                records = codec.senml_json_records(request.payload)
            else:
                raise BadRequest(f"Send in content format {fmt} (SenML JSON 110 or SenML CBOR 112 expected)")
        except codec.CodecError as e:
            raise BadRequest(str(e)) from None
        reg = self._by_remote(request.remote)
        if reg is None:
            self.log(f"lwm2m: <- send from {request.remote.hostinfo}: 4.03 not registered")
            return Message(code=Code.FORBIDDEN)
        # a record without a time (or a relative one) is "now" here: the Send's arrival (RFC 8428 §4.5.3)
        records = codec.senml_absolute(records, self.wall())
        reg.sent.append(records)
        self.log(f"lwm2m: <- send {reg.ep} {codec.NAMES[fmt]} {len(request.payload)} B "
                 f"{codec.show(codec.senml_to_values(records))} -> 2.04")
        self._event("send", reg, records=records)
        self._wake(reg)
        return Message(code=Code.CHANGED)

    def _bootstrap_request(self, request):
        q = self._query(request)
        ep = q.get("ep")
        if not ep:
            raise BadRequest("Bootstrap-Request without ep=<endpoint name>")
        account = self.bootstrap.get(ep) or self.bootstrap.get("*")
        if account is None:
            self.log(f"lwm2m: <- bootstrap-request ep={ep}: 4.00 no bootstrap account for it")
            return Message(code=Code.BAD_REQUEST, payload=b"no bootstrap account for this endpoint")
        fmt = codec.TLV
        if q.get("pct", "").isdigit() and int(q["pct"]) in (codec.TLV, codec.SENML_JSON, codec.SENML_CBOR):
            fmt = int(q["pct"])
        self.log(f"lwm2m: <- bootstrap-request ep={ep} -> 2.04")
        self._spawn(self._bootstrap(request.remote, ep, account, fmt))
        return Message(code=Code.CHANGED)

    async def _bootstrap(self, remote, ep, account, fmt):
        await asyncio.sleep(0.05)  # after the 2.04 has gone
        sid = account.get("short_id", 1)
        security = {"/0/1/0": account["uri"], "/0/1/1": False, "/0/1/2": 3, "/0/1/10": sid}
        server = {"/1/0/0": sid, "/1/0/1": account.get("lifetime", 86400), "/1/0/6": False,
                  "/1/0/7": account.get("binding", "U")}
        steps = [("delete /", Message(code=Code.DELETE, uri_path=())),
                 ("write /0/1", Message(code=Code.PUT, uri_path=("0", "1"), content_format=fmt,
                                        payload=codec.encode(fmt, security, (0, 1)))),
                 ("write /1/0", Message(code=Code.PUT, uri_path=("1", "0"), content_format=fmt,
                                        payload=codec.encode(fmt, server, (1, 0)))),
                 ("bootstrap-finish", Message(code=Code.POST, uri_path=("bs",)))]
        for desc, msg in steps:
            msg.remote = remote
            try:
                resp = await self.ctx.request(msg).response
            except error.Error as e:
                self.log(f"lwm2m: -> bootstrap {ep} {desc}: {e}")
                return
            self.log(f"lwm2m: -> bootstrap {ep} {desc} -> {resp.code.dotted}")
            if not resp.code.is_successful() and desc != "delete /":
                return
        self.bootstrapped.append(ep)

    def _firmware(self, request, name):
        data = self.firmware.get(name)
        if data is None:
            return Message(code=Code.NOT_FOUND)
        b2 = request.opt.block2
        szx = 6 if b2 is None else min(b2.size_exponent, 6)
        num = 0 if b2 is None else b2.block_number
        size = 1 << (szx + 4)
        start = num * size
        if start >= len(data) and len(data):
            return Message(code=Code.BAD_OPTION, payload=b"block past the end of the package")
        chunk = data[start:start + size]
        more = start + size < len(data)
        self.blocks_served[name] = self.blocks_served.get(name, 0) + 1
        if num == 0 or not more:
            self.log(f"lwm2m: <- fw {name} block {num} ({size} B blocks, {len(data)} B)"
                     f"{' last' if not more else ''}")
        return Message(code=Code.CONTENT, payload=chunk, content_format=codec.OPAQUE,
                       block2=BlockOption.BlockwiseTuple(num, more, szx), size2=len(data))

    # --- operations towards a client

    def find(self, ep):
        for reg in self.registrations.values():
            if reg.ep == ep:
                return reg
        raise LwM2MError(f"no client registered as {ep!r} (`list` shows the registered ones)")

    def awake(self, reg):
        return not reg.queue or self.clock() < reg.last_seen + self.awake_s

    def _wake(self, reg):
        reg.last_seen = self.clock()
        if reg.pending:
            self._spawn(self._flush(reg))

    async def _flush(self, reg):
        await asyncio.sleep(0.05)  # the client's request is answered first
        while reg.pending:
            desc, factory, fut = reg.pending.pop(0)
            self.log(f"lwm2m: {reg.ep} awake: sending queued {desc}")
            try:
                fut.set_result(await factory())
            except Exception as e:  # handed to whoever awaits the queued request
                if not fut.done():
                    fut.set_exception(e)

    async def _op(self, ep, desc, make):
        reg = self.find(ep)
        if self.awake(reg):
            return await make(reg)
        fut = asyncio.get_running_loop().create_future()
        reg.pending.append((desc, lambda: make(reg), fut))
        self.log(f"lwm2m: {ep} sleeps (queue mode): {desc} queued until it wakes")
        return await fut

    async def _request(self, reg, desc, msg, base=()):
        msg.remote = reg.remote
        try:
            resp = await self.ctx.request(msg).response
        except error.Error as e:
            self.log(f"lwm2m: -> {desc}: no answer ({e})")
            raise LwM2MError(f"{desc}: no answer from {reg.ep} ({e})") from None
        reg.last_seen = self.clock()
        return self._reply(desc, resp, base)

    def _reply(self, desc, resp, base):
        fmt = resp.opt.content_format
        value = None
        note = ""
        if resp.code.is_successful() and resp.payload:
            try:
                value = codec.decode(fmt, resp.payload, base)
                note = " " + codec.show(value)
            except codec.CodecError as e:
                note = f" (undecodable: {e})"
        elif resp.payload:
            note = " " + resp.payload.decode(errors="replace")
        fname = f" {codec.NAMES.get(fmt, fmt)}" if fmt is not None and resp.payload else ""
        self.log(f"lwm2m: -> {desc} -> {resp.code.dotted}{fname}{note}")
        loc = "/" + "/".join(resp.opt.location_path) if resp.opt.location_path else None
        return Reply(resp.code, fmt, resp.payload, value, loc)

    @staticmethod
    def _uri(path):
        try:
            return tuple(str(p) for p in codec.parse_path(path))
        except codec.CodecError as e:
            raise LwM2MError(str(e)) from None

    async def read(self, ep, path, fmt=None):
        """Read (GET) with Accept `fmt` (a content-format number or name; None: the client's choice)."""
        fmt = _format(fmt)
        uri = self._uri(path)
        desc = f"read {ep} {path}" + (f" {codec.NAMES.get(fmt, fmt)}" if fmt is not None else "")
        return await self._op(ep, desc, lambda reg: self._request(
            reg, desc, Message(code=Code.GET, uri_path=uri, accept=fmt), tuple(int(p) for p in uri)))

    async def write(self, ep, path, value, fmt=None, partial=False):
        """Write: PUT (replace) or POST (partial update) of `value` ({path: value} or one value)."""
        fmt = _format(fmt) if fmt is not None else self.write_format
        uri = self._uri(path)
        try:
            payload = codec.encode(fmt, value, tuple(int(p) for p in uri))
        except (codec.CodecError, TypeError, ValueError) as e:
            raise LwM2MError(f"write {path}: {e}") from None
        desc = f"write {ep} {path} {'partial' if partial else 'replace'} {codec.NAMES.get(fmt, fmt)}"
        return await self._op(ep, desc, lambda reg: self._request(
            reg, desc, Message(code=Code.POST if partial else Code.PUT, uri_path=uri, content_format=fmt,
                               payload=payload)))

    async def execute(self, ep, path, args=""):
        uri = self._uri(path)
        if len(uri) != 3:
            raise LwM2MError(f"exec {path}: execute takes a resource path /object/instance/resource")
        desc = f"exec {ep} {path}" + (f" {args!r}" if args else "")
        msg = Message(code=Code.POST, uri_path=uri, payload=args.encode())
        if args:
            msg.opt.content_format = codec.TEXT
        return await self._op(ep, desc, lambda reg: self._request(reg, desc, msg))

    async def discover(self, ep, path):
        uri = self._uri(path)
        desc = f"discover {ep} {path}"
        return await self._op(ep, desc, lambda reg: self._request(
            reg, desc, Message(code=Code.GET, uri_path=uri, accept=codec.LINK)))

    async def write_attributes(self, ep, path, **attrs):
        """Write-Attributes (PUT with only a query): pmin, pmax, gt, lt, st, epmin, epmax; None clears."""
        uri = self._uri(path)
        allowed = ("pmin", "pmax", "gt", "lt", "st", "epmin", "epmax")
        for k in attrs:
            if k not in allowed:
                raise LwM2MError(f"attribute {k!r}: one of {', '.join(allowed)}")
        query = tuple(k if v is None else f"{k}={v}" for k, v in attrs.items())
        desc = f"attr {ep} {path} {'&'.join(query)}"
        return await self._op(ep, desc, lambda reg: self._request(
            reg, desc, Message(code=Code.PUT, uri_path=uri, uri_query=query)))

    async def create(self, ep, path, values, fmt=None):
        """Create on /o (the client picks the instance id; TLV: resources only) or /o/i (TLV: one
        object instance TLV naming it); `values` {"/o/i/r": value}."""
        fmt = _format(fmt) if fmt is not None else self.write_format
        uri = self._uri(path)
        if len(uri) not in (1, 2):
            raise LwM2MError(f"create {path}: create takes an object path, e.g. /3303 (or /3303/1 to name the instance)")
        base = tuple(int(p) for p in uri)
        try:
            if fmt == codec.TLV:
                payload = codec.tlv_encode(values, base[:1] if len(base) == 2 else base + (None,))
            else:
                payload = codec.encode(fmt, values, base[:1])
        except (codec.CodecError, TypeError, ValueError) as e:
            raise LwM2MError(f"create {path}: {e}") from None
        desc = f"create {ep} {path} {codec.NAMES.get(fmt, fmt)}"
        return await self._op(ep, desc, lambda reg: self._request(
            reg, desc, Message(code=Code.POST, uri_path=uri[:1], content_format=fmt, payload=payload)))

    async def delete(self, ep, path):
        uri = self._uri(path)
        desc = f"delete {ep} {path}"
        return await self._op(ep, desc, lambda reg: self._request(reg, desc, Message(code=Code.DELETE, uri_path=uri)))

    async def observe(self, ep, path, fmt=None, on_notify=None):
        """Observe `path`: the first answer is returned; notifications go to reg.notifications and
        on_notify(path, value)."""
        fmt = _format(fmt)
        uri = self._uri(path)
        base = tuple(int(p) for p in uri)
        desc = f"observe {ep} {path}"

        async def make(reg):
            msg = Message(code=Code.GET, uri_path=uri, observe=0, accept=fmt)
            msg.remote = reg.remote
            req = self.ctx.request(msg, handle_blockwise=False)  # a plain Request: its interest can be stopped
            try:
                resp = await req.response
            except error.Error as e:
                raise LwM2MError(f"{desc}: no answer from {reg.ep} ({e})") from None
            reply = self._reply(desc, resp, base)
            if reply.ok and resp.opt.observe is not None:
                old = reg.observations.pop(path, None)
                if old is not None:
                    _forget(old)
                reg.observations[path] = req
                self._spawn(self._notifications(reg, path, req, base, on_notify))
            elif reply.ok:
                self.log(f"lwm2m: {desc}: answered without Observe, not an observation")
            return reply

        return await self._op(ep, desc, make)

    async def _notifications(self, reg, path, req, base, on_notify):
        try:
            async for resp in req.observation:
                self._wake(reg)  # a queue-mode client that notifies is awake: what waits for it goes
                try:
                    value = codec.decode(resp.opt.content_format, resp.payload, base)
                except codec.CodecError as e:
                    self.log(f"lwm2m: <- notify {reg.ep} {path}: undecodable ({e})")
                    continue
                reg.notifications.append((path, value))
                self.log(f"lwm2m: <- notify {reg.ep} {path} #{resp.opt.observe} {codec.show(value)}")
                self._event("notify", reg, path=path, value=value)
                if on_notify is not None:
                    on_notify(path, value)
        except error.Error as e:
            self.log(f"lwm2m: observation {reg.ep} {path} ended: {e}")
        finally:
            if reg.observations.get(path) is req:
                del reg.observations[path]

    async def cancel(self, ep, path):
        reg = self.find(ep)
        req = reg.observations.pop(path, None)
        if req is None:
            raise LwM2MError(f"cancel {path}: {ep} has no observation of {path} (`observe {ep} {path}` starts one)")
        _forget(req)
        self.log(f"lwm2m: cancel {ep} {path}: the next notification is answered with a Reset")

    def serve_firmware(self, name, data):
        """Serve `data` at coap://<server>/fw/<name> block-wise; returns the URI."""
        self.firmware[name] = bytes(data)
        self.blocks_served[name] = 0
        host, port = self.address
        return f"coap://{host}:{port}/fw/{name}"

    async def push_firmware(self, ep, name, data, fmt=None):
        """Serve a package and write its URI to the client's /5/0/1 (Package URI)."""
        uri = self.serve_firmware(name, data)
        self.log(f"lwm2m: fw {name} ({len(data)} B) served at {uri}")
        return await self.write(ep, "/5/0/1", uri, fmt=fmt if fmt is not None else codec.TEXT)


def _forget(req):
    """End an observation here: its token is forgotten at once, so the client's next notification is
    answered with a Reset (after aiocoap's own cancel() alone, one more notification is accepted)."""
    if not req.observation.cancelled:
        req.observation.cancel()
    req._stop_interest()  # aiocoap 0.4.17 protocol.Request: drops the token from the outgoing requests


class BadRequest(Exception):
    pass


def _format(fmt):
    if fmt is None or isinstance(fmt, int):
        return fmt
    if fmt in codec.FORMATS:
        return codec.FORMATS[fmt]
    raise LwM2MError(f"format {fmt!r}: one of {', '.join(codec.FORMATS)}")

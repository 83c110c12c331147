"""`m2mkit lwm2m serve`: the LwM2M server with an operator console on stdin (one command a line,
`help` lists them); the server's log of each exchange goes to stdout."""

import asyncio
import json
import shlex
import sys
from pathlib import Path

import click

from ..errors import UserError

HELP = """commands (<ep> is a registered endpoint name, <path> an LwM2M path like /3/0 or /3303/0/5700):
  list                                   the registered clients
  read <ep> <path> [--format F]          F: tlv, json (SenML JSON), cbor (SenML CBOR), text, opaque
  write <ep> <path> <value> [--format F] [--partial]
                                         one resource: write <ep> /1/0/1 300; several: write <ep> /3303/0 5701=K 5750=lab
  exec <ep> <path> [args]                execute a resource, e.g. exec <ep> /3/0/4
  discover <ep> <path>                   the client's links and attributes under <path>
  observe <ep> <path> [--format F]       notifications are printed as they come
  cancel <ep> <path>                     end an observation
  attr <ep> <path> pmin=N pmax=N gt=X lt=X st=X   write attributes
  create <ep> <object>[/<inst>] <rid>=<value>...   create an instance, e.g. create <ep> /3303 5700=20.5
  delete <ep> <path>                     delete an object instance
  fw <ep> <file>                         serve a firmware package block-wise and write its URI to /5/0/1
  help, quit"""

FORMAT_NAMES = ("tlv", "json", "cbor", "text", "opaque")


class ConsoleError(ValueError):
    pass


def _value(text):
    """A typed value from the console: JSON literals (numbers, true, false, "quoted"), else text."""
    try:
        v = json.loads(text)
    except ValueError:
        return text
    return v if isinstance(v, (int, float, str, bool)) else text


def _split_opts(args, flags=("--partial",), options=("--format",)):
    rest, opts = [], {}
    i = 0
    while i < len(args):
        a = args[i]
        if a in flags:
            opts[a] = True
        elif a in options:
            if i + 1 >= len(args):
                raise ConsoleError(f"{a} needs a value: one of {', '.join(FORMAT_NAMES)}")
            opts[a] = args[i + 1]
            i += 1
        elif a.startswith("--"):
            raise ConsoleError(f"unknown option {a}")
        else:
            rest.append(a)
        i += 1
    fmt = opts.get("--format")
    if fmt is not None and fmt not in FORMAT_NAMES:
        raise ConsoleError(f"--format {fmt!r}: one of {', '.join(FORMAT_NAMES)}")
    return rest, opts


class Console:
    """Operator commands on a running Server. `handle(line)` returns the lines to print; a request
    to a sleeping client prints its answer when it comes (through `out`)."""

    def __init__(self, server, out=print):
        self.server = server
        self.out = out
        self.tasks = set()

    def _need(self, args, n, usage):
        if len(args) < n:
            raise ConsoleError(f"usage: {usage}")

    async def handle(self, line):
        from .server import LwM2MError

        try:
            words = shlex.split(line)
        except ValueError as e:
            return [f"error: {e} (close the quotes)"]
        if not words:
            return []
        cmd, args = words[0], words[1:]
        fn = getattr(self, "do_" + cmd, None)
        if fn is None:
            return [f"error: unknown command {cmd!r} (`help` lists the commands)"]
        try:
            return await fn(args)
        except ConsoleError as e:
            return [f"error: {e}"]
        except LwM2MError as e:
            return [f"error: {e}"]

    async def do_help(self, args):
        return HELP.splitlines()

    async def do_list(self, args):
        regs = list(self.server.registrations.values())
        if not regs:
            return ["no clients registered"]
        now = self.server.clock()
        return [f"{r.ep}  /rd/{r.location}  {r.remote.hostinfo}  lwm2m {r.version}  b={r.binding}"
                f"{' Q' if r.queue else ''}  lt={r.lifetime} s (next update within {max(0, r.updated + r.lifetime - now):.0f} s)"
                f"{'' if self.server.awake(r) else '  sleeping'}  {','.join(r.objects())}" for r in regs]

    def _later(self, coro, what):
        """Run an operation; if the client sleeps its answer is printed when it comes."""
        async def go():
            from .server import LwM2MError

            try:
                self.out(self._show(await coro))
            except LwM2MError as e:
                self.out(f"error: {e}")
            except Exception as e:  # one line per failure, the console goes on
                self.out(f"error: {what}: {e!r}")

        t = asyncio.ensure_future(go())
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        return t

    @staticmethod
    def _show(reply):
        from . import codec

        if reply is None:
            return "ok"
        text = f"{reply.code.dotted} {reply.code.name_printable}"
        if reply.location:
            text += f" at {reply.location}"
        if reply.value is not None:
            text += f": {codec.show(reply.value)}"
        elif reply.payload:
            text += f": {reply.payload.decode(errors='replace')}"
        return text

    async def _run(self, coro, what):
        t = self._later(coro, what)
        await asyncio.sleep(0)
        if not self.server.awake(self.server.find(what.split()[1])):
            return [f"{what}: the client sleeps (queue mode); the answer is printed when it wakes"]
        await t
        return []

    async def do_read(self, args):
        args, opts = _split_opts(args)
        self._need(args, 2, "read <ep> <path> [--format tlv|json|cbor|text|opaque]")
        self.server.find(args[0])
        return await self._run(self.server.read(args[0], args[1], opts.get("--format")), f"read {args[0]} {args[1]}")

    async def do_write(self, args):
        args, opts = _split_opts(args)
        self._need(args, 3, "write <ep> <path> <value> | <rid>=<value>... [--format F] [--partial]")
        ep, path, vals = args[0], args[1], args[2:]
        from . import codec

        try:
            base = codec.parse_path(path)
        except codec.CodecError as e:
            raise ConsoleError(str(e)) from None
        if len(base) >= 3:
            if len(vals) != 1:
                raise ConsoleError("write to a resource takes one value (quote it if it has spaces)")
            value = _value(vals[0])
        else:
            value = {}
            for v in vals:
                rid, eq, x = v.partition("=")
                if not eq or not rid.replace("/", "").isdigit():
                    raise ConsoleError(f"{v!r}: give <resource id>=<value>, e.g. 5701=Cel")
                value[f"{path.rstrip('/')}/{rid}"] = _value(x)
        self.server.find(ep)
        return await self._run(self.server.write(ep, path, value, opts.get("--format"), partial="--partial" in opts),
                               f"write {ep} {path}")

    async def do_exec(self, args):
        self._need(args, 2, "exec <ep> <path> [args]")
        self.server.find(args[0])
        return await self._run(self.server.execute(args[0], args[1], " ".join(args[2:])), f"exec {args[0]} {args[1]}")

    async def do_discover(self, args):
        self._need(args, 2, "discover <ep> <path>")
        self.server.find(args[0])
        return await self._run(self.server.discover(args[0], args[1]), f"discover {args[0]} {args[1]}")

    async def do_observe(self, args):
        args, opts = _split_opts(args)
        self._need(args, 2, "observe <ep> <path> [--format F]")
        ep, path = args[0], args[1]
        self.server.find(ep)

        def notify(p, value):
            from . import codec

            self.out(f"notify {ep} {p}: {codec.show(value)}")

        return await self._run(self.server.observe(ep, path, opts.get("--format"), on_notify=notify),
                               f"observe {ep} {path}")

    async def do_cancel(self, args):
        self._need(args, 2, "cancel <ep> <path>")
        await self.server.cancel(args[0], args[1])
        return [f"cancelled {args[0]} {args[1]}"]

    async def do_attr(self, args):
        self._need(args, 3, "attr <ep> <path> pmin=N pmax=N gt=X lt=X st=X")
        attrs = {}
        for a in args[2:]:
            k, eq, v = a.partition("=")
            if eq:
                try:
                    float(v)
                except ValueError:
                    raise ConsoleError(f"{a!r}: the value of {k} is a number") from None
            attrs[k] = v if eq else None
        self.server.find(args[0])
        return await self._run(self.server.write_attributes(args[0], args[1], **attrs), f"attr {args[0]} {args[1]}")

    async def do_create(self, args):
        args, opts = _split_opts(args)
        self._need(args, 3, "create <ep> <object>[/<instance>] <rid>=<value>... [--format F]")
        ep, obj = args[0], args[1].rstrip("/")
        inst = obj.split("/")[2] if obj.count("/") == 2 else "0"  # /o: the client picks the instance
        obj = "/" + obj.split("/")[1] if obj.count("/") >= 1 else obj
        values = {}
        for v in args[2:]:
            rid, eq, x = v.partition("=")
            if not eq or not rid.isdigit():
                raise ConsoleError(f"{v!r}: give <resource id>=<value>, e.g. 5700=20.5")
            values[f"{obj}/{inst}/{rid}"] = _value(x)
        self.server.find(ep)
        return await self._run(self.server.create(ep, args[1], values, opts.get("--format")), f"create {ep} {obj}")

    async def do_delete(self, args):
        self._need(args, 2, "delete <ep> <path>")
        self.server.find(args[0])
        return await self._run(self.server.delete(args[0], args[1]), f"delete {args[0]} {args[1]}")

    async def do_fw(self, args):
        self._need(args, 2, "fw <ep> <file>")
        ep, f = args[0], Path(args[1])
        self.server.find(ep)
        try:
            data = f.read_bytes()
        except OSError as e:
            raise ConsoleError(f"{f}: {e.strerror}; give the path of a firmware package file") from None
        return await self._run(self.server.push_firmware(ep, f.name, data), f"fw {ep} {f.name}")

    async def do_quit(self, args):
        raise EOFError


async def serve(host, port, stdin=None, out=None, bootstrap=None):
    from .server import Server

    out = out or (lambda text: (sys.stdout.write(text + "\n"), sys.stdout.flush()))
    server = Server(log=out, bootstrap={"*": {"uri": bootstrap}} if bootstrap else None)
    try:
        await server.start(host, port)
    except OSError as e:
        raise UserError(f"--listen {host}:{port}: {e.strerror}; pick another port") from None
    console = Console(server, out)
    out("type `help` for the commands; `quit` or Ctrl-D ends")
    loop = asyncio.get_running_loop()
    stdin = stdin or sys.stdin
    try:
        while True:
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            try:
                for text in await console.handle(line):
                    out(text)
            except EOFError:
                break
    finally:
        await server.stop()


def _listen(ctx, param, value):
    host, sep, port = value.rpartition(":")
    if not (sep and host and port.isdigit() and 0 <= int(port) < 65536):
        raise UserError(f"--listen {value!r}: give HOST:PORT, e.g. 127.0.0.1:5683 (port 0: any free port)")
    return host, int(port)


def _coap(url):
    from .demo import check_url

    try:
        return check_url(url)
    except UserError as e:
        raise UserError(str(e).replace("--lwm2m", "--bootstrap")) from None


@click.group("lwm2m")
def lwm2m_command():
    """LwM2M server tools."""


@lwm2m_command.command("serve")
@click.option("--listen", default="0.0.0.0:5683", show_default=True, callback=_listen, metavar="HOST:PORT",
              help="UDP address to serve CoAP on")
@click.option("--bootstrap", default=None, metavar="coap://HOST:PORT", callback=lambda c, p, v: v and _coap(v),
              help="also be a bootstrap server: any endpoint's Bootstrap-Request gets this LwM2M server "
                   "(NoSec, lifetime 86400 s) written")
def serve_command(listen, bootstrap):
    """An LwM2M server (CoAP, NoSec) with an operator console on stdin."""
    try:
        asyncio.run(serve(*listen, bootstrap=bootstrap))
    except KeyboardInterrupt:
        pass

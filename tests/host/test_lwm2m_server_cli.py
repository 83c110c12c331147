"""`m2mkit lwm2m serve`'s operator console, against the aiocoap peer of test_lwm2m_server."""

import asyncio
import socket
import sys
from pathlib import Path

import pytest
from test_lwm2m_server import Peer, _until, run

from aiocoap import Code

from m2mkit.lwm2m.cli import Console
from m2mkit.lwm2m.server import Server

pytestmark = pytest.mark.filterwarnings("ignore:Request interface is changing:DeprecationWarning")


async def _console():
    out = []
    srv = Server(log=lambda line: None)
    addr = await srv.start("127.0.0.1", 0)
    peer = await Peer("dev1").start()
    await peer.register(addr, lt=300)
    return srv, peer, Console(srv, out.append), out


def test_console_operations(tmp_path):
    async def go():
        srv, peer, con, out = await _console()
        assert (await con.handle("list"))[0].startswith("dev1  /rd/1  127.0.0.1:")
        assert await con.handle("read dev1 /3/0 --format cbor") == []
        assert out.pop() == '2.05 Content: /3/0/0="Open Mobile Alliance" /3/0/1="Lightweight M2M Client" /3/0/9=100'
        await con.handle("write dev1 /3303/0 5701=K 5700=3.5 --partial --format json")
        assert out.pop() == "2.04 Changed" and peer.values["/3303/0/5701"] == "K" and peer.values["/3303/0/5700"] == 3.5
        await con.handle('write dev1 /3303/0/5701 "deg C" --format text')
        assert peer.values["/3303/0/5701"] == "deg C"
        await con.handle("exec dev1 /3/0/4")
        assert peer.executed == [("/3/0/4", "")]
        await con.handle("attr dev1 /3303/0/5700 pmin=1 pmax=5")
        assert peer.attrs["/3303/0/5700"] == {"pmin": "1", "pmax": "5"}
        await con.handle("discover dev1 /3303/0/5700")
        assert out.pop() == "2.05 Content: </3303/0/5700>;pmin=1;pmax=5"
        await con.handle("observe dev1 /3303/0/5700 --format tlv")
        assert out.pop() == "2.05 Content: /3303/0/5700=3.5"
        peer.set("/3303/0/5700", 4.0)
        await _until(lambda: out and out[-1].startswith("notify"))
        assert out.pop() == "notify dev1 /3303/0/5700: /3303/0/5700=4.0"
        assert await con.handle("cancel dev1 /3303/0/5700") == ["cancelled dev1 /3303/0/5700"]
        await con.handle("create dev1 /3303 5700=20.5")
        assert out.pop() == "2.01 Created at /3303/1"
        await con.handle("delete dev1 /3303/1")
        assert out.pop() == "2.02 Deleted"
        pkg = tmp_path / "app.bin"
        pkg.write_bytes(b"\x01" * 3000)
        await con.handle(f"fw dev1 {pkg}")
        assert peer.values["/5/0/1"].endswith("/fw/app.bin") and srv.firmware["app.bin"] == pkg.read_bytes()
        await peer.stop()
        await srv.stop()
    run(go())


def test_console_request_to_a_sleeping_client_is_answered_when_it_wakes():
    async def go():
        out = []
        srv = Server(log=lambda line: None, awake_s=0.2)
        addr = await srv.start("127.0.0.1", 0)
        peer = await Peer("dev1").start()
        await peer.register(addr, queue=True)
        con = Console(srv, out.append)
        await asyncio.sleep(0.4)
        assert "sleeping" in (await con.handle("list"))[0]
        said = await con.handle("read dev1 /3/0/9 --format text")
        assert said == ["read dev1 /3/0/9: the client sleeps (queue mode); the answer is printed when it wakes"]
        assert out == []
        await peer.update()
        await _until(lambda: out)
        assert out == ["2.05 Content: \"100\""]
        await peer.stop()
        await srv.stop()
    run(go())


def test_a_notification_wakes_a_queue_mode_client():
    async def go():
        srv = Server(log=lambda line: None, awake_s=0.2)
        addr = await srv.start("127.0.0.1", 0)
        peer = await Peer("dev1").start()
        await peer.register(addr, queue=True)
        await srv.observe("dev1", "/3303/0/5700", "tlv")
        await asyncio.sleep(0.4)
        reading = asyncio.ensure_future(srv.read("dev1", "/3/0/9", "text"))
        await asyncio.sleep(0.3)
        assert not reading.done()
        peer.set("/3303/0/5700", 30.0)  # the client speaks: a notification
        assert (await asyncio.wait_for(reading, 10)).value == "100"
        await peer.stop()
        await srv.stop()
    run(go())


@pytest.mark.parametrize("line, said", [
    ("bogus", "error: unknown command 'bogus' (`help` lists the commands)"),
    ("read dev1", "error: usage: read <ep> <path> [--format tlv|json|cbor|text|opaque]"),
    ("read dev9 /3/0", "error: no client registered as 'dev9' (`list` shows the registered ones)"),
    ("read dev1 /3/0 --format xml", "error: --format 'xml': one of tlv, json, cbor, text, opaque"),
    ("read dev1 3/0", "error: path '3/0': give an LwM2M path like /3/0 or /3303/0/5700"),
    ("write dev1 /3303/0 K", "error: 'K': give <resource id>=<value>, e.g. 5701=Cel"),
    ("attr dev1 /3303/0/5700 pmin=soon", "error: 'pmin=soon': the value of pmin is a number"),
    ("attr dev1 /3303/0/5700 every=3", "error: attribute 'every': one of pmin, pmax, gt, lt, st, epmin, epmax"),
    ("exec dev1 /3/0", "error: exec /3/0: execute takes a resource path /object/instance/resource"),
    ("cancel dev1 /3/0", "error: cancel /3/0: dev1 has no observation of /3/0 (`observe dev1 /3/0` starts one)"),
    ("fw dev1 /nonexistent/pkg.bin", "error: /nonexistent/pkg.bin: No such file or directory; give the path of a firmware package file"),
    ('read "dev1', "error: No closing quotation (close the quotes)"),
])
def test_console_bad_input_one_line(line, said):
    async def go():
        srv, peer, con, out = await _console()
        got = await con.handle(line) + out
        assert got == [said]
        assert peer.received == []  # nothing sent to the client
        await peer.stop()
        await srv.stop()
    run(go())


def test_serve_command_on_stdin():
    """The real command: a client registers, the operator lists and reads it, bad input, quit."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    async def go():
        exe = Path(sys.executable).with_name("m2mkit")
        proc = await asyncio.create_subprocess_exec(str(exe), "lwm2m", "serve", "--listen", f"127.0.0.1:{port}",
                                                    "--bootstrap", f"coap://127.0.0.1:{port}",
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        first = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert first.decode().strip() == f"lwm2m: listening on coap://127.0.0.1:{port}"
        peer = await Peer("tank-7").start()
        peer.server = ("127.0.0.1", port)
        assert (await peer._ask(Code.POST, "bs", ["ep=tank-7"])).code == Code.CHANGED
        await _until(lambda: getattr(peer, "bootstrap_finished", False))
        assert peer.values["/0/1/0"] == f"coap://127.0.0.1:{port}" and peer.values["/1/0/1"] == 86400
        await peer.register(("127.0.0.1", port), lt=60)
        proc.stdin.write(b"list\nread tank-7 /3/0/0 --format text\nfrobnicate\nquit\n")
        await proc.stdin.drain()
        out = (await asyncio.wait_for(proc.stdout.read(), 20)).decode()
        assert await proc.wait() == 0
        assert "lwm2m: <- register ep=tank-7 lt=60" in out
        assert "\ntank-7  /rd/1  127.0.0.1:" in out
        assert '2.05 Content: "Open Mobile Alliance"' in out
        assert "error: unknown command 'frobnicate' (`help` lists the commands)" in out
        await peer.stop()
    run(go())


def test_serve_refuses_a_bad_bootstrap_url():
    import subprocess

    p = subprocess.run([str(Path(sys.executable).with_name("m2mkit")), "lwm2m", "serve", "--bootstrap", "http://x"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--bootstrap 'http://x': give coap://HOST:PORT" in p.stderr, p.stderr


def test_serve_on_a_busy_port_says_so():
    import subprocess

    async def go():
        srv = Server(log=lambda line: None)
        addr = await srv.start("127.0.0.1", 0)
        p = await asyncio.create_subprocess_exec(str(Path(sys.executable).with_name("m2mkit")), "lwm2m", "serve",
                                                 "--listen", "127.0.0.1:%d" % addr[1], stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(p.communicate(), 30)
        await srv.stop()
        return p.returncode, err.decode()

    rc, err = run(go())
    assert rc == 2 and "Address already in use; pick another port" in err, err

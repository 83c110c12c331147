"""The host LwM2M server with the firmware's own client (m2m.lwm2m, real MicroPython, loopback UDP):
two implementations written apart from the specification, meeting on the wire."""

import json
import os
import subprocess
import time

import pytest

from m2mkit import testing
from m2mkit.lwm2m import ServerThread

# the device side: the client tests' own (a simulated thermometer read by the real sampler, the
# client stepped until the stop file appears)
from test_lwm2m_client import DEVICE  # noqa: E402


class Device:
    def __init__(self, tmp_path, cfg, scale=1.0):
        self.tfile = str(tmp_path / "temp")
        self.stop_file = str(tmp_path / "stop")
        self.set_temp(21.0)
        code = DEVICE % {"cfg": json.dumps(cfg), "tfile": self.tfile, "stop": self.stop_file,
                         "obdir": str(tmp_path / "outbox"), "kw": "", "extra": ""}
        self.p = subprocess.Popen([testing.micropython(), "-X", "heapsize=512K", "-c", testing._prelude() + code],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=testing.mpy_env({"M2M_TIME_SCALE": str(scale)}))

    def set_temp(self, v):
        with open(self.tfile + ".new", "w") as f:
            f.write(str(v))
        os.replace(self.tfile + ".new", self.tfile)

    def stop(self):
        open(self.stop_file, "w").close()
        try:
            return self.p.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.communicate()[0]


@pytest.fixture
def lines():
    return []


@pytest.fixture
def server(lines):
    with ServerThread(log=lines.append) as s:
        yield s


@pytest.fixture
def device(tmp_path, server):
    made = []

    def make(scale=1.0, **lw):
        cfg = {"device": {"id": "dev-1"}, "net": {"apn": "internet"},
               "lwm2m": dict({"server": "coap://127.0.0.1:%d" % server.address[1], "lifetime_s": 3600}, **lw)}
        if "bootstrap" in lw:
            del cfg["lwm2m"]["server"]
        made.append(Device(tmp_path, cfg, scale))
        return made[-1]

    yield make
    for d in made:
        if d.p.poll() is None:
            d.stop()


def until(cond, timeout=30, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def registered(server, ep="dev-1"):
    return until(lambda: next((r for r in server.server.registrations.values() if r.ep == ep), None),
                 what="registration")


def test_firmware_client_registers_and_answers_every_operation(server, device, lines):
    dev = device()
    reg = registered(server)
    assert reg.version == "1.1" and reg.lifetime == 3600 and "/3/0" in reg.objects()
    tlv = server.call("read", "dev-1", "/3/0", fmt="tlv", timeout=30)
    js = server.call("read", "dev-1", "/3/0", fmt="json", timeout=30)
    cb = server.call("read", "dev-1", "/3/0", fmt="cbor", timeout=30)
    assert tlv.format == 11542 and js.format == 110 and cb.format == 112
    assert tlv.value["/3/0/0"] == js.value["/3/0/0"] == cb.value["/3/0/0"] == "m2mkit"
    assert tlv.value["/3/0/2"] == js.value["/3/0/2"] == cb.value["/3/0/2"]  # serial number
    assert server.call("read", "dev-1", "/3/0/16", fmt="text", timeout=30).value == "U"

    r = server.call("write", "dev-1", "/3/0/14", "+01:00", fmt="text", timeout=30)
    assert r.code.dotted == "2.04"
    assert server.call("read", "dev-1", "/3/0/14", fmt="text", timeout=30).value == "+01:00"
    r = server.call("write", "dev-1", "/1/0", {"/1/0/1": 7200}, fmt="tlv", partial=True, timeout=30)
    assert r.code.dotted == "2.04" and server.call("read", "dev-1", "/1/0/1", fmt="tlv", timeout=30).value == {
        "/1/0/1": 7200}

    updates = reg.updates
    assert server.call("execute", "dev-1", "/1/0/8", timeout=30).code.dotted == "2.04"  # update trigger
    until(lambda: reg.updates > updates, what="Update after the trigger")

    assert server.call("write_attributes", "dev-1", "/3303/0/5700", pmin=0, pmax=2, timeout=30).code.dotted == "2.04"
    d = server.call("discover", "dev-1", "/3303/0", timeout=30)
    assert ("/3303/0/5700", {"pmin": "0", "pmax": "2"}) in d.value

    first = server.call("observe", "dev-1", "/3303/0/5700", fmt="tlv", timeout=30)
    assert first.value == {"/3303/0/5700": 21.0}
    dev.set_temp(25.5)
    until(lambda: ("/3303/0/5700", {"/3303/0/5700": 25.5}) in reg.notifications, what="notification of 25.5")
    server.run(server.server.cancel("dev-1", "/3303/0/5700"))

    out = dev.stop()
    until(lambda: not server.server.registrations, what="de-registration")
    assert "closed" in out
    assert any("deregister dev-1" in line for line in lines)


def test_firmware_pulls_a_100_kb_package_block_wise(server, device, lines):
    device()
    registered(server)
    package = bytes(range(251)) * 408  # 102408 bytes
    r = server.call("push_firmware", "dev-1", "pkg.bin", package, timeout=30)
    assert r.code.dotted == "2.04"
    # state 2 = Downloaded (object 5, resource 3)
    until(lambda: server.call("read", "dev-1", "/5/0/3", fmt="text", timeout=30).value == "2", timeout=120,
          what="the package downloaded")
    blocks = server.server.blocks_served["pkg.bin"]
    assert blocks >= len(package) // 1024  # block-wise: at least one request per KB


def test_queue_mode_request_waits_for_the_sleeping_firmware_client(server, device, lines):
    server.server.awake_s = 1.0
    device(scale=10.0, queue_mode=True, awake_s=2, lifetime_s=30)
    reg = registered(server)
    assert reg.queue
    until(lambda: not server.server.awake(reg), what="the client asleep")
    updates = reg.updates
    r = server.call("read", "dev-1", "/3/0/0", fmt="text", timeout=60)  # queued until the next Update
    assert r.value == "m2mkit" and reg.updates > updates
    assert any("queued until it wakes" in line for line in lines)
    assert any("awake: sending queued read dev-1 /3/0/0" in line for line in lines)


def test_firmware_sends_outbox_readings_in_senml_cbor(server, device, lines):
    device(send=True)
    reg = registered(server)
    until(lambda: sum(len(x) for x in reg.sent) >= 3, what="three readings sent")
    got = [(name, value, t) for batch in reg.sent for name, value, t in batch]
    assert [(n, v) for n, v, _ in got] == [("/3303/0/5700", 20.5), ("/3303/0/5700", 21.5), ("/3303/0/5700", 22.5)]
    assert [t for _, _, t in got] == [1767225600, 1767225601, 1767225602]
    assert any(line.startswith("lwm2m: <- send dev-1 cbor") for line in lines)


def test_firmware_bootstraps_from_the_server_then_registers(server, device, lines):
    uri = "coap://127.0.0.1:%d" % server.address[1]
    server.server.bootstrap = {"dev-1": {"uri": uri, "lifetime": 600, "short_id": 7}}
    device(bootstrap=uri)
    reg = registered(server)
    assert "dev-1" in server.server.bootstrapped
    assert reg.lifetime == 600  # as the bootstrap server wrote it to /1/0/1
    assert [line.split(" -> ")[-1] for line in lines if "-> bootstrap dev-1" in line] == ["2.02", "2.04", "2.04", "2.04"]
    assert server.call("read", "dev-1", "/1/0/0", fmt="text", timeout=30).value == "7"

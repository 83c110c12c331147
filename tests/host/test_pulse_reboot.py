"""An intentional restart keeps a hardware pulse counter's last pulses: m2m.loop.reset() runs the loop's
hooks once (the PCNT counter's sync into RTC memory) before hal.reset(). A counter with debounce_ms 0
on MicroPython v1.26+ counts in the chip's esp32.PCNT, which a reset clears (ports/esp32/main.c
esp32_pcnt_deinit_all); its count reaches RTC memory only at a sync. Checked on the virtual device
through mpremote (pulses that came while nothing synced them, then loop.reset()), and on the MQTT
/cmd "reboot" path (the Reporter under a real Mosquitto)."""

import json
import subprocess
import sys
import time
from pathlib import Path

from m2mkit.sim.bus import BusSim
from m2mkit.sim.modem import ModemSim
from m2mkit.testing import _prelude, micropython, mpy_env
from m2mkit.vdev.device import VirtualDevice
from m2mkit.vdev.port import _m2m_table as T

BIN = Path(sys.executable).parent
PIN = 13
N = 25

# m2m.loop imported first: the counter registers its sync as one of the loop's hooks. The device waits
# for the pulses with hal.sleep_ms (no idle(): nothing syncs them), shows where the count is, and
# restarts with loop.reset().
BEFORE = """
import struct
from m2m import hal, loop
from m2m.sense.pulse import Pulses
p = Pulses(%(pin)d, debounce_ms=0)
print('ready', p._pc is not None, p._hook is not None, p.count)
t = hal.ticks_ms()
while p._pc.value() < %(n)d and hal.ticks_diff(hal.ticks_ms(), t) < 10000:
    hal.sleep_ms(20)
hal.sleep_ms(100)
print('pcnt', p._pc.value(), 'count', p.count, 'rtc', struct.unpack_from('<I', hal.RTC().memory(), 2)[0])
loop.reset()
"""

AFTER = """
from m2m.sense.pulse import Pulses
print('count', Pulses(%(pin)d, debounce_ms=0).count)
"""


def test_loop_reset_keeps_the_pulses_only_the_pcnt_held(tmp_path):
    with BusSim() as bus:
        bus.set_pin(PIN, 1)
        with VirtualDevice(flash=tmp_path / "flash.img", micropython="1.26.0",
                           env={"M2M_BUS": bus.address_str}) as d:
            d.wait_boot()
            seen = len(d.events)
            p = subprocess.Popen([str(BIN / "mpremote"), "connect", d.port, "exec", BEFORE % {"pin": PIN, "n": N}],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                first = p.stdout.readline()
                assert first.split() == ["ready", "True", "True", "0"], first + p.communicate(timeout=30)[0]
                time.sleep(0.05)
                bus.set_pin(PIN, *(0, 1) * N, spacing_us=100)  # N pulses at 5 kHz
                line = p.stdout.readline()
                deadline = time.monotonic() + 20
                while ("reset", {"cause": "hard"}) not in d.events[seen:]:
                    assert time.monotonic() < deadline, (line, d.events[seen:])
                    time.sleep(0.05)
            finally:
                if p.poll() is None:
                    p.kill()
                p.communicate()
            # all N in the chip's counter, none yet in count or RTC memory: a plain reset loses them
            assert line.split() == ["pcnt", str(N), "count", "0", "rtc", "0"], line
            out = subprocess.run([str(BIN / "mpremote"), "connect", d.port, "exec", AFTER % {"pin": PIN}],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stdout + out.stderr
            assert out.stdout.split() == ["count", str(N)], out.stdout


# The MQTT /cmd "reboot" path: the Reporter (umqtt.simple over the simulated SIM7080G's sockets) answers
# the command, closes its connection and restarts. The pulses are made to come in the one window no
# hook runs in: after the connection's close (its AT waits may idle()), right before the restart; the
# device waits for them with the unix port's own sleep (no idle()). On the port stand-in machine.reset()
# leaves a reset request in M2M_STATE_DIR and waits to be ended (as a chip restarts); RTC memory is
# kept there for the next process.
SCALE = 20
REPORTER = """
import json, os, utime
from m2m import hal, loop, config, outbox, modem
from m2m.at import AT
from m2m.net import sock
from m2m.net.network import Network
from m2m.report import mqtt
from m2m.sense.pulse import Pulses
import m2m.net
D = os.getenv("DIR")
cfg = config.validate({"device": {"id": "dev-1"}, "net": {"apn": "internet"},
                       "mqtt": {"broker": os.getenv("BROKER"), "keepalive": 60}})
at = AT(loop.Guarded(hal.UART(1, 115200)), timeout_ms=3000)
m = modem.create(at, {"model": "sim7080g"})
net = Network(m, cfg, state_dir=D + "/")
st = sock.Stack(m, kind="tcp", timeout_ms=8000, on_fail=m2m.net.link_failed)
rep = mqtt.Reporter(st, outbox.Outbox(D + "/outbox"), cfg, "dev-1", up=net.attached, config_path=D + "/config.json")
p = Pulses(%(pin)d, debounce_ms=0, path=D + "/pulses.dat")
_close = mqtt.Client.close


def close(self, clean=False):
    _close(self, clean)
    if rep.answered:  # the reboot's close: the restart comes next
        print(json.dumps({"closed": True}))
        t = utime.ticks_ms()
        while p._pc.value() < %(n)d and utime.ticks_diff(utime.ticks_ms(), t) < 10000:
            utime.sleep_ms(10)
        utime.sleep_ms(50)
        print(json.dumps({"pcnt": p._pc.value(), "count": p.count}))


mqtt.Client.close = close
print(json.dumps({"hook": p._hook is not None, "pcnt": p._pc is not None}))
loop.run([net, rep], until=rep.client.connected, max_ms=600000)
print(json.dumps({"listening": rep.client.connected()}))
loop.run([net, rep], max_ms=600000)
print(json.dumps({"no restart": True}))
"""


def _lines(proc, until, timeout, seen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("{"):
            d = json.loads(line)
            if until(d):
                return d
    raise AssertionError("device did not get there:\n" + "".join(seen[-40:]))


def test_the_mqtt_reboot_command_keeps_the_pulses_only_the_pcnt_held(broker, subscriber, tmp_path):
    res = subscriber("m2mkit/dev-1/cmd/res")
    with BusSim() as bus, ModemSim(model="sim7080g", time_scale=SCALE) as sim:
        bus.set_pin(PIN, 1)
        env = mpy_env({"M2M_MODEM": "%s:%d" % tuple(sim.uart_address),
                       "M2M_GPIO": "%s:%d" % tuple(sim.control_address), "M2M_BUS": bus.address_str,
                       "M2M_STATE_DIR": str(tmp_path), "M2M_MICROPYTHON": "1.26.0",
                       "M2M_TIME_SCALE": str(SCALE), "BROKER": broker.url, "DIR": str(tmp_path)})
        dev = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c",
                                _prelude() + REPORTER % {"pin": PIN, "n": N}],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        seen = []
        try:
            assert _lines(dev, lambda d: "hook" in d, 30, seen) == {"hook": True, "pcnt": True}
            assert _lines(dev, lambda d: "listening" in d, 60, seen)["listening"]
            res.publish("m2mkit/dev-1/cmd", b'{"id": "r1", "cmd": "reboot"}')
            _lines(dev, lambda d: "closed" in d, 30, seen)
            bus.set_pin(PIN, *(0, 1) * N, spacing_us=100)
            held = _lines(dev, lambda d: "pcnt" in d, 30, seen)
            deadline = time.monotonic() + 20
            while not (tmp_path / T.RESET).exists():  # machine.reset() asked for the restart
                assert dev.poll() is None and time.monotonic() < deadline, "".join(seen) + dev.communicate()[0]
                time.sleep(0.02)
        finally:
            dev.kill()
            dev.communicate()
    assert held == {"pcnt": N, "count": 0}, held  # in the chip's counter only
    replies = [json.loads(m[1]) for m in res.wait(1, timeout=10)]
    assert replies and replies[0]["id"] == "r1" and replies[0]["ok"] is True, replies
    (tmp_path / T.RESET).unlink()
    assert next_boot_count(tmp_path) == N


def next_boot_count(state):
    # the next boot (RTC memory kept in M2M_STATE_DIR): the same counter again
    with BusSim() as bus:
        after = subprocess.run([micropython(), "-X", "heapsize=512K", "-c", _prelude() + AFTER % {"pin": PIN}],
                               capture_output=True, text=True, timeout=60,
                               env=mpy_env({"M2M_BUS": bus.address_str, "M2M_STATE_DIR": str(state),
                                            "M2M_MICROPYTHON": "1.26.0", "M2M_RESET_CAUSE": str(T.HARD_RESET)}))
    assert after.returncode == 0, after.stdout + after.stderr
    words = after.stdout.split()
    assert words[0] == "count", after.stdout
    return int(words[1])


# The LwM2M Reboot (/3/0/4, OMA LwM2M 1.1 Device object 3.xml, resource 4, Execute): a CoAP Execute
# reaches the client's Endpoint over a stand-in transport (its modem socket), is answered, and the
# client's next step runs the reboot's after-action. The pulses come while nothing idles.
LWM2M = """
import json, os, utime
from m2m import coap, loop
from m2m.lwm2m.client import NAMES, Client
from m2m.sense.pulse import Pulses
D = os.getenv("DIR")


class Link:
    tx_bytes = rx_bytes = 0

    def __init__(self):
        self.sent = []

    def send(self, b):
        self.sent.append(coap.decode(bytes(b)))

    def recv(self):
        return None

    def close(self):
        pass


p = Pulses(%(pin)d, debounce_ms=0, path=D + "/pulses.dat")
c = Client({"device": {"id": "u"}, "lwm2m": {"server": "coap://127.0.0.1:9"}})
c._open = lambda bootstrap: None
c.tr = tr = Link()
c.ep = coap.Endpoint(tr, c._handle)
c.state = NAMES.index("registered")
c.loc = ["rd", "7"]
c.reg = (c._lifetime(), c._binding())
c.due = 10 ** 9
print(json.dumps({"hook": p._hook is not None, "pcnt": p._pc is not None}))
t = utime.ticks_ms()
while p._pc.value() < %(n)d and utime.ticks_diff(utime.ticks_ms(), t) < 10000:
    utime.sleep_ms(10)
utime.sleep_ms(50)
print(json.dumps({"pcnt": p._pc.value(), "count": p.count}))
ex = coap.Msg(coap.CON, coap.POST, 0x4711, b"\\x05").add(coap.URI_PATH, "3").add(coap.URI_PATH, "0").add(coap.URI_PATH, "4")
c.ep.datagram(coap.encode(ex))
print(json.dumps({"answer": [m.code for m in tr.sent if m.mid == 0x4711]}))
c.step()  # the Execute's after-action: the restart
print(json.dumps({"no restart": True}))
"""


def test_the_lwm2m_reboot_execute_keeps_the_pulses_only_the_pcnt_held(tmp_path):
    with BusSim() as bus:
        bus.set_pin(PIN, 1)
        env = mpy_env({"M2M_BUS": bus.address_str, "M2M_STATE_DIR": str(tmp_path), "M2M_MICROPYTHON": "1.26.0",
                       "DIR": str(tmp_path)})
        dev = subprocess.Popen([micropython(), "-X", "heapsize=512K", "-c", _prelude() + LWM2M % {"pin": PIN, "n": N}],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        seen = []
        try:
            assert _lines(dev, lambda d: "hook" in d, 30, seen) == {"hook": True, "pcnt": True}
            time.sleep(0.05)
            bus.set_pin(PIN, *(0, 1) * N, spacing_us=100)
            held = _lines(dev, lambda d: "pcnt" in d, 30, seen)
            answer = _lines(dev, lambda d: "answer" in d, 30, seen)
            deadline = time.monotonic() + 20
            while not (tmp_path / T.RESET).exists():
                assert dev.poll() is None and time.monotonic() < deadline, "".join(seen) + dev.communicate()[0]
                time.sleep(0.02)
        finally:
            dev.kill()
            dev.communicate()
    assert held == {"pcnt": N, "count": 0}, held
    assert answer == {"answer": [0x44]}, answer  # 2.04 Changed
    (tmp_path / T.RESET).unlink()
    assert next_boot_count(tmp_path) == N

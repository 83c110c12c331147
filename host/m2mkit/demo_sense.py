"""The sensing half of `m2mkit demo`: the virtual device boots a flash image that holds a /config.json
with `device.autorun`, so its own main.py starts the supervisor (sensors, network, MQTT) with no
command typed; a BME280 and an SHT4x sit on the board's simulated I2C bus and follow a slowly varying
environment (m2mkit.sim.environment: a 10-minute "day"), and a hot spell in the duct alone raises
the SHT4x's temperature alarm and clears it again (the room's BME280 does not feel it). What
arrives is shown as a subscriber sees it (demo_report.Reporting), beside the device's console
(demo._Console)."""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from . import boards, demo, image
from .demo_report import Reporting, pick_board
from .sim.environment import Environment
from .sim.sensors import BME280, SHT4x
from .vdev.device import VirtualDevice, pmu_of

DAY_S = 600  # the environment's "day", in seconds
ALARM_C = 30  # the SHT4x's temperature alarm (hysteresis 1 degC)
HOT_SPELL = (10, 20, 16.0)  # start, length (s after power-on), degrees added at its peak
INTERVAL_S = 5


def config(broker_url):
    return {"device": {"autorun": True},
            "mqtt": {"broker": broker_url, "keepalive": 60},
            "sense": {"battery": True, "interval_s": INTERVAL_S, "deadband": 0.05, "max_interval_s": 60,
                      "sensors": [{"type": "bme280", "id": "room"},
                                  {"type": "sht4x", "id": "duct",
                                   "alarms": [{"q": "temperature", "above": ALARM_C, "hyst": 1}]}]}}


class _Room(Environment):
    """The room's air (the BME280 follows it) with the duct in it: the SHT4x reads the same day plus
    the hot spell (HOT_SPELL), which is the duct's alone. Both are set at each apply, at one instant."""

    def __init__(self, bme, sht):
        super().__init__(day_s=DAY_S, seed=1)
        self.bme280(bme)
        self.duct = Environment(day_s=DAY_S, seed=1)  # the same seed: the same day and walk
        self.duct.sht4x(sht)
        self.duct.excursion("temperature", *HOT_SPELL)

    def apply(self, t_s):
        self.duct.apply(t_s)
        return super().apply(t_s)


def environment(bme, sht):
    """The demo's environment: `bme` (the room) and `sht` (the duct) on one 10-minute day, the hot
    spell in the duct only (the banner's words); env.apply(t) / env.start() as any Environment."""
    return _Room(bme, sht)


def run(board=None, seconds=0.0, modem=None, broker=None):
    """`m2mkit demo`: the device's main.py reports the environment's readings to a Mosquitto started
    here (or `broker`); Ctrl-C (or `seconds`) stops all of it and removes what it made."""
    demo._sigterm_interrupts()
    # a PSRAM board unless asked: on the DevKitC's heap the network's bring-up runs out of memory now
    # and then (issue #9's heap goal; the supervisor restarts it, and the demo shows it as app.crash)
    board = pick_board(board, modem) or "lilygo-t-sim7000g"
    b = boards.load(board) if isinstance(board, str) else board

    def write(text):
        # \r first: in the interactive console the terminal is in raw mode
        sys.stdout.write("\r\x1b[36m" + text + "\x1b[0m\r\n" if sys.stdout.isatty() else text + "\n")
        sys.stdout.flush()

    rep = Reporting(broker, write=write)
    tmp = Path(tempfile.mkdtemp(prefix="m2mkit-demo-"))
    made = []  # things to stop, last first
    try:
        rep.start()
        write(f"broker> subscribed to {rep.prefix}/# on {rep.url}"
              + ("" if broker else " (a Mosquitto of the demo's own, gone at exit)"))
        flash = tmp / "flash.img"
        flash.write_bytes(image.build(b, extra={"/config.json": json.dumps(config(rep.url)).encode()}))
        env_vars = {}
        bus = None
        if not pmu_of(b):  # a PMU board's device brings the bus its PMU sits on: sensors join it
            from .sim.bus import BusSim

            bus = BusSim().start()
            made.append(bus.stop)
            env_vars["M2M_BUS"] = bus.address_str
        dev = VirtualDevice(b, flash=flash, modem=True, env=env_vars)
        made.append(dev.stop)
        bus = bus or dev.bus
        i2c = (b.get("i2c") or {}).get("id", 0)
        bus.i2c[(i2c, 0x76)] = bme = BME280()
        bus.i2c[(i2c, 0x44)] = sht = SHT4x()
        env = environment(bme, sht)
        if b.get("battery_adc"):
            env.adc(bus, b["battery_adc"]["pin"], divider=b["battery_adc"].get("divider", 1.0))
        _demo(dev, b, env, seconds, made, rep)
    except KeyboardInterrupt:
        pass
    finally:
        for stop in reversed(made):
            try:
                stop()
            except Exception:
                pass
        rep.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _demo(dev, b, env, seconds, made, rep):
    con = Console()
    port = dev.start(power=False)  # open the console first, so the boot output is seen
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    start, length, delta = HOT_SPELL
    con.print(Panel.fit(
        f"virtual [bold]{b['title']}[/] on [bold]{port}[/]: its own main.py starts the supervisor "
        f"(/config.json: device.autorun)\nBME280 'room' and SHT4x 'duct' on its I2C bus follow a "
        f"{DAY_S // 60}-minute day; a hot spell in the duct (the room does not feel it) from {start} s "
        f"to {start + length} s raises the duct's alarm above {ALARM_C} degC\n"
        f"in another terminal: [cyan]mpremote connect {port} repl[/] "
        f"(Ctrl-C there stops the supervisor and leaves the REPL)", title="m2mkit demo"))
    if not b.get("i2c"):
        con.print(f"[yellow]{b['name']}'s board file names no I2C bus: the sensors show as sensor.fault "
                  f"missing (the network and the events still report)[/]")
    c = demo._Console(port, con)
    dev.power_on()
    env.start()
    made.append(env.stop)
    end = time.monotonic() + seconds if seconds else None
    if interactive:
        con.print("[green]this terminal is now the device's console; Ctrl-C ends the demo[/]", highlight=False)
        saved = demo.COMMAND_RETURNS, demo.CTRL_C_ENDS
        demo.COMMAND_RETURNS, demo.CTRL_C_ENDS = False, True
        try:
            c.terminal(end)
        finally:
            demo.COMMAND_RETURNS, demo.CTRL_C_ENDS = saved
        return
    con.print(f"[green]the device's console is {port}[/]; "
              + ("Ctrl-C here stops the demo" if not seconds else f"stopping in {seconds:g} s"))
    while end is None or time.monotonic() < end:
        c.show_until(b"\x00", 0.5)

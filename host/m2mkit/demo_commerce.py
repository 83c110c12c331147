"""`m2mkit demo --commerce`: the reporting demo plus replenishment. The virtual device runs the
supervisor, which reads an ink tank's level from a Modbus RTU level transmitter (pymodbus,
m2mkit.sim.modbus) whose level drains; below 15 % its m2m.orders rule orders ink; `m2mkit commerce serve` (in this process) forwards the order
to a supplier endpoint (a local HTTP server) and sends the confirmation back to the device."""

import tempfile
import threading
from pathlib import Path

from . import boards
from .commerce import Service
from .commerce_supplier import Supplier
from .demo_report import Reporting, pick_board
from .sim.modbus import ModbusServer

# what the demo types at the device's REPL: the supervisor (what main.py runs with device.autorun)
# on a config with the ink tank's level transmitter (Modbus unit 1 on a UART the modem does not use,
# wired to GPIO 32/33, free on the ESP32 boards) and the order rule; the network and the MQTT reporter
# come with mqtt.broker, m2m.orders with orders.rules
def device_config(broker, uart):
    return {"mqtt": {"broker": broker},
            "sense": {"battery": False, "sensors": [
                {"type": "modbus", "id": "ink", "uart": {"id": uart, "tx": 32, "rx": 33}, "unit": 1,
                 "interval_s": 2, "regs": [{"name": "level", "fc": 3, "addr": 0, "scale": 0.1, "unit": "%"}]}]},
            "orders": {"rules": [{"item": "ink-black", "reading": "ink.level", "below": 15, "rearm": 50, "qty": 1}],
                       "check_s": 2, "repeat_s": 30}}


def device_command(broker, uart):
    return ("from m2m import config, supervisor; supervisor.main(config.validate(%r))\r"
            % (device_config(broker, uart),)).encode()


class Tank:
    """The ink tank behind a Modbus level transmitter (holding register 0, 0.1 % steps), draining."""

    def __init__(self, start=24.0, per_s=2.0):
        self.level = start
        self.per_s = per_s
        self.srv = ModbusServer({1: {"holding": [int(start * 10)]}}).start()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self):
        while not self._stop.wait(1.0):
            if not self.srv.requests:
                continue  # it drains once the device reads it
            self.level = max(0.0, self.level - self.per_s)
            self.srv.set(1, "holding", 0, [int(round(self.level * 10))])

    def stop(self):
        self._stop.set()
        self._t.join(2)
        self.srv.stop()


def run(board=None, seconds=0.0, modem=None, broker=None, start=24.0, per_s=2.0):
    from . import demo

    # the whole stack (network, sampler, reporter, orders) runs on a board with PSRAM: on the DevKitC's
    # heap the reporter runs short of memory now and then (issue 9's heap goal is still open)
    board = pick_board(board, modem) or "lilygo-t-sim7000g"
    b = boards.load(board) if isinstance(board, str) else board
    uart = 1 if (b["modem"].get("uart") or {}).get("id") != 1 else 2  # a UART the modem does not use

    def write(text):
        import sys

        sys.stdout.write("\r\x1b[36m" + text + "\x1b[0m\r\n" if sys.stdout.isatty() else text + "\n")
        sys.stdout.flush()

    rep = Reporting(broker, write=write)
    tmp = Path(tempfile.mkdtemp(prefix="m2mkit-commerce-"))
    parts = []
    try:
        rep.start()
        write(f"broker> subscribed to {rep.prefix}/# on {rep.url}")
        sup = Supplier(on_post=lambda key, body: write(
            f"supplier> new order {body['order']}: {body['qty']} x {body['item']} ({body['reason']}), "
            f"Idempotency-Key {key}"))
        parts.append(sup.close)
        tank = Tank(start, per_s)
        parts.append(tank.stop)
        write(f"tank> ink at {start:g} %, draining {per_s:g} % a second (Modbus unit 1 on UART {uart})")
        svc = Service(rep.url, str(tmp / "commerce.db"), sup.url, log=lambda t: write(t),
                      client_id="m2mkit-commerce-demo").start()
        th = threading.Thread(target=svc.run, daemon=True)
        th.start()
        parts.append(svc.stop)
        demo.MODEM_CHECK = device_command(rep.url, uart)
        demo.COMMAND_RETURNS = False
        demo.CTRL_C_ENDS = True
        demo.DEVICE_ENV = {f"M2M_UART{uart}": tank.srv.address_str}
        demo.run(board, seconds)
    finally:
        for stop in reversed(parts):
            try:
                stop()
            except Exception:
                pass
        rep.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

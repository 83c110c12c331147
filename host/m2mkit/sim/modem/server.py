"""ModemSim: runs one simulated modem on a background asyncio loop and serves its UART and its
control channel on loopback TCP.

UART port: one TCP connection is the serial wire (bytes only, no framing). A second connection
replaces the first, like re-opening a serial port.

Control port: JSON lines. Each request ``{"op": ..., ...}`` gets one reply line
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. The firmware's hal.Pin lines
``{"op": "pin", "pin": N, "value": 0|1}`` are accepted on the same port (point M2M_GPIO at it).
Ops: status, set_registration, timeline, signal, fault, sim, counters, power, pin, uart (the host's
UART settings: the modem answers nothing until RTS is configured when require_flow is set), supply
(the modem's supply rail and level shifter in mV, when its supply is modelled), mcu_reset (the host
MCU reset or went into deep sleep: its unheld pins in pin_float fall to their float level).
"""

import asyncio
import json
import threading
import time
import zlib

from .card import swap as swap_card
from .core import REG_STATES, Card, Clock, make_iccid, make_imei
from .quectel import BG95, BG96
from .sequans import GM02S
from .simcom import SIM7000G, SIM7080G

MODELS = {cls.MODEL: cls for cls in (SIM7080G, SIM7000G, BG95, BG96, GM02S)}

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Recorder:
    """Writes the session in the .atlog transcript format of docs/CONTRACTS.md."""

    def __init__(self, path, model, scale):
        self.f = open(path, "w", encoding="utf-8")
        self.t0 = time.monotonic()
        header = {"m2mkit_transcript": 1, "model": model, "source": "m2mkit modem simulator",
                  "notes": "simulated modem, time scale %g (t is real ms)" % scale}
        self.f.write(json.dumps(header) + "\n")
        self.f.flush()

    def chunk(self, direction, data):
        t = round((time.monotonic() - self.t0) * 1000.0, 3)
        self.f.write(json.dumps({"t": t, "d": direction, "b": data.decode("latin-1")}) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


class SimulatorBug(AssertionError):
    """The simulator itself went wrong (a handler or task raised): its stop() raises this."""


class ModemSim:
    """A simulated modem. See the package docstring for what it does not model."""

    def __init__(self, model="bg95", time_scale=1.0, pin=None, puk="12345678", imei=None, iccid=None,
                 imsi=None, timeline=None, power_on=True, pwrkey_pin=None, record=None,
                 pwrkey_active=None, seed=None, signal=None, operators=None, supply_mv=None,
                 uart_mv=None, require_flow=False, uart_pins=None, pin_float=None, status_pin=None):
        if model not in MODELS:
            raise ValueError("unknown modem model %r: use one of %s" % (model, ", ".join(sorted(MODELS))))
        if pin is not None and not (str(pin).isdigit() and 4 <= len(str(pin)) <= 8):
            raise ValueError("a SIM PIN is 4 to 8 digits")
        self.model = model
        self.cls = MODELS[model]
        self.time_scale = float(time_scale)
        self.clock = Clock(self.time_scale)
        imsi = imsi or ("00101" + "%010d" % (zlib.crc32(model.encode()) % 10 ** 10))
        self.card = Card(None if pin is None else str(pin), str(puk), iccid or make_iccid(imsi), imsi)
        self.imei = imei or make_imei(self.cls.TAC_BASE, model)
        self._timeline = timeline
        self._power_on = power_on
        self._pwrkey_pin = pwrkey_pin
        self._pwrkey_active = pwrkey_active
        self.status_pin = status_pin  # the MCU input the modem's STATUS output drives (op pin_read)
        self._seed = seed
        self._signal = signal
        self._operators = operators
        self._record = record
        # wiring (core.Modem.set_supply / uart_config): None = a supply / UART that is always there
        self._wiring = dict(supply_mv=supply_mv, uart_mv=uart_mv, require_flow=require_flow,
                            uart_pins=uart_pins, pin_float=pin_float)
        self.modem = None
        self.loop = None
        self.thread = None
        self.uart_address = None
        self.control_address = None
        self._uart_writer = None
        self._servers = []
        self._recorder = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self, host="127.0.0.1", port=0, control_port=0):
        if host not in LOOPBACK:
            raise ValueError("the simulator listens on loopback only (127.0.0.1), not %r" % host)
        ready = threading.Event()
        err = []

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._start(host, port, control_port))
            except Exception as e:  # report to the caller, after a quiet shutdown of what did start
                err.append(e)
                self._close_loop()
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self._shutdown())
            self.loop.close()

        self.thread = threading.Thread(target=run, name="modem-sim-%s" % self.model, daemon=True)
        self.thread.start()
        ready.wait(10)
        if err:
            raise err[0]
        return self

    async def _start(self, host, port, control_port):
        self.modem = self.cls(self.clock, self.card, self.imei, operators=self._operators,
                              timeline=self._timeline, pwrkey_pin=self._pwrkey_pin,
                              pwrkey_active=self._pwrkey_active, seed=self._seed, signal=self._signal,
                              **self._wiring)
        self.modem.start_io()
        self.modem.uart_write = self._uart_out
        if self._record:
            self._recorder = Recorder(self._record, self.model, self.time_scale)
            self.modem.recorder = self._recorder
        us = await asyncio.start_server(self._uart_client, host, port)
        self._servers = [us]
        cs = await asyncio.start_server(self._control_client, host, control_port)
        self._servers.append(cs)
        self.uart_address = us.sockets[0].getsockname()[:2]
        self.control_address = cs.sockets[0].getsockname()[:2]
        if self._power_on:
            self.modem.power_on()

    async def _shutdown(self):
        for s in self._servers:
            s.close()
        if self.modem is not None:
            self.modem.power_off()
            self.modem._writer_task.cancel()
        if self._uart_writer is not None:
            self._uart_writer.close()
        if self._recorder is not None:
            self._recorder.close()
        for t in asyncio.all_tasks(self.loop):
            if t is not asyncio.current_task():
                t.cancel()

    def _close_loop(self):
        # cancel and await every task before closing the loop: no "Task was destroyed" or
        # "Event loop is closed" noise after an error such as a busy port
        self.loop.run_until_complete(self._shutdown())
        tasks = asyncio.all_tasks(self.loop)
        if tasks:
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    def stop(self, check=True):
        """Stop serving. Raises SimulatorBug if the simulator hit an internal error while it ran
        (check=False only stops)."""
        if self.loop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        errors = self.modem.internal_errors if self.modem is not None else []
        if check and errors:
            found = list(errors)
            errors.clear()
            raise SimulatorBug("the modem simulator failed inside (not the firmware):\n" + "\n".join(found))

    def __enter__(self):
        return self if self.loop else self.start()

    def __exit__(self, exc_type, *exc):
        self.stop(check=exc_type is None)  # an exception already in flight says more

    # ---- UART ------------------------------------------------------------------------------------
    def _uart_out(self, data):
        w = self._uart_writer
        if w is not None and not w.is_closing():
            w.write(data)

    async def _uart_client(self, reader, writer):
        old = self._uart_writer
        self._uart_writer = writer
        if old is not None:
            old.close()
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                if self._uart_writer is writer:
                    self.modem.feed(data)
        except (ConnectionError, OSError):
            pass
        finally:
            if self._uart_writer is writer:
                self._uart_writer = None
            writer.close()

    # ---- control channel ---------------------------------------------------------------------------
    async def _control_client(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    try:
                        req = json.loads(line)
                    except ValueError:
                        req = None
                    if not isinstance(req, dict) or "op" not in req:
                        raise ValueError('a request is one JSON object per line, like {"op": "status"}; '
                                         "operations: %s" % ", ".join(self.OPS))
                    reply = await self.handle(req)
                except Exception as e:  # every error goes back to the caller
                    reply = {"ok": False, "error": str(e)}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    OPS = ("status", "set_registration", "timeline", "signal", "fault", "sim", "counters", "power", "pin",
           "pin_read", "uart", "supply", "mcu_reset", "euicc")

    async def handle(self, req):
        """One control request (runs on the simulator's loop)."""
        op = req.get("op")
        m = self.modem
        kw = {k: v for k, v in req.items() if k != "op"}
        if op == "status":
            return dict(ok=True, **m.status())
        if op == "set_registration":
            state = kw.pop("state", None)
            if state not in REG_STATES:
                raise ValueError("set_registration needs state: one of %s" % ", ".join(REG_STATES))
            m.set_registration(state, **kw)
            return {"ok": True, "stat": m.stat}
        if op == "timeline":
            tl = kw.get("timeline")
            if not isinstance(tl, list):
                raise ValueError('timeline needs "timeline": [[seconds, state, {extra}], ...]')
            self._set_timeline(tl, kw.get("restart", True))
            return {"ok": True}
        if op == "signal":
            bad = [k for k in kw if k not in ("rssi", "rsrp", "rsrq", "sinr", "ber")]
            if bad:
                raise ValueError("unknown signal field(s) %s: use rssi, rsrp, rsrq, sinr, ber" % bad)
            m.signal.update(kw)
            return {"ok": True, "signal": dict(m.signal)}
        if op == "fault":
            kind = kw.pop("kind", None)
            if not kind:
                raise ValueError('fault needs "kind", e.g. {"op": "fault", "kind": "garble", "probability": 0.1}')
            m.fault(kind, **kw)
            return {"ok": True}
        if op == "sim":
            action = kw.get("action")
            if action == "remove":
                m.sim_remove()
            elif action == "insert":
                m.sim_insert()
            elif action == "swap":  # another card: {"iccid", "imsi", "pin", "puk", "msisdn"}, all optional
                swap_card(self, **{k: kw[k] for k in ("iccid", "imsi", "pin", "puk", "msisdn") if k in kw})
            elif action == "set_pin":
                pin = kw.get("pin")
                if pin is None:
                    self.card.pin_enabled = False
                else:
                    self.card.pin, self.card.pin_enabled = str(pin), True
                if "puk" in kw:
                    self.card.puk = str(kw["puk"])
            else:
                raise ValueError('sim needs "action": insert, remove, swap or set_pin')
            c = self.card
            return {"ok": True, "sim": m.sim_state, "present": c.present, "iccid": c.iccid, "imsi": c.imsi,
                    "pin_left": c.pin_left, "puk_left": c.puk_left}
        if op == "udp_loss":  # seeded loss of UDP datagrams both ways (udploss.py)
            from .udploss import control as udp_loss
            return udp_loss(m, kw)
        if op == "euicc":  # the eUICC behind the SIM (euicc.py): install, enable, delete, network, ...
            from .euicc import control
            return control(m, kw)
        if op == "counters":
            return {"ok": True, "sockets": m.counters()}
        if op == "power":
            state = kw.get("state")
            if state == "on":
                m.power_on()
            elif state == "off":
                m.power_off()
            else:
                raise ValueError('power needs "state": "on" or "off"')
            return {"ok": True, "power": m.power}
        if op == "pin":
            if "pin" not in kw or "value" not in kw:
                raise ValueError('pin needs "pin" and "value"')
            m.pin_event(int(kw["pin"]), int(kw["value"]), bool(kw.get("hold")))  # hold: kept through resets
            return {"ok": True, "power": m.power}
        if op == "pin_read":  # the host reads an input: the modem's STATUS output, where it is wired
            if self.status_pin is None or int(kw.get("pin", -1)) != int(self.status_pin):
                raise ValueError("pin %s is not wired to this modem's STATUS output (status_pin %s)"
                                 % (kw.get("pin"), self.status_pin))
            return {"ok": True, "value": m.status_level()}
        if op == "mcu_reset":  # the host MCU reset or went into deep sleep: unheld pins float
            m.mcu_reset()
            return {"ok": True, "power": m.power}
        if op == "uart":  # the host's UART settings, from its machine.UART stand-in
            mine = m.uart_config(kw)
            return {"ok": True, "modem_uart": mine, "tx_open": m.uart_tx_open()}
        if op == "supply":
            if "mv" not in kw and "uart_mv" not in kw:
                raise ValueError('supply needs "mv" (the modem supply rail) and/or "uart_mv" (its level shifter)')
            m.set_supply(kw.get("mv"), kw.get("uart_mv"))
            return {"ok": True, "power": m.power, "supply_ok": m.supply_ok(), "tx_open": m.uart_tx_open()}
        raise ValueError("unknown op %r: use one of %s" % (op, ", ".join(self.OPS)))

    def _set_timeline(self, tl, restart=True):
        m = self.modem
        entries = []
        for e in tl:
            if not (isinstance(e, (list, tuple)) and len(e) in (2, 3)) or e[1] not in REG_STATES:
                raise ValueError("timeline entry %r: use [seconds, state, {extra}] with a state in %s"
                                 % (e, ", ".join(REG_STATES)))
            entries.append((float(e[0]), e[1], dict(e[2]) if len(e) == 3 and e[2] else {}))
        m.timeline = entries
        if restart and m.power == "on" and m.cfun == 1:
            if m._reg_task is not None:
                m._reg_task.cancel()
            m._reg_task = None
            m.maybe_start_registration()

    # ---- Python API (thread-safe; runs each call on the simulator's loop) -----------------------------
    def _call(self, fn, *args, **kw):
        async def run():
            r = fn(*args, **kw)
            if asyncio.iscoroutine(r):
                r = await r
            return r
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def request(self, req):
        """Run one control-channel request dict and return its reply dict (never raises)."""
        async def run():
            try:
                return await self.handle(req)
            except Exception as e:
                return {"ok": False, "error": str(e)}
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def fault(self, kind, **kw):
        self._call(self.modem.fault, kind, **kw)

    def set_registration(self, state, **extra):
        self._call(self.modem.set_registration, state, **extra)

    def set_timeline(self, timeline, restart=True):
        self._call(self._set_timeline, timeline, restart)

    def set_signal(self, **kw):
        self._call(self.modem.signal.update, kw)

    def sim_remove(self):
        self._call(self.modem.sim_remove)

    def sim_insert(self):
        self._call(self.modem.sim_insert)

    def sim_swap(self, **card):
        """Another card (iccid, imsi, pin, puk, msisdn): read at the modem's next boot (card.py)."""
        return self._call(swap_card, self, **card)

    def power(self, on):
        self._call(self.modem.power_on if on else self.modem.power_off)

    def pin(self, pin, value):
        self._call(self.modem.pin_event, pin, value)

    def set_supply(self, mv=None, uart_mv=None):
        """Thread-safe: the modem's supply rail and level-shifter rail in mV (the PMU model calls it)."""
        if self.loop is None or not self.thread.is_alive():
            return
        self._call(self.modem.set_supply, mv, uart_mv)

    def mcu_reset(self):
        """Thread-safe: the host MCU reset or went into deep sleep (its unheld pins float)."""
        if self.loop is not None and self.thread.is_alive():
            self._call(self.modem.mcu_reset)

    def uart_config(self, **cfg):
        return self._call(self.modem.uart_config, cfg)

    def counters(self):
        return self._call(self.modem.counters)

    def status(self):
        return self._call(self.modem.status)

    def modem_time(self):
        return self.clock.now()

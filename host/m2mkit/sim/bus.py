"""The simulated I2C / 1-Wire / ADC / input-pin bus the virtual device's hal reaches at `M2M_BUS`.

Protocol: JSON lines over loopback TCP, one reply line per request.
  {"op": "i2c_scan", "bus": 0}                          -> {"addrs": [118]}
  {"op": "i2c_write", "bus": 0, "addr": 118, "data": "f7", "stop": false} -> {}
  {"op": "i2c_read", "bus": 0, "addr": 118, "n": 3}     -> {"data": "a1b2c3"}
  {"op": "ow_reset", "pin": 4} -> {"presence": true}    {"op": "ow_scan", "pin": 4} -> {"roms": [...]}
  {"op": "ow_write", "pin": 4, "data": "cc44"} -> {}    {"op": "ow_read", "pin": 4, "n": 9} -> {"data": ...}
  {"op": "adc", "pin": 35} -> {"uv": 1850000}           {"op": "pin_read", "pin": 0} -> {"value": 1}
  {"op": "pin_edges", "pins": [4]} -> {"edges": [[4, 0, t], [4, 1, t]]}  (queued level changes, in
    order; t is the instant the level changed, in microseconds of the host's CLOCK_MONOTONIC: the clock
    the unix port's time.ticks_us reads, ports/unix/unix_mphal.c mp_hal_ticks_us, and Python's
    time.monotonic_ns; the device's Pin.irq handler sees its edge's instant as an ESP32's would)
    with "run" (the interpreter's token) and "ack" (the last "seq" it received): the edges handed over
    stay until acknowledged and come again first, so an answer lost to a timeout or a Ctrl-C loses
    none: -> {"edges": [...], "seq": n}
  {"op": "pin_watch"} -> {} and from then on a line "{}" on this connection for every edge queued:
  the device waits on it beside its UART (its select.poll stand-in) to run Pin.irq handlers at once
A request the bus cannot serve answers {"err": "..."}; the hal raises OSError(ENODEV) as an ESP32 does
when nothing acknowledges.

Devices are Python objects the test (or a later sensor simulator) attaches. What it does not model:
clock stretching, bus timing and speed, arbitration, electrical faults, bit-level 1-Wire timing (the
ROM search is answered whole).
"""

import json
import socket
import socketserver
import threading
import time


class RegisterDevice:
    """An I2C device with 8-bit registers and an auto-incrementing register pointer (most sensors)."""

    def __init__(self, regs=None):
        self.regs = bytearray(256)
        for k, v in (regs or {}).items():
            self.regs[k] = v
        self.ptr = 0

    def write(self, data):
        if data:
            self.ptr = data[0]
            for b in data[1:]:
                self.regs[self.ptr] = b
                self.ptr = (self.ptr + 1) & 0xFF

    def read(self, n):
        out = bytearray()
        for _ in range(n):
            out.append(self.regs[self.ptr])
            self.ptr = (self.ptr + 1) & 0xFF
        return bytes(out)


class OneWireDevice:
    """A 1-Wire device: its 8-byte ROM and a handler that turns written bytes into bytes to read."""

    def __init__(self, rom, handler=None):
        self.rom = bytes(rom)
        self.handler = handler or (lambda written: b"")
        self.pending = b""

    def write(self, data):
        self.pending += self.handler(bytes(data))

    def read(self, n):
        out, self.pending = self.pending[:n], self.pending[n:]
        return out + b"\xff" * (n - len(out))  # an idle 1-Wire bus reads as ones


class Bus:
    def __init__(self):
        self.i2c = {}      # (bus, addr) -> device
        self.onewire = {}  # pin -> [devices]
        self.adc = {}      # pin -> microvolts
        self.pins = {}     # pin -> 0/1
        self.edges = []    # [pin, new level, CLOCK_MONOTONIC us] not yet fetched by the device's Pin.irq
        self.handed = []   # (seq, [pin, level]) fetched with "ack" and not yet acknowledged
        self.seq = 0
        self.run = None    # the interpreter that fetched them (a new one gets none of the old run's)
        self.lock = threading.Lock()
        self.log = []
        self.watchers = []  # writers of the connections that asked for pin_watch

    def handle(self, req, writer=None):
        op = req.get("op")
        if op == "pin_watch" and writer is not None:
            with self.lock:
                self.log.append(req)
                self.watchers.append(writer)
            return {}
        with self.lock:
            self.log.append(req)
            if op == "i2c_scan":
                return {"addrs": sorted(a for (b, a) in self.i2c if b == req.get("bus", 0))}
            if op in ("i2c_write", "i2c_read"):
                dev = self.i2c.get((req.get("bus", 0), req["addr"]))
                if dev is None:
                    return {"err": f"no device at I2C address {req['addr']:#04x}"}
                if op == "i2c_write":
                    dev.write(bytes.fromhex(req["data"]))
                    return {}
                return {"data": dev.read(int(req["n"])).hex()}
            if op.startswith("ow_"):
                devs = self.onewire.get(req["pin"], [])
                if op == "ow_reset":
                    for d in devs:
                        getattr(d, "bus_reset", lambda: None)()
                    return {"presence": bool(devs)}
                if op == "ow_scan":
                    return {"roms": [d.rom.hex() for d in devs]}
                if not devs:
                    return {"err": f"no 1-Wire device on pin {req['pin']}"}
                if op == "ow_write":
                    for d in devs:
                        d.write(bytes.fromhex(req["data"]))
                    return {}
                if op == "ow_read":
                    data = bytes(b"\xff" * int(req["n"]))
                    for d in devs:  # open-drain: the bus is the AND of what every device drives
                        data = bytes(x & y for x, y in zip(data, d.read(int(req["n"]))))
                    return {"data": data.hex()}
            if op == "adc":
                if req["pin"] not in self.adc:
                    return {"err": f"nothing wired to ADC pin {req['pin']}"}
                return {"uv": int(self.adc[req["pin"]])}
            if op == "pin_read":
                if req["pin"] not in self.pins:
                    return {"err": f"input pin {req['pin']} is not driven by the simulation"}
                return {"value": self.pins[req["pin"]]}
            if op == "pin_edges":
                want = set(req.get("pins", ()))
                out = [e for e in self.edges if e[0] in want]
                self.edges = [e for e in self.edges if e[0] not in want]
                if "ack" not in req:
                    return {"edges": out}
                if req.get("run") != self.run:
                    self.run, self.handed = req.get("run"), []
                self.handed = [h for h in self.handed if h[0] > req["ack"]]
                for e in out:
                    self.seq += 1
                    self.handed.append((self.seq, e))
                again = [h for h in self.handed if h[1][0] in want]
                return {"edges": [h[1] for h in again], "seq": again[-1][0] if again else req["ack"]}
        return {"err": f"unknown op {op!r}"}

    def set_pin(self, pin, value, *more, spacing_us=0):
        """Drive an input pin; a change of level is queued as an edge for the device's Pin.irq.
        Levels in `more` follow at the same instant (one timestamp), or `spacing_us` apart, the last
        one now (a pulse train narrower than the host can time: esp32.PCNT's glitch filter reads
        these); two calls are two instants, the host's time between them, whenever and however many
        at a time the device fetches them."""
        with self.lock:
            woke = False
            levels = (value,) + more
            now = time.monotonic_ns() // 1000
            t = now - spacing_us * (len(levels) - 1)
            for e in reversed(self.edges if spacing_us else ()):
                if e[0] == pin:
                    t = max(t, e[2])  # never before an edge already queued on the pin
                    break
            for value in levels:
                value = 1 if value else 0
                if self.pins.get(pin, value) != value:
                    self.edges.append([pin, value, t])
                    woke = True
                self.pins[pin] = value
                t = min(t + spacing_us, now)
            for w in list(self.watchers) if woke else ():  # wake the device waiting in select.poll
                try:
                    w.write(b"{}\n")
                except OSError:
                    self.watchers.remove(w)

    def unwatch(self, writer):
        with self.lock:
            if writer in self.watchers:
                self.watchers.remove(writer)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        try:
            for line in self.rfile:
                try:
                    reply = self.server.bus.handle(json.loads(line), self.wfile)
                except (ValueError, KeyError, TypeError) as e:
                    reply = {"err": f"malformed bus request ({e})"}
                self.wfile.write((json.dumps(reply) + "\n").encode())
        except (ConnectionResetError, BrokenPipeError):
            pass  # the device's process ended (a reset, a kill): its connection with it
        finally:
            self.server.bus.unwatch(self.wfile)


class BusSim(Bus):
    """`with BusSim() as bus: env["M2M_BUS"] = bus.address_str` — the bus served on loopback."""

    def start(self, port=0):
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.bus = self
        # serve_forever accepts once select() says a connection waits; a device process reset or killed
        # between its connect and that accept takes the connection out of the queue, and a blocking
        # accept() then waits for ever, stop()'s shutdown() with it (a CI run hung so in BusSim.stop).
        # With a timeout the accept gives up (socket.timeout is an OSError, which socketserver's
        # _handle_request_noblock ignores); accepted sockets stay blocking (socket.accept)
        self.server.socket.settimeout(1)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def address_str(self):
        host, port = self.server.server_address
        return f"{host}:{port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def connect_check(address):
    """True when something listens at host:port (used by the CLI to give a clear error)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False

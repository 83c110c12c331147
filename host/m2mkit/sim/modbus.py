"""A real Modbus RTU server for the virtual device: pymodbus (a third-party implementation, pinned in
pyproject.toml), its RTU framer served over loopback TCP ("RTU over TCP"). The device's UART whose
id is `uart_id` connects to it when the virtual device has `M2M_UART<id>=host:port` in its
environment (host/m2mkit/vdev/port/_m2m_sim.py).

    with ModbusServer({1: {"holding": [230, 0, 5], "input": [1234]}}) as srv:
        env["M2M_UART2"] = srv.address_str
        srv.set(1, "input", 0, [1240])

Units not listed stay silent (the master times out), as an absent unit on a serial line does; a
register outside a unit's blocks answers exception 2 (illegal data address). `silent = True` makes
every unit stop answering.
Not modelled: serial timing (3.5-character gaps, baud rate), broadcast, framing errors on the wire.
"""

import asyncio
import threading

from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

_FC = {"holding": 3, "input": 4}


class ModbusServer:
    def __init__(self, units, host="127.0.0.1", port=0):
        self.units = units
        self.host, self.port = host, port
        self.silent = False
        self.requests = 0

    def _device(self, uid, blocks):
        def block(name):
            regs = blocks.get(name) or []
            if not regs:
                return [SimData(0, count=1, datatype=DataType.INVALID)]
            return [SimData(0, values=list(regs), datatype=DataType.REGISTERS)]

        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        return SimDevice(uid, simdata=(bits, bits, block("holding"), block("input")))

    def _trace(self, sending, data):
        if not sending:
            self.requests += 1
            if self.silent or (data and data[0] not in self.units):
                return b""  # nobody on the line answers
        return data

    def start(self):
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        async def main():
            devs = [self._device(uid, b) for uid, b in self.units.items()]
            self.server = ModbusTcpServer(devs, framer=FramerType.RTU, address=(self.host, self.port),
                                          trace_packet=self._trace)
            await self.server.serve_forever(background=True)
            ready.set()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.create_task(main())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("the pymodbus server did not start")
        sock = self.server.transport.sockets[0] if hasattr(self.server.transport, "sockets") else None
        self.port = sock.getsockname()[1] if sock else self.port
        return self

    @property
    def address_str(self):
        return f"{self.host}:{self.port}"

    def set(self, unit, kind, addr, values):
        """Change registers ("holding" or "input") of a unit while the server runs."""
        fut = asyncio.run_coroutine_threadsafe(
            self.server.async_setValues(unit, 16 if kind == "holding" else _FC[kind], addr, list(values)),
            self.loop)
        fut.result(5)

    def stop(self):
        async def down():
            await self.server.shutdown()

        try:
            asyncio.run_coroutine_threadsafe(down(), self.loop).result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

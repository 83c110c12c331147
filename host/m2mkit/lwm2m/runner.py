"""The server on its own event loop in a thread, for synchronous callers (the operator console,
tests that drive a virtual device): `with ServerThread() as srv: srv.call("read", "dev1", "/3/0")`."""

import asyncio
import threading

from .server import Server


class ServerThread:
    def __init__(self, host="127.0.0.1", port=0, log=print, **kw):
        self.host, self.port = host, port
        self.kw = dict(kw, log=log)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lwm2m-server", daemon=True)
        self.server = None
        self.address = None

    def start(self):
        self.thread.start()
        self.server = self.run(self._make())
        return self.address

    async def _make(self):
        srv = Server(**self.kw)
        self.address = await srv.start(self.host, self.port)
        return srv

    def run(self, coro, timeout=None):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, op, *args, timeout=None, **kw):
        """server.<op>(*args, **kw) on the server's loop: read, write, execute, discover, observe,
        cancel, write_attributes, create, delete, push_firmware."""
        return self.run(getattr(self.server, op)(*args, **kw), timeout)

    def stop(self):
        if self.server is not None:
            self.run(self.server.stop(), 10)
            self.server = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

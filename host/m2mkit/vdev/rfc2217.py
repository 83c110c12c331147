"""An RFC 2217 port for the virtual device: what a DevKit's USB-serial chip is, on TCP.

A client (esptool `--port rfc2217://127.0.0.1:N`, pyserial, mpremote) talks to the device's pty
through it; its DTR / RTS lines drive EN and GPIO0 through the DevKit's auto-program circuit, so
esptool's own reset into the loader (`--before default-reset`) and its hard reset afterwards work.

The circuit (ESP32-DevKitC schematic; esptool's reset sequences in esp_pylib/serial_reset.py rely on
it: "IO0=HIGH, EN=LOW, chip in reset" is DTR released + RTS asserted, "IO0=LOW, EN=HIGH" the other
way round): two cross-coupled transistors pull EN low while RTS is asserted and DTR is not, and GPIO0
low while DTR is asserted and RTS is not; with both or neither asserted, both lines are high. The
chip samples GPIO0 when EN has risen (the EN capacitor's delay, BOOT_SAMPLE_S here): low means download
mode. The server side is esptool's EspPortManager (pyserial's rfc2217.PortManager underneath).
"""

import os
import select
import socket
import threading

BOOT_SAMPLE_S = 0.02  # EN's RC delay before the strapping pins are sampled (the DevKit's EN capacitor)


class AutoReset:
    def __init__(self, bridge):
        self.bridge = bridge
        self.dtr = False
        self.rts = False
        self._timer = None

    def en_low(self):
        return self.rts and not self.dtr

    def io0_low(self):
        return self.dtr and not self.rts

    def set(self, dtr=None, rts=None):
        was_low = self.en_low()
        if dtr is not None:
            self.dtr = bool(dtr)
        if rts is not None:
            self.rts = bool(rts)
        if was_low and not self.en_low():  # EN rises: the chip starts and samples GPIO0 shortly after
            self._timer = threading.Timer(BOOT_SAMPLE_S, self._sample)
            self._timer.daemon = True
            self._timer.start()

    def _sample(self):
        if not self.en_low():
            self.bridge.press(download=self.io0_low())


class _Lines:
    """The 'serial port' PortManager drives: line settings are kept, DTR / RTS go to the circuit."""

    def __init__(self, auto):
        self._auto = auto
        self.baudrate, self.bytesize, self.parity, self.stopbits = 115200, 8, "N", 1
        self.xonxoff = self.rtscts = self.break_condition = False
        self.cts = self.dsr = self.ri = self.cd = False
        self.name = "virtual device"

    @property
    def dtr(self):
        return self._auto.dtr

    @dtr.setter
    def dtr(self, v):
        self._auto.set(dtr=v)

    @property
    def rts(self):
        return self._auto.rts

    @rts.setter
    def rts(self, v):
        self._auto.set(rts=v)

    def isOpen(self):  # esptool's ResetStrategy checks it
        return True

    def setDTR(self, v=True):  # what esptool's reset sequences call
        self.dtr = v

    def setRTS(self, v=True):
        self.rts = v

    def reset_input_buffer(self):
        pass

    def reset_output_buffer(self):
        pass


def _manager(lines, conn):
    """esptool's own RFC 2217 server logic (esp_rfc2217_server/esp_port_manager.py): DTR / RTS cannot
    cross RFC 2217 with the timing the reset needs, so the server, seeing the start of esptool's
    sequence, runs the whole sequence locally on the lines. Its POSIX choice (UnixTightReset) needs a
    tty's ioctl; these lines take the classic sequence (esptool's ClassicReset), same levels."""
    from esp_rfc2217_server.esp_port_manager import EspPortManager
    from esptool.reset import DEFAULT_RESET_DELAY, ClassicReset

    class Manager(EspPortManager):
        def _reset_thread(self):
            ClassicReset(self.serial, DEFAULT_RESET_DELAY)()

    return Manager(lines, conn, esp32r0_delay=False)


class _Conn:
    """PortManager writes through .write()."""

    def __init__(self, sock):
        self.sock = sock

    def write(self, data):
        self.sock.sendall(data)


class Rfc2217Server:
    """`Rfc2217Server(bridge, pty_path).start()`; `.url` is rfc2217://127.0.0.1:N; one client at a time."""

    def __init__(self, bridge, pty_path, host="127.0.0.1", port=0):
        self.bridge = bridge
        self.pty_path = pty_path
        self.sock = socket.create_server((host, port))
        self.url = "rfc2217://%s:%d" % self.sock.getsockname()[:2]
        self.auto = AutoReset(bridge)
        self._stop = False
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        if self._thread:
            self._thread.join(5)

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self._client(conn)
            finally:
                conn.close()

    def _client(self, conn):
        import termios
        import tty

        fd = os.open(self.pty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(fd, termios.TCSANOW)
            lines = _Lines(self.auto)
            mgr = _manager(lines, _Conn(conn))
            while not self._stop:
                ready, _, _ = select.select([conn, fd], [], [], 0.1)
                if conn in ready:
                    data = conn.recv(4096)
                    if not data:
                        return
                    payload = b"".join(mgr.filter(data))
                    while payload:
                        try:
                            payload = payload[os.write(fd, payload):]
                        except BlockingIOError:
                            select.select([], [fd], [], 0.1)
                if fd in ready:
                    try:
                        data = os.read(fd, 4096)
                    except (BlockingIOError, OSError):
                        data = b""
                    if data:
                        conn.sendall(b"".join(mgr.escape(data)))
        finally:
            os.close(fd)

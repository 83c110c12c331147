# What the stand-in's hardware is wired to on a PC (moved here from m2m/hal/unix.py):
#   M2M_MODEM       host:port  the modem simulator; machine.UART(1..) is a TCP connection to it
#   M2M_GPIO        host:port  output pins and UART settings go there as JSON lines; an input pin
#                              the bus does not drive is read there (the modem's STATUS output)
#   M2M_BUS         host:port  the simulated I2C / 1-Wire / ADC / input-pin bus (m2mkit.sim.bus)
#   M2M_STATE_DIR   dir        RTC memory and clock offset, NVS, watchdog deadline, reset requests
#                              (the virtual device hands it over as the VfsPosix `_m2m_host.state`)
#   M2M_TIME_SCALE  float      lightsleep / deepsleep / watchdog run this many times faster
#   M2M_RESET_CAUSE int        set by the bridge on each (re)start
#   M2M_UID         hex        machine.unique_id()
#   M2M_UART<id>    host:port  machine.UART(<id>) connects there instead of M2M_MODEM (e.g. a Modbus
#                              RTU server on UART 2: m2mkit.sim.modbus)
# Pin interrupts: edges the bus queues (BusSim.set_pin) are fetched and their handlers run, as the
# port's mp_sched_schedule does, when the firmware sleeps or idles (time.sleep*, machine.idle), reads
# an input pin, or waits in select.poll (the stand-in select.py: the bus wakes it for each edge
# through a pin_watch connection); each handler reads its own edge's instant (see `held`). Not
# modelled: electrical levels, a board's own handler latency and the scheduler's depth (8 pending on
# the esp32 port: ports/esp32/mpconfigport.h MICROPY_SCHEDULER_DEPTH), baud rate, PWM/DAC/touch,
# brown-outs.
import json
import uselect as select  # the unix port's own (select is the stand-in, select.py)
import socket
import sys
import uos
import utime

import _m2m_table as T

SCALE = float(uos.getenv("M2M_TIME_SCALE") or 1)
_STATE = uos.getenv("M2M_STATE_DIR")
_mem = {}  # state files of an interpreter without a state folder (plain `micropython`)

def env_addr(name):
    v = uos.getenv(name)
    if not v:
        return None
    host, _, port = v.rpartition(":")
    return socket.getaddrinfo(host, int(port))[0][-1]


def _open(name, mode):
    host = sys.modules.get("_m2m_host")  # installed by the virtual device's boot script
    if host is not None:
        # absolute: VfsPosix joins its root to absolute paths only (extmod/vfs_posix.c
        # vfs_posix_get_path_str); a relative name would land in the working directory
        return host.state.open("/" + name, mode)
    if _STATE:
        return open(_STATE + "/" + name, mode)
    return None


def load(name, default=None):
    # a state file's content (bytes), default when absent
    try:
        f = _open(name, "rb")
    except OSError:
        return default
    if f is None:
        return _mem.get(name, default)
    try:
        return f.read()
    finally:
        f.close()


def store(name, data):
    if isinstance(data, str):
        data = data.encode()
    f = _open(name, "wb")
    if f is None:
        _mem[name] = bytes(data)
        return
    f.write(data)
    f.close()


def load_int(name):
    v = load(name)
    try:
        return int(v.decode()) if v else 0
    except ValueError:
        return 0


def request_restart(name, value):
    # Under the bridge: leave the request and wait; the bridge ends this interpreter within a few ms
    # and starts a new one as the chip would restart. Alone: just exit.
    if "_m2m_host" not in sys.modules and not _STATE:
        sys.exit(0)
    # The chip does not come back from here (ports/esp32/modmachine.c: mp_machine_reset, deepsleep
    # and bootloader are MP_NORETURN, esp_restart()): a Ctrl-C must not stop the restart and leave
    # this interpreter reading input the next one should get. Without a SIGINT handler the bridge
    # sends none (bridge.py interrupt()); what comes now waits for the next interpreter.
    import micropython

    micropython.kbd_intr(-1)
    store(name, str(value))
    while True:
        utime.sleep_ms(1000)


def host_ms():
    return utime.time_ns() // 1000000


# ---- a line-oriented loopback link, shared by the GPIO and bus channels ----
class Link:
    def __init__(self, env):
        self.addr = env_addr(env)
        self.sock = None
        self.rx = b""

    def _open(self):
        if self.sock is None and self.addr:
            s = socket.socket()
            try:
                s.connect(self.addr)
            except OSError:
                s.close()
                return None
            s.settimeout(5)  # a peer that never answers must not hang the device
            self.sock = s
        return self.sock

    def send(self, obj):
        s = self._open()
        if s is None:
            return False
        try:
            s.write(json.dumps(obj) + "\n")
        except OSError:
            self.close()
            return False
        return True

    def request(self, obj):
        if not self.send(obj):
            return None
        while b"\n" not in self.rx:
            try:
                chunk = self.sock.recv(256)  # read(n) would wait for all n bytes
            except OSError:
                chunk = b""
            except BaseException:
                # Ctrl-C while the answer is on its way: it would be taken as the next request's
                # answer (every later one a step behind); a new connection starts clean
                self.close()
                raise
            if not chunk:
                self.close()
                return None
            self.rx += chunk
        line, _, self.rx = self.rx.partition(b"\n")
        return json.loads(line)

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None
        self.rx = b""


gpio = Link("M2M_GPIO")
bus = Link("M2M_BUS")


irqs = {}  # pin number -> (pin object, handler, trigger mask, ticks_us when it was registered)
counters = {}  # pin number -> esp32.PCNT units counting its edges (in "hardware": at once, see fetch)
_running = False  # a handler is running: the scheduler is locked
_missed = False  # a poll refused while it ran
_queue = []  # edges fetched whose handlers have not run (a Ctrl-C in one leaves the rest here)
# The handlers' clock: on the ESP32 each edge's interrupt comes at the edge (machine_pin_isr_handler
# schedules the handler there, ports/esp32/machine_pin.c) and mp_sched_run_pending runs the handlers
# one after the other at the next pending check (py/scheduler.c), on an idle board within microseconds.
# Here the handlers run when the stand-in fetches the edges: after the host work of the ones before,
# or much later on a loaded host whose process was not scheduled, and two pulses 150 ms apart fetched
# in one answer looked simultaneous to the debounce (one count); a time-scaled device lives that delay
# M2M_TIME_SCALE times longer. So the ticks (the stand-in's time.ticks_*) run `held` us behind while a
# handler runs: it starts at its edge's instant (the bus stamps each edge with the host's
# CLOCK_MONOTONIC, the clock of the unix port's ticks_us, ports/unix/unix_mphal.c mp_hal_ticks_us; the
# edges of one set_pin share one instant) and its own time passes as it runs; outside handlers the
# ticks are the host's. An edge queued before its handler was registered (the bus queues every change
# of level; not modelled: whether a board's GPIO would have latched it) counts as at the registration.
held = 0
_ack = 0  # the last edge received from the bus (its "seq"), acknowledged with the next fetch
_RUN = utime.time_ns() & 0xFFFFFFFF  # this interpreter, to the bus (what another run fetched is not ours)
_TMASK = utime.ticks_add(0, -1)  # MICROPY_PY_TIME_TICKS_PERIOD - 1: ticks_us is the clock & this


def poll_irqs():
    # run the handlers of the edges queued on the bus since the last poll (trigger: 1 rising, 2 falling),
    # as py/scheduler.c mp_sched_run_pending runs scheduled ones: never inside another handler (the
    # scheduler is locked while one runs; the edges stay queued for the next poll), and each through
    # mp_call_function_1_protected (py/runtime_utils.c), which prints a handler's exception and goes
    # on, so one failing handler loses none of the edges fetched with it (nor does a Ctrl-C: what it
    # interrupted waits in _queue, as in the scheduler's queue)
    # (the scheduler unlocked, what was refused inside runs: mp_sched_unlock leaves it pending)
    global _running, _missed, held
    if not irqs and not counters:
        return
    if _running:
        _missed = True
        return
    _running = True
    try:
        while True:
            _missed = False
            fetch()
            for units in list(counters.values()):  # an esp32.PCNT event's scheduled handler
                for u in units:
                    u._scheduled()
            while _queue:
                edge = _queue.pop(0)
                e = irqs.get(edge[0])
                if e is not None and e[2] & (1 if edge[1] else 2):
                    t = e[3]
                    if len(edge) > 2 and utime.ticks_diff(edge[2] & _TMASK, t) > 0:
                        t = edge[2] & _TMASK
                    held = max(0, utime.ticks_diff(utime.ticks_us(), t))
                    try:
                        e[1](e[0])
                    except Exception as x:  # Ctrl-C (KeyboardInterrupt) still reaches the firmware
                        sys.print_exception(x)
                    held = 0
            if not _missed or not irqs:
                break
    finally:
        _running = False
        held = 0


def fetch():
    # the edges queued on the bus: esp32.PCNT units count theirs at once (the chip's counter needs no
    # CPU; each edge's instant is its own, for the glitch filter), Pin.irq edges wait in _queue for
    # their handlers. The bus keeps what it handed over until acknowledged (a lost answer comes again)
    global _ack
    if not irqs and not counters:
        return
    r = bus_call("pin_edges", pins=list(irqs) + [p for p in counters if p not in irqs], run=_RUN, ack=_ack)
    if r:
        for e in r["edges"]:
            for u in counters.get(e[0], ()):
                u._edge(e)
            if e[0] in irqs or e[0] not in counters:
                _queue.append(e)
        _ack = r.get("seq", _ack)


_watch = None  # a second bus connection that gets a line for each edge queued (op pin_watch)
_wbuf = bytearray(64)


def watch():
    # the watch connection, opened at the first need; None without a bus
    global _watch
    if _watch is None and bus.addr:
        s = socket.socket()
        try:
            s.connect(bus.addr)
            s.write(b'{"op": "pin_watch"}\n')
        except OSError:
            s.close()
            return None
        s.setblocking(False)
        _watch = s
    return _watch


def watch_drain():
    # take what the watch connection has (its lines only say "an edge is queued"); a hang-up closes it
    global _watch
    while _watch is not None:
        try:
            n = _watch.readinto(_wbuf)
        except OSError:
            return
        if n is None:
            return
        if n == 0:
            _watch.close()
            _watch = None


# A wait in poll runs the Pin.irq handlers of the edges that come meanwhile, as the ESP32 port's poll
# runs scheduled handlers while it waits (see select.py): select.poll() and the UART's own wait (the
# virtual device's hal waits through UART._wait) both use this.
class Poll:
    def __init__(self):
        self._p = select.poll()
        self._w = None  # the bus's watch connection while it is registered here

    def register(self, obj, eventmask=select.POLLIN | select.POLLOUT):
        self._p.register(obj, eventmask)

    def unregister(self, obj):
        self._p.unregister(obj)

    def modify(self, obj, eventmask):
        self._p.modify(obj, eventmask)

    def _watch(self):
        w = watch() if irqs else None
        if w is not self._w:
            if self._w is not None:
                try:
                    self._p.unregister(self._w)
                except (OSError, KeyError):
                    pass
            if w is not None:
                self._p.register(w, select.POLLIN)
            self._w = w
        return w

    def poll(self, timeout=-1):
        w = self._watch()
        if w is None:
            return self._p.poll(timeout)
        start = utime.ticks_ms()
        while True:
            left = -1
            if timeout >= 0:
                left = timeout - utime.ticks_diff(utime.ticks_ms(), start)
                if left < 0:
                    left = 0
            r = self._p.poll(left)
            for e in r:
                if e[0] is w:
                    watch_drain()
                    poll_irqs()
                    r = [e for e in r if e[0] is not w]
                    w = self._watch()  # a hang-up closed it, or the last handler went
                    break
            if r or left == 0:
                return r
            if w is None:
                return self._p.poll(-1 if timeout < 0 else max(0, timeout - utime.ticks_diff(utime.ticks_ms(), start)))

    def ipoll(self, timeout=-1, flags=0):
        if flags or self._watch() is None:
            return self._p.ipoll(timeout, flags)
        return iter(self.poll(timeout))


def bus_call(op, **kw):
    # None when no bus answers (nothing attached) or the bus reports an error
    kw["op"] = op
    r = bus.request(kw)
    if r is None or r.get("err"):
        return None
    return r


# ---- the modem's serial line: a TCP connection to the simulator ----
class Wire:
    def __init__(self, env="M2M_MODEM"):
        self.addr = env_addr(env)
        self.sock = None
        self.poll = Poll()

    def connect(self):
        if self.sock is not None or self.addr is None:
            return self.sock
        s = socket.socket()
        try:
            s.connect(self.addr)
        except OSError:
            s.close()
            return None
        s.setblocking(False)
        self.sock = s
        self.poll.register(s, select.POLLIN)
        return s

    def drop(self):
        # the simulator went away: from here on it is a UART with nothing attached
        if self.sock is not None:
            self.poll.unregister(self.sock)
            self.sock.close()
            self.sock = None

    def write(self, buf):
        s = self.connect()
        if s is None:
            return len(buf)
        mv = memoryview(buf)
        off = 0
        while off < len(mv):
            try:
                n = s.write(mv[off:])
            except OSError:
                self.drop()
                return len(buf)
            if n:
                off += n
            else:
                utime.sleep_ms(1)  # the simulator is not reading: like a full UART TX FIFO
        return len(buf)

    def readinto(self, buf):
        # bytes read, 0 when none are waiting (a hang-up drops the connection)
        s = self.sock
        if s is None:
            return 0
        try:
            n = s.readinto(buf)
        except OSError:
            n = 0
        if n is None:
            return 0
        if n == 0:
            self.drop()
        return n

    def any(self):
        return 1 if self.sock is not None and self.poll.poll(0) else 0

    def wait(self, real_ms):
        # True when bytes (or a hang-up) are waiting; with nothing attached, sleep and try again
        if self.sock is None and self.connect() is None:
            utime.sleep_ms(real_ms)
            return False
        return bool(self.poll.poll(real_ms))

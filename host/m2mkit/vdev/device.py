"""A whole virtual board: flash image + state folder + bridge (+ the modem simulator when present)."""

import math
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from .. import boards, image
from ..errors import UserError
from ..testing import micropython
from .bridge import Bridge


def heap_for(board):
    # ESP32 without PSRAM leaves MicroPython about 100 KB; the unix port's objects are about twice
    # the size on a 64-bit host, so 256K holds the firmware to a board's budget. With PSRAM the ESP32
    # port's heap is megabytes: 2M is plenty.
    return "2M" if board.get("psram") else "256K"


def check_heap(heap):
    """`-X heapsize` of the unix port: <n>[K|M] bytes (ports/unix/main.c, pre_process_options)."""
    m = re.fullmatch(r"(\d+)([KkMm]?)", str(heap))
    n = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()] if m else 0
    if n < 64 * 1024:
        raise UserError(f"--heap {heap!r}: give a size of at least 64K, as bytes with K or M, e.g. 256K or 2M")
    return str(heap)


def check_time_scale(scale):
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise UserError(f"--time-scale {scale!r}: give a number greater than 0 (1 is real time, 60 a minute per second)")
    return float(scale)


def flash_path(flash):
    """The flash image path, absolute (symlinks kept, so FILE.state sits beside the name given),
    checked so that the device gets this image or nothing."""
    p = Path(os.path.abspath(os.path.expanduser(str(flash))))
    if p.is_dir():
        raise UserError(f"--flash {flash}: is a directory; give an image file (created when missing)")
    if p.exists():
        if not p.is_file():
            raise UserError(f"--flash {flash}: is not a regular file; give an image file")
        if not os.access(p, os.R_OK | os.W_OK):
            raise UserError(f"--flash {flash}: is not readable and writable; the device writes its flash "
                            f"(chmod u+rw it, or copy it)")
    elif not p.parent.is_dir():
        raise UserError(f"--flash {flash}: folder {p.parent} does not exist; create it or give another path")
    elif not os.access(p.parent, os.W_OK):
        raise UserError(f"--flash {flash}: folder {p.parent} is not writable; give another path")
    state = p.with_name(p.name + ".state")
    if state.exists() and not state.is_dir():
        raise UserError(f"--flash {flash}: {state} (its state folder) is not a folder; move it away")
    return p


def pmu_of(board):
    """The board's modem power_enable when it is an AXP2101 PMU, else None."""
    pe = board["modem"].get("power_enable") or {}
    return pe if pe.get("type") == "pmu" and pe.get("chip") == "axp2101" else None


def modem_for(board, time_scale=1.0, bus=None):
    """A started simulator of the board's modem, wired like the board: a modem with a PWRKEY starts
    off (the firmware must pulse it on); one without (Walter: RESET only) is powered. A modem fed by
    an AXP2101 is unpowered until the firmware enables its rails on `bus` (a BusSim: the PMU model
    is put there); a UART with RTS / CTS carries nothing from the modem until the firmware has
    configured flow control."""
    from ..sim.modem import ModemSim

    m = board["modem"]
    pwrkey = m.get("pwrkey")
    line = pwrkey or m.get("reset") or {}
    uart = m["uart"]
    flow = uart.get("rts") is not None and uart.get("cts") is not None
    pmu = pmu_of(board)
    # a RESET line the vendor holds through deep sleep (Walter) is taken to fall to its active level
    # when the ESP32 lets go of it at a reset or deep sleep: ASSUMED docs/ASSUMED.md#A-WALTER-RESET-FLOAT
    reset = m.get("reset") or {}
    floats = {reset["pin"]: reset["active"]} if reset.get("hold_in_sleep") and not pwrkey else None
    sim = ModemSim(model=m["model"], time_scale=time_scale, power_on=not pwrkey,
                   pwrkey_pin=line.get("pin"), pwrkey_active=line.get("active"),
                   supply_mv=0 if pmu else None, uart_mv=0 if pmu else None,
                   require_flow=flow, uart_pins=uart if flow else None, pin_float=floats,
                   status_pin=m.get("status_pin"))
    sim.start()
    if pmu:
        from ..sim.axp2101 import AXP2101, link_modem

        roles = {r.get("role"): r["name"] for r in pmu["rails"]}
        chip = AXP2101()
        bus.i2c[(board["i2c"]["id"], pmu["i2c_addr"])] = chip
        link_modem(chip, sim, supply_rail=roles["modem"], uart_rail=roles["uart"])
        sim.pmu = chip
    return sim


class VirtualDevice:
    """`with VirtualDevice("esp32-devkitc-bg95") as dev: dev.port` — a board on a pseudo-terminal.

    modem=True also starts a simulator of the board's modem on the device's UART and power line
    (`dev.modem`); env adds or overrides the hal's M2M_* variables. download=True starts the chip in
    its ROM download mode (vdev/download.py), as with GPIO0 held low at power-on.
    romfs: the board runs a MicroPython built with ROMFS and has a "romfs" partition (host/m2mkit/
    romfs.py): True for one (FILE.state/romfs.bin, kept; erased when new), or the bytes of an image
    to write into it; None (stock builds) for none: `vfs.rom_ioctl` is missing then."""

    def __init__(self, board="esp32-devkitc-bg95", flash=None, heapsize=None, time_scale=1.0,
                 env=None, on_event=None, modem=False, micropython=None, download=False, romfs=None):
        self.board = boards.load(board) if isinstance(board, str) else board  # a name, or board data
        self.download = download
        self.modem = None
        self.bus = None  # the simulated I2C bus when the board's modem needs its PMU (attach sensors here too)
        self.micropython = micropython  # the MicroPython version the board runs: sizes the flash
        env = dict(env or {})
        if micropython:  # and what the port stand-in offers (esp32.PCNT from v1.26; unset: the newest)
            env.setdefault("M2M_MICROPYTHON", str(micropython))
        heapsize = check_heap(heapsize or heap_for(self.board))
        time_scale = check_time_scale(time_scale)
        self.blocks = boards.vfs_blocks(self.board, micropython)
        self._tmp = None
        self.bridge = None
        try:
            self._setup(flash, env, heapsize, time_scale, on_event, modem, romfs)
        except BaseException:
            self._cleanup()
            raise

    def _setup(self, flash, env, heapsize, time_scale, on_event, modem, romfs=None):
        if flash is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="m2mkit-vdev-"))
            flash = self._tmp / "flash.img"
        self.flash = flash_path(flash)
        if self.flash.exists():
            image.check_size(self.flash, self.board, self.micropython)
        else:
            try:
                self.flash.write_bytes(image.build(self.board, version=self.micropython))
            except OSError as e:
                raise UserError(f"--flash {flash}: cannot write it ({e.strerror}); give another path") from e
        self.state_dir = self.flash.with_name(self.flash.name + ".state")
        self.romfs = None
        if romfs is not None:
            from ..romfs import VDEV_PARTITION

            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.romfs = self.state_dir / "romfs.bin"
            if romfs is not True:
                if len(romfs) > VDEV_PARTITION:
                    raise UserError(f"the ROMFS image is {len(romfs)} bytes, the romfs partition {VDEV_PARTITION}")
                self.romfs.write_bytes(bytes(romfs) + b"\xff" * (VDEV_PARTITION - len(romfs)))
            elif not self.romfs.exists():
                self.romfs.write_bytes(b"\xff" * VDEV_PARTITION)
        self.events = []
        self.boots = []
        self._cond = threading.Condition()
        self._user_event = on_event
        if modem:
            if pmu_of(self.board):
                if "M2M_BUS" in env:
                    raise UserError(f"board {self.board['name']} powers its modem from the PMU on the built-in "
                                    f"bus: leave out --bus (or use --no-modem)")
                from ..sim.bus import BusSim

                self.bus = BusSim().start()
                env["M2M_BUS"] = self.bus.address_str
            self.modem = modem_for(self.board, time_scale, bus=self.bus)
            env.setdefault("M2M_MODEM", "%s:%d" % tuple(self.modem.uart_address))
            env.setdefault("M2M_GPIO", "%s:%d" % tuple(self.modem.control_address))
        if "M2M_FROZEN" not in env:
            from .. import umqtt_setup

            try:  # the modules a board has frozen (umqtt.simple): vboot.py imports them from here
                env["M2M_FROZEN"] = str(umqtt_setup.path())
            except UserError:
                pass  # the firmware's MQTT import then fails and says so; the rest works
        self.env = env
        self.bridge = Bridge(
            micropython(), self.flash, self.blocks, self.state_dir, env=env,
            heapsize=heapsize or heap_for(self.board), time_scale=time_scale, on_event=self._event,
            romfs=self.romfs,
        )
        self.bridge.rom_factory = self._rom
        self.port = None
        self._thread = None

    def rfc2217(self, port=0):
        """Offer the device on an RFC 2217 port too (vdev/rfc2217.py: DTR / RTS drive EN and GPIO0 as
        a DevKit's auto-program circuit); returns its rfc2217:// URL. Stopped with the device."""
        from .rfc2217 import Rfc2217Server

        self._rfc2217 = Rfc2217Server(self.bridge, self.port, port=port).start()
        return self._rfc2217.url

    def _rom(self):
        """The ROM loader over this board's whole flash: the vfs partition is the flash image file,
        the rest (bootloader, partition table, MicroPython) FILE.state/flash-rest.bin."""
        from .download import Flash, RomLoader

        flash = Flash(boards.flash_bytes(self.board), self.flash, boards.VFS_OFFSET,
                      self.state_dir / "flash-rest.bin")
        return RomLoader(self.board["chip"], flash, on_run=self.bridge.press)

    def _event(self, kind, **kw):
        if self.modem is not None and (kind == "deepsleep" or (kind == "reset" and not kw.get("via"))):
            self.modem.mcu_reset()  # the chip let go of its pins: unheld ones float
        with self._cond:
            self.events.append((kind, kw))
            if kind == "boot":
                self.boots.append(kw)
            self._cond.notify_all()
        if self._user_event:
            self._user_event(kind, **kw)

    def start(self, background=True, power=True):
        try:
            self.port = self.bridge.start(power and not self.download)
            if power and self.download:
                self.bridge.press(download=True)
        except OSError as e:
            raise UserError(f"--flash {self.flash}: cannot set up the device's state folder {self.state_dir} "
                            f"({e.strerror}); give an image in a writable folder") from e
        if background:
            self._thread = threading.Thread(target=self.bridge.serve, daemon=True)
            self._thread.start()
        return self.port

    def power_on(self):
        if self.download:
            self.bridge.press(download=True)
        else:
            self.bridge.power_on()

    def wait_boot(self, count=1, timeout=10):
        """Wait until the REPL prompt has appeared `count` times since start."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.boots) >= count or self.bridge.fatal, timeout):
                raise UserError(f"the virtual device did not reach its REPL within {timeout} s")
            if len(self.boots) < count:
                raise UserError(f"the virtual device stopped: {self.bridge.fatal}")
            return self.boots[count - 1]

    def stop(self, check=True):
        """check: raise the modem simulator's SimulatorBug if it failed inside (tests want that)."""
        if getattr(self, "_rfc2217", None) is not None:
            self._rfc2217.stop()
            self._rfc2217 = None
        if self.bridge is not None:
            self.bridge.stop()
            if self._thread:
                self._thread.join(5)
            self.bridge.close()
        try:
            if self.modem is not None:
                self.modem.stop(check=check)
        finally:
            self._cleanup()

    def _cleanup(self):
        if self.modem is not None and self.bridge is None:
            self.modem.stop(check=False)  # the device never came up
        if self.bus is not None:
            self.bus.stop()
            self.bus = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, *exc):
        self.stop(check=exc_type is None)

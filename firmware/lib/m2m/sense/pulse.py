# Pulse counter for utility meters (S0 / reed outputs): an edge interrupt on a pin (hal.Pin.irq,
# the ESP32 port's scheduled handler: ports/esp32/machine_pin.c machine_pin_isr_handler), a
# debounce window, and a count that survives restarts.
# With debounce_ms 0 on MicroPython v1.26+ the chip's pulse counter counts instead (esp32.PCNT,
# ports/esp32/esp32_pcnt.c, unit = slot): every edge, no CPU, no scheduler, with its glitch filter
# at its widest (filter 1023 APB cycles of 12.5 ns: pulses under 12.79 us ignored; docs/library/
# esp32.rst). A debounce of 1 ms or more is beyond that filter's range: such a counter stays on
# Pin.irq (a contact that bounces needs the software debounce; `_pc` is None). The 16-bit counter
# goes back to 0 at `max` (WRAP) with an IRQ_MAX event (docs/library/esp32.rst; ports/esp32/modules/
# machine.py Counter counts 32000 per overflow; `max` is always set: without a limit what the counter
# does past 32767 is ASSUMED docs/ASSUMED.md#A-PCNT-NOLIMIT-WRAP): its scheduled handler counts the
# wraps, and PCNT.value() runs a pending one first, so sync() adds exactly what came since it last
# looked. sync() runs at every read(), save(), meter step and, under m2m.loop, in its idle hook (at
# most SLICE_MS apart): RTC memory holds the count as of then. A soft reset clears the chip's counter
# (ports/esp32/main.c esp32_pcnt_deinit_all), as a chip reset does: what came since the last sync is
# lost (with Pin.irq each pulse is in RTC memory at once).
# The debounce is measured when the handler runs: the port's handlers are scheduled (no `hard` on the
# esp32 port) and run at the next pending check (py/vm.c, py/scheduler.c), so pulses that come during
# one long call into C (a flash write, a collection) run back to back and may count as one (README
# "Pulse debounce and a board's latency").
# Guarantee (Pin.irq): every counted pulse is written to RTC memory in the handler, so no pulse is lost
# across a soft reset, machine.reset(), a watchdog reset or deep sleep. RTC memory does not survive a
# power loss: the count is also saved to flash (save(), called by the sampler every flush_s and every
# flush_n pulses), so after a power cut at most the pulses since the last flash save are lost.
# RTC memory layout: slot k (0-3) is bytes 8k..8k+7: b"P", pin, count (u32 LE), CRC-8; bytes past
# the slots are kept as they were.
import struct

from m2m import hal
from m2m.sense import crc8_maxim

_SLOTS = 4


class Pulses:
    QUANT = ("pulses",)
    RANGE = None
    WRAP = 32000  # the hardware counter's max: back to 0 there (tests lower it)

    def __init__(self, pin, slot=0, debounce_ms=20, trigger=None, pull=None, path="/pulses.dat",
                 flush_n=100, flush_s=3600):
        if not 0 <= slot < _SLOTS:
            raise ValueError("pulse counter slot must be 0-%d, not %r" % (_SLOTS - 1, slot))
        self.pin_no = pin
        self.slot = slot
        self.debounce = debounce_ms
        self.path = "%s.%d" % (path, slot)
        self.flush_n = flush_n
        self.flush_ms = flush_s * 1000
        self._saved_at = hal.ticks_ms()
        self._rtc = hal.RTC()
        mem = self._rtc.memory()
        self._mem = bytearray(max(len(mem), 8 * _SLOTS))
        self._mem[:len(mem)] = mem
        self.count = max(self._load_rtc(), self._load_flash())
        self.saved = self.count
        self._last = hal.ticks_add(hal.ticks_ms(), -debounce_ms - 1)
        self._store_rtc()
        p = hal.Pin(pin, hal.Pin.IN, hal.Pin.PULL_UP if pull is None else pull)
        self.pin = p
        t = hal.Pin.IRQ_FALLING if trigger is None else trigger
        P = hal.pcnt()
        self._pc = self._hook = None
        if P is None or debounce_ms != 0:  # (a debounce of 1 ms or more: past the filter's range)
            p.irq(self._edge, t)
            return
        self._wraps = self._w = self._v = 0
        self._pc = pc = P(slot, pin=p, falling=P.INCREMENT if t & 2 else P.IGNORE,
                          rising=P.INCREMENT if t & 1 else P.IGNORE, filter=1023, max=self.WRAP)
        pc.irq(self._wrap, P.IRQ_MAX)
        pc.start()
        import sys

        lp = sys.modules.get("m2m.loop")
        if lp is not None:
            self._hook = self.sync
            lp.add_hook(self._hook)

    def _wrap(self, pc):
        # PCNT's scheduled IRQ_MAX handler (or run by value() first); flags() reads and clears
        if pc.irq().flags() & 32:  # IRQ_MAX
            self._wraps += 1

    def sync(self):
        # the hardware counter's pulses since the last look into count and RTC memory
        pc = self._pc
        if pc is None:
            return
        while True:
            w = self._wraps
            v = pc.value()  # runs a pending wrap's handler first
            if w == self._wraps:
                break
        d = (w - self._w) * self.WRAP + v - self._v
        if d:
            self._w, self._v = w, v
            self.count += d
            self._store_rtc()

    def _load_rtc(self):
        o = 8 * self.slot
        r = self._mem[o:o + 8]
        if r[0] == 0x50 and r[1] == self.pin_no & 0xFF and crc8_maxim(r[:6]) == r[6]:
            return struct.unpack_from("<I", r, 2)[0]
        return 0

    def _load_flash(self):
        try:
            with open(self.path) as f:
                return int(f.read())
        except (OSError, ValueError):
            return 0

    def _store_rtc(self):
        o = 8 * self.slot
        m = self._mem
        m[o] = 0x50
        m[o + 1] = self.pin_no & 0xFF
        struct.pack_into("<I", m, o + 2, self.count & 0xFFFFFFFF)
        m[o + 6] = crc8_maxim(memoryview(m)[o:o + 6])
        self._rtc.memory(m)

    def _edge(self, pin):
        now = hal.ticks_ms()
        if hal.ticks_diff(now, self._last) <= self.debounce:
            return  # contact bounce
        self._last = now
        self.count += 1
        self._store_rtc()

    def save(self):
        # the count to flash (atomically: a temporary file, then rename). The handler may run between
        # any two bytecodes of this (a scheduled Pin.irq handler): `saved` is the count written, read
        # once, so a pulse counted meanwhile is still to be saved, never taken as saved
        self.sync()
        n = self.count
        if n == self.saved:
            return
        import os

        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(n))
        os.rename(tmp, self.path)
        self.saved = n
        self._saved_at = hal.ticks_ms()

    def start(self):
        return 0

    def read(self):
        self.sync()
        if self.count - self.saved >= self.flush_n or (
                self.count != self.saved and hal.ticks_diff(hal.ticks_ms(), self._saved_at) >= self.flush_ms):
            self.save()
        return (self.count,)

    def close(self):
        if self._pc is None:
            self.pin.irq(None)
            return
        self.sync()
        self._pc.deinit()
        if self._hook is not None:
            import sys

            lp = sys.modules.get("m2m.loop")
            if lp is not None:
                lp.remove_hook(self._hook)

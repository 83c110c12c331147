# Stand-in of the ESP32 port's `os`: the unix port's, plus uname() naming the board
# (extmod/modos.c: sysname and nodename MICROPY_PY_SYS_PLATFORM "esp32", machine
# "<MICROPY_HW_BOARD_NAME> with <MICROPY_HW_MCU_NAME>", e.g. "Generic ESP32S3 module with ESP32S3").
from uos import *  # noqa: F401,F403
import uos as _os
import usys as _sys


class _Uname(tuple):
    sysname = property(lambda s: s[0])
    nodename = property(lambda s: s[1])
    release = property(lambda s: s[2])
    version = property(lambda s: s[3])
    machine = property(lambda s: s[4])


def uname():
    import json

    title, chip = "Generic ESP32 module", "ESP32"
    try:
        with open("/board.json") as f:
            b = json.load(f)
        title, chip = b.get("title") or title, (b.get("chip") or "esp32").upper()
    except (OSError, ValueError):
        pass
    # the release the device models (M2M_MICROPYTHON, its --micropython; unset: the interpreter's own)
    v = (_os.getenv("M2M_MICROPYTHON") or "").split(".")
    try:
        rel = "%d.%d.%d" % tuple(int(x) for x in (v + ["0", "0"])[:3])
    except ValueError:
        rel = "%d.%d.%d" % _sys.implementation.version[:3]
    return _Uname(("esp32", "esp32", rel, "v%s (virtual device)" % rel, "%s with %s" % (title, chip)))

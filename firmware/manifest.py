# Freeze m2mkit into your own MicroPython build (frozen bytecode stays in flash, off the heap):
#   include("$(PORT_DIR)/boards/manifest.py")
#   include("/path/to/m2mkit/firmware/manifest.py")
# The manifest API (metadata, require, package; run with this folder as the current directory, each
# file included once) is micropython/micropython tools/manifestfile.py.
import os

metadata(description="m2mkit: LTE-M / NB-IoT modem firmware for ESP32 boards", version="0.1.0")

# also required by ports/esp32/boards/manifest.py; listed for builds that leave it out
require("umqtt.simple")

# every module of m2m but the virtual device's hal (m2m/hal/unix.py: a board never imports it)
UNIX_ONLY = ("hal/unix.py",)
_files = []
for _dir, _subdirs, _names in os.walk("lib/m2m"):
    _subdirs.sort()
    for _n in sorted(_names):
        _rel = os.path.relpath(os.path.join(_dir, _n), "lib/m2m").replace(os.sep, "/")
        if _n.endswith(".py") and _rel not in UNIX_ONLY:
            _files.append(_rel)
package("m2m", files=_files, base_path="lib")

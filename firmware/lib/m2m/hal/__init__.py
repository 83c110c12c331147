# The hardware abstraction layer: the only code that touches machine, esp32 and network.
# Layers above import `from m2m import hal` and use what both modules export (see docs/CONTRACTS.md).
import sys

if sys.platform == "linux":
    from m2m.hal.unix import *  # noqa: F401,F403  (the virtual device)
else:
    from m2m.hal.esp32 import *  # noqa: F401,F403

# Application entry point: the banner and health (m2m.app), then, when /config.json sets
# device.autorun, the supervisor (m2m.supervisor) until Ctrl-C, which leaves the REPL. m2m.app leaves
# the heap first (a module's bytecode lives there); `from m2m import app` at the REPL loads it again.
import sys

import m2m
from m2m import app

cfg = app.main()
del app
sys.modules.pop("m2m.app", None)
try:
    delattr(m2m, "app")
except AttributeError:
    pass
if cfg:
    from m2m import supervisor

    supervisor.main(cfg)
del cfg

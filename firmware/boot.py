# Runs first on every boot (also after a soft reset). Kept minimal: a broken boot.py can lock a
# board out of its REPL. The application starts from main.py.
import gc

gc.collect()

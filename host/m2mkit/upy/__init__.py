"""Modules that run inside MicroPython (the unix port), shipped with the host tools: `fakeuart`
(a fake clock and a scripted fake modem UART for the AT drivers, used by `m2mkit bench` and the
firmware tests). Not importable from CPython code; `UPY_DIR` is the directory to put on MicroPython's
sys.path."""

from pathlib import Path

UPY_DIR = Path(__file__).resolve().parent

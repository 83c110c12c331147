"""Where things live: the repository checkout the host package runs from."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
TESTS = ROOT / "tests"

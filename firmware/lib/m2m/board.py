# The board this device is: a copy of boards/<name>.json written to /board.json at deploy time.
import json

_board = None


def load(path="/board.json"):
    # Returns the board dict, or None on a device deployed without one.
    global _board
    if _board is None:
        try:
            with open(path) as f:
                _board = json.load(f)
        except OSError:
            return None
    return _board

"""The two hal modules must offer the same names: firmware written against the virtual device's hal
must find every one of them on a board (esp32.py cannot run here, so this is checked from source)."""

import ast

from m2mkit.paths import FIRMWARE

HAL = FIRMWARE / "lib" / "m2m" / "hal"


def public_names(path):
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


def class_methods(path, cls):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return {n.name for n in node.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")} | {
                n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"}
    return None


def test_same_public_names():
    esp32, unix = public_names(HAL / "esp32.py"), public_names(HAL / "unix.py")
    assert esp32 == unix, f"only on esp32: {sorted(esp32 - unix)}; only on unix: {sorted(unix - esp32)}"


def test_uart_wrappers_offer_the_same_methods():
    # the other classes on a board are MicroPython's own (machine.Pin, ...); UART is our wrapper on both
    assert class_methods(HAL / "esp32.py", "UART") == class_methods(HAL / "unix.py", "UART")

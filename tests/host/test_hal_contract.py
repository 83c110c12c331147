"""The hal contract: every check of the board's hal on the ESP32 port stand-in (test_esp32_hal.py) runs
here against the virtual device's hal as well, so any difference between the two is a failing test."""

import pytest

from test_esp32_hal import *  # noqa: F401,F403  (the checks, collected again here)


@pytest.fixture(params=["m2m.hal.esp32", "m2m.hal.unix"])
def hal_module(request):
    return request.param

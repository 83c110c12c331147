"""End to end on a board or the virtual device: firmware running, modem identity, a report at the broker."""

import ast
import json

import pytest


def test_the_firmware_is_running(device, target):
    out = device.exec("import json\nprint(json.load(open('/board.json'))['name'])")
    assert out.strip() == target.board


def test_the_modem_answers_with_its_identity(device, modem, target):
    ident = ast.literal_eval(device.exec("from m2m import app\nprint(repr(app.modem_check().identity()))")
                             .strip().splitlines()[-1])
    assert len(ident["imei"]) == 15 and ident["iccid"] and ident["imsi"]
    if target.kind == "sim":  # what the simulator was given comes back through the firmware
        assert (ident["imei"], ident["iccid"], ident["imsi"]) == (modem.imei, modem.card.iccid, modem.card.imsi)
    else:
        assert any(ident["imei"] in line for line in modem.at("AT+CGSN"))


def test_the_device_reports_to_the_broker(device, broker):
    import time

    # the device as after its boot: what the tests before left (their globals in __main__, the modem
    # stack m2m.app built, its modules) goes first, as on a board between mpremote sessions it stays
    device.exec("import gc, sys\n"
                "for _k in [k for k in globals() if not k.startswith('_') and k not in ('gc', 'sys')]:\n"
                "    del globals()[_k]\n"
                "for _k in [k for k in sys.modules if k == 'm2m' or k.startswith('m2m.')]:\n"
                "    del sys.modules[_k]\n"
                "gc.collect()\n")
    device.repl_line(f'from m2m.report import health; health.run("{broker.url}", 5)')
    deadline = time.monotonic() + 180
    seen = []
    console = ""  # what the device printed meanwhile: the failure's explanation
    while time.monotonic() < deadline:
        seen += broker.wait(1, timeout=5)
        console = (console + device.console())[-4000:]
        telemetry = [m for m in seen if m[0].startswith("m2mkit/") and m[0].endswith("/telemetry")]
        if telemetry:
            break
    assert telemetry, (f"no telemetry from the device at the broker within 180 s (saw {[m[0] for m in seen]});"
                       f" the device's console ended with:\n{console}")
    pack = json.loads(telemetry[0][1])
    assert isinstance(pack, list) and pack  # a SenML pack (m2mkit/senml.py checks its form)


@pytest.mark.sim_only
def test_the_modem_fixture_is_the_simulator_on_the_virtual_device(modem, target):
    assert modem is target.dev.modem and modem.model == target.dev.board["modem"]["model"]


@pytest.mark.hardware
def test_the_board_answers_at_through_the_passthrough(modem):
    assert modem.at("AT") == []

"""Validate the board data files in boards/*.json.

Each file describes one supported board (chip, flash, modem wiring and power timing). The firmware
reads a copy as board.json and the host tools (flash, image, sim) read them directly, so a typo here
is a dead modem in the field: these tests check shape, types, and the hardware facts that can be
checked without a board (GPIO ranges, pin conflicts, firmware offset per chip).
"""

import json
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BOARDS_DIR = REPO / "boards"
BOARD_FILES = sorted(BOARDS_DIR.glob("*.json"))

EXPECTED_BOARDS = {
    "lilygo-t-sim7080g-s3",
    "lilygo-t-sim7000g",
    "dptechnics-walter",
    "esp32-devkitc-bg95",
}

MODEM_MODELS = {"sim7080g", "sim7000g", "bg95", "bg96", "gm02s"}

# esptool's BOOTLOADER_FLASH_OFFSET: where a merged MicroPython image starts.
FIRMWARE_OFFSET = {"esp32": 0x1000, "esp32s3": 0x0}

# GPIOs that exist on the chip (ESP32: no 20, 24, 28-31; ESP32-S3: no 22-25).
GPIO_EXISTS = {
    "esp32": set(range(0, 20)) | {21, 22, 23, 25, 26, 27} | set(range(32, 40)),
    "esp32s3": set(range(0, 22)) | set(range(26, 49)),
}
# GPIOs that the module's SPI flash / PSRAM take on every common module: never usable.
GPIO_FLASH = {
    "esp32": set(range(6, 12)),
    "esp32s3": set(range(26, 33)),
}
# Input-only GPIOs (no output driver).
GPIO_INPUT_ONLY = {
    "esp32": set(range(34, 40)),
    "esp32s3": set(),
}
# ADC1 channels (ADC2 is unusable while Wi-Fi runs, so battery sensing must be on ADC1).
ADC1_PINS = {
    "esp32": set(range(32, 40)),
    "esp32s3": set(range(1, 11)),
}

FLASH_SIZES = {"1MB", "2MB", "4MB", "8MB", "16MB", "32MB", "64MB", "128MB"}
BAUD_RATES = {9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600}

TOP_KEYS = {
    "name": str,
    "title": str,
    "chip": str,
    "flash_size": str,
    "firmware_offset": int,
    "psram": (str, type(None)),
    "micropython": dict,
    "modem": dict,
    "i2c": (dict, type(None)),
    "battery_adc": (dict, type(None)),
    "led_pin": (int, type(None)),
    "uncertain": list,
    "sources": list,
}
MODEM_KEYS = {
    "model": str,
    "uart": dict,
    "pwrkey": (dict, type(None)),
    "reset": (dict, type(None)),
    "power_enable": (dict, type(None)),
    "status_pin": (int, type(None)),
    "ri_pin": (int, type(None)),
    "dtr_pin": (int, type(None)),
}
UART_KEYS = {
    "id": int,
    "tx": int,
    "rx": int,
    "baud": int,
    "rts": (int, type(None)),
    "cts": (int, type(None)),
}
PWRKEY_KEYS = {
    "pin": (int, type(None)),
    "active": (int, type(None)),
    "on_pulse_ms": (int, type(None)),
    "off_pulse_ms": (int, type(None)),
    "boot_ms": (int, type(None)),
}
RESET_KEYS = {
    "pin": (int, type(None)),
    "active": (int, type(None)),
    "pulse_ms": (int, type(None)),
    "boot_ms": (int, type(None)),
}
I2C_KEYS = {"id": int, "scl": int, "sda": int, "freq": int}
MICROPYTHON_KEYS = {"board": str, "variant": (str, type(None)), "min_version": str}
# MicroPython's generic ESP32 builds and their variants (micropython/micropython ports/esp32/boards/
# ESP32_GENERIC*/mpconfigvariant_*.cmake, v1.24-v1.27); the chip each build is for.
MICROPYTHON_BUILDS = {
    "ESP32_GENERIC": ("esp32", {None, "SPIRAM", "D2WD", "OTA", "UNICORE"}),
    "ESP32_GENERIC_S3": ("esp32s3", {None, "SPIRAM_OCT", "FLASH_4M"}),
}
BATTERY_KEYS = {"pin": int, "divider": (int, float)}


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_keys(obj, spec, where):
    """Every key of spec present with the right type; bool never passes for int."""
    assert isinstance(obj, dict), f"{where}: expected an object, got {type(obj).__name__}"
    missing = set(spec) - set(obj)
    assert not missing, f"{where}: missing keys {sorted(missing)}"
    for key, types in spec.items():
        value = obj[key]
        assert not isinstance(value, bool), f"{where}.{key}: booleans are not allowed here"
        assert isinstance(value, types), (
            f"{where}.{key}: {value!r} has type {type(value).__name__}, expected {types}"
        )


def _pin_roles(board):
    """(role, pin) for every GPIO the board assigns; None (not wired) is left out."""
    modem = board["modem"]
    uart = modem["uart"]
    roles = [
        ("modem.uart.tx", uart["tx"]),
        ("modem.uart.rx", uart["rx"]),
        ("modem.uart.rts", uart["rts"]),
        ("modem.uart.cts", uart["cts"]),
        ("modem.status_pin", modem["status_pin"]),
        ("modem.ri_pin", modem["ri_pin"]),
        ("modem.dtr_pin", modem["dtr_pin"]),
        ("led_pin", board["led_pin"]),
    ]
    if modem["pwrkey"] is not None:
        roles.append(("modem.pwrkey.pin", modem["pwrkey"]["pin"]))
    if modem["reset"] is not None:
        roles.append(("modem.reset.pin", modem["reset"]["pin"]))
    pe = modem["power_enable"]
    if pe is not None:
        roles.append(("modem.power_enable.pin", pe.get("pin")))
        roles.append(("modem.power_enable.irq_pin", pe.get("irq_pin")))
    if board["i2c"] is not None:
        roles.append(("i2c.scl", board["i2c"]["scl"]))
        roles.append(("i2c.sda", board["i2c"]["sda"]))
    if board["battery_adc"] is not None:
        roles.append(("battery_adc.pin", board["battery_adc"]["pin"]))
    return [(role, pin) for role, pin in roles if pin is not None]


# Roles whose GPIO the MCU must drive.
OUTPUT_ROLES = {
    "modem.uart.tx",
    "modem.uart.rts",
    "modem.dtr_pin",
    "modem.pwrkey.pin",
    "modem.reset.pin",
    "modem.power_enable.pin",
    "led_pin",
    "i2c.scl",
    "i2c.sda",
}


def _resolve(board, dotted):
    node = board
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(dotted)
    return node


@pytest.fixture(params=BOARD_FILES, ids=[p.stem for p in BOARD_FILES])
def board_file(request):
    return request.param


@pytest.fixture
def board(board_file):
    return _load(board_file)


def test_expected_boards_present():
    names = {p.stem for p in BOARD_FILES}
    assert EXPECTED_BOARDS <= names, f"missing board files: {sorted(EXPECTED_BOARDS - names)}"


def test_valid_json(board_file):
    text = board_file.read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)


def test_name_matches_file(board, board_file):
    assert board["name"] == board_file.stem
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", board["name"])


def test_schema(board):
    _check_keys(board, TOP_KEYS, "board")
    modem = board["modem"]
    _check_keys(modem, MODEM_KEYS, "modem")
    _check_keys(modem["uart"], UART_KEYS, "modem.uart")
    if modem["pwrkey"] is not None:
        _check_keys(modem["pwrkey"], PWRKEY_KEYS, "modem.pwrkey")
    if modem["reset"] is not None:
        _check_keys(modem["reset"], RESET_KEYS, "modem.reset")
    if board["i2c"] is not None:
        _check_keys(board["i2c"], I2C_KEYS, "i2c")
    if board["battery_adc"] is not None:
        _check_keys(board["battery_adc"], BATTERY_KEYS, "battery_adc")
    _check_keys(board["micropython"], MICROPYTHON_KEYS, "micropython")
    assert all(isinstance(s, str) and s.strip() for s in board["uncertain"])
    assert board["sources"], "every board must name its sources"
    assert all(isinstance(s, str) and s.strip() for s in board["sources"])
    if "notes" in board:
        assert isinstance(board["notes"], str)


def test_chip_and_flash(board):
    assert board["chip"] in FIRMWARE_OFFSET
    assert board["flash_size"] in FLASH_SIZES
    if board["psram"] is not None:
        assert re.fullmatch(r"\d+MB", board["psram"]), board["psram"]


def test_firmware_offset_matches_chip(board):
    assert board["firmware_offset"] == FIRMWARE_OFFSET[board["chip"]]


def test_firmware_offset_agrees_with_esptool(board):
    targets = pytest.importorskip("esptool.targets")
    rom = targets.CHIP_DEFS[board["chip"]]
    assert board["firmware_offset"] == rom.BOOTLOADER_FLASH_OFFSET


def test_modem_model(board):
    assert board["modem"]["model"] in MODEM_MODELS


def test_modem_uart(board):
    uart = board["modem"]["uart"]
    assert uart["id"] in (1, 2), "UART0 is the REPL console; the modem needs UART1 or UART2"
    assert uart["baud"] in BAUD_RATES
    assert (uart["rts"] is None) == (uart["cts"] is None), "flow control needs both RTS and CTS"


def test_modem_power_control(board):
    """The firmware must have some way to start or recover the modem."""
    modem = board["modem"]
    pwrkey, reset = modem["pwrkey"], modem["reset"]
    has_pwrkey = pwrkey is not None and pwrkey["pin"] is not None
    has_reset = reset is not None and reset["pin"] is not None
    assert has_pwrkey or has_reset, "neither a PWRKEY nor a RESET pin"
    if has_pwrkey:
        assert pwrkey["active"] in (0, 1)
        for key in ("on_pulse_ms", "off_pulse_ms", "boot_ms"):
            assert isinstance(pwrkey[key], int) and pwrkey[key] > 0, f"modem.pwrkey.{key}"
        assert pwrkey["on_pulse_ms"] <= 5000 and pwrkey["off_pulse_ms"] <= 5000
    if has_reset:
        assert reset["active"] in (0, 1)
        for key in ("pulse_ms", "boot_ms"):
            assert isinstance(reset[key], int) and reset[key] > 0, f"modem.reset.{key}"


def test_power_enable(board):
    pe = board["modem"]["power_enable"]
    if pe is None:
        return
    assert pe.get("type") in ("pmu", "gpio")
    if pe["type"] == "gpio":
        assert isinstance(pe.get("pin"), int) and not isinstance(pe["pin"], bool)
        assert pe.get("active") in (0, 1)
    else:
        assert isinstance(pe.get("chip"), str) and pe["chip"]
        assert isinstance(pe.get("i2c_addr"), int) and 0x08 <= pe["i2c_addr"] <= 0x77
        assert board["i2c"] is not None, "a PMU-controlled rail needs the board's i2c bus"
        rails = pe.get("rails")
        assert isinstance(rails, list) and rails
        for rail in rails:
            assert isinstance(rail.get("name"), str) and rail["name"]
            assert isinstance(rail.get("mv"), int) and 500 <= rail["mv"] <= 5500


def test_i2c_and_battery(board):
    if board["i2c"] is not None:
        assert board["i2c"]["id"] in (0, 1)
        assert 10_000 <= board["i2c"]["freq"] <= 1_000_000
    if board["battery_adc"] is not None:
        assert board["battery_adc"]["divider"] >= 1.0
        assert board["battery_adc"]["pin"] in ADC1_PINS[board["chip"]], (
            "battery sensing must use an ADC1 pin (ADC2 fails while Wi-Fi is on)"
        )


def test_pins_valid_for_chip(board):
    chip = board["chip"]
    for role, pin in _pin_roles(board):
        assert not isinstance(pin, bool), f"{role}: not a GPIO number"
        assert pin in GPIO_EXISTS[chip], f"{role}: GPIO{pin} does not exist on {chip}"
        assert pin not in GPIO_FLASH[chip], f"{role}: GPIO{pin} belongs to the module's flash/PSRAM"
        if role in OUTPUT_ROLES:
            assert pin not in GPIO_INPUT_ONLY[chip], f"{role}: GPIO{pin} is input-only on {chip}"


def test_no_pin_shared_between_roles(board):
    seen = {}
    for role, pin in _pin_roles(board):
        assert pin not in seen, f"GPIO{pin} is used by both {seen[pin]} and {role}"
        seen[pin] = role


def test_uncertain_entries_name_existing_keys(board):
    for entry in board["uncertain"]:
        m = re.fullmatch(r"([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*): (.+)", entry, re.S)
        assert m, f"uncertain entry must read 'dotted.key: reason': {entry!r}"
        key, reason = m.groups()
        assert reason.strip(), f"uncertain entry {key!r} gives no reason"
        try:
            _resolve(board, key)
        except KeyError:
            pytest.fail(f"uncertain entry names a key that does not exist: {key!r}")


def test_names_unique():
    names = [_load(p)["name"] for p in BOARD_FILES]
    assert len(names) == len(set(names))


# --- the checks themselves must catch what they are meant to catch ---------------------------------


def _sample():
    return _load(BOARDS_DIR / "lilygo-t-sim7080g-s3.json")


def test_checker_catches_shared_pin():
    board = _sample()
    board["modem"]["dtr_pin"] = board["modem"]["uart"]["tx"]
    with pytest.raises(AssertionError):
        test_no_pin_shared_between_roles(board)


def test_checker_catches_missing_gpio():
    board = _sample()
    board["modem"]["ri_pin"] = 23  # GPIO22-25 do not exist on the ESP32-S3
    with pytest.raises(AssertionError):
        test_pins_valid_for_chip(board)


def test_checker_catches_unknown_uncertain_key():
    board = _sample()
    board["uncertain"].append("modem.pwrkey.no_such_key: typo")
    with pytest.raises(pytest.fail.Exception):
        test_uncertain_entries_name_existing_keys(board)


def test_checker_catches_wrong_offset():
    board = _sample()
    board["firmware_offset"] = 0x1000
    with pytest.raises(AssertionError):
        test_firmware_offset_matches_chip(board)


def test_checker_catches_output_on_input_only_pin():
    board = _load(BOARDS_DIR / "lilygo-t-sim7000g.json")
    board["modem"]["pwrkey"]["pin"] = 34
    with pytest.raises(AssertionError):
        test_pins_valid_for_chip(board)


# --- which MicroPython to flash, and the flash image it mounts -------------------------------------


def test_micropython_build_fits_the_board(board):
    mp = board["micropython"]
    assert mp["board"] in MICROPYTHON_BUILDS, f"unknown MicroPython build {mp['board']}"
    chip, variants = MICROPYTHON_BUILDS[mp["board"]]
    assert chip == board["chip"], f"{mp['board']} is a build for {chip}, not {board['chip']}"
    assert mp["variant"] in variants
    assert re.fullmatch(r"\d+\.\d+\.\d+", mp["min_version"])
    # a board with PSRAM needs a build that uses it, or the heap is far smaller than assumed: the
    # plain ESP32 build has no PSRAM support (the SPIRAM variant has); the plain S3 build probes
    # quad PSRAM (boards/sdkconfig.spiram_sx), octal PSRAM needs SPIRAM_OCT (see the test below)
    if board["psram"] and board["chip"] == "esp32":
        assert mp["variant"] == "SPIRAM"
    if board["psram"] is None:
        assert mp["variant"] is None or "SPIRAM" not in mp["variant"]


def test_micropython_build_cites_its_source(board):
    build = board["micropython"]["board"]
    assert any(s.startswith("micropython/micropython") and build in s for s in board["sources"]), (
        "name the MicroPython source of the build and its partition table in sources"
    )


def test_the_two_psram_boards_name_their_builds():
    s3 = _load(BOARDS_DIR / "lilygo-t-sim7080g-s3.json")["micropython"]
    sim7000 = _load(BOARDS_DIR / "lilygo-t-sim7000g.json")["micropython"]
    assert (s3["board"], s3["variant"]) == ("ESP32_GENERIC_S3", "SPIRAM_OCT")
    assert (sim7000["board"], sim7000["variant"]) == ("ESP32_GENERIC", "SPIRAM")


def test_vfs_blocks_follow_the_version_flashed():
    from m2mkit import boards

    s3 = boards.load("lilygo-t-sim7080g-s3")  # 16 MB
    # v1.24 / v1.25: partitions-8MiB.csv, vfs 0x600000 bytes whatever the flash
    assert boards.vfs_blocks(s3, "1.24.0") == boards.vfs_blocks(s3, "1.25.0") == 0x600000 // 4096 == 1536
    # v1.26 on: vfs from 0x200000 to the end of flash
    assert boards.vfs_blocks(s3, "1.26.0") == boards.vfs_blocks(s3, "1.27.0") == boards.vfs_blocks(s3) == 3584
    devkit = boards.load("esp32-devkitc-bg95")  # 4 MB: partitions-4MiB.csv and 4MiBplus agree
    assert boards.vfs_blocks(devkit, "1.25.0") == boards.vfs_blocks(devkit, "v1.26") == 512


def test_versions_without_a_known_table_are_refused():
    from m2mkit import boards
    from m2mkit.errors import UserError

    s3 = boards.load("lilygo-t-sim7080g-s3")
    for bad in ("1.23.0", "one", "1"):
        with pytest.raises(UserError):
            boards.vfs_blocks(s3, bad)


def test_image_for_another_version_is_refused(tmp_path):
    from m2mkit import boards, image
    from m2mkit.errors import UserError

    s3 = boards.load("lilygo-t-sim7080g-s3")
    img = tmp_path / "s3.img"
    img.write_bytes(image.build(s3))  # sized for 1.26 or newer: 3584 blocks
    image.check_size(img, s3)
    with pytest.raises(UserError) as e:
        image.check_size(img, s3, "1.25.0")  # would not mount: _boot.py reformats, firmware gone
    msg = str(e.value)
    assert "3584 blocks" in msg and "1536 blocks" in msg
    assert "m2mkit image build --board lilygo-t-sim7080g-s3 --micropython 1.25.0" in msg
    img.write_bytes(image.build(s3, version="1.25.0"))
    image.check_size(img, s3, "1.25.0")
    assert len(image.open_image(img).context.buffer) == 1536 * 4096

"""`m2mkit flash`: MicroPython (or a per-device fleet image) onto a board through esptool's Python API.

Detects the chip and refuses one that is not the board file's, writes at the chip's offset (the
board's firmware_offset; a whole-flash fleet image at 0x0), verifies by MD5, and restarts the chip.
On a real USB-serial port esptool resets the board into its loader with DTR/RTS and back with a hard
reset, using its flasher stub. A pseudo-terminal has no DTR/RTS: the device must already wait in
download mode (the virtual device started with --download, or after machine.bootloader()), esptool
talks to the ROM loader itself (no stub), and the app is started with the ROM's "run user code".
"""

from . import boards
from .deploy import check_port
from .errors import UserError
from .fleetimage import check_firmware, chip_of_image

CHIP_NAMES = {"esp32": "ESP32", "esp32s3": "ESP32-S3"}  # esptool targets' CHIP_NAME


def _is_pty(port):
    return port.startswith("/dev/pts/")


def write_plan(board, data):
    """(offset, data): a MicroPython .bin at the board's firmware_offset, or a whole-flash image
    (m2mkit image fleet: erased up to firmware_offset, longer than the app region) at 0x0."""
    off = board["firmware_offset"]
    whole = len(data) > boards.VFS_OFFSET - off or (off and data[:off] == b"\xff" * off and len(data) > off)
    if whole:
        if chip_of_image(data[off:off + 64]) is None:
            raise UserError(f"--firmware: no ESP32 image header at {off:#x} of this whole-flash image; "
                            f"give MicroPython's .bin or an image from `m2mkit image fleet`")
        check_firmware(board, data[off:off + 64])
        if len(data) > boards.flash_bytes(board):
            raise UserError(f"--firmware: {len(data)} bytes do not fit the board's {board['flash_size']} of flash")
        return 0, data
    check_firmware(board, data)
    return off, data


def flash(port, board, data, erase=False, stub=None):
    """Write and verify; returns a dict of what was done."""
    from esptool.cmds import attach_flash, detect_chip, reset_chip, run_stub, verify_flash, write_flash
    from esptool.util import FatalError

    offset, data = write_plan(board, data)
    check_port(port)
    pty = _is_pty(port)
    if port.startswith("rfc2217://") and "?" not in port:
        port += "?ign_set_control"  # esptool's RFC 2217 server runs the reset itself (esptool docs)
    stub = (not pty) if stub is None else stub
    try:
        esp = detect_chip(port, connect_mode="no-reset" if pty else "default-reset", connect_attempts=2)
    except FatalError as e:
        msg = str(e)
        if "busy" in msg.lower() or "could not exclusively lock" in msg.lower():
            raise UserError(f"--port {port}: busy; another program holds it: close it and retry") from None
        raise UserError(f"--port {port}: the board is not in bootloader (download) mode: hold BOOT (GPIO0) "
                        f"and press EN, then retry" + ("; a virtual device: start it with --download or run "
                                                       "machine.bootloader()" if pty else "")) from None
    try:
        want = CHIP_NAMES[board["chip"]]
        if esp.CHIP_NAME != want:
            raise UserError(f"wrong chip: the board on {port} is an {esp.CHIP_NAME}, but board {board['name']} "
                            f"is an {want}; give the right --board")
        if stub:
            try:
                esp = run_stub(esp)
            except FatalError:  # a loader without the stub (the virtual device's ROM): go on with the ROM
                pass
        attach_flash(esp)
        if erase:
            if esp.IS_STUB:
                from esptool.cmds import erase_flash

                erase_flash(esp)
            else:  # the ROM has no erase command: FLASH_BEGIN over the whole chip erases it
                esp.flash_begin(boards.flash_bytes(board), 0)
        write_flash(esp, [(offset, data)], flash_size="keep")
        verify_flash(esp, [(offset, data)], flash_size="keep")
        reset_chip(esp, "soft-reset" if pty else "hard-reset")
    except FatalError as e:
        raise UserError(f"flashing failed: {e}") from None
    finally:
        try:
            esp._port.close()
        except Exception:
            pass
    return {"chip": esp.CHIP_NAME, "offset": offset, "bytes": len(data), "erased": erase}


def _command():
    import click

    @click.command("flash")
    @click.option("--port", required=True, help="serial port (a virtual device's /dev/pts/N in download mode)")
    @click.option("--board", required=True, help="board name (m2mkit boards)")
    @click.option("--firmware", required=True, type=click.Path(dir_okay=False),
                  help="MicroPython's .bin for the board, or a per-device image from `m2mkit image fleet`")
    @click.option("--erase", is_flag=True, help="erase the whole flash first (the filesystem too)")
    def flash_cmd(port, board, firmware, erase):
        """Flash MicroPython: detect the chip, refuse a mismatch, write, verify, restart."""
        b = boards.load(board)
        try:
            data = open(firmware, "rb").read()
        except OSError as e:
            raise UserError(f"--firmware {firmware}: cannot read it ({e.strerror})") from None
        r = flash(port, b, data, erase=erase)
        click.echo(f"flashed {r['bytes']} bytes at {r['offset']:#x} on the {r['chip']} and verified them; restarted it")

    return flash_cmd


command = _command()

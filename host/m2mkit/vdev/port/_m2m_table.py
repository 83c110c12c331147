# One table for the virtual device and its host bridge (imported by MicroPython and by CPython).
# machine.reset_cause() values: reset_reason_t in ports/esp32/modmachine.c (MicroPython v1.24-v1.27);
# 0 is what the port returns for causes it does not map (ESP_RST_USB on the S3's USB-Serial-JTAG,
# ESP_RST_SDIO, ESP_RST_UNKNOWN: the `default: return 0` branch of mp_machine_reset_cause).
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
UNKNOWN_RESET = 0
CAUSE_NAMES = {0: "unknown", 1: "power-on", 2: "hard", 3: "watchdog", 4: "deep-sleep", 5: "soft"}

# files in the state folder beside the flash image
RTC_MEMORY = "rtcmem"  # machine.RTC().memory()
RTC_OFFSET = "rtcoffset"  # seconds added to the host clock by RTC().datetime(...) set
NVS = "nvs.json"  # esp32.NVS
WDT = "wdt"  # watchdog deadline, host ms since 1970
RESET = "reset"  # machine.reset() request
DEEPSLEEP = "deepsleep"  # machine.deepsleep(ms) request (ms)
BOOTLOADER = "bootloader"  # machine.bootloader() request
# written by vboot.py before boot.py: from here on Python code may be interrupted, and a SIGINT handler
# that is missing while no input is read is vboot.py's flash access (the bridge waits for it)
INTERRUPTIBLE = "interruptible"
POWER_ON_CLEARED = (RTC_MEMORY, RTC_OFFSET)  # gone with the power, like the RTC domain
TRANSIENT = (WDT, RESET, DEEPSLEEP, BOOTLOADER, INTERRUPTIBLE)  # cleared whenever an interpreter starts

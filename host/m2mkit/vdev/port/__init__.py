# Strict stand-in of the ESP32 port's machine / esp32 / onewire modules (device side, MicroPython);
# _m2m_table is also imported by CPython (the bridge). See docs/CONTRACTS.md "The ESP32 port stand-in".

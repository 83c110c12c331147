"""The virtual device: the MicroPython unix port running firmware/ from a LittleFS2 flash image,
behind a pseudo-terminal that behaves like a board's USB-serial port."""

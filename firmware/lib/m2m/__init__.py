# m2mkit device package. Everything here runs unchanged on an ESP32 and on the virtual device
# (the MicroPython unix port); only m2m.hal differs between the two.
VERSION = "0.1.0"

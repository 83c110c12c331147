"""m2mkit host tools: flash, deploy, provision and test ESP32 cellular boards, real or virtual."""

__version__ = "0.1.0"

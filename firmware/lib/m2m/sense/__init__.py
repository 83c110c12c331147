# Sensing: drivers (one module each, handed their bus), the sampler, and the one table of quantities.
# A reading is a tuple (name, value, unit, t): SenML unit (RFC 8428 section 12.1 registry), t in
# seconds since 1970 (hal.epoch()). Drivers have start() -> ms to wait before read() (a conversion in
# progress), read() -> a tuple of values in the order of their QUANT; faults are OSError (missing
# device, errno 19; timeout, errno 110) or SensorError (CRC, bad identity, out of range).

# quantity -> (SenML unit, IPSO object id). IPSO ids from the OMA LwM2M registry's object files
# (github.com/OpenMobileAlliance/lwm2m-registry 3303.xml Temperature, 3304.xml Humidity, 3315-1_0.xml
# Barometer "used with an air pressure sensor" (3323.xml Pressure is the generic one), 3316.xml
# Voltage, 3200.xml Digital Input with its counter 5501, 3300.xml Generic Sensor "if a dedicated one
# does not exist").
QUANTITIES = {
    "temperature": ("Cel", 3303),
    "humidity": ("%RH", 3304),
    "pressure": ("Pa", 3315),
    "battery": ("V", 3316),
    "pulses": ("", 3200),
    "register": ("", 3300),
}


class SensorError(ValueError):
    pass


def unit(quantity):
    q = QUANTITIES.get(quantity)
    return q[0] if q else ""


def ipso(name):
    # the IPSO object id for a reading name ("temperature", "<sensor>.temperature",
    # "<sensor>.temperature.mean"); 3300 Generic Sensor for anything else
    for part in name.split("."):
        q = QUANTITIES.get(part)
        if q:
            return q[1]
    return 3300


def crc8_31(data):
    # Sensirion CRC-8: polynomial 0x31, init 0xFF, no reflection, no final XOR (SHT4x datasheet 4.4)
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc8_maxim(data):
    # Dallas/Maxim 1-Wire CRC-8, x^8 + x^5 + x^4 + 1, LSB first (DS18B20 datasheet, "CRC generation")
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc

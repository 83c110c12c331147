# SIM management (issue #8): identity, state, PIN safety, binding. check(modem, cfg) is the network's
# SIM step. A PIN is entered only while the card has all 3 tries, never again once refused (an NVS
# record written before and after each entry survives resets and power cuts); the PUK never.
# Contract: docs/CONTRACTS.md (SIM section); why: README "SIM management".
# This module holds what lives for the whole boot (alarms posted, the PIN tried, tamper, info); the
# step itself (PIN safety, identity reads) is m2m.net.simpin, loaded for each SIM step and dropped
# afterwards (m2m.loop.drop): the attached device does not hold its code.
_posted = []  # alarm kinds posted since the SIM was last ready
_tried = False  # a PIN not known to be good was entered during this boot
_tamper = False
info = {}  # iccid, imsi, imei, msisdn, state, pin_left (the last check)


def _post(kind, **f):
    # each alarm once per boot until the SIM is ready again (the network asks every few minutes)
    if kind in _posted:
        return
    _posted.append(kind)
    from m2m import events

    events.post(kind, alarm=True, **f)


def check(modem, cfg):
    # the SIM step of the network state machine: identity, PIN, binding; returns the SIM's state
    # the import inside the try: a MemoryError while loading still drops what was loaded (MicroPython
    # itself takes a module whose load failed out of sys.modules since v1.21, py/builtinimport.c
    # commit a79a6ab364), so the next SIM step loads it whole again
    from m2m import loop

    try:
        from m2m.net import simpin

        return simpin.check(modem, cfg)
    finally:
        loop.drop("m2m.net.simpin")


def telemetry_allowed():
    # False after a binding mismatch: only alarms may leave the device
    return not _tamper

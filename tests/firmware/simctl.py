# Helpers for firmware code that integration tests run against the modem simulator (imported by
# the MicroPython snippets in tests/host/; tests/firmware is on their sys.path).
import json
import os
import socket

from m2m import creg, hal


def control(req):
    # one request on the simulator's control channel (env M2M_CTRL = host:port); its JSON reply
    host, _, port = os.getenv("M2M_CTRL").rpartition(":")
    s = socket.socket()
    s.connect(socket.getaddrinfo(host, int(port))[0][-1])
    s.write(json.dumps(req) + "\n")
    reply = s.readline()
    s.close()
    return json.loads(reply)


def attach(m, apn="internet"):
    # bare attach below the registration state machine: power, init, radio on (the GM02S boots
    # with it off), poll +CEREG until registered, APN and PDP context
    at = m.at
    m.power_on()
    m.init()
    at.cmd("AT+CFUN=1", timeout_ms=20000)
    for i in range(120):
        r = at.cmd("AT+CEREG?")
        g = creg.parse(r.lines[0], True) if r.lines else None
        if g and g.registered:
            break
        hal.sleep_ms(500)
    m.set_apn(apn)
    m.pdp_up(apn=apn)

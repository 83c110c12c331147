# The MQTT connection's TLS options from the config (mqtt.ca, mqtt.cert, mqtt.key: files on the
# device's flash): the dict m2m.net.sock.Stack uploads to the modem. Imported only for an mqtts://
# broker (m2m.supervisor_build, m2m.report.health.run), which drop it again after use.
# Runs under CPython too (the host tools may check a config with check()).


def check(mq):
    # What is wrong with the mqtt section's TLS keys, in one line saying what to set; None when fine.
    cert = mq.get("cert") or ""
    key = mq.get("key") or ""
    if cert and not key:
        return "mqtt.cert is set but mqtt.key is not: set mqtt.key to the client key's file (e.g. /certs/client.key), or neither"
    if key and not cert:
        return "mqtt.key is set but mqtt.cert is not: set mqtt.cert to the client certificate's file (e.g. /certs/client.crt), or neither"
    if cert and not mq.get("ca"):
        # m2m.net.sockx.tls_script points Quectel (seclevel 2) and Sequans (AT+SQNSPCFG) profiles at
        # a client certificate only together with the CA that verifies the broker
        return "mqtt.cert needs mqtt.ca: set mqtt.ca to the broker's CA file on the device (the modem presents its certificate only to a verified broker)"
    return None


def tls(mq):
    # {"ca": pem, "cert": pem, "key": pem} (those set) or None; ValueError in one line otherwise
    why = check(mq)
    if why:
        raise ValueError(why)
    out = {}
    for part in ("ca", "cert", "key"):
        path = mq.get(part)
        if path:
            try:
                with open(path) as f:
                    out[part] = f.read()
            except OSError:
                raise ValueError("mqtt.%s: no file %s on the device: copy it there (m2mkit provision --cert "
                                 "writes the client's) or fix the key" % (part, path))
    return out or None

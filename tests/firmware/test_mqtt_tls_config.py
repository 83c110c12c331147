# mqtt.ca / mqtt.cert / mqtt.key reach the modem's TLS: the supervisor's build (m2m.supervisor_build)
# reads the three files through m2m.report.tlsconf for an mqtts:// broker and hands them to the
# MQTT service (m2m.supervisor_mqtt.Mqtt, whose sock.Stack uploads them); cert without key (or the
# reverse, or cert without ca) is one config line saying what to set; a missing file names its key;
# tlsconf is loaded only for mqtts:// and leaves the heap after use.
import os
import sys

from m2m import config
from m2m import supervisor as S

TMP = os.getenv("M2M_TEST_TMP")
_n = [0]


def _dir():
    _n[0] += 1
    d = TMP + "/tls-%d" % _n[0]
    os.mkdir(d)
    return d


def _files(d):
    for name, text in (("ca.crt", "CA PEM"), ("client.crt", "CERT PEM"), ("client.key", "KEY PEM")):
        with open(d + "/" + name, "w") as f:
            f.write(text)
    return {"ca": d + "/ca.crt", "cert": d + "/client.crt", "key": d + "/client.key"}


def _config_line(mq):
    lines = []
    S.print = lambda *a: lines.append(" ".join(str(x) for x in a))
    try:
        got = S.main(config.validate({"device": {"id": "d1"}, "sense": {"battery": False}, "mqtt": mq}))
    finally:
        del S.print
    assert got is None, got
    return lines


def _run(mq):
    cfg = config.validate({"device": {"id": "d1"}, "sense": {"battery": False}, "mqtt": mq})
    return S.Run(cfg, {}, outbox_path=_dir() + "/ob")


def test_ca_cert_and_key_reach_the_mqtt_service():
    f = _files(_dir())
    r = _run(dict(f, broker="mqtts://127.0.0.1:8883"))
    mq = [g for g in r.services if g.name == "mqtt"][0].svc
    assert mq.kind == "tls" and mq.tls == {"ca": "CA PEM", "cert": "CERT PEM", "key": "KEY PEM"}, mq.tls
    assert "m2m.report.tlsconf" not in sys.modules  # read, then gone from the heap
    r.stop()
    r = _run({"broker": "mqtts://127.0.0.1:8883", "ca": f["ca"]})  # server check only: no client certificate
    assert [g for g in r.services if g.name == "mqtt"][0].svc.tls == {"ca": "CA PEM"}
    r.stop()


def test_a_plain_broker_never_loads_the_tls_helper():
    r = _run({"broker": "mqtt://127.0.0.1:1883", "cert": "/nowhere.crt"})
    assert [g for g in r.services if g.name == "mqtt"][0].svc.tls is None
    assert "m2m.report.tlsconf" not in sys.modules
    r.stop()


def test_cert_and_key_go_together_with_ca_in_one_config_line():
    f = _files(_dir())
    url = "mqtts://127.0.0.1:8883"
    assert _config_line({"broker": url, "ca": f["ca"], "cert": f["cert"]}) == [
        "config: mqtt.cert is set but mqtt.key is not: set mqtt.key to the client key's file "
        "(e.g. /certs/client.key), or neither"]
    assert _config_line({"broker": url, "ca": f["ca"], "key": f["key"]}) == [
        "config: mqtt.key is set but mqtt.cert is not: set mqtt.cert to the client certificate's file "
        "(e.g. /certs/client.crt), or neither"]
    assert _config_line({"broker": url, "cert": f["cert"], "key": f["key"]}) == [
        "config: mqtt.cert needs mqtt.ca: set mqtt.ca to the broker's CA file on the device (the modem "
        "presents its certificate only to a verified broker)"]
    assert _config_line({"broker": url, "ca": f["ca"], "cert": f["cert"] + ".gone", "key": f["key"]}) == [
        "config: mqtt.cert: no file %s.gone on the device: copy it there (m2mkit provision --cert writes the "
        "client's) or fix the key" % f["cert"]]
    assert "m2m.report.tlsconf" not in sys.modules

"""The test broker: a real Mosquitto, plain and TLS, refused with another CA, gone after stop."""

import socket
import ssl
import sys

import pytest

from m2mkit import broker as broker_mod
from m2mkit import senml
from m2mkit.broker import Broker, Subscriber
from m2mkit.errors import UserError
from m2mkit.paths import FIRMWARE


def test_publish_subscribe_plain(subscriber):
    sub = subscriber("t/plain/#")
    pub = subscriber("unused/plain")
    pub.publish("t/plain/x", b"hello", qos=1)
    assert sub.wait(1, topic="t/plain/x") == [("t/plain/x", b"hello", False)]


def test_publish_subscribe_tls_and_retained(subscriber):
    pub = subscriber("unused/tls", tls=True)
    pub.publish("t/tls/status", b"online", retain=True)
    sub = subscriber("t/tls/#", tls=True)  # arrives after the publish: gets the retained copy
    assert sub.wait(1, topic="t/tls/status") == [("t/tls/status", b"online", True)]


def test_plain_and_tls_clients_see_each_other(subscriber):
    sub = subscriber("t/mix/#", tls=True)
    subscriber("unused/mix").publish("t/mix/a", b"1")
    assert [m[1] for m in sub.wait(1, topic="t/mix/a")] == [b"1"]


def test_certificate_from_another_ca_is_refused(broker):
    with pytest.raises(UserError) as e:
        Subscriber(broker.tls_url, ca_file=broker.other_ca_file, timeout=3)
    assert "certificate verify failed" in str(e.value)
    # the same with the standard library, as a client that says why
    ctx = ssl.create_default_context(cafile=broker.other_ca_file)
    with socket.create_connection(("127.0.0.1", broker.tls_port), 3) as s:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(s, server_hostname="localhost")


def test_server_certificate_names_localhost_and_loopback(broker):
    ctx = ssl.create_default_context(cafile=broker.ca_file)
    for name in ("localhost", "127.0.0.1"):
        with socket.create_connection(("127.0.0.1", broker.tls_port), 3) as s:
            with ctx.wrap_socket(s, server_hostname=name) as t:
                assert t.version().startswith("TLS")


def test_stop_leaves_no_files_and_frees_the_ports():
    b = Broker().start()
    folder, port, tls_port = b.dir, b.port, b.tls_port
    assert folder.is_dir() and (folder / "ca.pem").is_file()
    b.stop()
    assert not folder.exists()
    for p in (port, tls_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", p), 0.5).close()
    b.stop()  # twice is harmless


def test_missing_mosquitto_says_the_apt_line(monkeypatch):
    monkeypatch.setattr(broker_mod.shutil, "which", lambda name: None)
    monkeypatch.setattr(broker_mod.os, "access", lambda p, mode: False)
    with pytest.raises(UserError) as e:
        Broker()
    assert "apt-get install mosquitto" in str(e.value)


def test_bad_url_is_one_line_error():
    with pytest.raises(UserError) as e:
        Subscriber("http://localhost")
    assert "mqtt://HOST:PORT" in str(e.value)


def _contract():
    # the device's own contract module, under CPython (it is written to run on both)
    lib = str(FIRMWARE / "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    from m2m.report import contract

    return contract


def test_device_telemetry_through_mosquitto_is_valid_senml_and_deduplicated(subscriber):

    c = _contract()
    topic = c.topic("m2mkit", "dev-1", c.TELEMETRY)
    sub = subscriber("m2mkit/dev-1/#", tls=True)
    pub = subscriber("unused/senml")
    t0 = 1767225600
    first = c.senml("dev-1", [(1, [("temperature", 21.5, "Cel", t0), ("humidity", 40, "%RH", t0 + 1)]),
                              (2, [("temperature", 21.75, "Cel", t0 + 60)])])
    again = c.senml("dev-1", [(2, [("temperature", 21.75, "Cel", t0 + 60)]), (3, [("pulses", 4, "", t0 + 120)])])
    pub.publish(topic, first)
    pub.publish(topic, again)  # 2 sent again (an ack cut by a power loss)
    got = sub.wait(2, topic=topic)
    assert len(got) == 2
    d = senml.Dedup()
    fresh = [g for _, payload, _ in got for g in d.new(payload)]
    assert [g[1] for g in fresh] == [1, 2, 3] and d.duplicates == 1
    assert fresh[0][2] == [("temperature", 21.5, "Cel", t0), ("humidity", 40, "%RH", t0 + 1)]
    assert fresh[2][2] == [("pulses", 4, "", t0 + 120)]


def test_senml_checker_refuses_what_rfc_8428_refuses():

    for bad in (b"{}", b"[]", b"[1]", b'[{"n": "a", "v": "x"}]', b'[{"n": "a"}]', b'[{"n": "a", "v": 1, "vs": "x"}]',
                b'[{"n": "-a", "v": 1}]', b'[{"n": "a", "v": 1, "x_": 1}]', b'[{"n": "a", "v": 1, "bt": true}]',
                b'[{"bn": "d:", "n": "t", "v": 1}]'):
        with pytest.raises(senml.SenMLError):
            senml.groups(bad)
    assert senml.resolve(b'[{"bn": "d:", "bt": 10, "n": "a", "v": 1}, {"n": "b", "vb": true, "t": 2}]') == [
        ("d:a", 1, "", 10), ("d:b", True, "", 12)]
    # the sequence number is the record without a name (RFC 8428 4.2: the name is optional when a base
    # name is present); an older firmware's record named "seq" is read too
    assert senml.groups(b'[{"bn": "d:", "bt": 10, "v": 5}, {"n": "a", "v": 1}]') == [("d:", 5, [("a", 1, "", 10)])]
    assert senml.groups(b'[{"bn": "d:", "bt": 10, "n": "seq", "v": 5}, {"n": "a", "v": 1}]') == [
        ("d:", 5, [("a", 1, "", 10)])]


def test_a_taken_port_is_named(broker):
    with pytest.raises(UserError) as e:
        Broker(port=broker.port, tls=False).start()
    assert "in use" in str(e.value) and "give another port" in str(e.value)


def test_a_port_taken_before_mosquitto_binds_it_is_retried(monkeypatch):
    # free_port() hands out a port that another process takes first: the next attempt gets another
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        real = broker_mod.free_port
        monkeypatch.setattr(broker_mod, "free_port", lambda host="127.0.0.1": next(ports, None) or real(host))
        b = Broker(tls=False).start()
        try:
            assert b.port != taken.getsockname()[1]
            socket.create_connection(("127.0.0.1", b.port), 2).close()
        finally:
            b.stop()


def test_home_assistant_templates_pick_each_reading():
    # Home Assistant renders value_template with Jinja2, value_json being the message; a template
    # error keeps the sensor's state (home-assistant.io/integrations/sensor.mqtt)
    import json

    import jinja2

    c = _contract()
    from m2m.report import ha

    env = jinja2.Environment()
    msg = json.loads(c.senml("dev-1", [(5, [("temperature", 21.5, "Cel", 1767225600), ("battery", 0.82, "/", 1767225600),
                                            ("bme.humidity", 40, "%RH", 1767225601)])]))
    for name, unit, want in (("temperature", "Cel", "21.5"), ("battery", "/", "82.0"), ("bme.humidity", "%RH", "40")):
        topic, payload = ha.discovery("m2mkit", "dev-1", name, unit)
        cfg = json.loads(payload)
        assert env.from_string(cfg["value_template"]).render(value_json=msg) == want, name
        assert cfg["state_topic"] == "m2mkit/dev-1/telemetry"
    # a message without the reading: the template fails, so the state stays
    other = json.loads(c.senml("dev-1", [(6, [("pulses", 3, "", 1767225600)])]))
    tpl = env.from_string(json.loads(ha.discovery("m2mkit", "dev-1", "temperature", "Cel")[1])["value_template"])
    with pytest.raises(jinja2.UndefinedError):
        tpl.render(value_json=other)

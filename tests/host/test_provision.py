"""m2mkit provision / inventory / audit / shell against the virtual device with its modem simulator:
the inventory row holds the simulator's IMEI and ICCID, provisioning again writes nothing, secrets are
never printed, certificates chain to the fleet CA, bad configs and reused modems are explained."""

import json
import os
import pty
import select
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from m2mkit import inventory, provision
from m2mkit.errors import UserError
from m2mkit.vdev.device import VirtualDevice
from test_vdev import BIN, mpremote


def m2mkit(*args, env=None, timeout=300):
    p = subprocess.run([str(BIN / "m2mkit"), *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def dev(tmp_path):
    d = VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", modem=True, time_scale=10)
    d.start()
    d.wait_boot(1)
    yield d
    d.stop()


def test_provision_records_the_modem_and_is_idempotent(dev, tmp_path):
    db = tmp_path / "inv.sqlite"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"net": {"apn": "iot.example"}, "mqtt": {"broker": "mqtt://10.0.0.1:1883"}}))
    rc, out, err = m2mkit("provision", "--port", dev.port, "--device-id", "meter-7", "--config", str(cfg),
                          "--db", str(db))
    assert rc == 0, out + err
    assert f"IMEI {dev.modem.imei}" in out and f"ICCID {dev.modem.card.iccid}" in out and "wrote /config.json" in out
    with inventory.Inventory(db) as inv:
        [row] = inv.devices()
        cred = inv.credentials("meter-7")
    assert (row["device_id"], row["imei"], row["iccid"], row["imsi"], row["modem_model"]) == \
        ("meter-7", dev.modem.imei, dev.modem.card.iccid, dev.modem.card.imsi, "bg95")
    assert row["board"] == "esp32-devkitc-bg95" and row["modem_firmware"]
    on_device = json.loads(mpremote(dev.port, "fs", "cat", ":config.json"))
    assert on_device["device"]["id"] == "meter-7" and on_device["net"]["apn"] == "iot.example"
    assert on_device["mqtt"]["password"] == cred["mqtt_password"] and on_device["lwm2m"]["psk_key"] == cred["psk_key"]
    rc, out2, err2 = m2mkit("provision", "--port", dev.port, "--device-id", "meter-7", "--config", str(cfg),
                            "--db", str(db))
    assert rc == 0 and "already provisioned: nothing to write" in out2, out2 + err2
    assert inventory.Inventory(db).credentials("meter-7") == cred  # the same secrets again
    rc, shown, _ = m2mkit("inventory", "show", "meter-7", "--db", str(db))
    rc2, listed, _ = m2mkit("inventory", "list", "--db", str(db))
    rc3, exported, _ = m2mkit("inventory", "export", "--db", str(db))
    assert rc == rc2 == rc3 == 0 and dev.modem.imei in listed and dev.modem.card.iccid in exported
    assert json.loads(shown)["credentials"]["mqtt_password"] == "<secret>"
    for text in (out, err, out2, err2, shown, listed, exported):
        assert cred["mqtt_password"] not in text and cred["psk_key"] not in text and cred["usage_key"] not in text


def test_certificate_mode_chains_to_the_fleet_ca_and_a_reused_modem_is_refused(dev, tmp_path):
    inv = inventory.Inventory(tmp_path / "inv.sqlite")
    r = provision.provision(dev.port, "meter-8", inventory=inv, cert=True, ca_dir=tmp_path / "ca")
    assert sorted(r["written"]) == ["/certs/ca.crt", "/certs/client.crt", "/certs/client.key", "/certs/usage.key",
                                    "/config.json"]
    crt = x509.load_pem_x509_certificate(mpremote(dev.port, "fs", "cat", ":certs/client.crt").encode())
    ca = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes())
    ca.public_key().verify(crt.signature, crt.tbs_certificate_bytes, ec.ECDSA(crt.signature_hash_algorithm))
    assert crt.subject.rfc4514_string() == "CN=meter-8"
    assert oct(os.stat(tmp_path / "ca" / "ca.key").st_mode & 0o777) == "0o600"
    assert "mqtt_password" not in inv.credentials("meter-8")
    # and the config points the MQTT client at them (mqtt.cert / mqtt.key; m2m.report.tlsconf reads them)
    mq = json.loads(mpremote(dev.port, "fs", "cat", ":config.json"))["mqtt"]
    assert (mq["cert"], mq["key"]) == ("/certs/client.crt", "/certs/client.key") and "password" not in mq
    with pytest.raises(UserError, match=r"already provisioned as 'meter-8'; give --device-id meter-8 \(the "
                                        r"inventory holds one id per modem\), or use another inventory \(--db\)"):
        provision.provision(dev.port, "meter-9", inventory=inv)


def test_invalid_config_names_the_key_before_touching_the_port(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"mqtt": {"keepalive": 5}}))
    rc, out, err = m2mkit("provision", "--port", "/dev/ttyUSB77", "--device-id", "m1", "--config", str(cfg),
                          "--db", str(tmp_path / "inv.sqlite"))
    assert rc == 2 and err.strip() == (f"error: --config {cfg}: config key mqtt.keepalive must be between 30 "
                                       f"and 3600, not 5")
    rc, out, err = m2mkit("provision", "--port", "/dev/ttyUSB77", "--device-id", "m/1", "--db",
                          str(tmp_path / "inv.sqlite"))
    assert rc == 2 and "device id 'm/1'" in err
    rc, out, err = m2mkit("provision", "--port", "/dev/ttyUSB77", "--device-id", "m1", "--db",
                          str(tmp_path / "inv.sqlite"))
    assert rc == 2 and "--port /dev/ttyUSB77: no such port" in err


def test_audit_finds_sunset_and_permanent_roaming_exposure(tmp_path):
    db = tmp_path / "inv.sqlite"
    now = time.time()
    with inventory.Inventory(db) as inv:
        for dev, net in (("a", {"apn": "x"}), ("b", {"gsm": True, "rat": ["lte-m", "gsm"]}), ("c", {}), ("d", {}),
                         ("e", {})):
            inv.record(dev, board="esp32-devkitc-bg95", config={"net": net})
    lines = [{"device_id": "a", "t": now - 10, "rat": "lte-m", "plmn": "26201", "roaming": False},
             {"device_id": "c", "t": now - 5, "rat": "gsm", "plmn": "26201", "roaming": False},
             {"device_id": "d", "t": now - 5, "rat": "lte-m", "plmn": "23415", "roaming": True,
              "roaming_since": now - 120 * 86400},
             {"device_id": "e", "t": now - 5, "rat": "nb-iot", "plmn": "23415", "roaming": True,
              "roaming_since": now - 10 * 86400},
             {"device_id": "b", "t": now - 5, "rat": "lte-m", "plmn": "26201", "roaming": False}]
    (tmp_path / "status.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rc, out, err = m2mkit("inventory", "import-status", str(tmp_path / "status.jsonl"), "--db", str(db))
    assert rc == 0 and out == "imported 5 status reports\n", err
    rc, out, err = m2mkit("audit", "--db", str(db))
    assert rc == 0, err
    assert out.splitlines() == [
        "b: sunset: config allows GSM fallback (net.gsm with gsm in net.rat)",
        "c: sunset: last reported on gsm (2G/3G networks are being switched off)",
        "d: roaming: on visited network 23415 for 120 days (over 90: permanent roaming exposure)",
        "5 devices, 3 exposed"]
    (tmp_path / "bad.jsonl").write_text('{"t": 1}\n')
    rc, out, err = m2mkit("inventory", "import-status", str(tmp_path / "bad.jsonl"), "--db", str(db))
    assert rc == 2 and "line 1: not a status object" in err


def test_shell_is_mpremotes_repl(tmp_path):
    with VirtualDevice("esp32-devkitc-bg95", flash=tmp_path / "flash.img", env={}) as d:
        d.wait_boot(1)
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(str(BIN / "m2mkit"), [str(BIN / "m2mkit"), "shell", "--port", d.port])
        seen = b""
        reaped = False
        try:
            def until(want, timeout=30):
                nonlocal seen
                end = time.monotonic() + timeout
                while want not in seen and time.monotonic() < end:
                    if select.select([fd], [], [], 0.2)[0]:
                        try:
                            seen += os.read(fd, 4096)
                        except OSError:
                            break
                return want in seen
            assert until(b"Connected to MicroPython"), seen
            os.write(fd, b"\r")
            assert until(b">>> "), seen
            os.write(fd, b"print(6 * 7)\r")
            assert until(b"42"), seen
            os.write(fd, b"\x1d")  # Ctrl-]: leave mpremote's terminal
            _, status = os.waitpid(pid, 0)
            reaped = True
            assert os.waitstatus_to_exitcode(status) == 0
        finally:
            if not reaped:  # our own child, still unreaped: its pid cannot have been reused
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            os.close(fd)


def test_shell_without_a_terminal_says_what_to_use_instead():
    """`echo ... | m2mkit shell`: a one-line error naming mpremote's exec / run (it was termios's traceback:
    mpremote's console needs a terminal to put in raw mode). The port is a pty, so it opens."""
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        p = subprocess.run([str(BIN / "m2mkit"), "shell", "--port", port], input="print(1)\n",
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and p.stderr == (
            f"error: m2mkit shell needs a terminal (its input is a pipe or a file); to run code from a script "
            f"use `mpremote connect {port} exec \"...\"` or `mpremote connect {port} run FILE`\n"), p.stderr
    finally:
        os.close(master)
        os.close(slave)


def test_an_mqtts_config_the_device_would_refuse_is_refused_before_writing(dev, tmp_path):
    # --cert for an mqtts:// broker without mqtt.ca: the device's m2m.report.tlsconf would refuse it
    # at its start; provision says so before it touches the port
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"mqtt": {"broker": "mqtts://10.0.0.1:8883"}}))
    rc, out, err = m2mkit("provision", "--port", "/dev/ttyUSB77", "--device-id", "m1", "--config", str(cfg),
                          "--cert", "--ca-dir", str(tmp_path / "ca"), "--db", str(tmp_path / "inv.sqlite"))
    assert rc == 2 and err.startswith(f"error: --config: mqtt.cert needs mqtt.ca: set mqtt.ca"), err
    # mqtt.ca names a file that is not on the device: nothing is written, the message says how to copy it
    cfg.write_text(json.dumps({"mqtt": {"broker": "mqtts://10.0.0.1:8883", "ca": "/certs/broker.crt"}}))
    inv = inventory.Inventory(tmp_path / "inv.sqlite")
    with pytest.raises(UserError, match=r"mqtt.ca: no file /certs/broker.crt on the device on .*: copy the "
                                        r"broker's CA certificate there first .*nothing was written"):
        provision.provision(dev.port, "m1", json.loads(cfg.read_text()), inventory=inv, cert=True,
                            ca_dir=tmp_path / "ca")
    assert inv.devices() == [] and "config.json" not in mpremote(dev.port, "fs", "ls", ":")
    (tmp_path / "broker.crt").write_text((tmp_path / "ca" / "ca.crt").read_text())
    mpremote(dev.port, "fs", "mkdir", ":certs")
    mpremote(dev.port, "fs", "cp", str(tmp_path / "broker.crt"), ":certs/broker.crt")
    r = provision.provision(dev.port, "m1", json.loads(cfg.read_text()), inventory=inv, cert=True,
                            ca_dir=tmp_path / "ca")
    assert "/config.json" in r["written"] and "/certs/broker.crt" not in r["written"]
    # a config given no --cert but holding a key without its certificate is refused too
    with pytest.raises(UserError, match=r"the provisioned config: mqtt.key is set but mqtt.cert is not"):
        provision.device_config({"mqtt": {"broker": "mqtts://h:8883", "ca": "/c", "key": "/k"}}, {"mqtt_user": "x"})

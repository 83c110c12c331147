"""`m2mkit provision`: one device's config and credentials onto it, its modem identity into the inventory.

The config is checked with the device's own schema (firmware/lib/m2m/config.py, imported here, never
copied). Credentials: a per-device MQTT password, or a client certificate signed by the fleet CA kept
in the host's fleet folder; an LwM2M PSK identity and key. They are generated once per device and kept
in the inventory, so provisioning again writes the same ones (idempotent); they are never printed.
"""

import csv
import importlib.util
import json
import secrets
from pathlib import Path

from .errors import UserError
from .paths import FIRMWARE

CERT_DIR = "/certs"  # client.crt / client.key / ca.crt on the device, when certificates are used


def _device_module(name, *path):
    """A firmware module that runs under CPython too, imported from firmware/lib/m2m/<path>."""
    spec = importlib.util.spec_from_file_location(name, FIRMWARE.joinpath("lib", "m2m", *path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def schema():
    """The device's m2m.config module, imported from firmware/."""
    return _device_module("m2m_device_config", "config.py")


def _mqtts(cfg):
    """The config's mqtt section when its broker is mqtts:// (the firmware then reads the TLS keys), else None."""
    mq = cfg.get("mqtt") or {}
    return mq if str(mq.get("broker") or "").startswith("mqtts://") else None


def check_config(cfg, where="--config"):
    """The validated config; a UserError naming the key and why."""
    c = schema()
    try:
        return c.validate(cfg)
    except c.ConfigError as e:
        raise UserError(f"{where}: {e}") from None


def check_tls(cfg, where, cert=False):
    """For an mqtts:// broker, what the device's m2m.report.tlsconf would refuse at its start (a client
    certificate without its key or without mqtt.ca), as a UserError now. cert: --cert will set
    mqtt.cert and mqtt.key."""
    mq = _mqtts(cfg)
    if mq is None:
        return  # the firmware reads no TLS key for mqtt://
    if cert:
        mq = dict(mq, cert=CERT_DIR + "/client.crt", key=CERT_DIR + "/client.key")
    why = _device_module("m2m_device_tlsconf", "report", "tlsconf.py").check(mq)
    if why:
        raise UserError(f"{where}: {why}")


def load_config_file(path):
    if path is None:
        return {}
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"--config {path}: cannot read it ({e.strerror})") from None
    except ValueError as e:
        raise UserError(f"--config {path}: not valid JSON ({e}); fix it") from None
    check_config(raw, f"--config {path}")
    return raw


def parse_cell(dotted, text, where):
    """A CSV cell for config key `dotted` (section.key), read by the key's schema type."""
    c = schema()
    section, _, key = dotted.partition(".")
    try:
        typ = c.SCHEMA[section][key][0]
    except KeyError:
        try:
            c._check(section, key, None)
        except c.ConfigError as e:
            raise UserError(f"{where}: column {dotted!r}: {e}") from None
        raise UserError(f"{where}: column {dotted!r}: give columns as section.key") from None
    if text == "":
        return None
    if typ is str:
        return text
    try:
        return json.loads(text)
    except ValueError:
        raise UserError(f"{where}: column {dotted!r}: {text!r} is not a {typ.__name__} (write it as JSON)") from None


def read_devices(path):
    """[(device_id, {section: {key: value}})] from a CSV with a device_id column and section.key columns."""
    try:
        f = open(path, newline="")
    except OSError as e:
        raise UserError(f"--devices {path}: cannot read it ({e.strerror})") from None
    out, seen = [], set()
    with f:
        rows = csv.DictReader(f)
        if not rows.fieldnames or "device_id" not in rows.fieldnames:
            raise UserError(f"--devices {path}: the first row must name the columns, one of them device_id")
        for n, row in enumerate(rows, start=2):
            where = f"--devices {path} line {n}"
            dev = (row.pop("device_id") or "").strip()
            check_device_id(dev, where)
            if dev in seen:
                raise UserError(f"{where}: device_id {dev!r} appears twice; give each device once")
            seen.add(dev)
            cfg = {}
            for col, text in row.items():
                if col is None:
                    raise UserError(f"{where}: more cells than columns")
                v = parse_cell(col, (text or "").strip(), where)
                if v is not None:
                    s, _, k = col.partition(".")
                    cfg.setdefault(s, {})[k] = v
            cfg.setdefault("device", {})["id"] = dev
            check_config(cfg, where)
            out.append((dev, cfg))
    if not out:
        raise UserError(f"--devices {path}: no device rows")
    return out


def check_device_id(dev, where="--device-id"):
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", dev or ""):
        raise UserError(f"{where}: device id {dev!r}: use 1-64 letters, digits, '-', '_' or '.', starting "
                        f"with a letter or digit (it becomes an MQTT topic level and a file name)")


def new_credentials(device_id, mode="password"):
    """Fresh credentials: {"mqtt_user", "mqtt_password" or cert fields, "psk_identity", "psk_key"}."""
    cred = {"mqtt_user": device_id, "psk_identity": device_id, "psk_key": secrets.token_hex(16),
            "usage_key": secrets.token_hex(32)}  # signs usage records (m2m.usagerec; m2mkit usage verify)
    if mode == "password":
        cred["mqtt_password"] = secrets.token_urlsafe(18)
    return cred


def device_config(cfg, cred):
    """The device's /config.json content: the given config plus its credentials."""
    out = json.loads(json.dumps(cfg))
    mqtt = out.setdefault("mqtt", {})
    mqtt["user"] = cred["mqtt_user"]
    if cred.get("mqtt_password"):
        mqtt["password"] = cred["mqtt_password"]
    if cred.get("cert_pem"):  # the files device_files writes: the firmware presents them for mqtts://
        mqtt["cert"] = CERT_DIR + "/client.crt"
        mqtt["key"] = CERT_DIR + "/client.key"
    if cred.get("psk_key"):
        out.setdefault("lwm2m", {}).update(psk_identity=cred["psk_identity"], psk_key=cred["psk_key"])
    check_config(out, "the provisioned config")
    check_tls(out, "the provisioned config")
    return out


def device_files(cfg, cred):
    """{device path: bytes} for one device's config and credentials (only what differs from the
    defaults goes into /config.json, as m2m.config.save writes it)."""
    c = schema()
    full = c.validate(device_config(cfg, cred))
    small = {}
    for section, keys in c.SCHEMA.items():
        d = {k: v for k, v in full[section].items() if v != keys[k][1]}
        if d:
            small[section] = d
    files = {"/config.json": json.dumps(small, sort_keys=True).encode()}
    if cred.get("usage_key"):
        files[CERT_DIR + "/usage.key"] = cred["usage_key"].encode()  # out of config.json: never in a /cmd reply
    if cred.get("cert_pem"):
        files[CERT_DIR + "/client.crt"] = cred["cert_pem"].encode()
        files[CERT_DIR + "/client.key"] = cred["key_pem"].encode()
        files[CERT_DIR + "/ca.crt"] = cred["ca_pem"].encode()
    return files


# ---- the fleet CA (certificate mode) ----

def default_ca_dir():
    import os

    return Path(os.environ.get("M2MKIT_CA") or Path.home() / ".m2mkit" / "ca")


def fleet_ca(ca_dir=None):
    """(ca cert, ca key) from ca_dir, created on first use (EC P-256; the key file is 0600)."""
    import datetime
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = Path(ca_dir or default_ca_dir())
    crt, key = d / "ca.crt", d / "ca.key"
    if crt.exists() and key.exists():
        return (x509.load_pem_x509_certificate(crt.read_bytes()),
                serialization.load_pem_private_key(key.read_bytes(), None))
    d.mkdir(parents=True, exist_ok=True)
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "m2mkit fleet CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(k, hashes.SHA256()))
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, k


def issue_cert(device_id, ca_dir=None):
    """{"cert_pem", "key_pem", "ca_pem"}: a client certificate (CN = device id) signed by the fleet CA."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca, ca_key = fleet_ca(ca_dir)
    k = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
            .issuer_name(ca.subject).public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {"cert_pem": cert.public_bytes(pem).decode(),
            "key_pem": k.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()).decode(),
            "ca_pem": ca.public_bytes(pem).decode()}


# ---- provisioning one device over its serial port ----

_IDENTITY = """
import json
try:
 _b=json.load(open('/board.json')).get('name')
except Exception:
 _b=None
from m2m import app
_i=app.modem_check().identity()
print('M2MID',repr((_b,_i)))
"""


def read_identity(transport, timeout=180):
    """(board name or None, {imei, iccid, imsi, model, firmware, ...}) through the device's own modem layer."""
    import ast

    out, err = transport.exec_raw(_IDENTITY, timeout=timeout)
    if err:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise UserError(f"the device could not read its modem: {last[0]}")
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("M2MID "):
            return ast.literal_eval(line[6:])
    raise UserError("the device printed no modem identity; is the m2mkit firmware deployed (`m2mkit deploy`)?")


def provision(port, device_id, config=None, inventory=None, cert=False, ca_dir=None, reset=True):
    """Returns {"identity", "board", "written": [paths]}; secrets are never in what it returns."""
    from . import deploy
    from .inventory import Inventory

    check_device_id(device_id)
    cfg = json.loads(json.dumps(config or {}))
    cfg.setdefault("device", {})["id"] = device_id
    check_config(cfg)
    check_tls(cfg, "--config", cert)
    inv = inventory or Inventory()
    transport = deploy.open_port(port)
    try:
        deploy.raw_repl(transport, port)
        board, ident = read_identity(transport)
        for other in inv.devices():
            if other["imei"] and other["imei"] == ident.get("imei") and other["device_id"] != device_id:
                raise UserError(f"the modem on {port} (IMEI {ident['imei']}) is already provisioned as "
                                f"{other['device_id']!r}; give --device-id {other['device_id']} (the inventory "
                                f"holds one id per modem), or use another inventory (--db)")
        cred = inv.credentials(device_id)
        if cred is None or (cert and "cert_pem" not in cred):
            cred = dict(cred or new_credentials(device_id, "cert" if cert else "password"))
            if cert:
                cred.update(issue_cert(device_id, ca_dir))
        if "usage_key" not in cred:  # provisioned before usage records existed
            cred = dict(cred, usage_key=secrets.token_hex(32))
        files = device_files(cfg, cred)
        ca = (_mqtts(cfg) or {}).get("ca")
        _, _, have, _ = deploy.scan_paths(transport, list(files) + ([ca] if ca and ca not in files else []))
        if ca and ca not in files and ca not in have:
            raise UserError(f"mqtt.ca: no file {ca} on the device on {port}: copy the broker's CA certificate "
                            f"there first (mpremote connect {port} cp ca.crt :{ca}), then provision again; "
                            f"nothing was written")
        import hashlib

        changes = [(p, d) for p, d in files.items() if have.get(p) != hashlib.sha256(d).hexdigest()]
        if changes:
            transport.exec(deploy._HELPERS)
            for script, _size in deploy._batches(changes):
                transport.exec(script)
        inv.record(device_id, board=board, identity=ident, credentials=cred, config=cfg)
        transport.exit_raw_repl()
        if reset and changes:
            transport.serial.write(b"\x04")  # soft reset: the firmware reads its new config
            transport.read_until(1, b"soft reboot", timeout=2, timeout_overall=5)
        return {"identity": ident, "board": board, "written": [p for p, _ in changes]}
    finally:
        transport.close()
        if inventory is None:
            inv.close()


def _command():
    import click

    @click.command("provision")
    @click.option("--port", required=True, help="serial port of the board (or the virtual device's /dev/pts/N)")
    @click.option("--device-id", required=True, help="the device's name (MQTT topic level, LwM2M endpoint)")
    @click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
                  help="JSON config (sections and keys of m2m.config) for this device")
    @click.option("--cert", is_flag=True, help="an MQTT client certificate from the fleet CA instead of a password")
    @click.option("--ca-dir", default=None, help="fleet CA folder (default ~/.m2mkit/ca, or M2MKIT_CA)")
    @click.option("--db", default=None, help="inventory file (default ~/.m2mkit/inventory.sqlite, or M2MKIT_INVENTORY)")
    def provision_cmd(port, device_id, config_file, cert, ca_dir, db):
        """Write a device's config and credentials, and record its modem identity in the inventory."""
        from .inventory import Inventory

        cfg = load_config_file(config_file)
        with Inventory(db) as inv:
            r = provision(port, device_id, cfg, inventory=inv, cert=cert, ca_dir=ca_dir)
        i = r["identity"]
        click.echo(f"{device_id}: {i.get('model')} firmware {i.get('firmware')}, IMEI {i.get('imei')}, "
                   f"ICCID {i.get('iccid')}, IMSI {i.get('imsi')}; board {r['board']}")
        click.echo(f"wrote {', '.join(r['written'])}" if r["written"] else "already provisioned: nothing to write")

    return provision_cmd


command = _command()

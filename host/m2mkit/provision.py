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


def schema():
    """The device's m2m.config module, imported from firmware/ (it runs under CPython too)."""
    spec = importlib.util.spec_from_file_location("m2m_device_config", FIRMWARE / "lib" / "m2m" / "config.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_config(cfg, where="--config"):
    """The validated config; a UserError naming the key and why."""
    c = schema()
    try:
        return c.validate(cfg)
    except c.ConfigError as e:
        raise UserError(f"{where}: {e}") from None


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
    cred = {"mqtt_user": device_id, "psk_identity": device_id, "psk_key": secrets.token_hex(16)}
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
    if cred.get("psk_key"):
        out.setdefault("lwm2m", {}).update(psk_identity=cred["psk_identity"], psk_key=cred["psk_key"])
    check_config(out, "the provisioned config")
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
    if cred.get("cert_pem"):
        files[CERT_DIR + "/client.crt"] = cred["cert_pem"].encode()
        files[CERT_DIR + "/client.key"] = cred["key_pem"].encode()
        files[CERT_DIR + "/ca.crt"] = cred["ca_pem"].encode()
    return files

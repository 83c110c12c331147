"""The fleet inventory: one SQLite file (default ~/.m2mkit/inventory.sqlite, or M2MKIT_INVENTORY / --db).

`devices` holds what provisioning learnt (board, modem identity) and gave (config, credentials: the
file is created 0600 and secrets are never printed); `status` holds each device's reports as imported
with `m2mkit inventory import-status FILE` (JSON lines, see STATUS_FIELDS), which `m2mkit audit` reads.
"""

import json
import os
import sqlite3
import time
from pathlib import Path

from .errors import UserError

SECRET_KEYS = ("mqtt_password", "psk_key", "key_pem", "usage_key")
# a status line: {"device_id": ..., "t": epoch seconds, "rat": "lte-m" | "nb-iot" | "gsm" | "umts" | ...,
#  "plmn": "26201", "roaming": true/false, "roaming_since": epoch seconds or null}
STATUS_FIELDS = ("device_id", "t", "rat", "plmn", "roaming", "roaming_since")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
  device_id TEXT PRIMARY KEY, board TEXT, imei TEXT, iccid TEXT, imsi TEXT, modem_model TEXT,
  modem_firmware TEXT, config TEXT, credentials TEXT, provisioned_at REAL, updated_at REAL);
CREATE TABLE IF NOT EXISTS status (
  device_id TEXT, t REAL, rat TEXT, plmn TEXT, roaming INTEGER, roaming_since REAL,
  PRIMARY KEY (device_id, t));
CREATE TABLE IF NOT EXISTS esim (
  device_id TEXT PRIMARY KEY, t REAL, eid TEXT, iccid TEXT, profiles TEXT);
"""
COLUMNS = ("device_id", "board", "imei", "iccid", "imsi", "modem_model", "modem_firmware", "provisioned_at",
           "updated_at")


def default_path():
    return Path(os.environ.get("M2MKIT_INVENTORY") or Path.home() / ".m2mkit" / "inventory.sqlite")


class Inventory:
    def __init__(self, path=None):
        self.path = Path(path or default_path())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # it holds secrets
            self.db = sqlite3.connect(self.path)
            self.db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise UserError(f"inventory {self.path}: cannot open it ({e}); give another with --db") from None

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def credentials(self, device_id):
        row = self.db.execute("SELECT credentials FROM devices WHERE device_id=?", (device_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def record(self, device_id, board=None, identity=None, credentials=None, config=None):
        """Insert or update a device; fields given as None keep their stored value."""
        now = time.time()
        ident = identity or {}
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO devices (device_id, provisioned_at) VALUES (?, ?)", (device_id, now))
            fields = {"board": board, "imei": ident.get("imei"), "iccid": ident.get("iccid"),
                      "imsi": ident.get("imsi"), "modem_model": ident.get("model"),
                      "modem_firmware": ident.get("firmware"),
                      "config": json.dumps(config, sort_keys=True) if config is not None else None,
                      "credentials": json.dumps(credentials, sort_keys=True) if credentials is not None else None}
            fields = {k: v for k, v in fields.items() if v is not None}
            fields["updated_at"] = now
            self.db.execute("UPDATE devices SET " + ", ".join(f"{k}=?" for k in fields) + " WHERE device_id=?",
                            (*fields.values(), device_id))

    def devices(self):
        cur = self.db.execute("SELECT " + ", ".join(COLUMNS) + " FROM devices ORDER BY device_id")
        return [dict(zip(COLUMNS, r)) for r in cur]

    def device(self, device_id):
        cur = self.db.execute("SELECT " + ", ".join(COLUMNS) + ", config, credentials FROM devices WHERE device_id=?",
                              (device_id,))
        r = cur.fetchone()
        if r is None:
            raise UserError(f"device {device_id!r} is not in the inventory {self.path}; "
                            f"list them with `m2mkit inventory list`")
        d = dict(zip(COLUMNS, r))
        d["config"] = json.loads(r[-2]) if r[-2] else None
        cred = json.loads(r[-1]) if r[-1] else {}
        d["credentials"] = {k: ("<secret>" if k in SECRET_KEYS else v) for k, v in cred.items()}
        d["last_status"] = self.last_status(device_id)
        d["esim"] = self.esim(device_id)
        return d

    def import_status(self, path):
        """Import status lines (JSON, one object per line); returns how many."""
        n = 0
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as e:
            raise UserError(f"{path}: cannot read it ({e.strerror})") from None
        with self.db:
            for i, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    s = json.loads(line)
                    if not isinstance(s, dict) or not s.get("device_id") or not isinstance(s.get("t"), (int, float)):
                        raise ValueError("needs device_id and t (epoch seconds)")
                except ValueError as e:
                    raise UserError(f"{path} line {i}: not a status object ({e}); each line is JSON with "
                                    f"{', '.join(STATUS_FIELDS)}") from None
                self.db.execute("INSERT OR REPLACE INTO status VALUES (?, ?, ?, ?, ?, ?)",
                                (s["device_id"], s["t"], s.get("rat"), s.get("plmn"),
                                 None if s.get("roaming") is None else int(bool(s["roaming"])), s.get("roaming_since")))
                self._import_esim(s)
                n += 1
        return n

    def _import_esim(self, s):
        # the eUICC a status report names (the device's "esim": eid, iccid, profiles; issue #13): the
        # newest report per device is kept
        e = s.get("esim")
        if not isinstance(e, dict) or not e.get("eid"):
            return
        old = self.db.execute("SELECT t FROM esim WHERE device_id=?", (s["device_id"],)).fetchone()
        if old is None or old[0] <= s["t"]:
            self.db.execute("INSERT OR REPLACE INTO esim VALUES (?, ?, ?, ?, ?)",
                            (s["device_id"], s["t"], e["eid"], e.get("iccid"), json.dumps(e.get("profiles") or [])))

    def esim(self, device_id):
        r = self.db.execute("SELECT t, eid, iccid, profiles FROM esim WHERE device_id=?", (device_id,)).fetchone()
        return None if r is None else {"t": r[0], "eid": r[1], "iccid": r[2], "profiles": json.loads(r[3])}

    def last_status(self, device_id):
        r = self.db.execute("SELECT t, rat, plmn, roaming, roaming_since FROM status WHERE device_id=? "
                            "ORDER BY t DESC LIMIT 1", (device_id,)).fetchone()
        if r is None:
            return None
        return {"t": r[0], "rat": r[1], "plmn": r[2], "roaming": None if r[3] is None else bool(r[3]),
                "roaming_since": r[4]}


LEGACY_RATS = ("gsm", "gprs", "egprs", "edge", "umts", "hspa", "2g", "3g")


def audit(inv, now=None, roam_days=90):
    """[(device_id, finding)] for 2G/3G sunset exposure and permanent-roaming exposure.

    Sunset: the last report was on a 2G/3G RAT, or the config lets the device fall back to GSM
    (net.gsm with "gsm" in net.rat). Roaming: the last report is on a visited network and has been
    since more than `roam_days` days (operators restrict permanent roaming; the limit is a contract
    term, so it is an option)."""
    now = time.time() if now is None else now
    out = []
    for d in inv.devices():
        dev = d["device_id"]
        full = inv.db.execute("SELECT config FROM devices WHERE device_id=?", (dev,)).fetchone()[0]
        net = (json.loads(full) if full else {}).get("net", {})
        s = inv.last_status(dev)
        if s and (s["rat"] or "").lower() in LEGACY_RATS:
            out.append((dev, f"sunset: last reported on {s['rat']} (2G/3G networks are being switched off)"))
        elif net.get("gsm") and "gsm" in (net.get("rat") or []):
            out.append((dev, "sunset: config allows GSM fallback (net.gsm with gsm in net.rat)"))
        if s is None:
            out.append((dev, "unknown: no status imported (m2mkit inventory import-status)"))
        elif s["roaming"]:
            since = s["roaming_since"]
            if since is not None and now - since > roam_days * 86400:
                out.append((dev, f"roaming: on visited network {s['plmn']} for {int((now - since) // 86400)} days "
                                 f"(over {roam_days}: permanent roaming exposure)"))
            elif since is None:
                out.append((dev, f"roaming: on visited network {s['plmn']} since an unknown time"))
    return out


def _commands():
    import csv
    import sys

    import click

    db_option = click.option("--db", default=None,
                             help="inventory file (default ~/.m2mkit/inventory.sqlite, or M2MKIT_INVENTORY)")

    @click.group("inventory")
    def inventory_cmd():
        """The fleet inventory: devices, their modem identity, their last status."""

    @inventory_cmd.command("list")
    @db_option
    def list_cmd(db):
        """One line per device."""
        with Inventory(db) as inv:
            for d in inv.devices():
                click.echo(f"{d['device_id']:<20} {d['board'] or '-':<22} {d['modem_model'] or '-':<9} "
                           f"IMEI {d['imei'] or '-':<16} ICCID {d['iccid'] or '-'}")

    @inventory_cmd.command("show")
    @click.argument("device_id")
    @db_option
    def show_cmd(device_id, db):
        """Everything about one device (secrets shown as <secret>)."""
        with Inventory(db) as inv:
            click.echo(json.dumps(inv.device(device_id), indent=1, sort_keys=True))

    @inventory_cmd.command("export")
    @click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
    @db_option
    def export_cmd(fmt, db):
        """Every device, without secrets, as CSV or JSON on stdout."""
        with Inventory(db) as inv:
            rows = inv.devices()
        if fmt == "json":
            click.echo(json.dumps(rows, indent=1))
        else:
            w = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)

    @inventory_cmd.command("import-status")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @db_option
    def import_cmd(path, db):
        """Import device status reports: JSON lines with device_id, t, rat, plmn, roaming, roaming_since."""
        with Inventory(db) as inv:
            click.echo(f"imported {inv.import_status(path)} status reports")

    @click.command("audit")
    @click.option("--roam-days", default=90, show_default=True, type=click.IntRange(1, 3650),
                  help="days on a visited network that count as permanent roaming (your contracts' limit)")
    @db_option
    def audit_cmd(roam_days, db):
        """2G/3G sunset and permanent-roaming exposure, from the inventory and the last status reports."""
        with Inventory(db) as inv:
            findings = audit(inv, roam_days=roam_days)
            n = len(inv.devices())
        for dev, f in findings:
            click.echo(f"{dev}: {f}")
        click.echo(f"{n} devices, {len({d for d, f in findings if not f.startswith('unknown')})} exposed")

    return inventory_cmd, audit_cmd


commands = _commands()

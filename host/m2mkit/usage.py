"""`m2mkit usage verify|report`: the devices' signed usage records (docs/CONTRACTS.md "Usage records").

verify: every device's chain and signatures against the inventory's usage keys; each finding names
the device, the record number and what is wrong (bad_signature, gap, broken_chain, counter_backwards,
counter_reset, fork, malformed, unknown_device, start). An exact copy of a record already seen (same
signature, hence same device, number and content) is a `duplicate`: what MQTT QoS 1 and the outbox's
resend after a lost PUBACK deliver in normal operation. It is dropped before the chain is checked, so
it can change neither the chain nor what is billed, and is reported as a notice, not a failure
(`--strict`: a failure too). A replay that could change either is not an exact copy of a record in
the same input and shows as what it does: a fork (its number is taken), a gap or broken_chain (out of
its place), a counter_reset.

A slice (one month's file, records collected from mid-life): `--from-state FILE` (what `verify
--save-state FILE` wrote: each device's last record's n and s and each meter's last end) or `--after
DEVICE:N:HASH` checks it as the continuation of what was verified before: the next record must be
n+1 naming that s (and start each meter where it ended); records at or before it are an `overlap`
notice (not checked again, not billed). Without either, a device whose first record is not n=1 has a
`start` finding (a failure: records 1..n-1 are not in the input), which says how to continue.

report: per-device, per-period totals of the records that verify, priced by a tariff file, as CSV and
JSON; each finding on stderr says whether its record is billed (bill_label). Records come from
JSON-lines files (each a record with "d", the device id) and / or from a broker (`--broker`:
`<prefix>/+/usage` while it runs).

Tariff file (JSON): {"currency": "EUR", "decimals": 2, "meters": {"<meter name or *>": {
  "price": "0.002", "tiers": [{"upto": "1000", "price": "0.002"}, {"upto": null, "price": "0.0015"}],
  "minimum": "5.00"}}} - prices per unit of the record's "u"; tiers are graduated per device, meter
and period (each unit priced at the tier it falls in); minimum: the least charged per device, meter
and period in which the meter has records. Numbers as strings (or JSON numbers) are read exactly.
"""

import csv
import hashlib
import hmac
import io
import json
import re
import time
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

from .errors import UserError

FIELDS = ("m", "n", "a", "b", "k", "u", "t0", "t1", "p", "s")
KINDS = ("bad_signature", "gap", "broken_chain", "counter_backwards", "counter_reset", "fork",
         "malformed", "unknown_device", "duplicate", "start", "overlap")
NOTICES = ("duplicate", "overlap")  # reported, not a failure
STRICT = ("duplicate",)  # the notices that --strict makes failures
PERIODS = ("hour", "day", "month", "all")


def message(dev, r):
    """What the signature covers: <device id>|m|n|a|b|k|u|t0|t1|p."""
    return f"{dev}|{r['m']}|{r['n']}|{r['a']}|{r['b']}|{r['k']}|{r['u']}|{r['t0']}|{r['t1']}|{r['p']}".encode()


def tag(key, dev, r):
    return hmac.new(key, message(dev, r), hashlib.sha256).hexdigest()[:32]


def sign(key, dev, r):
    """A record dict with its "s" (host side: tests and tools that make records)."""
    return dict(r, s=tag(key, dev, r))


def units(r):
    return (r["b"] - r["a"]) * Fraction(r["k"])


def _well_formed(r):
    if not isinstance(r, dict) or any(f not in r for f in FIELDS):
        return False
    ints = all(type(r[f]) is int for f in ("n", "a", "b", "t0", "t1"))
    strs = all(type(r[f]) is str for f in ("m", "k", "u", "p", "s"))
    if not (ints and strs and r["n"] >= 1 and re.fullmatch(r"[0-9a-f]{32}", r["s"])):
        return False
    try:
        Fraction(r["k"])
    except (ValueError, ZeroDivisionError):
        return False
    return True


class Finding(dict):
    def line(self):
        return f"{self['device']} n={self['n']}: {self['kind']}: {self['detail']}"


def failures(findings, strict=False):
    """The findings that make verify fail: all but the notices; with strict, duplicates too."""
    return [f for f in findings if f["kind"] not in NOTICES or (strict and f["kind"] in STRICT)]


def billed(f, accepted):
    """Whether the record a finding names is billed (in accepted; a duplicate: the record it copies)."""
    r = f["record"]
    recs = accepted.get(f["device"]) or ()
    if f["kind"] in ("bad_signature", "malformed", "unknown_device", "overlap"):
        return False  # never in the chain (an edited copy can carry a billed record's s)
    if f["kind"] == "duplicate":
        return any(x["s"] == r["s"] for x in recs)
    return any(x is r for x in recs)


def bill_label(f, accepted):
    """What a finding means for the bill, as `report` prints it after the finding's line."""
    k = f["kind"]
    if k == "unknown_device":
        return "none of its records billed"
    if k == "overlap":
        return "not billed: at or before the last record verified before"
    if k == "duplicate":
        return "billed once: this copy dropped" if billed(f, accepted) else "not billed, nor the record it copies"
    if k == "fork":
        return f"not billed, nor the other records with n={f['n']}"
    if not billed(f, accepted):
        return "not billed"
    if k == "gap":
        return "this record billed; what is missing is in no record: not billed"
    if k == "start":
        return "billed; what comes before it is not in this input"
    return "billed"


def verify(records, keys, after=None, heads=None):
    """(findings, accepted): records is an iterable of (device id, record dict or raw text) in arrival
    order; keys: device id -> key bytes. accepted: device id -> [record, ...] (each record once, in
    chain order) that carry a good signature, are not forks and do not run backwards: what is billed.

    after: device id -> {"n", "s", "meters": {meter: b} (optional)}: the last record of that device
    verified before (a saved state, or --after); its records are checked as their continuation: the
    next one must be n+1 with p = s (each meter's first record must start at its "meters" end), and
    those at or before it are an `overlap` notice (verified before: not checked again, not billed).
    Without it a device whose first record is not n=1 has a `start` finding (a failure: what comes
    before is not in the input). heads: a dict, filled with device id -> {"n", "s", "meters"} after
    this input (the chain's last record and each meter's last end): what save_state writes."""
    after = after or {}
    findings = []
    by_dev = {}
    for dev, r in records:
        by_dev.setdefault(dev, []).append(r)

    def find(dev, r, kind, detail):
        findings.append(Finding(device=dev, n=(r.get("n") if isinstance(r, dict) else None), kind=kind,
                                detail=detail, record=r))

    accepted = {}
    for dev in sorted(by_dev):
        key = keys.get(dev)
        if key is None:
            find(dev, {}, "unknown_device", "no usage key for this device in the inventory: provision it, "
                                            "or give the inventory that holds it (--db)")
            continue
        seen = set()
        good = []
        for r in by_dev[dev]:
            if isinstance(r, (str, bytes)):
                try:
                    r = json.loads(r)
                except ValueError:
                    find(dev, {}, "malformed", f"not JSON: {r[:60]!r}")
                    continue
            if not _well_formed(r):
                find(dev, r if isinstance(r, dict) else {}, "malformed", "not a usage record (fields "
                     + ", ".join(FIELDS) + ")")
                continue
            if not hmac.compare_digest(tag(key, dev, r), r["s"]):
                find(dev, r, "bad_signature", "the signature does not match its content (edited, forged, "
                                              "or signed with another key)")
                continue
            if r["s"] in seen:
                # same signature: same n and content (a QoS 1 redelivery, or a replay): dropping it
                # leaves the input as it was without it
                find(dev, r, "duplicate", "an exact copy of a record already seen (a repeated delivery "
                                          "or a replay): dropped, billed once")
                continue
            seen.add(r["s"])
            good.append(r)
        # chains: a record numbered 1 starts one (a device that lost its state starts again)
        chains = []
        for r in good:
            if r["n"] == 1 or not chains:
                chains.append([])
            chains[-1].append(r)
        st = after.get(dev)
        cont = False  # chains[0] continues the saved state
        before = None  # the n the next chain that starts at 1 starts again after
        if st is not None:
            sn, ss = st["n"], st["s"]
            before = sn
            old = []
            # the chain that holds the saved record continues it (chains before it were verified
            # before); without it, the first chain does, unless it starts again at n=1
            hi = next((i for i, c in enumerate(chains) if any(r["n"] == sn and r["s"] == ss for r in c)), None)
            if hi is not None:
                for c in chains[:hi]:
                    old += c
                chains = chains[hi:]
                cont = True
            elif chains and chains[0][0]["n"] != 1:
                cont = True
            if cont:
                keep = []
                for r in chains[0]:
                    if r["n"] < sn or r["s"] == ss:
                        old.append(r)
                    elif r["n"] == sn:
                        find(dev, r, "fork", f"the record n={sn} verified before (--from-state / --after) has "
                                             "another signature: this one is not billed")
                    else:
                        keep.append(r)
                chains[0] = keep
            if old:
                find(dev, old[0], "overlap", f"{len(old)} records at or before n={sn}, the last record verified "
                                             "before (--from-state / --after): not checked again")
                findings[-1]["count"] = len(old)
        out = []
        final = None  # (head record, meters) of the last chain
        for ci, chain in enumerate(chains):
            if not chain:
                continue
            continuing = cont and ci == 0
            last_b = dict(st.get("meters") or {}) if continuing else {}  # meter -> its previous record's end
            prev = {"n": st["n"], "s": st["s"]} if continuing else None
            head = prev
            by_n = {}
            for r in chain:
                by_n.setdefault(r["n"], []).append(r)
            if continuing:
                pass
            elif chain[0]["n"] == 1:
                if before is not None:
                    find(dev, chain[0], "counter_reset", f"the chain starts again at n=1 after n={before}"
                         + (", the last record verified before" if ci == 0 else "")
                         + ": the device lost its meter state")
            else:
                n0 = chain[0]["n"]
                find(dev, chain[0], "start", f"the input starts here: records 1-{n0 - 1} are not in it. If they "
                     "were verified before, give --from-state FILE (what verify --save-state wrote) to check this "
                     f"as their continuation; to take this record as the first, give --after {dev}:{n0 - 1}:"
                     f"{chain[0]['p']}")
            for n in sorted(by_n):
                rs = by_n[n]
                if len(rs) > 1:
                    find(dev, rs[1], "fork", f"{len(rs)} different records carry n={n}: none of them is billed")
                    prev = None
                    continue
                r = rs[0]
                if prev is not None:
                    if n != prev["n"] + 1:
                        find(dev, r, "gap", f"records {prev['n'] + 1}-{n - 1} are missing"
                             if n > prev["n"] + 2 else f"record {prev['n'] + 1} is missing")
                    elif r["p"] != prev["s"]:
                        find(dev, r, "broken_chain", f"it does not follow record {prev['n']} (p is not its s)")
                elif n == 1 and r["p"] != "":
                    find(dev, r, "broken_chain", "record 1 names a previous record")
                prev = head = r
                if r["b"] < r["a"]:
                    find(dev, r, "counter_backwards", f"meter {r['m']} ends at {r['b']}, below its start {r['a']}")
                    continue
                lb = last_b.get(r["m"])
                if lb is not None and r["a"] != lb:
                    if r["a"] < lb:
                        find(dev, r, "counter_reset", f"meter {r['m']} starts at {r['a']}, below the previous "
                                                      f"record's end {lb}")
                    else:
                        find(dev, r, "gap", f"meter {r['m']} starts at {r['a']}, the previous record ended at "
                                            f"{lb}: {r['a'] - lb} counts in no record")
                last_b[r["m"]] = r["b"]
                out.append(r)
            before = chain[-1]["n"]
            if head is not None:
                final = (head, last_b)
        accepted[dev] = out
        if heads is not None:
            if final is not None:
                heads[dev] = {"n": final[0]["n"], "s": final[0]["s"], "meters": final[1]}
            elif st is not None:
                heads[dev] = st
    return findings, accepted


# ---- state: the last record verified per device ----

def parse_after(values):
    """--after DEVICE:N:HASH (repeatable) -> {device: {"n", "s"}}."""
    out = {}
    for v in values:
        parts = v.rsplit(":", 2)
        if (len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) < 1
                or not re.fullmatch(r"[0-9a-f]{32}", parts[2])):
            raise UserError(f"--after {v}: give DEVICE:N:HASH, the device id, the n of its last record verified "
                            "before and that record's s (32 hex digits)")
        out[parts[0]] = {"n": int(parts[1]), "s": parts[2]}
    return out


def load_state(path):
    """A state file (save_state's) -> {device: {"n", "s", "meters"}}."""
    try:
        d = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"--from-state {path}: cannot read it ({e.strerror}); it is what "
                        "m2mkit usage verify --save-state FILE wrote") from None
    except ValueError:
        raise UserError(f"--from-state {path}: not JSON; give the file m2mkit usage verify --save-state "
                        "wrote") from None
    devs = d.get("devices") if isinstance(d, dict) and d.get("usage_state") == 1 else None
    if not isinstance(devs, dict):
        raise UserError(f"--from-state {path}: not a usage state (no \"usage_state\": 1 and \"devices\"); give the "
                        "file m2mkit usage verify --save-state wrote")
    out = {}
    for dev, h in devs.items():
        ok = (isinstance(h, dict) and type(h.get("n")) is int and h["n"] >= 1 and isinstance(h.get("s"), str)
              and isinstance(h.get("meters", {}), dict)
              and all(type(b) is int for b in h.get("meters", {}).values()))
        if not ok:
            raise UserError(f"--from-state {path}: device {dev}: give {{\"n\": <int>, \"s\": \"<hex>\", "
                            "\"meters\": {\"<meter>\": <int>}}")
        out[dev] = {"n": h["n"], "s": h["s"], "meters": dict(h.get("meters", {}))}
    return out


def save_state(path, heads):
    """Write {device: {"n", "s", "meters"}} (through a temporary file and a rename)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps({"usage_state": 1, "devices": dict(sorted(heads.items()))}, indent=1) + "\n")
    tmp.replace(p)


# ---- input ----

def read_files(paths):
    """(device id, record) pairs from JSON-lines files; a line without "d" is a one-line error."""
    out = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise UserError(f"{path}: cannot read it ({e.strerror})") from None
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError:
                raise UserError(f"{path}:{i}: not JSON; each line must be a usage record with \"d\" "
                                f"(the device id)") from None
            if not isinstance(r, dict) or not isinstance(r.get("d"), str):
                raise UserError(f"{path}:{i}: no \"d\" (device id): each line is a record with \"d\" added")
            dev = r.pop("d")
            out.append((dev, r))
    return out


def collect(url, prefix="m2mkit", seconds=10.0, idle=None, ca_file=None, count=None):
    """(device id, record) pairs published on <prefix>/+/usage while subscribed: for `seconds`, or
    until `idle` seconds pass without one, or `count` have come."""
    from .broker import Subscriber

    sub = Subscriber(url, (f"{prefix}/+/usage",), ca_file)
    out = []
    try:
        deadline = time.monotonic() + seconds
        last = time.monotonic()
        while time.monotonic() < deadline and (count is None or len(out) < count):
            if idle is not None and out and time.monotonic() - last > idle:
                break
            got = sub.wait(1, timeout=0.2)
            for topic, payload, _retain in got:
                parts = topic.split("/")
                dev = parts[-2]
                try:
                    out.append((dev, json.loads(payload)))
                except ValueError:
                    out.append((dev, payload.decode("utf-8", "replace")))
                last = time.monotonic()
    finally:
        sub.close()
    return out


def inventory_keys(db=None, csv_file=None):
    """device id -> usage key: from the inventory, and from a credentials.csv (`image fleet`'s, columns
    device_id and usage_key) over it when given."""
    from .inventory import Inventory

    keys = {}
    with Inventory(db) as inv:
        for d in inv.devices():
            k = (inv.credentials(d["device_id"]) or {}).get("usage_key")
            if k:
                keys[d["device_id"]] = bytes.fromhex(k)
    if csv_file:
        try:
            rows = list(csv.DictReader(open(csv_file, newline="")))
        except OSError as e:
            raise UserError(f"--keys {csv_file}: cannot read it ({e.strerror})") from None
        for i, row in enumerate(rows, 2):
            try:
                keys[row["device_id"]] = bytes.fromhex(row["usage_key"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"--keys {csv_file}:{i}: give columns device_id and usage_key (64 hex digits), "
                                f"as m2mkit image fleet writes credentials.csv") from None
    return keys


# ---- tariff and report ----

def _num(v, where):
    try:
        return Fraction(str(v))
    except (ValueError, ZeroDivisionError):
        raise UserError(f"tariff {where}: {v!r} is not a number: write it as \"0.002\"") from None


def load_tariff(path):
    try:
        t = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"tariff {path}: cannot read it ({e.strerror})") from None
    except ValueError as e:
        raise UserError(f"tariff {path}: not JSON ({e})") from None
    return parse_tariff(t, path)


def parse_tariff(t, where="tariff"):
    if not isinstance(t, dict) or not isinstance(t.get("meters"), dict) or not t["meters"]:
        raise UserError(f"{where}: give {{\"meters\": {{\"<meter or *>\": {{\"price\": ...}}}}}}")
    out = {"currency": str(t.get("currency", "")), "decimals": int(t.get("decimals", 2)), "meters": {}}
    for name, m in t["meters"].items():
        w = f"{where}: meters.{name}"
        if not isinstance(m, dict) or ("price" not in m and "tiers" not in m):
            raise UserError(f"{w}: give \"price\" or \"tiers\"")
        tiers = []
        for i, tier in enumerate(m.get("tiers") or [{"upto": None, "price": m.get("price")}]):
            upto = tier.get("upto")
            tiers.append((None if upto is None else _num(upto, f"{w}.tiers[{i}].upto"),
                          _num(tier.get("price"), f"{w}.tiers[{i}].price")))
        if any(u is None for u, _ in tiers[:-1]) or tiers[-1][0] is not None:
            raise UserError(f"{w}: tiers: each but the last needs \"upto\"; the last has \"upto\": null")
        uptos = [u for u, _ in tiers[:-1]]
        if any(b <= a for a, b in zip(uptos, uptos[1:])):
            raise UserError(f"{w}: tiers: \"upto\" must rise")
        out["meters"][name] = {"tiers": tiers, "minimum": _num(m.get("minimum", 0), f"{w}.minimum")}
    return out


def price(tariff, meter, qty):
    m = tariff["meters"].get(meter) or tariff["meters"].get("*")
    if m is None:
        return None
    total = Fraction(0)
    low = Fraction(0)
    for upto, p in m["tiers"]:
        top = qty if upto is None else min(qty, upto)
        if top > low:
            total += (top - low) * p
        if upto is not None:
            low = max(low, upto)
        if upto is None or qty <= upto:
            break
    return max(total, m["minimum"])


def period_of(t, period):
    d = datetime.fromtimestamp(t, timezone.utc)
    return {"hour": d.strftime("%Y-%m-%dT%H"), "day": d.strftime("%Y-%m-%d"), "month": d.strftime("%Y-%m"),
            "all": "all"}[period]


def _dec(fr, places):
    q = Decimal(1).scaleb(-places)
    return str((Decimal(fr.numerator) / Decimal(fr.denominator)).quantize(q, rounding=ROUND_HALF_UP))


def report(accepted, tariff=None, period="month"):
    """Rows {device, period, meter, unit, records, counts, units, amount, currency}: a record belongs
    to the period its end (t1) falls in."""
    agg = {}
    for dev, recs in accepted.items():
        for r in recs:
            k = (dev, period_of(r["t1"], period), r["m"], r["u"])
            a = agg.setdefault(k, [0, 0, Fraction(0)])
            a[0] += 1
            a[1] += r["b"] - r["a"]
            a[2] += units(r)
    rows = []
    places = tariff["decimals"] if tariff else 2
    for (dev, per, m, u), (n, counts, qty) in sorted(agg.items()):
        amount = price(tariff, m, qty) if tariff else None
        rows.append({"device": dev, "period": per, "meter": m, "unit": u, "records": n, "counts": counts,
                     "units": _dec(qty, 6), "amount": None if amount is None else _dec(amount, places),
                     "currency": tariff["currency"] if tariff else ""})
    return rows


def to_csv(rows):
    f = io.StringIO()
    w = csv.DictWriter(f, ["device", "period", "meter", "unit", "records", "counts", "units", "amount", "currency"],
                       lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return f.getvalue()


# ---- CLI ----

def _commands():
    import click

    def inputs(f):
        f = click.option("--db", default=None, help="inventory with the devices' usage keys "
                                                    "(default ~/.m2mkit/inventory.sqlite, or M2MKIT_INVENTORY)")(f)
        f = click.option("--broker", default=None, help="also collect records from mqtt://HOST:PORT "
                                                        "(<prefix>/+/usage) while --seconds run")(f)
        f = click.option("--prefix", default="m2mkit", show_default=True, help="MQTT topic prefix")(f)
        f = click.option("--seconds", default=10.0, show_default=True, help="how long --broker listens")(f)
        f = click.option("--idle", default=None, type=float, help="stop listening after this many seconds "
                                                                   "without a record")(f)
        f = click.option("--ca", "ca_file", default=None, help="CA file for mqtts://")(f)
        f = click.option("--save", default=None, help="append what --broker collected to this JSON-lines file")(f)
        f = click.option("--keys", default=None, help="credentials.csv with device_id and usage_key columns "
                                                      "(m2mkit image fleet's), over the inventory's keys")(f)
        f = click.option("--from-state", "from_state", default=None,
                         help="check the records as the continuation of what verify --save-state wrote here")(f)
        f = click.option("--after", "after", multiple=True, metavar="DEVICE:N:HASH",
                         help="DEVICE's last record verified before: its n and s (over --from-state; repeatable)")(f)
        return click.argument("files", nargs=-1)(f)

    def state_in(from_state, after):
        st = load_state(from_state) if from_state else {}
        for dev, h in parse_after(after).items():
            st[dev] = dict(h, meters={})
        return st

    def gather(files, broker, prefix, seconds, idle, ca_file, save):
        recs = read_files(files)
        if broker:
            got = collect(broker, prefix, seconds, idle, ca_file)
            if save:
                with open(save, "a") as f:
                    for dev, r in got:
                        if isinstance(r, dict):
                            f.write(json.dumps(dict(r, d=dev), separators=(",", ":")) + "\n")
            recs += got
        if not recs:
            raise UserError("no usage records: give JSON-lines FILES and / or --broker mqtt://HOST:PORT")
        return recs

    @click.group("usage")
    def usage_cmd():
        """Signed usage records: verify the chains, report per-period totals against a tariff."""

    @usage_cmd.command("verify")
    @inputs
    @click.option("--json", "as_json", is_flag=True, help="findings as JSON lines")
    @click.option("--strict", is_flag=True, help="exact duplicates (repeated deliveries) fail too")
    @click.option("--save-state", "save_to", default=None,
                  help="write each device's last record (n, s, meters' ends) here, for --from-state next time")
    def verify_cmd(files, db, broker, prefix, seconds, idle, ca_file, save, keys, from_state, after, as_json,
                   strict, save_to):
        """Check every device's record chain and signatures; exit 1 when anything is wrong (an exact
        duplicate is a note, dropped and billed once, unless --strict)."""
        st = state_in(from_state, after)
        recs = gather(files, broker, prefix, seconds, idle, ca_file, save)
        heads = {}
        findings, accepted = verify(recs, inventory_keys(db, keys), st, heads)
        bad = failures(findings, strict)
        for f in findings:
            if as_json:
                click.echo(json.dumps({k: f[k] for k in ("device", "n", "kind", "detail")}))
            else:
                click.echo(f.line() if f in bad else "note: " + f.line())
        n = sum(len(v) for v in accepted.values())
        dups = sum(1 for f in findings if f["kind"] == "duplicate")
        old = sum(f["count"] for f in findings if f["kind"] == "overlap")
        click.echo(f"{len(recs)} records from {len(accepted)} devices: {n} verified, {len(bad)} findings"
                   + (f", {dups} duplicates dropped" if dups else "")
                   + (f", {old} verified before skipped" if old else ""), err=as_json)
        if save_to:
            save_state(save_to, dict(st, **heads))
            click.echo(f"state of {len(heads)} devices saved to {save_to} (next time: --from-state {save_to})",
                       err=as_json)
        if bad:
            raise SystemExit(1)

    @usage_cmd.command("report")
    @inputs
    @click.option("--tariff", default=None, help="tariff file (JSON: unit price, tiers, minimum charge)")
    @click.option("--period", type=click.Choice(PERIODS), default="month", show_default=True)
    @click.option("--csv", "csv_out", default=None, help="write the CSV here (default: stdout)")
    @click.option("--json", "json_out", default=None, help="also write the rows as JSON here")
    def report_cmd(files, db, broker, prefix, seconds, idle, ca_file, save, keys, from_state, after, tariff, period,
                   csv_out, json_out):
        """Per-device, per-period totals of the records that verify (findings go to stderr, each saying
        whether its record is billed)."""
        st = state_in(from_state, after)
        recs = gather(files, broker, prefix, seconds, idle, ca_file, save)
        t = load_tariff(tariff) if tariff else None
        findings, accepted = verify(recs, inventory_keys(db, keys), st)
        for f in findings:
            click.echo(("note: " if f["kind"] in NOTICES else "warning: ") + f"{f.line()} ({bill_label(f, accepted)})",
                       err=True)
        rows = report(accepted, t, period)
        text = to_csv(rows)
        if csv_out:
            Path(csv_out).write_text(text)
        else:
            click.echo(text, nl=False)
        if json_out:
            Path(json_out).write_text(json.dumps(rows, indent=1) + "\n")

    return (usage_cmd,)


commands = _commands()
command = commands[0]

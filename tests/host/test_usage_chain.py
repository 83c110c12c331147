"""Usage records made by the firmware's own code (m2m.usagerec in MicroPython) and checked by
`m2mkit usage verify|report`: a chain of 10,000 verifies; each kind of tampering is caught."""

import json
import os
import secrets

import pytest

from m2mkit import inventory, usage
from m2mkit.errors import UserError
from m2mkit.testing import run_micropython

DEV = "pump-7"
KEY = bytes.fromhex("5f" * 32)

# the device side: two meters, a record every "hour", the outbox drained as a reporter would
MAKE = """
import os
from m2m.outbox import USAGE, Outbox
from m2m.usagerec import Chain
d = %(dir)r
ob = Outbox(d + "/ob", segment_bytes=4096, max_segments=8)
c = Chain(%(dev)r, bytes.fromhex(%(key)r), ob, d + "/meter.json")
t = 1764547200 + c.n * 1800 + %(later)d
c.begin("water", %(start)d, t)
c.begin("pump", 0, t)
w = c.meters["water"][0]
h = c.meters["pump"][0]
for i in range(%(count)d):
    t += 1800
    if i %% 2:
        w += (i * 7) %% 13
        c.record("water", w, "0.5", "L", t)
    else:
        h += (i * 11) %% 1800
        c.record("pump", h, "1/3600", "h", t)
    if i %% 50 == 49 or i == %(count)d - 1:
        for r in ob.peek(100, (USAGE,)):
            print(r[2].decode())
        ob.ack(ob.next - 1)
"""


def make(tmp, count, start=0, dev=DEV, key=KEY, later=0):
    tmp.mkdir(exist_ok=True)
    code = MAKE % {"dir": str(tmp), "dev": dev, "key": key.hex(), "count": count, "start": start,
                   "later": later}
    rc, out, err = run_micropython(code, heapsize="1M", timeout=120)
    assert rc == 0, out + err
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return make(tmp_path_factory.mktemp("chain"), 10000)


def kinds(findings):
    return sorted((f["kind"], f["n"]) for f in findings)


def billed(accepted, meter="water"):
    return sum(r["b"] - r["a"] for recs in accepted.values() for r in recs if r["m"] == meter)


def test_ten_thousand_records_from_the_firmware_verify(chain):
    assert [r["n"] for r in chain] == list(range(1, 10001))
    findings, accepted = usage.verify([(DEV, r) for r in chain], {DEV: KEY})
    assert findings == []
    assert len(accepted[DEV]) == 10000
    water = [r for r in chain if r["m"] == "water"]
    assert billed(accepted) == water[-1]["b"] - water[0]["a"]
    # the records are compact: no spaces, a 32-digit signature
    raw = json.dumps(chain[5], separators=(",", ":"))
    assert " " not in raw and len(chain[5]["s"]) == 32


def test_edited_units_are_a_bad_signature(chain):
    recs = [dict(r) for r in chain[:200]]
    recs[101]["b"] += 5
    findings, accepted = usage.verify([(DEV, r) for r in recs], {DEV: KEY})
    assert ("bad_signature", 102) in kinds(findings)
    assert 102 not in [r["n"] for r in accepted[DEV]]
    # the record after it no longer follows anything billed: the hole is reported as well
    assert ("gap", 103) in kinds(findings)


def test_a_removed_record_is_a_gap(chain):
    recs = chain[:40] + chain[41:80]
    findings, _ = usage.verify([(DEV, r) for r in recs], {DEV: KEY})
    # the missing number, and the counts of its meter that are in no record
    assert kinds(findings) == [("gap", 42), ("gap", 43)]
    assert "record 41 is missing" in findings[0].line()
    lost = chain[40]["b"] - chain[40]["a"]
    assert f"{lost} counts in no record" in findings[1].line()


def test_a_replayed_copy_is_a_duplicate_billed_once_and_a_replay_that_changes_anything_fails(tmp_path, chain):
    # an exact copy of record 32 again after record 60: what a redelivery looks like too; dropped, so
    # neither the chain nor the bill changes: a duplicate notice, not a failure
    recs = chain[:60] + [chain[31]] + chain[60:100]
    findings, accepted = usage.verify([(DEV, r) for r in recs], {DEV: KEY})
    assert kinds(findings) == [("duplicate", 32)]
    assert usage.failures(findings) == [] and usage.failures(findings, strict=True) == findings
    _, clean = usage.verify([(DEV, r) for r in chain[:100]], {DEV: KEY})
    assert billed(accepted) == billed(clean) and accepted == clean
    # an old record replayed where its own copy is not in the input (a record of the chain before the
    # device restarted it, into the new one): it is billed nowhere else, so it shows as what it changes
    old = make(tmp_path / "a", 30, start=500)
    os.remove(tmp_path / "a" / "meter.json")
    new = make(tmp_path / "a", 12, start=0, later=86400)
    findings, _ = usage.verify([(DEV, r) for r in new[:8] + [old[19]] + new[8:]], {DEV: KEY})
    assert kinds(findings) and all(k in ("gap", "counter_reset", "broken_chain", "fork") for k, _ in kinds(findings))
    assert usage.failures(findings)
    # and where its number is taken in the new chain: a fork, neither record billed
    findings, accepted = usage.verify([(DEV, r) for r in new[:8] + [old[4]] + new[8:]], {DEV: KEY})
    assert ("fork", 5) in kinds(findings) and 5 not in [r["n"] for r in accepted[DEV]]


def test_a_redelivered_run_of_records_verifies_with_duplicates_noted(tmp_path, chain):
    # the outbox sent 51-60, the PUBACKs were lost, it sends them again after the reconnect; the
    # broker redelivers 58 once more to the collector
    recs = chain[:60] + chain[50:60] + [chain[57]] + chain[60:80]
    findings, accepted = usage.verify([(DEV, r) for r in recs], {DEV: KEY})
    assert [k for k, _ in kinds(findings)] == ["duplicate"] * 11
    assert [r["n"] for r in accepted[DEV]] == list(range(1, 81))
    from click.testing import CliRunner

    from m2mkit.cli import main

    db = tmp_path / "inv.sqlite"
    with inventory.Inventory(db) as inv:
        inv.record(DEV, credentials={"usage_key": KEY.hex(), "mqtt_user": DEV})
    f = tmp_path / "usage.jsonl"
    f.write_text("".join(json.dumps(dict(r, d=DEV)) + "\n" for r in recs))
    r = CliRunner().invoke(main, ["usage", "verify", str(f), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "91 records from 1 devices: 80 verified, 0 findings, 11 duplicates dropped" in r.output
    assert f"note: {DEV} n=58: duplicate: an exact copy of a record already seen" in r.output
    r = CliRunner().invoke(main, ["usage", "verify", str(f), "--db", str(db), "--strict"])
    assert r.exit_code == 1 and "80 verified, 11 findings, 11 duplicates dropped" in r.output, r.output
    r = CliRunner().invoke(main, ["usage", "report", str(f), "--db", str(db), "--period", "all"])
    assert r.exit_code == 0 and f"{DEV},all,water,L,40,{billed(accepted)}," in r.output, r.output


def test_a_forged_signature_is_caught(chain):
    recs = [dict(r) for r in chain[:30]]
    forged = usage.sign(secrets.token_bytes(32), DEV, dict(recs[-1], n=31, a=recs[-2]["b"], b=recs[-2]["b"] + 1,
                                                         p=recs[-1]["s"]))
    findings, accepted = usage.verify([(DEV, r) for r in recs + [forged]], {DEV: KEY})
    assert kinds(findings) == [("bad_signature", 31)]
    # the same record from another device's key, and another device's records under this id
    findings, _ = usage.verify([("pump-8", r) for r in recs[:3]], {"pump-8": secrets.token_bytes(32)})
    assert [f["kind"] for f in findings] == ["bad_signature"] * 3


def test_a_counter_rolled_back_after_a_reset_is_caught(tmp_path, chain):
    # the device lost its meter state: the firmware starts a new chain, its counter from 0 again
    first = make(tmp_path / "a", 30, start=500)
    os.remove(tmp_path / "a" / "meter.json")
    again = make(tmp_path / "a", 10, start=0, later=86400)
    assert again[0]["n"] == 1
    findings, accepted = usage.verify([(DEV, r) for r in first + again], {DEV: KEY})
    assert ("counter_reset", 1) in kinds(findings)
    assert "starts again at n=1 after n=30" in [f for f in findings if f["kind"] == "counter_reset"][0].line()
    # a record signed with the right key (a device bug) whose meter runs backwards
    recs = chain[:10]
    last = [r for r in recs if r["m"] == "water"][-1]
    back = usage.sign(KEY, DEV, dict(last, n=11, a=last["b"], b=last["b"] - 3, p=recs[-1]["s"]))
    findings, accepted = usage.verify([(DEV, r) for r in recs + [back]], {DEV: KEY})
    assert kinds(findings) == [("counter_backwards", 11)]
    assert billed(accepted) == billed(usage.verify([(DEV, r) for r in recs], {DEV: KEY})[1])
    # and one that starts below where the meter's previous record ended
    low = usage.sign(KEY, DEV, dict(last, n=11, a=last["b"] - 4, b=last["b"] + 1, p=recs[-1]["s"]))
    findings, _ = usage.verify([(DEV, r) for r in recs + [low]], {DEV: KEY})
    assert kinds(findings) == [("counter_reset", 11)]


def test_verify_and_report_commands(tmp_path, chain, capsys):
    from click.testing import CliRunner

    from m2mkit.cli import main

    db = tmp_path / "inv.sqlite"
    with inventory.Inventory(db) as inv:
        inv.record(DEV, credentials={"usage_key": KEY.hex(), "mqtt_user": DEV})
    recs = tmp_path / "usage.jsonl"
    recs.write_text("".join(json.dumps(dict(r, d=DEV), separators=(",", ":")) + "\n" for r in chain[:500]))
    r = CliRunner().invoke(main, ["usage", "verify", str(recs), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "500 verified, 0 findings" in r.output
    bad = tmp_path / "bad.jsonl"
    lines = recs.read_text().splitlines()
    bad.write_text("\n".join(lines[:10] + lines[11:20]) + "\n")
    r = CliRunner().invoke(main, ["usage", "verify", str(bad), "--db", str(db)])
    assert r.exit_code == 1 and f"{DEV} n=12: gap: record 11 is missing" in r.output
    # a tariff: water in litres, 0.002 per litre up to 1000 L a month, 0.001 above; 5.00 minimum
    tariff = tmp_path / "tariff.json"
    tariff.write_text(json.dumps({"currency": "EUR", "meters": {
        "water": {"tiers": [{"upto": "1000", "price": "0.002"}, {"upto": None, "price": "0.001"}], "minimum": "5.00"},
        "pump": {"price": "0.75"}}}))
    out_json = tmp_path / "bill.json"
    r = CliRunner().invoke(main, ["usage", "report", str(recs), "--db", str(db), "--tariff", str(tariff),
                                  "--period", "all", "--json", str(out_json)])
    assert r.exit_code == 0, r.output
    rows = {x["meter"]: x for x in json.loads(out_json.read_text())}
    water = [x for x in chain[:500] if x["m"] == "water"]
    counts = sum(x["b"] - x["a"] for x in water)
    litres = counts / 2
    want = max(min(litres, 1000) * 0.002 + max(litres - 1000, 0) * 0.001, 5.0)
    assert rows["water"]["counts"] == counts and rows["water"]["records"] == 250
    assert rows["water"]["amount"] == f"{want:.2f}"
    assert r.output.splitlines()[0] == "device,period,meter,unit,records,counts,units,amount,currency"
    assert f"{DEV},all,water,L,250,{counts}," in r.output
    pump = [x for x in chain[:500] if x["m"] == "pump"]
    hours = sum(x["b"] - x["a"] for x in pump) / 3600
    assert rows["pump"]["amount"] == f"{hours * 0.75:.2f}"


def test_tariff_errors_say_what_to_write():
    with pytest.raises(UserError, match="give \"price\" or \"tiers\""):
        usage.parse_tariff({"meters": {"water": {}}})
    with pytest.raises(UserError, match="is not a number"):
        usage.parse_tariff({"meters": {"water": {"price": "cheap"}}})
    with pytest.raises(UserError, match="upto"):
        usage.parse_tariff({"meters": {"water": {"tiers": [{"upto": "5", "price": 1}, {"upto": "6", "price": 1}]}}})
    t = usage.parse_tariff({"meters": {"*": {"tiers": [{"upto": 10, "price": "1"}, {"upto": 20, "price": "0.5"},
                                                      {"upto": None, "price": "0.1"}], "minimum": 3}}})
    from fractions import Fraction

    assert usage.price(t, "any", Fraction(25)) == 10 + 5 + Fraction(1, 2)
    assert usage.price(t, "any", Fraction(1)) == 3


def test_keys_from_credentials_csv_unknown_devices_and_malformed_records(tmp_path, chain):
    from click.testing import CliRunner

    from m2mkit.cli import main

    db = tmp_path / "empty.sqlite"
    recs = tmp_path / "usage.jsonl"
    recs.write_text("".join(json.dumps(dict(r, d=DEV)) + "\n" for r in chain[:20]))
    r = CliRunner().invoke(main, ["usage", "verify", str(recs), "--db", str(db)])
    assert r.exit_code == 1 and f"{DEV} n=None: unknown_device: no usage key" in r.output
    keys = tmp_path / "credentials.csv"
    keys.write_text(f"device_id,mqtt_user,usage_key\n{DEV},{DEV},{KEY.hex()}\n")
    r = CliRunner().invoke(main, ["usage", "verify", str(recs), "--db", str(db), "--keys", str(keys)])
    assert r.exit_code == 0 and "20 verified, 0 findings" in r.output, r.output
    keys.write_text(f"device_id,usage_key\n{DEV},nothex\n")
    r = CliRunner().invoke(main, ["usage", "verify", str(recs), "--db", str(db), "--keys", str(keys)])
    assert r.exit_code == 2 and "credentials.csv:2: give columns device_id and usage_key" in r.output
    findings, _ = usage.verify([(DEV, {"m": "water", "n": 1}), (DEV, "{not json")], {DEV: KEY})
    assert [f["kind"] for f in findings] == ["malformed", "malformed"]
    nod = tmp_path / "nod.jsonl"
    nod.write_text(json.dumps(chain[0]) + "\n")
    r = CliRunner().invoke(main, ["usage", "verify", str(nod), "--db", str(db)])
    assert r.exit_code == 2 and "nod.jsonl:1: no \"d\" (device id)" in r.output


def test_a_record_that_names_another_predecessor_and_two_records_with_one_number(chain):
    recs = chain[:10]
    last = [r for r in recs if r["m"] == "water"][-1]
    stray = usage.sign(KEY, DEV, dict(last, n=11, a=last["b"], b=last["b"] + 2, p=recs[-3]["s"]))
    findings, accepted = usage.verify([(DEV, r) for r in recs + [stray]], {DEV: KEY})
    assert kinds(findings) == [("broken_chain", 11)]
    twin = usage.sign(KEY, DEV, dict(recs[6], b=recs[6]["b"] + 1))
    findings, accepted = usage.verify([(DEV, r) for r in recs[:7] + [twin] + recs[7:]], {DEV: KEY})
    assert ("fork", 7) in kinds(findings)
    assert 7 not in [r["n"] for r in accepted[DEV]]

"""`m2mkit usage verify|report` on a slice of a device's records (one month's file, records collected
from mid-life): `start` without a saved state, a continuation with --from-state / --after (written by
--save-state), `overlap` for what was verified before; and report's labels say what is billed."""

import json
import os
import re

import pytest
from click.testing import CliRunner
from test_usage_chain import DEV, KEY, make

from m2mkit import inventory, usage
from m2mkit.cli import main


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    """120 records from the firmware's own code (m2m.usagerec): two meters, water and pump."""
    return make(tmp_path_factory.mktemp("slice"), 120)


@pytest.fixture
def db(tmp_path):
    p = tmp_path / "inv.sqlite"
    with inventory.Inventory(p) as inv:
        inv.record(DEV, credentials={"usage_key": KEY.hex(), "mqtt_user": DEV})
    return str(p)


def kinds(findings):
    return sorted((f["kind"], f["n"]) for f in findings)


def jsonl(path, rs):
    path.write_text("".join(json.dumps(dict(r, d=DEV), separators=(",", ":")) + "\n" for r in rs))
    return str(path)


def run(*args):
    return CliRunner().invoke(main, ["usage", *args])


def ends(rs):
    out = {}
    for r in rs:
        out[r["m"]] = r["b"]
    return out


def test_a_slice_without_state_reports_where_it_starts_and_how_to_continue(recs):
    findings, accepted = usage.verify([(DEV, r) for r in recs[60:]], {DEV: KEY})
    assert kinds(findings) == [("start", 61)]
    assert usage.failures(findings) == findings  # the input does not show records 1-60 exist
    line = findings[0].line()
    assert "records 1-60 are not in it" in line and "--from-state FILE" in line
    assert f"--after {DEV}:60:{recs[59]['s']}" in line  # record 61 names record 60's s
    assert [r["n"] for r in accepted[DEV]] == list(range(61, 121))  # billed
    # a record missing inside the slice is still a failing gap
    findings, accepted = usage.verify([(DEV, r) for r in recs[60:80] + recs[81:]], {DEV: KEY})
    assert ("start", 61) in kinds(findings) and ("gap", 82) in kinds(findings)
    # the --after it suggests takes the slice as it is
    after = usage.parse_after([f"{DEV}:60:{recs[60]['p']}"])
    findings, _ = usage.verify([(DEV, r) for r in recs[60:]], {DEV: KEY}, after)
    assert findings == []


def test_save_state_then_the_next_slice_verifies_as_its_continuation(tmp_path, recs, db):
    m1, m2 = jsonl(tmp_path / "m1.jsonl", recs[:60]), jsonl(tmp_path / "m2.jsonl", recs[60:])
    state = tmp_path / "state.json"
    r = run("verify", m2, "--db", db)
    assert r.exit_code == 1 and f"{DEV} n=61: start:" in r.output, r.output
    r = run("verify", m1, "--db", db, "--save-state", str(state))
    assert r.exit_code == 0 and "60 verified, 0 findings" in r.output, r.output
    saved = json.loads(state.read_text())
    assert saved == {"usage_state": 1, "devices": {DEV: {"n": 60, "s": recs[59]["s"], "meters": ends(recs[:60])}}}
    # the same file is read and written again
    r = run("verify", m2, "--db", db, "--from-state", str(state), "--save-state", str(state))
    assert r.exit_code == 0 and "60 verified, 0 findings" in r.output, r.output
    assert json.loads(state.read_text())["devices"][DEV]["n"] == 120
    # a device with no records in a slice keeps its state
    other = {"n": 9, "s": "ab" * 16, "meters": {"x": 3}}
    state.write_text(json.dumps({"usage_state": 1, "devices": {DEV: saved["devices"][DEV], "pump-9": other}}))
    r = run("verify", m2, "--db", db, "--from-state", str(state), "--save-state", str(state))
    assert r.exit_code == 0 and json.loads(state.read_text())["devices"]["pump-9"] == other
    state.write_text(json.dumps(saved))
    # record 61 lost: a gap at the boundary; one inside the slice too
    r = run("verify", jsonl(tmp_path / "g.jsonl", recs[61:90] + recs[91:]), "--db", db, "--from-state", str(state))
    assert r.exit_code == 1 and f"{DEV} n=62: gap: record 61 is missing" in r.output, r.output
    assert f"{DEV} n=92: gap: record 91 is missing" in r.output and ": start:" not in r.output


def test_the_boundary_is_checked_chain_and_meters(tmp_path, recs):
    after = {DEV: {"n": 60, "s": recs[59]["s"], "meters": ends(recs[:60])}}
    findings, accepted = usage.verify([(DEV, r) for r in recs[60:]], {DEV: KEY}, after)
    assert findings == [] and len(accepted[DEV]) == 60
    # a state that is not what record 61 follows
    wrong = {DEV: dict(after[DEV], s=recs[58]["s"])}
    findings, _ = usage.verify([(DEV, r) for r in recs[60:]], {DEV: KEY}, wrong)
    assert kinds(findings) == [("broken_chain", 61)]
    # a record 61 signed with the right key (a device bug) whose meter does not start where it ended
    r61 = recs[60]
    bad = usage.sign(KEY, DEV, dict(r61, a=r61["a"] + 5, b=r61["b"] + 5))
    heads = {}
    findings, _ = usage.verify([(DEV, r) for r in [bad] + recs[61:62]], {DEV: KEY}, after, heads)
    assert ("gap", 61) in kinds(findings) and "5 counts in no record" in findings[0].line()
    # --after knows no meter ends: the counts at the boundary are not checked, the chain is
    findings, _ = usage.verify([(DEV, r) for r in [bad]], {DEV: KEY}, usage.parse_after([f"{DEV}:60:{recs[59]['s']}"]))
    assert findings == []
    # what a run leaves for the next one: its last record and each meter's end
    assert heads == {DEV: {"n": 62, "s": recs[61]["s"], "meters": dict(ends(recs[:60]), **ends([bad, recs[61]]))}}


def test_records_verified_before_are_an_overlap_notice_and_not_billed(tmp_path, recs, db):
    after = {DEV: {"n": 60, "s": recs[59]["s"], "meters": ends(recs[:60])}}
    # the whole file again (--save appends to one file): 1-60 were verified before
    findings, accepted = usage.verify([(DEV, r) for r in recs], {DEV: KEY}, after)
    assert kinds(findings) == [("overlap", 1)] and findings[0]["count"] == 60
    assert usage.failures(findings) == [] and usage.failures(findings, strict=True) == []
    assert [r["n"] for r in accepted[DEV]] == list(range(61, 121))
    # record 59 delivered again in the next month's file (its PUBACK was lost): not billed twice
    findings, accepted = usage.verify([(DEV, r) for r in [recs[58]] + recs[60:]], {DEV: KEY}, after)
    assert kinds(findings) == [("overlap", 59)] and len(accepted[DEV]) == 60
    # another record with the saved record's number is a fork with it, not billed
    twin = usage.sign(KEY, DEV, dict(recs[59], b=recs[59]["b"] + 1))
    findings, accepted = usage.verify([(DEV, r) for r in [twin] + recs[60:]], {DEV: KEY}, after)
    assert kinds(findings) == [("fork", 60)] and twin not in accepted[DEV]
    # the CLI: exit 0, and report bills only what comes after the state
    state = tmp_path / "state.json"
    usage.save_state(state, after)
    f = jsonl(tmp_path / "all.jsonl", recs)
    r = run("verify", f, "--db", db, "--from-state", str(state))
    assert r.exit_code == 0 and "120 records from 1 devices: 60 verified, 0 findings, 60 verified before skipped" \
        in r.output, r.output
    assert f"note: {DEV} n=1: overlap: 60 records at or before n=60" in r.output
    out = tmp_path / "bill.json"
    r = run("report", f, "--db", db, "--from-state", str(state), "--period", "all", "--json", str(out))
    assert r.exit_code == 0, r.output
    assert "(not billed: at or before the last record verified before)" in r.stderr
    rows = {x["meter"]: x for x in json.loads(out.read_text())}
    assert rows["water"]["counts"] == sum(x["b"] - x["a"] for x in recs[60:] if x["m"] == "water")


def test_a_device_that_started_again_after_the_state_is_a_counter_reset(tmp_path, recs):
    old = make(tmp_path / "a", 30, start=500)
    os.remove(tmp_path / "a" / "meter.json")
    new = make(tmp_path / "a", 10, start=0, later=86400)
    after = {DEV: {"n": 30, "s": old[-1]["s"], "meters": ends(old)}}
    findings, accepted = usage.verify([(DEV, r) for r in new], {DEV: KEY}, after)
    assert kinds(findings) == [("counter_reset", 1)]
    assert "starts again at n=1 after n=30, the last record verified before" in findings[0].line()
    assert len(accepted[DEV]) == 10  # billed, as without a state
    # with the old chain in the input too, it is the overlap and the new chain a counter_reset
    findings, accepted = usage.verify([(DEV, r) for r in old + new], {DEV: KEY}, after)
    assert kinds(findings) == [("counter_reset", 1), ("overlap", 1)] and len(accepted[DEV]) == 10


def test_state_and_after_errors_say_what_to_give(tmp_path, recs, db):
    f = jsonl(tmp_path / "m.jsonl", recs[60:])
    for bad in (f"{DEV}:60", f"{DEV}:x:{'a' * 32}", f"{DEV}:0:{'a' * 32}", f"{DEV}:60:ABC"):
        r = run("verify", f, "--db", db, "--after", bad)
        assert r.exit_code == 2 and f"--after {bad}: give DEVICE:N:HASH" in r.output, r.output
    r = run("verify", f, "--db", db, "--after", f"{DEV}:60:{recs[59]['s']}")
    assert r.exit_code == 0 and "60 verified, 0 findings" in r.output, r.output
    st = tmp_path / "st.json"
    r = run("verify", f, "--db", db, "--from-state", str(st))
    assert r.exit_code == 2 and "cannot read it" in r.output and "--save-state" in r.output
    st.write_text("{}")
    r = run("verify", f, "--db", db, "--from-state", str(st))
    assert r.exit_code == 2 and "not a usage state" in r.output
    st.write_text(json.dumps({"usage_state": 1, "devices": {DEV: {"n": "60"}}}))
    r = run("verify", f, "--db", db, "--from-state", str(st))
    assert r.exit_code == 2 and f"device {DEV}: give" in r.output


LINE = re.compile(r"^(?:warning|note): (\S+) n=(\S+): (\w+): .* \(([^()]*)\)$")


def test_report_labels_say_what_is_billed_and_the_totals_match(tmp_path, recs, db):
    by = {r["n"]: dict(r) for r in recs[10:100]}  # starts at 11: start, billed
    del by[31]  # a gap at 32, billed
    by[52]["b"] += 3  # edited: bad_signature (and a gap at 53)
    by[72] = usage.sign(KEY, DEV, dict(by[72], b=by[72]["a"] - 2))  # signed, runs backwards
    del by[90]
    by[91] = usage.sign(KEY, DEV, dict(by[91], b=by[91]["a"] - 1))  # a gap and runs backwards: not billed
    rs = [by[n] for n in sorted(by)]
    rs.insert(rs.index(by[82]), usage.sign(KEY, DEV, dict(by[81], b=by[81]["b"] + 1)))  # a fork at 81
    rs.append(dict(by[42]))  # a duplicate of 42
    f = jsonl(tmp_path / "m.jsonl", rs)
    out = tmp_path / "bill.json"
    r = run("report", f, "--db", db, "--period", "all", "--json", str(out))
    assert r.exit_code == 0, r.output
    labels = {}
    for line in r.stderr.splitlines():
        m = LINE.match(line)
        assert m, line
        labels.setdefault(int(m[2]), []).append((m[3], m[4]))
    got = {k for ls in labels.values() for k, _ in ls}
    assert {"start", "gap", "bad_signature", "counter_backwards", "duplicate", "fork"} <= got, labels
    assert ("gap", "this record billed; what is missing is in no record: not billed") in labels[32]
    assert ("start", "billed; what comes before it is not in this input") in labels[11]
    assert ("duplicate", "billed once: this copy dropped") in labels[42]
    # the bill from the labels: every record of the input once, but those a label says are not billed
    not_billed = {n for n, ls in labels.items() for _, lab in ls if lab.startswith("not billed")}
    assert {52, 72, 81, 91} <= not_billed and 32 not in not_billed
    assert labels[91] == [("gap", "not billed"), ("counter_backwards", "not billed")]
    want = {}
    for x in {x["s"]: x for x in rs}.values():
        if x["n"] not in not_billed:
            want[x["m"]] = want.get(x["m"], 0) + x["b"] - x["a"]
    rows = {x["meter"]: x["counts"] for x in json.loads(out.read_text())}
    assert rows == want
    assert f"{DEV},all,water,L," in r.stdout

"""Assumed modem facts are listed once, in docs/ASSUMED.md, and cited by id; the firmware and the
modem simulator never cite each other as a source (they must stay independent witnesses)."""

import re

from m2mkit.paths import FIRMWARE, ROOT

SIM = ROOT / "host/m2mkit/sim"
DOC = ROOT / "docs/ASSUMED.md"
MARK = re.compile(r"\bassumed\b(?!\.md)", re.I)  # the word, not the file name
CITE = re.compile(r"docs/ASSUMED\.md#(A-[A-Z0-9-]+)")


def listed_ids():
    return re.findall(r"^### (A-[A-Z0-9-]+)\s*$", DOC.read_text(), re.M)


def sources():
    for root in (FIRMWARE, SIM):
        for p in sorted(root.rglob("*.py")):
            yield p, p.read_text().splitlines()


def marker_problems(lines, ids):
    """One message per line that says ASSUMED without naming a listed id."""
    bad = []
    for n, line in enumerate(lines, 1):
        if not MARK.search(line):
            continue
        cited = CITE.findall(line)
        if not cited:
            bad.append(f"{n}: ASSUMED without docs/ASSUMED.md#<id>: {line.strip()}")
        bad += [f"{n}: {i} is not listed in docs/ASSUMED.md" for i in cited if i not in ids]
    return bad


# a firmware dialect that names the simulator, or a simulator comment that takes a fact from the
# firmware (its files, its modules, or "the firmware" assuming / using / reading something)
FW_CITES_SIM = re.compile(r"simulator|m2mkit[./]sim|sim/modem", re.I)
SIM_CITES_FW = re.compile(r"firmware/lib|\bm2m[./](modem|at|hal)\b|"
                          r"(as|like|what) the firmware|the firmware(?:'s)? (assumes|reads|uses|expects|dialect)",
                          re.I)


def citation_problems(path, lines):
    rel = path.relative_to(ROOT).as_posix()
    pattern = None
    if rel.startswith("firmware/lib/m2m/modem/"):
        pattern = FW_CITES_SIM
    elif rel.startswith("host/m2mkit/sim/"):
        pattern = SIM_CITES_FW
    if pattern is None:
        return []
    return [f"{n}: {line.strip()}" for n, line in enumerate(lines, 1) if pattern.search(line)]


def test_the_list_has_ids():
    ids = listed_ids()
    assert ids and len(ids) == len(set(ids)), "duplicate ids in docs/ASSUMED.md"


def test_every_assumed_marker_names_a_listed_id():
    ids = set(listed_ids())
    bad = [f"{p.relative_to(ROOT)}:{m}" for p, lines in sources() for m in marker_problems(lines, ids)]
    assert not bad, "mark an assumed fact `ASSUMED docs/ASSUMED.md#<id>` and list it there:\n" + "\n".join(bad)


def test_every_listed_id_is_cited():
    cited = {i for _, lines in sources() for line in lines for i in CITE.findall(line)}
    stale = [i for i in listed_ids() if i not in cited]
    assert not stale, "ids listed in docs/ASSUMED.md but cited nowhere (confirmed? move them): %s" % stale


def test_firmware_and_simulator_do_not_cite_each_other():
    bad = [f"{p.relative_to(ROOT)}:{m}" for p, lines in sources() for m in citation_problems(p, lines)]
    assert not bad, "cite a manual, a public driver, a transcript or docs/ASSUMED.md instead:\n" + "\n".join(bad)


def test_the_checks_catch_what_they_are_for():
    ids = {"A-X"}
    assert marker_problems(["x = 1  # ASSUMED: nobody knows"], ids)
    assert marker_problems(["x = 1  # assumed docs/ASSUMED.md#A-Y"], ids)
    assert not marker_problems(["x = 1  # ASSUMED docs/ASSUMED.md#A-X", "y = 2  # from the manual"], ids)
    dialect = FIRMWARE / "lib/m2m/modem/x.py"
    assert citation_problems(dialect, ["# 8 is what the simulator assumes"])
    sim = SIM / "modem/x.py"
    assert citation_problems(sim, ["# as the firmware expects"])
    assert not citation_problems(sim, ['CGMR = "1.0"  # the modem\'s firmware string'])

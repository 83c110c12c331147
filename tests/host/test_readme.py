"""README's config reference lists every key of the device's config schema (and nothing else)."""

import re
import sys

from m2mkit.paths import FIRMWARE, ROOT


def test_config_reference_lists_every_schema_key():
    sys.path.insert(0, str(FIRMWARE / "lib"))
    try:
        from m2m import config
    finally:
        sys.path.remove(str(FIRMWARE / "lib"))
    text = (ROOT / "README.md").read_text()
    section = text.split("### Device config (`/config.json`)", 1)[1].split("\n### ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \|", section, re.M))
    schema = {f"{s}.{k}" for s, keys in config.SCHEMA.items() for k in keys}
    assert listed == schema, f"missing from README: {sorted(schema - listed)}; not in the schema: {sorted(listed - schema)}"

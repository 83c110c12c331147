# The device's config: defaults, type and range checks, unknown keys, atomic save.
import os

from m2m import config

# this file's own folder (pytest's tmp_path for it, m2mkit.testing.run_file): never a shared path
TMP = os.getenv("M2M_TEST_TMP")


def _raises(fn, *args):
    try:
        fn(*args)
    except config.ConfigError as e:
        return str(e)
    raise AssertionError("no ConfigError")


def test_defaults_fill_every_key():
    c = config.validate({})
    assert c["mqtt"]["prefix"] == "m2mkit"
    assert c["device"]["id"] is None
    assert set(c) == set(config.schema())


def test_unknown_section_and_key_are_named():
    assert "unknown config section 'mqt'" in _raises(config.validate, {"mqt": {}})
    msg = _raises(config.validate, {"mqtt": {"brokr": "x"}})
    assert "mqtt.brokr" in msg and "broker" in msg


def test_wrong_type_is_named():
    assert "mqtt.prefix must be str" in _raises(config.validate, {"mqtt": {"prefix": 5}})
    assert "must be an object" in _raises(config.validate, {"mqtt": 5})


def test_set_key_checks_and_leaves_config_unchanged_on_error():
    c = config.validate({})
    config.set_key(c, "mqtt.prefix", "fleet")
    assert c["mqtt"]["prefix"] == "fleet"
    _raises(config.set_key, c, "mqtt.prefix", 1)
    assert c["mqtt"]["prefix"] == "fleet"


def test_save_writes_only_changes_and_loads_back():
    path = TMP + "/saved.json"
    c = config.validate({"device": {"id": "dev-1"}})
    config.save(c, path)
    with open(path) as f:
        assert f.read() == '{"device": {"id": "dev-1"}}'
    config._cfg = None
    assert config.load(path)["device"]["id"] == "dev-1"
    config._cfg = None
    os.remove(path)


def test_broken_json_says_what_to_do():
    path = TMP + "/bad.json"
    with open(path, "w") as f:
        f.write("{nope")
    config._cfg = None
    assert "not valid JSON" in _raises(config.load, path)
    os.remove(path)


def test_load_drops_the_table_and_validation_still_works():
    # the device keeps its validated dict, not SCHEMA (heap); validate / set_key / save read the
    # table again from the module's file and drop it afterwards
    path = TMP + "/release.json"
    with open(path, "w") as f:
        f.write('{"device": {"id": "dev-2"}}')
    config._cfg = None
    c = config.load(path)
    assert config.SCHEMA is None and c["device"]["id"] == "dev-2"
    config.set_key(c, "mqtt.prefix", "fleet")
    assert "mqtt.brokr" in _raises(config.set_key, c, "mqtt.brokr", "x")
    assert config.validate({"net": {"rat": ["gsm"]}})["net"]["rat"] == ["gsm"]
    assert config.SCHEMA is None
    import m2m
    assert m2m.config is config  # the module everyone holds stays the one in sys.modules
    config.save(c, path)
    assert config.SCHEMA is None
    config._cfg = None
    assert config.load(path)["mqtt"]["prefix"] == "fleet"
    os.remove(path)


def test_schema_works_for_a_holder_after_the_supervisor_dropped_the_module():
    # supervisor.start() drops m2m.config from sys.modules (loop.drop) to save heap; a caller that
    # held the module (this file, an LwM2M or /cmd path) still validates and reads the table, and
    # the module stays out of sys.modules afterwards (the drop's heap saving holds)
    import sys

    import m2m
    from m2m import loop

    config.release()
    loop.drop("m2m.config")
    try:
        assert "m2m.config" not in sys.modules
        s = config.schema()
        assert "mqtt" in s and "device" in s
        assert config.validate({"device": {"id": "dev-3"}})["device"]["id"] == "dev-3"
        assert "mqtt.brokr" in _raises(config.validate, {"mqtt": {"brokr": "x"}})
        assert config.SCHEMA is None  # dropped again after use
        assert "m2m.config" not in sys.modules and "config" not in m2m.__dict__
    finally:
        sys.modules["m2m.config"] = config
        m2m.config = config

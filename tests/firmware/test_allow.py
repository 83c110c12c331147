# m2m.net.allow: only the endpoints in allow.hosts; refusals raise EACCES, are counted and posted.
from m2m import config, events
from m2m.net import allow

events.log = False


def setup(hosts):
    allow.setup(config.validate({"allow": {"hosts": hosts}}))


def refused(host, port):
    try:
        allow.check(host, port)
    except OSError as e:
        assert e.args[0] == 13
        return e.args[1]
    return None


def test_listed_hosts_and_ports_pass_others_are_refused_and_counted():
    setup(["broker.example.com:8883", "ntp.example.com:*"])
    events.clear()
    n = allow.refused
    assert refused("broker.example.com", 8883) is None
    assert refused("BROKER.example.com", 8883) is None
    assert refused("ntp.example.com", 123) is None
    msg = refused("broker.example.com", 1883)
    assert "broker.example.com:1883 is not in allow.hosts" in msg and "device config" in msg
    assert refused("evil.example.net", 8883)
    assert allow.refused == n + 2
    e = events.take()
    assert e[0] == "net.refused" and e[2]["host"] == "broker.example.com" and e[2]["port"] == 1883
    assert events.take()[0] == "net.refused"


def test_no_list_allows_all_and_an_empty_list_allows_none():
    setup(None)
    assert refused("anything.example", 1) is None
    setup([])
    assert refused("anything.example", 1)


def test_bad_entries_say_what_to_write():
    # refused by the config (at provisioning too: the host imports the same schema) and by parse()
    for bad in ("broker", "broker:", ":80", "broker:http", "broker:70000", 5):
        try:
            config.validate({"allow": {"hosts": ["ok.example:1", bad]}})
        except config.ConfigError as e:
            assert str(e).startswith("config key allow.hosts:") and '"host:port" or "host:*"' in str(e)
        else:
            raise AssertionError("config accepted %r" % (bad,))
        try:
            allow.parse([bad])
        except ValueError as e:
            assert '"host:port" or "host:*"' in str(e)
        else:
            raise AssertionError("parse accepted %r" % (bad,))

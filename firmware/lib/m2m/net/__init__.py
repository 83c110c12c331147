# m2m.net: the network (network.Network), SIM (sim), data usage (usage), endpoint allowlist (allow).
# link_failed(reason) is the one recovery path for everyone who sees the link fail: it reaches the
# running Network, or only posts the event when none runs yet.
_active = None


def link_failed(reason):
    if _active is not None:
        _active.link_failed(reason)
    else:
        from m2m import events
        events.post("net.link_failed", reason=reason)

# Builds the supervisor's layers (m2m.supervisor.Run) from the config and the board, importing only
# what the config enables, with gc.collect() between layers. Runs once: Run drops this module from
# sys.modules afterwards, so nothing built here may keep a reference to it (no lambdas or functions
# of this module in what it builds: their globals would keep its bytecode on the heap).
import gc
import sys

from m2m import hal, loop
from m2m import supervisor as S


def _on(section, keys):
    if type(keys) is str:
        return bool(section.get(keys))
    return any(section.get(k) for k in keys)


def device_id(cfg):
    from m2m.report.contract import check_id

    return check_id(cfg["device"]["id"] or "m2m-" + "".join("%02x" % x for x in hal.unique_id()[-3:]))


def _prose(d):
    # the board file's prose (notes, uncertain, sources) is for people: taken out of the dict in
    # place (board.load() caches the same one), about 8 KB of a 64-bit heap on a held dict
    for k in ("notes", "uncertain", "sources"):
        d.pop(k, None)
    for v in d.values():
        if type(v) is dict:
            _prose(v)


def build(r, cfg, b, outbox_path):
    from m2m import board as _board
    from m2m import outbox

    r.board = b = _board.load() if b is None else b
    b = b or {}
    _prose(b)
    mq = cfg["mqtt"]
    r.id = device_id(cfg)
    mqtt = None
    if mq["broker"]:
        mqtt = _mqtt(r, cfg)  # the URL and the CA checked now: a config error, not a crash later
        loop.drop("m2m.report.mqtt")  # and its sockets: loaded again at the first attach
        loop.drop("m2m.net.sock")
    sc = cfg["sense"]
    if sc["sensors"] or sc["battery"]:  # first: a bad sensor entry is a config error
        from m2m.sense import build as sense_build

        r.sense = S.Sense(None)
        r.sense.sampler = sense_build.sampler(cfg, r.sense.sink, b)
        r.services.append(S.Guard("sense", r.sense))
        gc.collect()
    r.outbox = outbox.from_config(cfg, outbox_path)  # with the write-back of outbox.sync_every / sync_s
    if r.sense is not None:
        r.sense.outbox = r.outbox
    gc.collect()
    plugins = [p for p in S.PLUGINS if _on(cfg.get(p[0]) or {}, p[1])]
    if mq["broker"] or [p for p in plugins if len(p) < 4 or p[3]]:
        from m2m.net.network import Network

        r.net = Network(b, cfg)
        r.services.insert(0, S.Guard("net", r.net))
        gc.collect()
    if mqtt is not None:
        r.services.append(S.Guard("mqtt", mqtt, mqtt.close))
    for p in plugins:
        section, mod = p[0], p[2]
        __import__(mod)
        svc = sys.modules[mod].service({"cfg": cfg, "board": b, "id": r.id, "outbox": r.outbox,
                                        "net": r.net, "sampler": r.sense and r.sense.sampler,
                                        "meters": r.meters})
        if section == "meter":
            r.meters = svc  # the orders' meter rules read it
        r.services.append(S.Guard(section, svc))
        gc.collect()
    r.forward = S.Forward(r.outbox)
    r.services.append(S.Guard("events", r.forward))


def _mqtt(r, cfg):
    # checked now (a config error at start, not a crash later); built at the first attach (m2m.supervisor_mqtt)
    from m2m.report.mqtt import parse_url

    secure = parse_url(cfg["mqtt"]["broker"])[2]
    tls = None
    if secure:  # mqtts: TLS in the modem; the CA, client certificate and key read now (m2m.report.tlsconf)
        from m2m.report import tlsconf

        try:
            tls = tlsconf.tls(cfg["mqtt"])
        finally:
            loop.drop("m2m.report.tlsconf")
    from m2m.supervisor_mqtt import Mqtt

    return Mqtt(r, "tls" if secure else "tcp", tls, [p[0] for p in S.PLUGINS if len(p) < 4 or p[3]])

# Builds the supervisor's layers (m2m.supervisor.Run) from the config and the board, importing only
# what the config enables, with gc.collect() between layers. Runs once: Run drops this module from
# sys.modules afterwards, so nothing built here may keep a reference to it (no lambdas or functions
# of this module in what it builds: their globals would keep its bytecode on the heap).
import gc
import sys

from m2m import hal
from m2m import supervisor as S


def _on(section, keys):
    if type(keys) is str:
        return bool(section.get(keys))
    return any(section.get(k) for k in keys)


def device_id(cfg):
    from m2m.report.contract import check_id

    return check_id(cfg["device"]["id"] or "m2m-" + "".join("%02x" % x for x in hal.unique_id()[-3:]))


def build(r, cfg, b, outbox_path):
    from m2m import board as _board
    from m2m import outbox

    r.board = b = _board.load() if b is None else b
    b = b or {}
    mq = cfg["mqtt"]
    r.id = device_id(cfg)
    if mq["broker"]:
        from m2m.report.mqtt import parse_url

        parse_url(mq["broker"])  # a bad URL is a config error now, not a crash later
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
    if mq["broker"]:
        _mqtt(r, cfg)
        gc.collect()
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
    from m2m.net import link_failed, sock
    from m2m.report.mqtt import Reporter, parse_url

    tls = None
    secure = parse_url(cfg["mqtt"]["broker"])[2]
    ca = cfg["mqtt"]["ca"]
    if secure and ca:  # mqtts: TLS in the modem, the server checked against this CA when given
        try:
            with open(ca) as f:
                tls = {"ca": f.read()}
        except OSError:
            raise ValueError("mqtt.ca: no file %s on the device: copy the CA there or fix the key" % ca)
    st = sock.Stack(r.net.modem, kind="tls" if secure else "tcp", timeout_ms=10000, tls=tls,
                    on_fail=link_failed)
    r.reporter = rep = Reporter(st, r.outbox, cfg, r.id, up=r.net.attached)
    r.services.append(S.Guard("mqtt", S._OnModem(r.net, st, rep), rep.client.close))

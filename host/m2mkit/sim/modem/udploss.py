"""UDP datagrams lost between the modem and the network: control op ``udp_loss``.

``{"op": "udp_loss", "probability": 0.2, "seed": 1}`` drops each datagram, sent or received, with
that probability, drawn from its own seeded generator so a run repeats; probability 0 ends it. A
dropped uplink datagram was sent (it counts on air), a dropped downlink one never reaches the modem
(it does not). The reply carries the counts so far (``dropped_up``, ``dropped_down``).
Not modelled: bursts, reordering, duplication, delay, TCP segment loss.
"""

import random


class UdpLoss:
    def __init__(self, probability, seed=0):
        p = float(probability)
        if not 0 <= p <= 1:
            raise ValueError("udp_loss needs probability between 0 and 1, e.g. 0.2")
        self.p = p
        self.rnd = random.Random(seed)
        self.dropped = {"up": 0, "down": 0}

    def drop(self, direction):
        if self.p and self.rnd.random() < self.p:
            self.dropped[direction] += 1
            return True
        return False


def control(modem, kw):
    old = getattr(modem, "udp_loss", None)
    p = kw.get("probability")
    if p is None:
        raise ValueError('udp_loss needs "probability" (0..1) and optionally "seed"')
    modem.udp_loss = UdpLoss(p, int(kw.get("seed", 0))) if float(p) else None
    d = (modem.udp_loss or old).dropped if (modem.udp_loss or old) else {"up": 0, "down": 0}
    return {"ok": True, "probability": float(p), "dropped_up": d["up"], "dropped_down": d["down"]}


def drops(sock, direction):
    """True when the simulated network loses this datagram of sock (a BridgedSocket)."""
    loss = getattr(sock.modem, "udp_loss", None)
    return loss is not None and loss.drop(direction)

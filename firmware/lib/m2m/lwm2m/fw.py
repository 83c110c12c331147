# Firmware Update (object 5, OMA registry 5.xml): a Package URI written by the server is pulled
# over CoAP Block2 (RFC 7959) into lwm2m.fw_file, State 0 Idle -> 1 Downloading -> 2 Downloaded;
# Update (Execute /5/0/2) moves to 3 Updating and posts lwm2m.fw_update for the OTA layer. Update
# Result (AVSystem Coiote docs on /5): 0 initial, 4 connection lost, 7 invalid URI. `self` below is the
# Client (these are its methods, kept apart so a device imports them only when a server uses them).
from micropython import const

from m2m import coap
from m2m.lwm2m.client import _event
from m2m.lwm2m.model import Err

_BLOCK = const(512)


def written(self, iid, rid):
    fw = self.model.objs[5].inst[0]
    if rid == 1:
        uri = fw.get(1) or ""
        if not uri:
            fw[3] = 0  # an empty URI cancels: Idle
            fw[5] = 0
            self.fw_job = None
            return
        try:
            from m2m.lwm2m.transport import parse_uri

            sec, host, port = parse_uri(uri)
            if sec:
                raise ValueError("coaps")
        except ValueError:
            fw[5] = 7  # Invalid URI
            return
        path = [x for x in uri.split("//", 1)[1].split("/")[1:] if x]
        self.fw_job = {"host": host, "port": port, "path": path, "ep": None, "n": 0, "req": None}
        fw[3] = 1  # Downloading
        fw[5] = 0
    elif rid == 0:
        raise Err(coap.NOT_ALLOWED, "push: give a Package URI")

def step(self):
    job = self.fw_job
    if job is None:
        return
    fw = self.model.objs[5].inst[0]
    if job["ep"] is None:
        from m2m.lwm2m.transport import Udp

        try:
            tr = Udp(job["host"], job["port"], self.stack)
        except OSError:
            fw[3] = 0
            fw[5] = 4  # connection lost
            self.fw_job = None
            return
        job["tr"] = tr
        job["ep"] = coap.Endpoint(tr, None, _BLOCK)
        job["f"] = open(self.cfg.get("lwm2m", {}).get("fw_file") or "/fw.bin", "wb")

        def block(m):
            job["f"].write(m.payload)
            job["n"] += len(m.payload)
            return True

        def done(r):
            job["f"].close()
            job["tr"].close()
            ok = r is not None and r.code == coap.CONTENT
            if ok:
                v = r.uint(coap.BLOCK2)
                if v is None:
                    with open(self.cfg.get("lwm2m", {}).get("fw_file") or "/fw.bin", "wb") as f:
                        f.write(r.payload)
                    job["n"] = len(r.payload)
            fw[3] = 2 if ok else 0  # Downloaded, else Idle
            fw[5] = 0 if ok else (4 if r is None else 7)  # no answer: connection lost; refused: invalid URI
            _event("lwm2m.fw_download", ok=ok, bytes=job["n"])
            self.fw_job = None

        job["ep"].request(coap.GET, job["path"], on_done=done, on_block=block,
                          opts=((coap.BLOCK2, coap.block_val(0, False, _BLOCK)),))
    job["ep"].step()

def update(self, arg):
    fw = self.model.objs[5].inst[0]
    if fw.get(3) != 2:
        raise Err(coap.NOT_ALLOWED, "no package downloaded")
    fw[3] = 3  # Updating: applying the package is the OTA layer's (m2m.ota when it exists)
    _event("lwm2m.fw_update", file=self.cfg.get("lwm2m", {}).get("fw_file") or "/fw.bin")

"""m2mkit commerce serve against a real Mosquitto and a real HTTP supplier: repeated requests are one
order, forwarded once with its Idempotency-Key; a crash between the POST and the commit posts it again
with the same key (the supplier keeps one order); supplier outages are retried, rejections reach the
device; requests that arrive while the service is down are not lost; usage records are stored once."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from m2mkit.broker import Subscriber
from m2mkit.commerce import Service, Store, command
from m2mkit.commerce_supplier import Supplier

M2MKIT = str(Path(sys.executable).parent / "m2mkit")


def _pg_bin(name):
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))[-1:]
    if not found:
        pytest.fail(f"PostgreSQL's {name} is missing: sudo apt-get install postgresql (./dev.sh installs it)")
    return found if isinstance(found, str) else found[0]


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server of this test module's own on a free loopback port (as the postgres
    user when run as root: the server refuses root); yields a function that makes a new database."""
    import psycopg

    from m2mkit.broker import free_port

    d = Path(tempfile.mkdtemp(prefix="m2mkit-pg-"))  # not under pytest's folder: the postgres user reads it
    pre = []
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
        pre = ["runuser", "-u", "postgres", "--"]
    subprocess.run(pre + [_pg_bin("initdb"), "-D", str(d / "data"), "-A", "trust", "-U", "m2m", "-E", "UTF8",
                          "--no-sync"], check=True, capture_output=True, timeout=120)
    port = free_port()
    proc = subprocess.Popen(pre + [_pg_bin("postgres"), "-D", str(d / "data"), "-k", str(d), "-p", str(port),
                                   "-h", "127.0.0.1", "-c", "fsync=off"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"postgresql://m2m@127.0.0.1:{port}"
    assert until(lambda: _pg_ok(base + "/postgres"), 30), "PostgreSQL did not start"
    made = [0]

    def new_db():
        made[0] += 1
        name = "commerce%d" % made[0]
        with psycopg.connect(base + "/postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE " + name)
        return f"{base}/{name}"

    yield new_db
    proc.terminate()
    proc.wait(20)
    shutil.rmtree(d, ignore_errors=True)


def _pg_ok(url):
    import psycopg

    try:
        psycopg.connect(url).close()
        return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(params=("sqlite", "postgresql"))
def db(request, tmp_path):
    """The commerce database: an SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "c.db")
    return request.getfixturevalue("postgres")()


def request(order="dev-1:ink:1", item="ink", qty=2, tries=1, reason="ink.level 12 below 15"):
    return json.dumps({"order": order, "item": item, "qty": qty, "reason": reason, "t": 1780000000.25,
                       "try": tries}).encode()


class Running:
    """The service in this process, its worker in a thread."""

    def __init__(self, url, db, supplier=None, client_id=None):
        self.lines = []
        self.svc = Service(url, str(db), supplier, log=self.lines.append,
                           client_id=client_id or "commerce-%d" % time.monotonic_ns(), retry_s=0.2).start()
        assert self.svc.connected.wait(10)
        time.sleep(0.2)  # the SUBACKs
        self.t = threading.Thread(target=self.svc.run, daemon=True)
        self.t.start()

    def stop(self):
        self.svc.stopping.set()
        self.t.join(5)
        self.svc.stop()


def until(pred, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def answers(sub, n, timeout=10):
    return [json.loads(p) for _, p, _ in sub.wait(n, timeout)]


def test_repeats_are_one_order_forwarded_once_and_answered_each_time(broker, subscriber, db):
    sup = Supplier()
    dev = subscriber("m2mkit/dev-1/cmd")
    run = Running(broker.url, db, sup.url)
    try:
        for k in range(1, 6):
            dev.publish("m2mkit/dev-1/orders", request(tries=k))
        got = answers(dev, 5)
        assert len(got) == 5
        assert {json.dumps(g, sort_keys=True) for g in got} == {json.dumps(json.loads(command("dev-1:ink:1", "confirmed", "S-1")), sort_keys=True)}
        assert got[0]["args"] == {"order": "dev-1:ink:1", "status": "confirmed", "ref": "S-1"}
        assert len(sup.posts) == 1 and len(sup.orders) == 1
        key, body = sup.posts[0]
        assert key == '"dev-1:ink:1"'
        assert body == {"order": "dev-1:ink:1", "device": "dev-1", "item": "ink", "qty": 2,
                        "reason": "ink.level 12 below 15", "t": 1780000000.25}
        # the device's reply on /cmd/res is recorded
        dev.publish("m2mkit/dev-1/cmd/res", json.dumps({"id": got[0]["id"], "ok": True, "order": "dev-1:ink:1",
                                                         "status": "confirmed"}))
        assert until(lambda: run.svc.store.order("dev-1:ink:1")["device_status"] == "confirmed")
        o = run.svc.store.order("dev-1:ink:1")
        assert (o["state"], o["ref"], o["requests"], o["posts"]) == ("confirmed", "S-1", 5, 1)
        assert o["t"] == 1780000000.25  # the need time as the device sent it (repeats compare it)
        assert not [ln for ln in run.lines if "warning" in ln]
        # the same id for a need of another time (the device lost its state file): said, not ordered
        dev.publish("m2mkit/dev-1/orders", json.dumps({"order": "dev-1:ink:1", "item": "ink", "qty": 2,
                                                       "t": 1790000000.5, "try": 1}))
        assert answers(dev, 1)[0]["args"]["status"] == "confirmed"
        assert any("warning: order dev-1:ink:1 came again for a need of another time" in ln for ln in run.lines)
        assert len(sup.posts) == 1
        # a second need of the same device is a second order
        dev.publish("m2mkit/dev-1/orders", request(order="dev-1:ink:2"))
        assert answers(dev, 1)[0]["args"]["order"] == "dev-1:ink:2"
        assert len(sup.orders) == 2 and len(sup.posts) == 2
        # delivered: the device is told, and a late repeat is answered with it
        p = subprocess.run([M2MKIT, "commerce", "deliver", "dev-1:ink:1", "--broker", broker.url, "--db", db],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert answers(dev, 1)[0]["args"] == {"order": "dev-1:ink:1", "status": "delivered", "ref": "S-1"}
        dev.publish("m2mkit/dev-1/orders", request(tries=6))
        assert answers(dev, 1)[0]["args"]["status"] == "delivered"
        assert len(sup.posts) == 2
        p = subprocess.run([M2MKIT, "commerce", "deliver", "dev-1:ink:9", "--broker", broker.url, "--db", db],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "no order 'dev-1:ink:9'" in p.stderr and "commerce orders" in p.stderr
    finally:
        run.stop()
        sup.close()


def test_a_crash_between_post_and_commit_posts_again_with_the_same_key(broker, subscriber, db):
    # the service runs as `m2mkit commerce serve`; the supplier kills it (SIGKILL) once it has
    # recorded the order and before it answers: the POST went out, its answer was never committed
    procs = []

    def kill(key, body):
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(10)

    sup = Supplier(on_post=kill)
    dev = subscriber("m2mkit/dev-1/cmd")

    def serve():
        p = subprocess.Popen([M2MKIT, "commerce", "serve", "--broker", broker.url, "--db", str(db),
                              "--supplier", sup.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        assert p.stdout.readline().startswith("commerce: listening")
        time.sleep(0.5)  # its subscription
        return p

    try:
        p = serve()
        dev.publish("m2mkit/dev-1/orders", request())
        assert p.wait(15) == -signal.SIGKILL
        assert len(sup.posts) == 1
        assert answers(dev, 1, timeout=1) == []  # no answer reached the device
        st = Store(str(db))
        o = st.order("dev-1:ink:1")
        st.close()
        assert (o["state"], o["posts"]) == ("pending", 1)
        sup.on_post = None
        p = serve()  # the restart posts the pending order again, without a new request
        got = answers(dev, 1)
        assert got and got[0]["args"] == {"order": "dev-1:ink:1", "status": "confirmed", "ref": "S-1"}
        assert [k for k, _ in sup.posts] == ['"dev-1:ink:1"', '"dev-1:ink:1"']
        assert len(sup.orders) == 1  # one order at the supplier
        # the device repeats its request: answered from the database, not posted again
        dev.publish("m2mkit/dev-1/orders", request(tries=2))
        assert answers(dev, 1)[0]["args"]["status"] == "confirmed"
        assert len(sup.posts) == 2
        listed = subprocess.run([M2MKIT, "commerce", "orders", "--db", str(db)], capture_output=True, text=True,
                                timeout=30).stdout
        assert listed.split() == ["dev-1:ink:1", "confirmed", "ref=S-1", "requests=2", "posts=2", "device=-",
                                  "2", "x", "ink"], listed
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        sup.close()


def test_supplier_outage_is_retried_and_a_rejection_reaches_the_device(broker, subscriber, tmp_path):
    sup = Supplier(fail_first=2)
    dev = subscriber("m2mkit/dev-2/cmd")
    run = Running(broker.url, tmp_path / "c.db", sup.url)
    try:
        dev.publish("m2mkit/dev-2/orders", request(order="dev-2:ink:1"))
        got = answers(dev, 1)
        assert got[0]["args"]["status"] == "confirmed"
        assert len(sup.posts) == 3 and len(sup.orders) == 1
        assert any("supplier unreachable" in ln and "will retry" in ln for ln in run.lines)
        sup.reject = True
        dev.publish("m2mkit/dev-2/orders", request(order="dev-2:filter:1", item="filter", qty=1))
        got = answers(dev, 1)
        assert got[0]["args"] == {"order": "dev-2:filter:1", "status": "rejected", "ref": "S-2"}
        assert run.svc.store.order("dev-2:filter:1")["note"] == "out of stock"
    finally:
        run.stop()
        sup.close()


def test_bad_requests_are_refused_with_a_reason_and_change_nothing(broker, subscriber, tmp_path):
    sup = Supplier()
    dev = subscriber("m2mkit/dev-3/cmd")
    run = Running(broker.url, tmp_path / "c.db", sup.url)
    try:
        for bad in (b"not json", b"[1]", json.dumps({"order": "dev-3:x:1", "item": "x", "qty": 0}).encode(),
                    json.dumps({"item": "x", "qty": 1}).encode(), request(order='dev-3:"x":1'),
                    request(order="dev-9:ink:1")):
            dev.publish("m2mkit/dev-3/orders", bad)
        assert until(lambda: run.svc.bad == 6)
        assert answers(dev, 1, timeout=1) == []
        assert sup.posts == [] and run.svc.store.orders() == []
        text = "\n".join(run.lines)
        for why in ("not JSON", "not a JSON object", '"qty" must be', '"order" must be', "names another device"):
            assert why in text, text
    finally:
        run.stop()
        sup.close()


def test_requests_sent_while_the_service_is_down_are_not_lost(broker, subscriber, tmp_path):
    sup = Supplier()
    dev = subscriber("m2mkit/dev-4/cmd")
    run = Running(broker.url, tmp_path / "c.db", sup.url, client_id="commerce-down-test")
    run.stop()  # its persistent session stays at the broker
    dev.publish("m2mkit/dev-4/orders", request(order="dev-4:ink:1"))
    run = Running(broker.url, tmp_path / "c.db", sup.url, client_id="commerce-down-test")
    try:
        got = answers(dev, 1)
        assert got and got[0]["args"]["order"] == "dev-4:ink:1"
        assert len(sup.orders) == 1
    finally:
        run.stop()
        sup.close()


def test_usage_records_stored_once(broker, subscriber, db):
    run = Running(broker.url, db)
    dev = subscriber("m2mkit/dev-5/cmd")
    try:
        recs = [json.dumps({"m": "water", "n": n, "a": n, "b": n + 1, "k": "0.5", "u": "L"}).encode() for n in (1, 2)]
        for r in recs + recs[:1]:
            dev.publish("m2mkit/dev-5/usage", r)
        assert until(lambda: len(run.svc.store.usage("dev-5")) == 2)
        time.sleep(0.3)
        assert [(d, s) for d, s, _ in run.svc.store.usage()] == [("dev-5", 1), ("dev-5", 2)]
        # without a supplier the service confirms an order itself
        dev.publish("m2mkit/dev-5/orders", request(order="dev-5:ink:1"))
        assert answers(dev, 1)[0]["args"] == {"order": "dev-5:ink:1", "status": "confirmed"}
    finally:
        run.stop()


def test_cli_errors_say_what_to_give(tmp_path):
    for args, want in ((["--broker", "tcp://x"], "give mqtt://HOST:PORT"),
                       (["--broker", "mqtt://127.0.0.1:1", "--supplier", "ftp://x", "--db", str(tmp_path / "d")],
                        "--supplier 'ftp://x': give an http"),
                       (["--broker", "mqtt://127.0.0.1:1", "--db", str(tmp_path / "d")], "is the broker running")):
        p = subprocess.run([M2MKIT, "commerce", "serve"] + args, capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and want in p.stderr + p.stdout, p.stderr + p.stdout
        assert len((p.stderr + p.stdout).strip().splitlines()) == 1

"""`m2mkit commerce serve`: the host side of replenishment orders (issue 14). It subscribes to the
devices' order requests and usage records, keeps them in a database (SQLite by default, PostgreSQL by
URL through psycopg), forwards each new order once to a supplier (a JSON POST), and sends the answer
back to the device on its /cmd topic. Contract: docs/CONTRACTS.md "Orders".

Exactly once, across restarts of this service, the broker and the device:
- an order request is stored (INSERT ... ON CONFLICT DO NOTHING on the order id) before its MQTT
  message is acknowledged (paho-mqtt 2.2.0, client.py `_handle_publish`: a QoS 1 PUBACK is sent once
  on_message has returned); a repeat with the same id is a duplicate and never a new order;
- the POST carries `Idempotency-Key: "<order id>"` (draft-ietf-httpapi-idempotency-key-header-09: an
  RFC 8941 sf-string; the draft recommends a random key, the order id is used so that a restarted
  service, or another site's, derives the same one);
  the supplier's answer is committed after the POST returns. A crash between the two leaves the order
  `pending`: the next start posts it again with the same key, and the supplier, which deduplicates
  by key, answers as the first time;
- the answer goes to the device as `{"id", "cmd": "order", "args": {"order", "status", "ref"}}` on
  `<prefix>/<device>/cmd` (QoS 1), again whenever the device repeats a request it already had.
"""

import hashlib
import json
import queue
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request

import click

from .errors import UserError

PENDING, CONFIRMED, REJECTED, DELIVERED = "pending", "confirmed", "rejected", "delivered"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS orders (
        order_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, item TEXT NOT NULL, qty INTEGER NOT NULL,
        reason TEXT, t DOUBLE PRECISION, request TEXT NOT NULL, state TEXT NOT NULL, ref TEXT, note TEXT,
        requests INTEGER NOT NULL DEFAULT 1, posts INTEGER NOT NULL DEFAULT 0,
        received_at DOUBLE PRECISION, answered_at DOUBLE PRECISION, device_status TEXT)""",
    """CREATE TABLE IF NOT EXISTS usage_records (
        device_id TEXT NOT NULL, digest TEXT NOT NULL, seq BIGINT, record TEXT NOT NULL,
        received_at DOUBLE PRECISION, PRIMARY KEY (device_id, digest))""",
)
COLUMNS = ("order_id", "device_id", "item", "qty", "reason", "t", "request", "state", "ref", "note",
           "requests", "posts", "received_at", "answered_at", "device_status")


class Store:
    """The orders and usage records: `sqlite:///path`, a plain path (SQLite), or postgresql://..."""

    def __init__(self, url):
        self.lock = threading.Lock()
        if url.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg
            except ImportError:
                raise UserError("--db %s needs psycopg: .venv/bin/pip install -e '.[postgres]'" % url) from None
            try:
                self.db = psycopg.connect(url)
            except psycopg.Error as e:
                raise UserError(f"cannot open --db {url}: {str(e).strip()}") from None
            self.ph = "%s"
        else:
            path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
            try:
                self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as e:
                raise UserError(f"cannot open --db {url}: {e}") from None
            self.ph = "?"
        with self.lock:
            for s in SCHEMA:
                self._exec(s)
            self._commit()

    def _exec(self, sql, args=()):
        cur = self.db.cursor()
        cur.execute(sql.replace("?", self.ph), args)
        return cur

    def _commit(self):
        if self.ph == "%s":
            self.db.commit()

    def _write(self, sql, args=()):
        with self.lock:
            if self.ph == "?":
                self._exec("BEGIN IMMEDIATE")
            try:
                cur = self._exec(sql, args)
            except BaseException:
                self._exec("ROLLBACK") if self.ph == "?" else self.db.rollback()
                raise
            self._exec("COMMIT") if self.ph == "?" else self.db.commit()
            return cur.rowcount

    def add_order(self, device_id, req, raw):
        """True for a new order, False for a repeat of a known id (its count goes up)."""
        new = self._write(
            "INSERT INTO orders (order_id, device_id, item, qty, reason, t, request, state, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
            (req["order"], device_id, req["item"], req["qty"], req.get("reason"), req.get("t"), raw, PENDING,
             time.time()))
        if not new:
            self._write("UPDATE orders SET requests = requests + 1 WHERE order_id = ?", (req["order"],))
        return bool(new)

    def order(self, order_id):
        with self.lock:
            row = self._exec("SELECT %s FROM orders WHERE order_id = ?" % ", ".join(COLUMNS), (order_id,)).fetchone()
            self._commit()
        return dict(zip(COLUMNS, row)) if row else None

    def orders(self, state=None):
        with self.lock:
            if state:
                cur = self._exec("SELECT %s FROM orders WHERE state = ? ORDER BY received_at" % ", ".join(COLUMNS), (state,))
            else:
                cur = self._exec("SELECT %s FROM orders ORDER BY received_at" % ", ".join(COLUMNS))
            rows = cur.fetchall()
            self._commit()
        return [dict(zip(COLUMNS, r)) for r in rows]

    def counted_post(self, order_id):
        # recorded before the POST leaves: the count says how often the supplier may have seen it
        self._write("UPDATE orders SET posts = posts + 1 WHERE order_id = ?", (order_id,))

    def answer(self, order_id, state, ref=None, note=None):
        self._write("UPDATE orders SET state = ?, ref = ?, note = ?, answered_at = ? WHERE order_id = ?",
                    (state, ref, note, time.time(), order_id))

    def device_answered(self, order_id, status):
        self._write("UPDATE orders SET device_status = ? WHERE order_id = ?", (status, order_id))

    def add_usage(self, device_id, raw):
        try:  # docs/CONTRACTS.md "Usage records": "n" numbers a device's records
            seq = json.loads(raw).get("n")
        except (ValueError, AttributeError):
            seq = None
        if type(seq) is not int:
            seq = None
        digest = hashlib.sha256(raw).hexdigest()
        return bool(self._write(
            "INSERT INTO usage_records (device_id, digest, seq, record, received_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (device_id, digest) DO NOTHING", (device_id, digest, seq, raw.decode("utf-8", "replace"),
                                                           time.time())))

    def usage(self, device_id=None):
        with self.lock:
            q = "SELECT device_id, seq, record FROM usage_records"
            cur = self._exec(q + " WHERE device_id = ? ORDER BY seq" if device_id else q + " ORDER BY device_id, seq",
                             (device_id,) if device_id else ())
            rows = cur.fetchall()
            self._commit()
        return rows

    def close(self):
        self.db.close()


def check_request(payload):
    """The order request of an /orders payload, or ValueError saying what is wrong with it."""
    try:
        req = json.loads(payload)
    except (ValueError, UnicodeError):
        raise ValueError("not JSON") from None
    if type(req) is not dict:
        raise ValueError("not a JSON object")
    oid = req.get("order")
    # <device>:<item>:<n> in letters, digits and - _ . : (it becomes an sf-string header value)
    if type(oid) is not str or not 0 < len(oid) <= 128 or not re.fullmatch(r"[A-Za-z0-9_.:-]+", oid):
        raise ValueError('"order" must be the order id <device>:<item>:<n>')
    if type(req.get("item")) is not str or not req["item"]:
        raise ValueError('"item" missing')
    q = req.get("qty")
    if type(q) is not int or q <= 0:
        raise ValueError('"qty" must be a positive whole number')
    return req


def command(order_id, status, ref=None):
    """The /cmd payload that tells the device the answer to an order (its command id is derived from
    the order and the status, so a repeat is recognisably the same answer)."""
    cid = "order-" + hashlib.sha256(f"{order_id}\0{status}".encode()).hexdigest()[:12]
    args = {"order": order_id, "status": status}
    if ref is not None:
        args["ref"] = ref
    return json.dumps({"id": cid, "cmd": "order", "args": args}, separators=(",", ":")).encode()


class Supplier:
    """POST the order as JSON to `url`. 2xx: accepted (or rejected when the JSON answer says
    "status": "rejected"); another 4xx but 408 / 429: rejected; anything else: try later."""

    def __init__(self, url, timeout=10):
        self.url = url
        self.timeout = timeout

    def post(self, order):
        body = json.dumps({"order": order["order_id"], "device": order["device_id"], "item": order["item"],
                           "qty": order["qty"], "reason": order["reason"], "t": order["t"]}).encode()
        req = urllib.request.Request(self.url, body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": '"%s"' % order["order_id"]})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                code, data = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, data = e.code, e.read()
        try:
            ans = json.loads(data) if data else {}
        except ValueError:
            ans = {}
        if type(ans) is not dict:
            ans = {}
        ref = ans.get("ref")
        ref = None if ref is None else str(ref)
        if 200 <= code < 300:
            if ans.get("status") == "rejected":
                return REJECTED, ref, ans.get("reason")
            return CONFIRMED, ref, None
        if 400 <= code < 500 and code not in (408, 429):
            return REJECTED, ref, ans.get("reason") or f"supplier answered HTTP {code}"
        raise OSError(f"supplier answered HTTP {code}")


class Service:
    """The service: `start()` connects and subscribes, `run(until)` forwards and answers, `stop()`."""

    def __init__(self, broker, db="commerce.db", supplier=None, prefix="m2mkit", log=None,
                 client_id="m2mkit-commerce", retry_s=2.0):
        scheme, _, rest = broker.partition("://")
        host, _, port = rest.rstrip("/").rpartition(":")
        if scheme != "mqtt" or not host or not port.isdigit():
            raise UserError(f"--broker {broker!r}: give mqtt://HOST:PORT")
        if supplier is not None and not supplier.startswith(("http://", "https://")):
            raise UserError(f"--supplier {supplier!r}: give an http:// or https:// URL the orders are POSTed to")
        self.host, self.port = host, int(port)
        self.url = broker
        self.store = Store(db)
        self.supplier = Supplier(supplier) if supplier else None
        self.prefix = prefix
        self.log = log or (lambda text: click.echo(text))
        self.client_id = client_id
        self.retry_s = retry_s
        self.work = queue.Queue()
        self.client = None
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.running = threading.Event()
        self.bad = 0

    # ---- MQTT (paho's thread: store, then queue the work) ----
    def start(self):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise UserError("paho-mqtt is missing: .venv/bin/pip install -e '.[test]' (or ./dev.sh)") from None
        # a persistent session: the broker keeps QoS 1 requests that arrive while the service is down
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.connected.clear()
        c.on_message = self._on_message
        c.reconnect_delay_set(1, 10)
        self.client = c
        try:
            c.connect(self.host, self.port, keepalive=30)
        except OSError as e:
            raise UserError(f"cannot connect to {self.url}: {e}: is the broker running?") from None
        c.loop_start()
        for o in self.store.orders(PENDING):  # forwards cut short by a stop or a crash
            self.work.put(o["order_id"])
        return self

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self.log(f"commerce: the broker refused the connection: {reason}")
            return
        for leaf in ("orders", "usage", "cmd/res"):
            client.subscribe(f"{self.prefix}/+/{leaf}", qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, m):
        parts = m.topic[len(self.prefix) + 1:].split("/")
        if not m.topic.startswith(self.prefix + "/") or len(parts) < 2:
            return
        device, leaf = parts[0], "/".join(parts[1:])
        if leaf == "orders":
            try:
                req = check_request(m.payload)
            except ValueError as e:
                self.bad += 1
                self.log(f"commerce: {device}: order request refused ({e}): {m.payload[:120]!r}")
                return
            if not req["order"].startswith(device + ":"):
                self.bad += 1
                self.log(f"commerce: {device}: order {req['order']} names another device: refused")
                return
            new = self.store.add_order(device, req, m.payload.decode())
            self.log(f"commerce: {device}: {'new order' if new else 'repeated request'} {req['order']} "
                     f"({req['qty']} x {req['item']}: {req.get('reason')})")
            if not new and self.store.order(req["order"])["t"] != req.get("t"):
                # the same id for a need of another time: a device whose ids have no epoch
                # (<device>:<item>:<n>, firmware or a state file from before epochs) lost its
                # orders.state file and counts from 1 again; it gets the stored order's status.
                # Ids with an epoch (<device>:<item>:<epoch>-<n>) never come back this way.
                self.log(f"commerce: {device}: warning: order {req['order']} came again for a need of "
                         "another time: has the device lost its orders.state file? Answered with the stored "
                         "status; update its firmware (order ids with an epoch) so a new need gets a new id")
            self.work.put(req["order"])
        elif leaf == "usage":
            if self.store.add_usage(device, m.payload):
                self.log(f"commerce: {device}: usage record stored")
        elif leaf == "cmd/res":
            try:
                r = json.loads(m.payload)
            except ValueError:
                return
            if type(r) is dict and type(r.get("order")) is str and r.get("ok"):
                self.store.device_answered(r["order"], r.get("status"))
                self.log(f"commerce: {device}: the device has order {r['order']} as {r.get('status')}")

    # ---- the worker: forward pending orders, answer devices ----
    def handle(self, order_id):
        o = self.store.order(order_id)
        if o is None:
            return True
        if o["state"] == PENDING:
            if self.supplier is None:
                state, ref, note = CONFIRMED, None, "no supplier configured: confirmed by the service"
            else:
                self.store.counted_post(order_id)
                try:
                    state, ref, note = self.supplier.post(o)
                except (OSError, urllib.error.URLError) as e:
                    self.log(f"commerce: supplier unreachable for {order_id} ({getattr(e, 'reason', e)}): will retry")
                    return False
            self.store.answer(order_id, state, ref, note)
            self.log(f"commerce: order {order_id} {state} by the supplier" + (f" (ref {ref})" if ref else "")
                     + (f": {note}" if note else ""))
            o = self.store.order(order_id)
        self.client.publish(f"{self.prefix}/{o['device_id']}/cmd", command(order_id, o["state"], o["ref"]), qos=1)
        return True

    def run(self, until=None):
        self.running.set()
        try:
            self._run(until)
        finally:
            self.running.clear()

    def _run(self, until):
        retry = []
        next_retry = time.monotonic() + self.retry_s
        while not self.stopping.is_set() and not (until and until()):
            try:
                oid = self.work.get(timeout=0.2)
            except queue.Empty:
                oid = None
            if oid is not None and oid not in retry and not self.handle(oid):
                retry.append(oid)
            if retry and time.monotonic() >= next_retry:
                retry = [x for x in retry if not self.handle(x)]
                next_retry = time.monotonic() + self.retry_s

    def stop(self):
        self.stopping.set()
        for _ in range(120):  # a worker thread finishes the order in hand (a POST: at most its timeout)
            if not self.running.is_set():
                break
            time.sleep(0.1)
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
        self.store.close()


@click.group("commerce")
def commerce():
    """Replenishment orders and usage records from the devices (issue 14)."""


@commerce.command()
@click.option("--broker", required=True, metavar="mqtt://HOST:PORT", help="the broker the devices report to")
@click.option("--db", default="commerce.db", show_default=True, metavar="PATH|postgresql://...",
              help="where orders and usage records are kept: an SQLite file, or a PostgreSQL URL")
@click.option("--supplier", default=None, metavar="URL",
              help="POST each new order here as JSON (without it the service confirms orders itself)")
@click.option("--prefix", default="m2mkit", show_default=True, help="the devices' mqtt.prefix")
def serve(broker, db, supplier, prefix):
    """Store the devices' orders and usage records, forward each order once, answer the device."""
    svc = Service(broker, db, supplier, prefix).start()
    click.echo(f"commerce: listening on {broker} for {prefix}/+/orders and {prefix}/+/usage; db {db}; "
               + (f"supplier {supplier}" if supplier else "no supplier: orders are confirmed here"))
    try:
        svc.run()
    except KeyboardInterrupt:
        pass
    finally:
        svc.stop()


@commerce.command("orders")
@click.option("--db", default="commerce.db", show_default=True, metavar="PATH|postgresql://...")
def orders_cmd(db):
    """List the orders: id, state, supplier ref, requests received, POSTs made, the device's copy."""
    st = Store(db)
    for o in st.orders():
        click.echo(f"{o['order_id']}  {o['state']:<9} ref={o['ref'] or '-'} requests={o['requests']} "
                   f"posts={o['posts']} device={o['device_status'] or '-'}  {o['qty']} x {o['item']}")
    st.close()


@commerce.command()
@click.argument("order_id")
@click.option("--broker", required=True, metavar="mqtt://HOST:PORT", help="the broker the devices report to")
@click.option("--db", default="commerce.db", show_default=True, metavar="PATH|postgresql://...")
@click.option("--prefix", default="m2mkit", show_default=True, help="the devices' mqtt.prefix")
def deliver(order_id, broker, db, prefix):
    """Mark a confirmed order delivered and tell its device (it keeps the status)."""
    st = Store(db)
    try:
        o = st.order(order_id)
        if o is None:
            raise UserError(f"no order {order_id!r} in {db}: m2mkit commerce orders --db {db} lists them")
        if o["state"] not in (CONFIRMED, DELIVERED):
            raise UserError(f"order {order_id} is {o['state']}: only a confirmed order can be delivered")
        st.answer(order_id, DELIVERED, o["ref"], o["note"])
    finally:
        st.close()
    publish(broker, f"{prefix}/{o['device_id']}/cmd", command(order_id, DELIVERED, o["ref"]))
    click.echo(f"commerce: order {order_id} delivered; told {o['device_id']}")


def publish(broker, topic, payload):
    """One QoS 1 message, returned after the broker's PUBACK."""
    import paho.mqtt.client as mqtt

    scheme, _, rest = broker.partition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    if scheme != "mqtt" or not host or not port.isdigit():
        raise UserError(f"--broker {broker!r}: give mqtt://HOST:PORT")
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    try:
        c.connect(host, int(port), keepalive=30)
    except OSError as e:
        raise UserError(f"cannot connect to {broker}: {e}: is the broker running?") from None
    c.loop_start()
    try:
        info = c.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        if not info.is_published():
            raise UserError(f"the broker at {broker} did not take the message within 10 s")
    finally:
        c.disconnect()
        c.loop_stop()

"""A supplier endpoint for the commerce tests and `m2mkit demo --commerce`: a real HTTP server on loopback that takes
order POSTs, deduplicates them by their Idempotency-Key (draft-ietf-httpapi-idempotency-key-header:
the same key gets the first answer again) and counts every POST and every distinct order."""

import http.server
import json
import threading


class Supplier:
    def __init__(self, reject=False, fail_first=0, on_post=None):
        self.reject = reject  # answer {"status": "rejected"} to new orders
        self.fail_first = fail_first  # answer 503 to this many POSTs first
        self.on_post = on_post  # called with (key, body) after a new order is recorded, before the answer
        self.posts = []  # (key, body) of every POST that arrived
        self.orders = {}  # key -> (body, answer): the distinct orders
        self.lock = threading.Lock()
        sup = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n))
                key = self.headers.get("Idempotency-Key")
                hook = None
                with sup.lock:
                    sup.posts.append((key, body))
                    if sup.fail_first:
                        sup.fail_first -= 1
                        code, ans = 503, {"error": "try later"}
                    elif key in sup.orders:
                        code, ans = 200, sup.orders[key][1]
                    else:
                        ref = "S-%d" % (len(sup.orders) + 1)
                        ans = {"ref": ref, "status": "rejected", "reason": "out of stock"} if sup.reject \
                            else {"ref": ref, "status": "accepted"}
                        sup.orders[key] = (body, ans)
                        code, hook = 201, sup.on_post
                if hook is not None:
                    hook(key, body)
                data = json.dumps(ans).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/orders" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()

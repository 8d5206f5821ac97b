"""A stand-in for a price API, for the tests of pipelines/crypto.sql: answers GETs with the bodies
of recorded polls (pipelines/data/coinlore-tickers.jsonl) in order, misbehaving on purpose in
between: a 500, an answer slower than the client's timeout, a body that is not JSON. Once the
recorded polls are used up it answers 503.

    python price_server.py RECORDED.jsonl POLLS     (prints "port N" once listening)
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

recorded = [json.loads(line)["body"] for line in open(sys.argv[1]) if line.strip()][: int(sys.argv[2])]
# Before poll 2 a 500, before poll 3 a slow answer, before poll 4 malformed JSON: each is one
# attempt the client retries.
script = []
for n, body in enumerate(recorded):
    script += {1: [("status", 500)], 2: [("slow", 3)], 3: [("malformed", None)]}.get(n, [])
    script.append(("json", body))
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with lock:
            kind, value = script.pop(0) if script else ("status", 503)
        if kind == "slow":
            time.sleep(value)
            kind, value = "status", 504
        if kind == "status":
            self.send_response(value)
            self.end_headers()
            return
        body = b'{"data": [' if kind == "malformed" else json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()

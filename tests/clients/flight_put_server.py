#!/usr/bin/env python3
"""A plain Arrow Flight server that records every DoPut as JSON lines (a sink for streamsql tests).

  flight_put_server.py --out FILE [--port N] [--fail-first N]

Listens on grpc://127.0.0.1:PORT (--port 0, the default, picks a free port) and prints
"PORT <n>" once it serves. Each DoPut is read to the end and every row is appended to FILE as
{"col": value, ..., "_path": "a/b"} (the descriptor's path joined by "/"; values converted as in
adbc_query.py), flushed when the put is done. --fail-first N rejects the first N DoPut calls
with UNAVAILABLE, before reading them. SIGTERM or SIGINT: exit 0 once running calls finish, or
after 3 s (a put still streaming then is dropped).
"""
import argparse
import json
import os
import signal
import sys
import threading

import pyarrow.flight as flight

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the import below
from adbc_query import table_rows  # noqa: E402  (same value conversion as the query client)

SHUTDOWN_GRACE_SECS = 3


class PutServer(flight.FlightServerBase):
    def __init__(self, location, out, fail_first):
        super().__init__(location)
        self.out = out
        self.fail_first = fail_first
        self.puts = 0
        self.lock = threading.Lock()  # puts may run concurrently; lines must not interleave

    def do_put(self, context, descriptor, reader, writer):
        with self.lock:
            self.puts += 1
            n = self.puts
        if n <= self.fail_first:
            raise flight.FlightUnavailableError(f"DoPut {n} rejected (--fail-first {self.fail_first})")
        table = reader.read_all()
        path = "/".join(p.decode() if isinstance(p, bytes) else p for p in descriptor.path or [])
        names = table.column_names
        lines = [json.dumps({**dict(zip(names, row)), "_path": path}) + "\n" for row in table_rows(table)]
        with self.lock:
            self.out.writelines(lines)
            self.out.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="JSON lines file to append rows to")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--fail-first", type=int, default=0, metavar="N", help="reject the first N DoPut calls")
    args = p.parse_args()

    # Block the stop signals before the server starts its threads (they inherit the mask), so
    # they reach only the sigwait below; a Python handler would never run while serve() blocks.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with open(args.out, "a", encoding="utf-8") as out:
        server = PutServer(f"grpc://127.0.0.1:{args.port}", out, args.fail_first)
        print(f"PORT {server.port}", flush=True)
        signal.sigwait(stop_signals)
        # shutdown() waits for running calls, and a client may hold a DoPut stream open forever:
        # give them a moment, then leave anyway (rows of an unfinished put are not written).
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(SHUTDOWN_GRACE_SECS)
        if stopper.is_alive():
            with server.lock:  # no put writes after this
                out.flush()
                os._exit(0)  # a normal exit would wait for the server again
    return 0


if __name__ == "__main__":
    sys.exit(main())

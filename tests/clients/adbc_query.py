#!/usr/bin/env python3
"""Runs SQL against a Flight SQL server with the ADBC Flight SQL driver; prints one JSON line per query.

  adbc_query.py --uri grpc://127.0.0.1:PORT [--token T | --user U --password P] [--metadata]
                [--repeat N --interval SECS] [--timed] SQL...

Each query prints {"sql", "columns", "types", "rows"} (plus "round" with --repeat). Values: JSON
scalars as-is, timestamps as epoch milliseconds, non-finite floats and decimals and everything else
as strings (lists and structs recursively). Exit codes: 0 ok, 2 connection or query error (a JSON
line with "error"), 3 metadata error (a JSON line with "metadata_error"). Run with the venv python
from scripts/flight-clients.sh.
"""
import argparse
import datetime
import json
import math
import sys
import time

import pyarrow as pa

# Timestamp units -> (multiplier, divisor) to epoch milliseconds.
TO_MILLIS = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 1_000_000)}
EPOCH = datetime.datetime(1970, 1, 1)


def json_value(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)  # JSON has no NaN/inf
    if isinstance(v, datetime.datetime):  # a timestamp nested in a list or struct
        epoch = EPOCH.replace(tzinfo=datetime.timezone.utc) if v.tzinfo else EPOCH
        return (v - epoch) // datetime.timedelta(milliseconds=1)
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    return str(v)  # Decimal, date, time, timedelta, bytes, ...


def column_values(col):
    """One column of a table as JSON values. Top-level timestamps go through their integer
    representation: exact for every unit (datetime would reject nanoseconds)."""
    if pa.types.is_timestamp(col.type):
        mul, div = TO_MILLIS[col.type.unit]
        return [None if v is None else v * mul // div for v in col.cast(pa.int64()).to_pylist()]
    return [json_value(v) for v in col.to_pylist()]


def table_rows(table):
    columns = [column_values(c) for c in table.columns]
    return [[c[i] for c in columns] for i in range(table.num_rows)]


def emit(obj):
    print(json.dumps(obj), flush=True)


def error_text(e):
    return str(e).strip() or type(e).__name__


def metadata(conn):
    """Catalogs, schemas and tables from GetObjects (depth "tables"), vendor/driver from GetInfo."""
    catalogs, schemas, tables = [], [], []
    for cat in conn.adbc_get_objects(depth="tables").read_all().to_pylist():
        catalogs.append(cat["catalog_name"])
        for schema in cat["catalog_db_schemas"] or []:
            schemas.append(schema["db_schema_name"])
            for t in schema["db_schema_tables"] or []:
                tables.append({"catalog": cat["catalog_name"], "schema": schema["db_schema_name"],
                               "table": t["table_name"], "type": t["table_type"]})
    info = conn.adbc_get_info()
    return {"catalogs": catalogs, "db_schemas": schemas, "tables": tables,
            "vendor_name": info.get("vendor_name"), "driver_name": info.get("driver_name")}


def run_query(conn, sql, extra, timed=False):
    cur = conn.cursor()
    started = time.monotonic()
    try:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    finally:
        cur.close()
    if timed:
        extra = {**extra, "elapsed_s": round(time.monotonic() - started, 4)}
    emit({"sql": sql, "columns": table.column_names, "types": [str(t) for t in table.schema.types],
          "rows": table_rows(table), **extra})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--uri", required=True, help="grpc://HOST:PORT")
    p.add_argument("--token", help="sent as 'authorization: Bearer TOKEN'")
    p.add_argument("--user", help="username for the Basic-auth handshake (with --password)")
    p.add_argument("--password", default="")
    p.add_argument("--metadata", action="store_true", help="print GetObjects/GetInfo first")
    p.add_argument("--repeat", type=int, help="run all queries N times, adding \"round\": 0..N-1")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    p.add_argument("--timed", action="store_true", help="add \"elapsed_s\": execute + fetch time")
    p.add_argument("sql", nargs="*")
    args = p.parse_args()

    db_kwargs = {}
    if args.token:
        db_kwargs["adbc.flight.sql.authorization_header"] = f"Bearer {args.token}"
    if args.user is not None:
        db_kwargs.update(username=args.user, password=args.password)

    # Imported here so that --help works even where the driver is missing.
    import adbc_driver_flightsql.dbapi as flightsql

    try:
        # autocommit=True: no transaction handling (the default would try to turn autocommit
        # off and warn when the server has no transactions).
        conn = flightsql.connect(args.uri, db_kwargs=db_kwargs, autocommit=True)
    except Exception as e:
        emit({"error": error_text(e)})
        return 2
    try:
        if args.metadata:
            try:
                emit({"metadata": metadata(conn)})
            except Exception as e:
                emit({"metadata_error": error_text(e)})
                return 3
        rounds = args.repeat if args.repeat is not None else 1
        for i in range(rounds):
            if i:
                time.sleep(args.interval)
            for sql in args.sql:
                try:
                    run_query(conn, sql, {"round": i} if args.repeat is not None else {}, args.timed)
                except Exception as e:
                    emit({"sql": sql, "error": error_text(e)})
                    return 2
        return 0
    finally:
        try:
            conn.close()
        except Exception:
            pass  # the server may already be gone; the outcome was printed


if __name__ == "__main__":
    sys.exit(main())

# The Python side of streamsql's Python functions (CREATE FUNCTION ... LANGUAGE PYTHON).
#
# streamsql starts this script with `python3 -c` and talks to it in JSON lines: one request on
# stdin, one answer on stdout. What the user's code prints goes to stderr, so it cannot garble
# the answers. The script ends when its stdin closes.
#
#   {"load": "module.name", "paths": ["dir", ...]}  -> {"ok": {"kind", "args", "varargs", "result"}}
#   {"call": [[arg, ...], ...]}                      -> {"ok": [result, ...]}       (scalar)
#   {"aggregate": [[[arg, ...], ...], ...]}          -> {"ok": [result, ...]}       (one per group)
#   any failure                                      -> {"error": "Type: message", "trace": "..."}

import importlib
import inspect
import json
import math
import os
import signal
import sys
import traceback

# Ctrl-C in streamsql's shell cancels a query there; it must not end this process.
signal.signal(signal.SIGINT, signal.SIG_IGN)

# The protocol keeps stdin and stdout to itself: the user's code reads an empty stdin, and what
# it prints (also from C code or subprocesses, at the file-descriptor level) goes to stderr.
requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(devnull, 0)
os.dup2(2, 1)
sys.stdin = open(os.devnull, encoding="utf-8")
sys.stdout = sys.stderr

# JSON has no NaN or infinities: both sides write them as {"float": "nan" | "inf" | "-inf"}.
def from_wire(value):
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value


def to_wire(value):
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    return value

TYPES = {int: "BIGINT", float: "DOUBLE", str: "STRING", bool: "BOOLEAN"}


def load(name, paths):
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    module, _, attribute = name.rpartition(".")
    if not module:
        raise ValueError("name the function as module.function, e.g. 'udfs.count_char'")
    found = getattr(importlib.import_module(module), attribute)
    return found() if inspect.isclass(found) else found


def is_aggregate(function):
    return all(hasattr(function, m) for m in ("create_accumulator", "accumulate", "get_value"))


def result_type(function, annotated):
    declared = getattr(function, "result_type", None)
    if isinstance(declared, str):
        return declared.upper()
    if annotated in TYPES:
        return TYPES[annotated]
    if isinstance(annotated, str):
        return {"int": "BIGINT", "float": "DOUBLE", "str": "STRING", "bool": "BOOLEAN"}.get(annotated, annotated.upper())
    return None


def describe(function):
    if is_aggregate(function):
        parameters = list(inspect.signature(function.accumulate).parameters.values())[1:]
        returned = inspect.signature(function.get_value).return_annotation
        kind = "aggregate"
    elif callable(function):
        target = function.eval if hasattr(function, "eval") else function
        signature = inspect.signature(target)
        parameters = list(signature.parameters.values())
        returned = signature.return_annotation
        kind = "scalar"
    else:
        raise TypeError("not a function, nor an aggregate (create_accumulator, accumulate, get_value)")
    varargs = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    fixed = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return {"kind": kind, "args": len(fixed), "varargs": varargs, "result": result_type(function, returned)}


def main():
    function = None
    for line in requests:
        try:
            request = json.loads(line)
            if "load" in request:
                function = load(request["load"], request.get("paths", []))
                answer = describe(function)
            elif "call" in request:
                call = function.eval if hasattr(function, "eval") else function
                answer = [to_wire(call(*[from_wire(v) for v in row])) for row in request["call"]]
            elif "aggregate" in request:
                answer = []
                for rows in request["aggregate"]:
                    accumulator = function.create_accumulator()
                    for row in rows:
                        returned = function.accumulate(accumulator, *[from_wire(v) for v in row])
                        if returned is not None:
                            accumulator = returned
                    answer.append(to_wire(function.get_value(accumulator)))
            else:
                raise ValueError("unknown request")
            reply = {"ok": answer}
        except Exception as error:  # noqa: BLE001 - every failure goes back to streamsql
            reply = {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()}
        try:
            text = json.dumps(reply, allow_nan=False)
        except (TypeError, ValueError) as error:
            text = json.dumps({"error": f"the function returned a value streamsql cannot read: {error}"})
        answers.write(text + "\n")
        answers.flush()


main()

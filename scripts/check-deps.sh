#!/usr/bin/env bash
# Checks the crate dependency direction (ARCHITECTURE.md): cli → {sql, connectors, flight} → engine,
# sql, connectors and flight never depend on each other, and nothing depends on cli, tests or benches.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps --locked | python3 -c '
import json, sys
packages = json.load(sys.stdin)["packages"]
deps = {p["name"]: {d["name"] for d in p["dependencies"] if d["name"].startswith("streamsql")} for p in packages}
allowed = {
    "streamsql-engine": set(),
    "streamsql-sql": {"streamsql-engine"},
    "streamsql-connectors": {"streamsql-engine"},
    "streamsql-flight": {"streamsql-engine"},
}
leaves = {"streamsql-cli", "streamsql-tests", "streamsql-bench"}
problems = []
for name, used in sorted(deps.items()):
    if name in allowed and not used <= allowed[name]:
        problems.append(f"{name} must not depend on {sorted(used - allowed[name])}")
    for leaf in leaves & used:
        problems.append(f"{name} must not depend on {leaf}")
if problems:
    print("dependency direction broken:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("dependency direction ok: " + ", ".join(f"{n} -> {sorted(d)}" for n, d in sorted(deps.items())))
'

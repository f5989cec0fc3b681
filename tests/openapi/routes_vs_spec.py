#!/usr/bin/env python3
"""routes_vs_spec.py ROUTES_C SPEC_JSON: the OpenAPI document's operations must be exactly the
route table of service/routes.c (method + path), no more and no fewer. Prints the differences
and exits 1, or prints 'routes and spec agree: N operations' and exits 0."""
import json
import re
import sys

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def routes_of(path):
    text = open(path, encoding="utf-8").read()
    table = re.search(r"static const struct tok_route routes\[\] = \{(.*?)\n\};", text, re.S)
    if table is None:
        sys.exit(f"{path}: no 'static const struct tok_route routes[]' table")
    rows = re.findall(r'\{\s*"([A-Z]+)",\s*"([^"]+)",\s*[a-z_0-9]+\s*\}', table.group(1))
    if not rows:
        sys.exit(f"{path}: the route table has no rows")
    return {(m, p) for m, p in rows}, len(rows)


def spec_ops_of(path):
    spec = json.load(open(path, encoding="utf-8"))
    ops = set()
    for p, item in spec.get("paths", {}).items():
        for m in item:
            if m in METHODS:
                ops.add((m.upper(), p))
    return ops


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    routes, nrows = routes_of(sys.argv[1])
    ops = spec_ops_of(sys.argv[2])
    bad = False
    if nrows != len(routes):
        print(f"routes.c lists a method and path twice ({nrows} rows, {len(routes)} distinct)")
        bad = True
    for m, p in sorted(routes - ops):
        print(f"in routes.c, not in the spec: {m} {p}")
        bad = True
    for m, p in sorted(ops - routes):
        print(f"in the spec, not in routes.c: {m} {p}")
        bad = True
    if bad:
        sys.exit(1)
    print(f"routes and spec agree: {len(routes)} operations")


main()

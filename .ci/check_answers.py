"""Check `gingham search --json` answers: the i-th query's first result is the i-th expected id."""

import json
import sys

path, *expected = sys.argv[1:]
first = {}
for line in open(path, encoding="utf-8"):
    record = json.loads(line)
    if record["rank"] == 1:
        first[record["query"]] = record["id"]
got = [first.get(i) for i in range(len(expected))]
print("first results:", got)
if got != expected:
    sys.exit(f"expected {expected} first, got {got}")

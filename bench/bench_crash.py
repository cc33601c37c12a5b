"""Crash-safety soak: SIGKILL a writer at random points N times; after every kill the index must open, pass
verify() (checksums + structure, the segments' SQLite databases included) and hold exactly the committed documents,
whose metadata a SQL filter and whose texts BM25 find. The writer's operations are adds,
deletes, compactions and rebuilds (tests/storage/crash_worker.py); the summary says how many kills landed in each.

    python bench/bench_crash.py --kills 1000
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "engine"))

import gingham  # noqa: E402
from test_crash import kill_once, make_base  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    outcomes = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ix"
        make_base(path)
        done = 0
        t0 = time.perf_counter()
        in_flight: list[str] = []
        for k in range(args.kills):
            # kill_once asserts the index opens, verifies and holds the committed documents
            done = kill_once(path, done, rng, in_flight)
            outcomes["ok"] += 1
            strays = [p for p in path.iterdir() if p.name.startswith("gen-")]
            outcomes["stray_dirs_seen"] += len(strays) > len(gingham.storage.disk.referenced_dirs(
                gingham.Index.open(path).manifest))
            if (k + 1) % 20 == 0:
                print(f"{k + 1} kills, {done} operations committed, {time.perf_counter() - t0:.0f}s", flush=True)
        index = gingham.Index.open(path, verify=True)
        print(f"\n{args.kills} SIGKILLs: index opened, verified and held exactly the committed documents after "
              f"every one ({outcomes['ok']} of {args.kills}); {done} write operations committed in total; "
              f"{outcomes['stray_dirs_seen']} kills left an uncommitted generation directory behind (ignored by "
              f"readers, removed by the next writer); final index: {len(index)} live documents, "
              f"generation {index.generation}.")
        kinds = Counter(in_flight)
        print("kills by the operation they interrupted: "
              + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))


if __name__ == "__main__":
    main()

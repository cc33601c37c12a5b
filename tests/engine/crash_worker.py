"""A writer to be killed: applies a deterministic sequence of commits to an index, acknowledging each on stdout.

    python crash_worker.py INDEX_DIR START [STOP [PREFIX [OPS]]]

Operation i adds document "k{i}" (i % 3 != 2) or deletes "k{i-1}" (i % 3 == 2); before some adds it compacts
(i % 7 == 6) or rebuilds (i % 11 == 10) the index, which changes no document. "ok i" is printed after its commit
returned. STOP ends the run (default: never), PREFIX replaces "k" (several writers on one index use different
ones), OPS "plain" leaves compaction and rebuild out. Used by tests/engine/test_crash.py,
tests/engine/test_concurrency.py and bench/bench_crash.py.
"""

import sys

import numpy as np

import gingham


def doc(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    x = rng.standard_normal((int(rng.integers(3, 30)), 32)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def apply(index: gingham.Index, i: int, prefix: str = "k", plain: bool = False) -> None:
    if i % 3 == 2:
        index.delete([f"{prefix}{i - 1}"])
        return
    if not plain and i % 7 == 6:
        index.compact()
    elif not plain and i % 11 == 10:
        index.rebuild()
    index.add([doc(i)], [f"{prefix}{i}"])


def live_after(n_ops: int, base: set, prefix: str = "k") -> set:
    live = set(base)
    for i in range(n_ops):
        if i % 3 == 2:
            live.discard(f"{prefix}{i - 1}")
        else:
            live.add(f"{prefix}{i}")
    return live


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    stop = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    prefix = sys.argv[4] if len(sys.argv) > 4 else "k"
    plain = len(sys.argv) > 5 and sys.argv[5] == "plain"
    index = gingham.Index.open(path)
    print("ready", flush=True)
    i = start
    while stop is None or i < stop:
        apply(index, i, prefix, plain)
        print(f"ok {i}", flush=True)
        i += 1


if __name__ == "__main__":
    main()

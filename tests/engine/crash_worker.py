"""A writer to be killed: applies a deterministic sequence of commits to an index, acknowledging each on stdout.

    python crash_worker.py INDEX_DIR START

Operation i adds document "k{i}" (i % 3 != 2) or deletes "k{i-1}" (i % 3 == 2); "ok i" is printed after its
commit returned. Used by tests/engine/test_crash.py and bench/bench_crash.py.
"""

import sys

import numpy as np

import gingham


def doc(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    x = rng.standard_normal((int(rng.integers(3, 30)), 32)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def apply(index: gingham.Index, i: int) -> None:
    if i % 3 == 2:
        index.delete([f"k{i - 1}"])
    elif i % 7 == 6:
        index.compact()
        index.add([doc(i)], [f"k{i}"])
    else:
        index.add([doc(i)], [f"k{i}"])


def live_after(n_ops: int, base: set) -> set:
    live = set(base)
    for i in range(n_ops):
        if i % 3 == 2:
            live.discard(f"k{i - 1}")
        else:
            live.add(f"k{i}")
    return live


def main() -> None:
    path, start = sys.argv[1], int(sys.argv[2])
    index = gingham.Index.open(path)
    print("ready", flush=True)
    i = start
    while True:
        apply(index, i)
        print(f"ok {i}", flush=True)
        i += 1


if __name__ == "__main__":
    main()

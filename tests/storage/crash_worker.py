"""A writer to be killed: applies a deterministic sequence of commits to an index, acknowledging each on stdout.

    python crash_worker.py INDEX_DIR START [STOP [PREFIX [OPS]]]

Operation i adds document "k{i}" (i % 3 != 2) or deletes "k{i-1}" (i % 3 == 2); before some adds it compacts
(i % 7 == 6) or rebuilds (i % 11 == 10) the index, which changes no document. "ok i" is printed after its commit
returned. STOP ends the run (default: never), PREFIX replaces "k" (several writers on one index use different
ones), OPS "plain" leaves compaction and rebuild out. Every added document has metadata (``kind``: its prefix,
``n``: its number) and, where the index stores texts, a text with a word of its own. Used by tests/storage/test_crash.py,
tests/storage/test_concurrency.py and bench/bench_crash.py.
"""

import sys

import numpy as np

import gingham


def doc(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    x = rng.standard_normal((int(rng.integers(3, 30)), 32)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def text(doc_id: str) -> str:
    """The stored text of a document: one word (``w<id>``) no other document has, for BM25 to find."""
    return f"document {doc_id} w{doc_id}"


def metadata(doc_id: str) -> dict:
    return {"kind": doc_id.rstrip("0123456789"), "n": int(doc_id.lstrip("abcdefghijklmnopqrstuvwxyz") or 0)}


def apply(index: gingham.Index, i: int, prefix: str = "k", plain: bool = False, texts: bool = False) -> None:
    if i % 3 == 2:
        index.delete([f"{prefix}{i - 1}"])
        return
    if not plain and i % 7 == 6:
        index.compact()
    elif not plain and i % 11 == 10:
        index.rebuild()
    doc_id = f"{prefix}{i}"
    index.add([doc(i)], [doc_id], texts=[text(doc_id)] if texts else None, metadata=[metadata(doc_id)])


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
    texts = index.n_docs > 0 and index.text(index.ids()[0]) is not None  # add texts where the index stores them
    print("ready", flush=True)
    i = start
    while stop is None or i < stop:
        apply(index, i, prefix, plain, texts)
        print(f"ok {i}", flush=True)
        i += 1


if __name__ == "__main__":
    main()

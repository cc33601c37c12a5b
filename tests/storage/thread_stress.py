"""Readers in many threads at once must never see a false error (issue 27.3). Used by test_concurrency.py with
bounded sizes; run alone for the full-size check::

    python tests/storage/thread_stress.py [OPENS [THREADS [ITERATIONS [READERS]]]]

(default 10,000 opens from 16 threads, then 2,000 reader iterations from 4 threads under 2 writer threads). It
prints the counts and exits 1 on any error.
"""

from __future__ import annotations

import ast
import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path

import gingham

sys.path.insert(0, str(Path(__file__).parent))
from crash_worker import doc, metadata, text  # noqa: E402


def segmented_index(path: Path, n_segments: int = 6) -> gingham.Index:
    """An index of ``n_segments`` segments (texts, metadata, a deletion mask): many files for each open to read."""
    ids = [f"b{i}" for i in range(20)]
    index = gingham.Index.create(path, [doc(1000 + i) for i in range(20)], ids, texts=[text(i) for i in ids],
                                 metadata=[metadata(i) for i in ids], calibrate=False)
    for s in range(n_segments - 1):
        new = [f"s{10 * s + j}" for j in range(4)]
        index.add([doc(2000 + 10 * s + j) for j in range(4)], new, texts=[text(i) for i in new],
                  metadata=[metadata(i) for i in new])
    index.delete(["b3"])
    return index


def _run(threads: list[threading.Thread]) -> float:
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def open_storm(path: Path, opens: int, n_threads: int, parser_thread: bool = True) -> dict:
    """``opens`` opens of the index at ``path`` (nobody writes it), spread over ``n_threads`` threads starting
    together; with ``parser_thread``, one more thread parses Python literals meanwhile (as any code in the process
    may: ``ast.literal_eval`` is what numpy's .npy header parser calls). Returns counts and the first errors."""
    counter = itertools.count()
    errors: list[str] = []
    stop = threading.Event()
    barrier = threading.Barrier(n_threads + parser_thread)

    def reader():
        barrier.wait()
        while next(counter) < opens:
            try:
                index = gingham.Index.open(path)
                assert len(index) > 0
            except Exception as exc:  # noqa: BLE001 - every error is counted and reported
                errors.append(f"{type(exc).__name__}: {exc}")

    def parser():
        barrier.wait()
        while not stop.is_set():
            try:
                ast.literal_eval("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }")
            except SystemError:  # the race itself, in this thread: not the index's concern
                pass

    helper = [threading.Thread(target=parser)] if parser_thread else []
    for t in helper:
        t.start()
    try:
        seconds = _run([threading.Thread(target=reader) for _ in range(n_threads)])
    finally:
        stop.set()
        for t in helper:
            t.join()
    return {"opens": opens, "threads": n_threads, "errors": len(errors), "first_errors": errors[:5],
            "seconds": round(seconds, 1)}


def readers_under_writers(path: Path, iterations: int, n_readers: int, n_writers: int = 2) -> dict:
    """``iterations`` reader steps over ``n_readers`` threads (each step opens the index or refreshes its handle,
    searches, filters, reads a result's text and metadata) while ``n_writers`` (at most 4) threads of this process
    add, delete and compact without pause, each through its own handle. Returns counts and the first errors."""
    counter = itertools.count()
    errors: list[str] = []
    stop = threading.Event()
    generations: set[int] = set()
    commits = itertools.count()
    q = doc(1000)

    def reader(r: int):
        handle = gingham.Index.open(path)
        while (i := next(counter)) < iterations:
            try:
                if i % 2:
                    handle.refresh()
                    index = handle
                else:
                    index = gingham.Index.open(path)
                generations.add(index.generation)
                res = index.search(q, top_k=3)
                top = res.ids[0, 0]
                assert top is not None
                assert index.text(top) == text(top) and index.metadata(top) == metadata(top)
                if i % 5 == 0:
                    index.search(q, top_k=3, where="kind = ?", params=["b"])
            except Exception as exc:  # noqa: BLE001 - every error is counted and reported
                errors.append(f"reader {r}: {type(exc).__name__}: {exc}")

    def writer(w: int):
        index = gingham.Index.open(path)
        for n in itertools.count():
            if stop.is_set():
                return
            try:
                new = f"{'wxyz'[w]}{n}"
                index.add([doc(5000 + 1000 * w + n)], [new], texts=[text(new)], metadata=[metadata(new)])
                if n and n % 2 == 0:
                    index.delete([f"{'wxyz'[w]}{n - 1}"])
                if n % 15 == 14:
                    index.compact()
                next(commits)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"writer {w}: {type(exc).__name__}: {exc}")
                return

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(n_writers)]
    for t in writers:
        t.start()
    try:
        seconds = _run([threading.Thread(target=reader, args=(r,)) for r in range(n_readers)])
    finally:
        stop.set()
        for t in writers:
            t.join()
    return {"iterations": iterations, "readers": n_readers, "writers": n_writers, "writer_steps": next(commits),
            "generations_seen": len(generations), "errors": len(errors), "first_errors": errors[:5],
            "seconds": round(seconds, 1)}


def main(argv: list[str]) -> int:
    opens, n_threads, iterations, n_readers = (int(a) for a in (argv + ["10000", "16", "2000", "4"][len(argv):]))
    with tempfile.TemporaryDirectory() as tmp:
        segmented_index(Path(tmp) / "ix")
        storm = open_storm(Path(tmp) / "ix", opens, n_threads)
        print("open storm:", storm, flush=True)
        under = readers_under_writers(Path(tmp) / "ix", iterations, n_readers)
        print("readers under writers:", under, flush=True)
    return 1 if storm["errors"] or under["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

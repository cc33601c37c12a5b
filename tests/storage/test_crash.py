"""SIGKILL a writer at random points: the index always opens, is consistent and holds the committed documents,
their metadata and texts (the segments' SQLite databases answer SQL filters and BM25 for exactly them).

bench/bench_crash.py runs the same loop 200+ times.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import gingham

sys.path.insert(0, str(Path(__file__).parent))
from crash_worker import doc, live_after, metadata, text  # noqa: E402

WORKER = Path(__file__).parent / "crash_worker.py"
BASE = {f"b{i}" for i in range(20)}


def make_base(path: Path) -> gingham.Index:
    """The index the crash worker writes to: BASE documents with texts and metadata."""
    ids = sorted(BASE)
    return gingham.Index.create(path, [doc(1000 + i) for i in range(len(ids))], ids, texts=[text(i) for i in ids],
                                metadata=[metadata(i) for i in ids])


def check_databases(index: gingham.Index, live: set) -> None:
    """The committed documents' metadata and texts, as the segments' databases answer: a SQL filter allows
    exactly the live documents it names, and BM25 finds a document by its own word."""
    q = doc(0)[:3]
    for kind in ("b", "k"):
        res = index.search(q, top_k=max(1, index.n_docs), where="kind = ? AND n >= ?", params=[kind, 0],
                           exhaustive=True)
        got = {i for i in res.ids[0].tolist() if i is not None}
        assert got == {i for i in live if i.startswith(kind)}, f"SQL filter kind = {kind!r}"
    for doc_id in sorted(live)[-3:]:
        assert index.metadata(doc_id) == metadata(doc_id)
        top = index.search_bm25(f"w{doc_id}", top_k=1).ids[0].tolist()
        assert top == [doc_id], f"BM25 for the word of {doc_id} found {top}"


def op_kind(i: int) -> str:
    """What operation ``i`` of the crash worker does (see crash_worker.apply)."""
    if i % 3 == 2:
        return "delete"
    return "compact+add" if i % 7 == 6 else "rebuild+add" if i % 11 == 10 else "add"


def kill_once(path: Path, done: int, rng: random.Random, in_flight: list | None = None) -> int:
    """Run the worker from op ``done``, kill it at a random moment, check the index; return ops now committed.
    ``in_flight`` gets the kind of the operation the kill interrupted."""
    proc = subprocess.Popen([sys.executable, str(WORKER), str(path), str(done)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    acked = done
    assert proc.stdout.readline().strip() == "ready"
    target = rng.randint(0, 3)
    while acked - done < target:
        line = proc.stdout.readline()
        assert line.startswith("ok"), line
        acked += 1
    time.sleep(rng.uniform(0, 0.15))  # land somewhere inside the next commit(s)
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait()
    acked += sum(1 for line in rest.splitlines() if line.startswith("ok"))
    if in_flight is not None:
        in_flight.append(op_kind(acked))
    index = gingham.Index.open(path, verify=True)
    index.verify()
    live = set(index.ids())
    check_databases(index, live)
    # the op in flight at the kill may or may not have committed: both states are whole
    if live == live_after(acked, BASE):
        return acked
    assert live == live_after(acked + 1, BASE), f"after {acked} acknowledged ops the index holds {sorted(live)}"
    return acked + 1


def test_sigkill_at_random_points(tmp_path):
    path = tmp_path / "ix"
    make_base(path)
    rng = random.Random(7)
    done = 0
    for _ in range(int(os.environ.get("GINGHAM_CRASH_KILLS", "6"))):
        done = kill_once(path, done, rng)
    assert done > 0
    # nothing but the referenced generations is left behind after the next commit
    index = gingham.Index.open(path)
    index.add([doc(99_999)], ["final"], texts=[text("final")])
    from gingham.storage.disk import referenced_dirs

    assert {p.name for p in path.iterdir() if p.name.startswith("gen-")} == referenced_dirs(index.manifest)

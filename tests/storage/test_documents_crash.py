"""SIGKILL a writer in the middle of metadata / text updates and of deletes by filter: the index always opens,
verifies, and holds one whole step's state (issue 27.8)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import gingham
from tests.conftest import normalised

WORKER = Path(__file__).parent / "documents_worker.py"
N = 30


def _index(path: Path) -> gingham.Index:
    rng = np.random.default_rng(3)
    return gingham.Index.create(path, [normalised(rng, int(k), 16) for k in rng.integers(3, 9, N)],
                                [f"d{i}" for i in range(N)], texts=[f"first d{i}" for i in range(N)],
                                metadata=[{"n": i} for i in range(N)])


def _kill(path: Path, start: int, op: str, rng: random.Random) -> int:
    """Run the worker from step ``start``, kill it at a random moment; return how many steps it acknowledged."""
    proc = subprocess.Popen([sys.executable, str(WORKER), str(path), str(start), op], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.readline().strip() == "ready"
    acked = 0
    for _ in range(rng.randint(0, 2)):
        assert proc.stdout.readline().startswith("ok")
        acked += 1
    time.sleep(rng.uniform(0, 0.1))  # somewhere inside the next step
    proc.send_signal(signal.SIGKILL)
    acked += sum(1 for line in proc.stdout.read().splitlines() if line.startswith("ok"))
    proc.wait()
    return acked


def test_sigkill_during_updates_leaves_one_whole_version(tmp_path):
    path = tmp_path / "ix"
    _index(path)
    rng, done = random.Random(11), 0
    q = np.ones((1, 16), np.float32) / 4
    for _ in range(4):
        acked = _kill(path, done, "update", rng)
        index = gingham.Index.open(path, verify=True)
        metas = [index.metadata(i) for i in index.ids()]
        versions = {m.get("v") for m in metas}
        assert len(versions) == 1, versions  # every document of one step, never a mix
        v = versions.pop()
        last = done + acked - 1  # the last acknowledged step (done - 1: none this time)
        assert v in ({last, last + 1} if last >= 0 else {None, 0}), (v, last)
        assert [m["n"] for m in metas] == list(range(N))  # merged: n kept
        if v is not None:
            assert {index.text(i) for i in index.ids()} == {f"version {v} of d{i} v{v}w" for i in range(N)}
            assert len(index.search_bm25(f"v{v}w", top_k=N).rows(0)) == N
            assert len(index.search(q, top_k=N, where="v = ?", params=[v]).rows(0)) == N
        done = (v + 1) if v is not None else 0


def test_sigkill_during_deletes_by_filter_leaves_a_whole_prefix(tmp_path):
    path = tmp_path / "ix"
    _index(path)
    rng, done = random.Random(12), 0
    for _ in range(4):
        acked = _kill(path, done, "delete", rng)
        index = gingham.Index.open(path, verify=True)
        live = {index.metadata(i)["n"] for i in index.ids()}
        cut = N - len(live)  # steps 0..cut-1 committed
        assert live == set(range(cut, N)), sorted(live)
        # past step N - 1 a step matches nothing and deletes nothing, yet is acknowledged: count at most N
        assert cut in (min(done + acked, N), min(done + acked + 1, N)), (cut, done, acked)
        done = cut
    assert done > 0

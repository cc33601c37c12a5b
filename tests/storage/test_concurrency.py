"""Writers and readers at once: rebuild() and compact() lose no other writer's commit, and readers never see a
false error while writers commit and remove superseded generations."""

from __future__ import annotations

import ast
import errno
import json
import os
import random
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import gingham
import gingham.storage.rebuild

sys.path.insert(0, str(Path(__file__).parent))
from crash_worker import doc, live_after  # noqa: E402
from thread_stress import open_storm, readers_under_writers, segmented_index  # noqa: E402

WORKER = Path(__file__).parent / "crash_worker.py"
BASE = {f"b{i}" for i in range(20)}


def base_index(path: Path, **kw) -> gingham.Index:
    ids = sorted(BASE)
    return gingham.Index.create(path, [doc(1000 + i) for i in range(len(ids))], ids,
                                texts=[f"text {i}" for i in ids], metadata=[{"i": i} for i in ids], **kw)


def during_training(monkeypatch, action):
    """Run ``action`` once the rebuild's codebook is trained, before it commits: a write that lands mid-rebuild."""
    real = gingham.storage.rebuild.train_codec
    fired = []

    def train(*args, **kwargs):
        out = real(*args, **kwargs)
        if not fired:  # once: a rebuild inside ``action`` trains without it
            fired.append(True)
            action()
        return out

    monkeypatch.setattr(gingham.storage.rebuild, "train_codec", train)


def assert_holds(index: gingham.Index, expected: dict[str, np.ndarray]) -> None:
    """Exactly these documents, each decompressing close to its vectors, with its text and metadata."""
    assert set(index.ids()) == set(expected)
    for i, vecs in expected.items():
        approx = index.decompress(i)
        assert approx.shape == vecs.shape
        assert np.mean(np.sum(approx * vecs, axis=1)) > 0.6, i  # compressed from these vectors, not others
        assert index.text(i) == f"text {i}"
        assert index.metadata(i) == {"i": i}
    q = expected[sorted(expected)[0]]
    assert index.search(q, top_k=1).ids[0, 0] == sorted(expected)[0]


def docs_of(ids) -> dict[str, np.ndarray]:
    return {i: doc(1000 + sorted(BASE).index(i)) if i in BASE else doc(zlib.crc32(i.encode()) % 10_000) for i in ids}


def add(index: gingham.Index, ids: list[str], upsert=False) -> None:
    op = index.upsert if upsert else index.add
    op([docs_of([i])[i] for i in ids], ids, texts=[f"text {i}" for i in ids], metadata=[{"i": i} for i in ids])


def test_rebuild_keeps_what_another_handle_committed_before_it(tmp_path):
    """The issue's case: b adds and deletes (both acknowledged), then a stale handle a rebuilds."""
    a = base_index(tmp_path / "ix")
    b = gingham.Index.open(tmp_path / "ix")
    add(b, ["new-doc"])
    b.delete(["b5"])
    a.rebuild()
    expected = (BASE - {"b5"}) | {"new-doc"}
    assert_holds(a, docs_of(expected))
    assert_holds(gingham.Index.open(tmp_path / "ix"), docs_of(expected))


@pytest.mark.parametrize("meanwhile", ["add_delete_upsert", "compact", "rebuild", "set_defaults"])
def test_rebuild_keeps_writes_committed_while_it_trains(tmp_path, monkeypatch, meanwhile):
    a = base_index(tmp_path / "ix")
    b = gingham.Index.open(tmp_path / "ix")
    expected = set(BASE)

    def writes():
        nonlocal expected
        add(b, ["late-1", "late-2"])
        b.delete(["b3", "late-2"])
        add(b, ["b4"], upsert=True)  # replaced: a new document under an old id
        expected = (expected | {"late-1"}) - {"b3"}
        if meanwhile == "compact":
            b.compact()  # every document moves to a new segment file
        elif meanwhile == "rebuild":
            gingham.Index.open(tmp_path / "ix").rebuild(n_centroids=16)  # a rebuild inside the rebuild
        elif meanwhile == "set_defaults":
            b.set_search_defaults(n_ivf_probe=3)

    during_training(monkeypatch, writes)
    a.rebuild()
    assert_holds(a, docs_of(expected))
    assert gingham.Index.open(tmp_path / "ix", verify=True).generation == a.generation
    a.verify()
    if meanwhile == "set_defaults":
        assert a.manifest["search_defaults"] == {"n_ivf_probe": 3}


def test_rebuild_when_everything_was_deleted_meanwhile_changes_nothing(tmp_path, monkeypatch):
    a = base_index(tmp_path / "ix")
    b = gingham.Index.open(tmp_path / "ix")
    during_training(monkeypatch, lambda: b.delete(sorted(BASE)))
    with pytest.raises(ValueError, match="nothing to rebuild"):
        a.rebuild()
    after = gingham.Index.open(tmp_path / "ix")
    assert after.generation == b.generation and after.n_docs == 0


def test_add_from_a_handle_opened_before_a_rebuild_uses_the_new_codebook(tmp_path):
    """A handle's codes are compressed against its snapshot's codebook; after another handle's rebuild they must
    be recompressed, or they would decode against the wrong centroids."""
    a = base_index(tmp_path / "ix")
    b = gingham.Index.open(tmp_path / "ix")
    a.rebuild(n_centroids=16)
    add(b, ["after-rebuild"])  # b has not refreshed: its codebook is gone
    b.verify()
    assert_holds(b, docs_of(BASE | {"after-rebuild"}))


def run_writer(path: Path, start: int, stop: int | None, prefix: str, plain: bool = False) -> subprocess.Popen:
    args = [sys.executable, str(WORKER), str(path), str(start), "-" if stop is None else str(stop), prefix]
    proc = subprocess.Popen(args + (["plain"] if plain else []), stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.slow
def test_rebuild_and_compact_under_a_writer_in_another_process(tmp_path, monkeypatch, caplog):
    """Another process adds and deletes without pause while this one rebuilds and compacts: nothing is lost."""
    path = tmp_path / "ix"
    gingham.Index.create(path, [doc(1000 + i) for i in range(20)], sorted(BASE))
    real = gingham.storage.rebuild.train_codec

    def slow_train(*args, **kwargs):  # widen the window in which the writer commits
        out = real(*args, **kwargs)
        time.sleep(0.3)
        return out

    monkeypatch.setattr(gingham.storage.rebuild, "train_codec", slow_train)
    n_ops = 90
    writer = run_writer(path, 0, n_ops, "w", plain=True)
    index = gingham.Index.open(path)
    rounds = 0
    with caplog.at_level("INFO", logger="gingham.storage.rebuild"):
        while writer.poll() is None:
            index.rebuild() if rounds % 2 == 0 else index.compact()
            rounds += 1
    assert writer.wait() == 0
    acked = sum(1 for line in writer.stdout.read().splitlines() if line.startswith("ok"))
    assert acked == n_ops
    index.refresh()
    index.verify()
    assert set(index.ids()) == live_after(n_ops, BASE, "w")
    assert rounds >= 2
    assert any("committed during training" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_readers_see_no_false_error_while_writers_commit(tmp_path):
    """2,000 opens and refreshes against two writers (adds, deletes, compactions, rebuilds), which remove every
    superseded generation right after committing: every open and search succeeds."""
    path = tmp_path / "ix"
    gingham.Index.create(path, [doc(1000 + i) for i in range(20)], sorted(BASE))
    writers = [run_writer(path, 0, None, "x"), run_writer(path, 0, None, "y", plain=True)]
    rng = random.Random(3)
    q = doc(1000)
    handle = gingham.Index.open(path)
    generations = set()
    try:
        for it in range(2000):
            if it % 2:
                handle.refresh()
                ix = handle
            else:
                ix = gingham.Index.open(path)
            generations.add(ix.generation)
            res = ix.search(q, top_k=min(3, len(ix)))
            assert res.ids.shape[1] >= 1
            if rng.random() < 0.01:
                ix.search(q, top_k=2, exhaustive=True)
            assert all(w.poll() is None for w in writers), "a writer died"
    finally:
        for w in writers:
            w.kill()
            w.wait()
    assert len(generations) > 50  # the writers really committed all along
    gingham.Index.open(path, verify=True).verify()


# ------------------------------------------------------------------------------------------ threads (issue 27.3)
def test_opening_does_not_depend_on_python_s_parser(tmp_path, monkeypatch):
    """numpy parses .npy headers with ast.literal_eval, which fails now and then when threads parse at once on
    CPython 3.11 ('AST constructor recursion depth mismatch'), and the loader reported that as a damaged file.
    Opening, verifying and searching must not call it."""
    segmented_index(tmp_path / "ix")

    def racing(*args, **kwargs):
        raise SystemError("AST constructor recursion depth mismatch (before=39, after=35)")

    monkeypatch.setattr(ast, "literal_eval", racing)
    index = gingham.Index.open(tmp_path / "ix", verify=True)
    index.verify()
    assert index.search(doc(1000), top_k=1).ids[0, 0] == "b0"
    index.add([doc(3000)], ["n1"], texts=["document n1"], metadata=[{"kind": "n", "n": 1}])  # a commit reads too
    index.compact()
    assert gingham.Index.open(tmp_path / "ix").metadata("n1") == {"kind": "n", "n": 1}


@pytest.mark.parametrize("error", [MemoryError(), OSError(errno.ENOMEM, "Cannot allocate memory"),
                                   OSError(errno.EMFILE, "Too many open files")], ids=["memory", "mmap", "files"])
def test_a_failure_that_is_not_damage_is_not_reported_as_damage(tmp_path, monkeypatch, error):
    segmented_index(tmp_path / "ix", n_segments=2)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(np, "memmap", fail)
    with pytest.raises(type(error)) as caught:
        gingham.Index.open(tmp_path / "ix")
    assert not isinstance(caught.value, gingham.IndexCorruptError)


def test_a_damaged_header_is_a_corrupt_index_naming_the_file(tmp_path):
    segmented_index(tmp_path / "ix", n_segments=2)
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    path = tmp_path / "ix" / manifest["files"]["s000002/codes"]["path"]
    data = path.read_bytes()
    path.write_bytes(data.replace(b"'fortran_order': False", b"'fortran_order': Fals3", 1))
    with pytest.raises(gingham.IndexCorruptError, match=rf"{path.name} is not a valid \.npy file: its header"):
        gingham.Index.open(tmp_path / "ix")


def test_threads_opening_an_index_see_no_false_error(tmp_path):
    """16 threads open at once while another thread parses Python literals (bounded; the full-size run is
    ``python tests/storage/thread_stress.py``)."""
    segmented_index(tmp_path / "ix")
    got = open_storm(tmp_path / "ix", opens=480, n_threads=16)
    assert got["errors"] == 0, got


def test_reader_threads_see_no_false_error_under_writer_threads(tmp_path):
    segmented_index(tmp_path / "ix")
    got = readers_under_writers(tmp_path / "ix", iterations=240, n_readers=4)
    assert got["errors"] == 0, got
    assert got["writer_steps"] > 0 and got["generations_seen"] > 1

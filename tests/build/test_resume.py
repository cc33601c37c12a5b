"""Interrupted builds resume from the last committed chunk and end identical to an uninterrupted build."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import gingham
from gingham.common.ids import SeenIds, UniqueIds
from gingham.build.streaming import ArraySource, build
from streamhelpers import CHUNK_TOKENS, OPTIONS, assert_same_index, ids, source

WORKER = Path(__file__).parent / "build_worker.py"


@pytest.fixture(scope="module")
def uninterrupted(small_corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("whole") / "ix"
    return build(path, source(small_corpus), chunk_tokens=CHUNK_TOKENS, show_progress=False, **OPTIONS)


def _chunks_done(path: Path) -> int:
    try:
        return json.loads((path / "manifest.json").read_text())["build"]["chunks_done"]
    except (OSError, ValueError, KeyError):
        return 0


def test_sigkill_mid_build_then_resume(small_corpus, uninterrupted, tmp_path):
    path = tmp_path / "ix"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(WORKER), str(path), "0.05"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while _chunks_done(path) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the worker committed no chunks in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the killed build left a consistent, searchable index holding exactly the committed chunks
    partial = gingham.Index.open(path, verify=True)
    partial.verify()
    state = partial.manifest["build"]
    assert state["state"] == "running" and 3 <= state["chunks_done"] < uninterrupted.manifest["build"]["chunks_done"]
    assert partial.ids() == ids(state["docs_done"])
    assert partial.search(small_corpus.doc(0)[:4], 3).ids[0, 0] == "doc-00000"

    resumed = build(path, source(small_corpus), chunk_tokens=CHUNK_TOKENS, show_progress=False, **OPTIONS)
    assert resumed.manifest["build"]["state"] == "finished"
    assert_same_index(resumed, uninterrupted)
    q = [small_corpus.doc(i)[:6] for i in (3, 500, 1400)]
    res_a, res_b = resumed.search(q, 10), uninterrupted.search(q, 10)
    assert (res_a.ids == res_b.ids).all() and (res_a.scores == res_b.scores).all()


class Boom(RuntimeError):
    pass


class FailingSource(ArraySource):
    """Fails at batch ``fail_after`` of its third read (a peek at the first batch, the sampling pass, then the
    compression pass: train_on='all')."""

    def __init__(self, *args, fail_after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_after = fail_after
        self.reads = 0

    def batches(self, start=0):
        self.reads += 1
        for n, b in enumerate(super().batches(start)):
            if self.reads == 3 and n == self.fail_after:
                raise Boom("source failed")
            yield b


def _interrupted(c, path, **extra):
    src = FailingSource(c.tokens, c.lengths, ids(c.n_docs), name="synthetic-11", batch_docs=50, fail_after=12)
    with pytest.raises(Boom):
        build(path, src, chunk_tokens=CHUNK_TOKENS, show_progress=False, **{**OPTIONS, **extra})
    assert gingham.Index.open(path).manifest["build"]["state"] == "running"


def test_failed_build_resumes_identically(small_corpus, uninterrupted, tmp_path):
    _interrupted(small_corpus, tmp_path / "ix")
    done = gingham.Index.open(tmp_path / "ix").manifest["build"]["docs_done"]
    assert 0 < done < small_corpus.n_docs
    resumed = build(tmp_path / "ix", source(small_corpus), chunk_tokens=CHUNK_TOKENS, show_progress=False,
                    **OPTIONS)
    assert_same_index(resumed, uninterrupted)


def test_resume_checks_ids_and_options(small_corpus, tmp_path):
    c = small_corpus
    _interrupted(c, tmp_path / "ix")
    shuffled = list(reversed(ids(c.n_docs)))
    other = ArraySource(c.tokens, c.lengths, shuffled, name="synthetic-11", batch_docs=50)
    other.fingerprint = lambda: source(c).fingerprint()  # same description, other documents
    with pytest.raises(ValueError, match="committed"):
        build(tmp_path / "ix", other, chunk_tokens=CHUNK_TOKENS, show_progress=False, **OPTIONS)
    with pytest.raises(ValueError, match="interrupted build of another source or other options"):
        build(tmp_path / "ix", source(c), chunk_tokens=CHUNK_TOKENS, show_progress=False, **{**OPTIONS, "nbits": 4})
    # starting over is explicit
    index = build(tmp_path / "ix", source(c), chunk_tokens=CHUNK_TOKENS, show_progress=False, overwrite=True,
                  resume=False, **{**OPTIONS, "nbits": 4})
    assert index.nbits == 4 and index.n_docs == c.n_docs


def test_train_on_all_resumes_identically(small_corpus, tmp_path):
    c = small_corpus
    whole = build(tmp_path / "whole", source(c), chunk_tokens=CHUNK_TOKENS, train_on="all", show_progress=False,
                  **OPTIONS)
    failing = FailingSource(c.tokens, c.lengths, ids(c.n_docs), name="synthetic-11", batch_docs=50, fail_after=12)
    with pytest.raises(Boom):
        build(tmp_path / "ix", failing, chunk_tokens=CHUNK_TOKENS, train_on="all", show_progress=False, **OPTIONS)
    assert 0 < gingham.Index.open(tmp_path / "ix").manifest["build"]["docs_done"] < c.n_docs
    resumed = build(tmp_path / "ix", source(c), chunk_tokens=CHUNK_TOKENS, train_on="all", show_progress=False,
                    **OPTIONS)
    assert_same_index(resumed, whole)


def _repeating(c, at: int, of: int):
    """The corpus's ids with document ``at``'s id replaced by document ``of``'s."""
    out = ids(c.n_docs)
    out[at] = out[of]
    return out


def test_an_id_repeated_in_a_later_chunk_is_refused(small_corpus, tmp_path):
    """Issue 27.2: the same id in two chunks was built and reported finished; verify() then failed, a search
    returned the id twice and delete() left a copy."""
    c = small_corpus
    src = ArraySource(c.tokens, c.lengths, _repeating(c, 1000, 10), name="synthetic-11", batch_docs=50)
    with pytest.raises(ValueError, match=r"'doc-00010'.*documents 10 and 1000"):
        build(tmp_path / "ix", src, chunk_tokens=CHUNK_TOKENS, train_on="first", show_progress=False, **OPTIONS)
    state = gingham.Index.open(tmp_path / "ix").manifest["build"]
    assert state["state"] == "running" and 0 < state["docs_done"] <= 1000  # the chunks before it are kept


@pytest.mark.parametrize("as_str", [True, False])
def test_an_id_repeated_is_refused_by_the_sampling_pass(small_corpus, tmp_path, as_str):
    """With train_on='all' the first pass reads the whole source: a repeated id is refused there, before a codebook
    is trained or any document compressed, and nothing is committed."""
    c = small_corpus
    doc_ids = _repeating(c, 1000, 10) if as_str else [i if i != 1000 else 10 for i in range(c.n_docs)]
    src = ArraySource(c.tokens, c.lengths, doc_ids, name="synthetic-11", batch_docs=50)
    shown = "'doc-00010'" if as_str else "10"
    with pytest.raises(ValueError, match=rf"id {shown} appears twice.*its document 1000\).*Nothing was committed"):
        build(tmp_path / "ix", src, chunk_tokens=CHUNK_TOKENS, train_on="all", show_progress=False, **OPTIONS)
    assert not (tmp_path / "ix" / "manifest.json").exists()
    fixed = ArraySource(c.tokens, c.lengths, ids(c.n_docs), name="synthetic-11", batch_docs=50)
    built = build(tmp_path / "ix", fixed, chunk_tokens=CHUNK_TOKENS, train_on="all", show_progress=False, **OPTIONS)
    assert built.ids() == ids(c.n_docs)


def test_an_id_repeated_after_a_resume_point_is_refused(small_corpus, tmp_path):
    """The ids committed before an interruption count: a resumed build refuses a later copy of one of them, and
    the same build with the copy fixed resumes and finishes as if never interrupted."""
    c = small_corpus
    _interrupted(c, tmp_path / "ix")
    done = gingham.Index.open(tmp_path / "ix").manifest["build"]["docs_done"]
    bad = ArraySource(c.tokens, c.lengths, _repeating(c, c.n_docs - 1, 3), name="synthetic-11", batch_docs=50)
    with pytest.raises(ValueError, match=rf"'doc-00003'.*documents 3 and {c.n_docs - 1}"):
        build(tmp_path / "ix", bad, chunk_tokens=CHUNK_TOKENS, show_progress=False, **OPTIONS)
    index = gingham.Index.open(tmp_path / "ix")
    assert index.manifest["build"]["state"] == "running" and index.manifest["build"]["docs_done"] >= done
    resumed = build(tmp_path / "ix", source(c), chunk_tokens=CHUNK_TOKENS, show_progress=False, **OPTIONS)
    assert resumed.ids() == ids(c.n_docs)
    resumed.verify()


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(st.one_of(st.integers(0, 40), st.integers(0, 2**63 - 1)), max_size=8), max_size=6),
       as_str=st.booleans())
def test_seen_ids_never_miss_an_id_added_before(batches, as_str):
    seen, added = SeenIds(), set()
    for batch in batches:
        batch = [f"id{i}" for i in batch] if as_str else batch
        maybe = {batch[j] for j in seen.maybe_seen(batch)}
        assert maybe >= added & set(batch)
        if not as_str:  # an int id is its own key: exact
            assert maybe == added & set(batch)
        seen.add(batch)
        added |= set(batch)


@settings(max_examples=200, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 60), max_size=8), max_size=8), as_str=st.booleans())
def test_unique_ids_report_exactly_the_first_repeat(batches, as_str):
    """UniqueIds against a set: the first id seen before (within its batch or earlier), at its source position."""
    unique, model, n = UniqueIds(), set(), 0
    for batch in batches:
        batch = [f"id{i}" for i in batch] if as_str else batch
        first = next((j for j, i in enumerate(batch) if i in model or i in batch[:j]), None)
        got = unique.repeated(batch)
        if first is not None:
            assert got == (batch[first], n + first)
            return
        assert got is None
        model |= set(batch)
        n += len(batch)

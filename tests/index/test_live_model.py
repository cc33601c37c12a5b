"""The live index against a plain Python model (issue 27.1): random sequences of create / streaming build / add /
upsert / delete / compact / rebuild, with metadata present, absent, partial and of mixed types; after every step
each live document's text and metadata, and ``where=`` results, equal the model's.

CI runs :data:`MAX_EXAMPLES` sequences (about 30 s on 2 cores); set ``GINGHAM_LIVE_EXAMPLES`` for a longer run,
e.g. ``GINGHAM_LIVE_EXAMPLES=2000 python -m pytest tests/index/test_live_model.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import gingham
from gingham.storage.docstore.database import sql_value
from gingham.build.streaming import Batch, Source, build

MAX_EXAMPLES = int(os.environ.get("GINGHAM_LIVE_EXAMPLES", "40"))
DIM = 16
OPTIONS = dict(n_centroids=4, nbits=2, kmeans_niters=2, codec_sample=16, seed=0, calibrate=False)
#: Metadata keys (no two equal but for case: SQLite's column names ignore it, see docstore.column_names).
KEYS = ("topic", "year", "score", "flag", "tags")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1),
    st.integers(2**63, 2**70),  # beyond SQLite's integers: stored as text
    st.sampled_from([0.5, 1.0, -0.0, 2.5]), st.floats(-4, 4, allow_nan=False),
    st.sampled_from(["a", "b", "A", "1", ""]), st.text(max_size=4),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.sampled_from(KEYS), scalars, max_size=2))
metadata_dicts = st.dictionaries(st.sampled_from(KEYS), values, max_size=4)


@st.composite
def batch_metadata(draw, n: int):
    """One add's metadata: absent (None), present for every document, or partial (None for some)."""
    how = draw(st.sampled_from(["absent", "present", "partial"]))
    if how == "absent":
        return None
    item = metadata_dicts if how == "present" else st.one_of(st.none(), metadata_dicts)
    return draw(st.lists(item, min_size=n, max_size=n))


def sql_equal(stored, param) -> bool:
    """``column = ?`` as SQLite evaluates it on a column without type affinity (see docstore.database)."""
    a, b = sql_value(stored), param
    if a is None or b is None:
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return isinstance(a, str) and isinstance(b, str) and a == b


class _Batches(Source):
    """The given batches, in order; ``fail_after`` raises after that many (an interrupted build)."""

    def __init__(self, batches: list[Batch], fail_after: int | None = None):
        self._batches, self._fail_after = batches, fail_after
        self.n_docs = sum(len(b) for b in batches)
        self.n_tokens = sum(int(b.lengths.sum()) for b in batches)

    def fingerprint(self):
        return {"kind": "model-batches", "n_docs": self.n_docs, "n_tokens": self.n_tokens}

    def batches(self, start=0):
        for i, b in enumerate(self._batches):
            if i == self._fail_after:
                raise RuntimeError("interrupted")
            yield b


class LiveIndex(RuleBasedStateMachine):
    """``self.model``: id -> (text, metadata, n_tokens) of every live document."""

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="gingham-model-"))
        self.path = self.dir / "ix"
        self.model: dict[str, tuple] = {}
        self.rng = np.random.default_rng(0)
        self.next_id = 0
        self.index = None
        self.with_texts = False

    # ------------------------------------------------------------------------------------------------ helpers
    def _docs(self, n: int) -> list[np.ndarray]:
        return [self.rng.standard_normal((int(self.rng.integers(2, 5)), DIM)).astype(np.float32) for _ in range(n)]

    def _new_ids(self, n: int) -> list[str]:
        self.next_id += n
        return [f"d{i}" for i in range(self.next_id - n, self.next_id)]

    def _texts(self, data, n: int):
        return data.draw(st.lists(st.text(max_size=8), min_size=n, max_size=n)) if self.with_texts else None

    def _apply(self, ids, docs, texts, metadata) -> None:
        for j, i in enumerate(ids):
            self.model[i] = (None if texts is None else texts[j], None if metadata is None else metadata[j],
                             len(docs[j]))

    # ------------------------------------------------------------------------------------------------ build
    @initialize(data=st.data(), n=st.integers(2, 6), with_texts=st.booleans(), streamed=st.booleans())
    def create(self, data, n, with_texts, streamed):
        self.with_texts = with_texts
        ids, docs = self._new_ids(n), self._docs(n)
        if not streamed:
            texts, metadata = self._texts(data, n), data.draw(batch_metadata(n))
            self.index = gingham.Index.create(self.path, docs, ids, texts=texts, metadata=metadata, **OPTIONS)
            self._apply(ids, docs, texts, metadata)
            return
        # a streaming build: batches of the source each with their own metadata, cut into chunks of a few tokens
        cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=3)))
        batches = []
        for lo, hi in zip([0] + cuts, cuts + [n]):
            texts, metadata = self._texts(data, hi - lo), data.draw(batch_metadata(hi - lo))
            lengths = np.array([len(d) for d in docs[lo:hi]], dtype=np.int64)
            batches.append(Batch(ids[lo:hi], np.concatenate(docs[lo:hi]), lengths, texts, metadata))
            self._apply(ids[lo:hi], docs[lo:hi], texts, metadata)
        chunk_tokens = data.draw(st.integers(2, 12))
        fail_after = data.draw(st.one_of(st.none(), st.integers(1, len(batches))))
        if fail_after is not None and fail_after < len(batches):  # interrupted, then resumed
            with pytest.raises(RuntimeError, match="interrupted"):
                build(self.path, _Batches(batches, fail_after), chunk_tokens=chunk_tokens, prefetch=0,
                      show_progress=False, **OPTIONS)
        self.index = build(self.path, _Batches(batches), chunk_tokens=chunk_tokens, show_progress=False, **OPTIONS)
        assert self.index.manifest["build"]["state"] == "finished"

    # ------------------------------------------------------------------------------------------------ writes
    @rule(data=st.data(), n=st.integers(1, 3))
    def add(self, data, n):
        ids, docs = self._new_ids(n), self._docs(n)
        texts, metadata = self._texts(data, n), data.draw(batch_metadata(n))
        self.index.add(docs, ids, texts=texts, metadata=metadata)
        self._apply(ids, docs, texts, metadata)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def add_an_existing_id_is_refused(self, data):
        existing = data.draw(st.sampled_from(sorted(self.model)))
        with pytest.raises(ValueError, match="already in the index"):
            self.index.add(self._docs(1), [existing], texts=self._texts(data, 1))

    @precondition(lambda self: self.model)
    @rule(data=st.data(), n_new=st.integers(0, 2))
    def upsert(self, data, n_new):
        old = data.draw(st.lists(st.sampled_from(sorted(self.model)), min_size=1, max_size=3, unique=True))
        ids = old + self._new_ids(n_new)
        docs = self._docs(len(ids))
        texts, metadata = self._texts(data, len(ids)), data.draw(batch_metadata(len(ids)))
        self.index.upsert(docs, ids, texts=texts, metadata=metadata)
        self._apply(ids, docs, texts, metadata)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), unknown=st.booleans())
    def delete(self, data, unknown):
        gone = data.draw(st.lists(st.sampled_from(sorted(self.model)), min_size=1, max_size=4, unique=True))
        self.index.delete(gone + (["never-added"] if unknown else []), missing_ok=unknown)
        for i in gone:
            del self.model[i]

    @rule()
    def compact(self):
        self.index.compact()
        assert len(self.index._snap.segments) == (1 if self.model else 0)

    @precondition(lambda self: sum(n for _, _, n in self.model.values()) >= OPTIONS["n_centroids"])
    @rule()
    def rebuild(self):
        self.index.rebuild()

    @rule()
    def reopen(self):
        self.index = gingham.Index.open(self.path)

    # ------------------------------------------------------------------------------------------------ checks
    @invariant()
    def documents_equal_the_model(self):
        if self.index is None:
            return
        for index in (self.index, gingham.Index.open(self.path)):
            assert sorted(index.ids()) == sorted(self.model)
            for i, (text, meta, _) in self.model.items():
                assert index.text(i) == text, i
                assert index.metadata(i) == meta, i

    @precondition(lambda self: self.model)
    @rule(data=st.data(), key=st.sampled_from(KEYS))
    def where_equals_the_model(self, data, key):
        index, live = gingham.Index.open(self.path), self.model
        present = [m[key] for _, m, _ in live.values() if m and key in m]
        scalar = [v for v in present if v is not None and not isinstance(v, (list, dict))]
        probes = [(f"{key} IS NULL", None, lambda m: m is None or m.get(key) is None)]
        if scalar:
            value = data.draw(st.sampled_from(scalar))
            param = sql_value(value)
            probes.append((f"{key} = ?", [param], lambda m: m is not None and key in m and sql_equal(m[key], param)))
            probes.append((lambda m: m.get(key) == value, None, lambda m: (m or {}).get(key) == value))
        q = self._docs(1)[0]
        for where, params, expected in probes:
            want = {i for i, (_, m, _) in live.items() if expected(m)}
            try:
                res = index.search(q, top_k=len(live), where=where, params=params)
            except ValueError as exc:  # a field that no stored document has is not a column
                assert not present and isinstance(where, str) and "no such column" in str(exc), (where, exc)
                continue
            got = {i for i in res.ids[0].tolist() if i is not None}
            assert got == want, (where, params)

    def teardown(self):
        try:
            if self.index is not None:
                gingham.Index.open(self.path, verify=True).verify()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


LiveIndex.TestCase.settings = settings(max_examples=MAX_EXAMPLES, stateful_step_count=12, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestLiveIndex = LiveIndex.TestCase

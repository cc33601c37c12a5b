"""Hits carry their documents on every search verb: ``rerank`` and :class:`gingham.ShardedIndex` searches take
``include_text`` / ``include_metadata`` as :meth:`gingham.Index.search` does (issue 28, item 1)."""

from __future__ import annotations

import numpy as np
import pytest

import gingham
from gingham.shards.sharded import ShardedIndex, merge
from tests.conftest import normalised

N = 30


def _docs(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [normalised(rng, int(k), 32) for k in rng.integers(3, 10, n)]


@pytest.fixture(scope="module")
def vecs():
    return _docs(5, N)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, vecs):
    """Two shards sharing a codebook: the first with texts and metadata, the second with texts only."""
    root = tmp_path_factory.mktemp("shards")
    half = N // 2
    first = gingham.Index.create(root / "a", vecs[:half], [f"d{i}" for i in range(half)],
                                 texts=[f"text {i}" for i in range(half)],
                                 metadata=[{"n": i} for i in range(half)], calibrate=False)
    second = gingham.Index.create(root / "b", vecs[half:], [f"d{i}" for i in range(half, N)],
                                  texts=[f"text {i}" for i in range(half, N)], codec=first.codec, calibrate=False)
    return ShardedIndex([first, second])


def test_rerank_hits_carry_text_and_metadata(shards, vecs):
    ix = shards.shards[0]
    plain = ix.rerank([vecs[2][:3]], [["d5", "d2", "d9"]], top_k=4)
    assert plain.texts is None and plain.metadata is None
    full = ix.rerank([vecs[2][:3]], [["d5", "d2", "d9"]], top_k=4, include_text=True, include_metadata=True)
    assert full.ids.tolist() == plain.ids.tolist() and np.array_equal(full.scores, plain.scores)
    hits = full.hits(0)
    assert [h["id"] for h in hits][0] == "d2" and len(hits) == 3
    for hit in hits:
        assert hit["text"] == ix.text(hit["id"]) and hit["metadata"] == ix.metadata(hit["id"])
    assert full.texts[0, 3] is None and full.metadata[0, 3] is None  # the gap
    with pytest.raises(ValueError, match="include_metadata must be True or False"):
        ix.rerank([vecs[2][:3]], [["d5"]], include_metadata=1)


def test_sharded_search_hits_carry_text_and_metadata(shards, vecs):
    queries = [vecs[3][:3], vecs[20][:3]]
    plain = shards.search(queries, top_k=6, exhaustive=True)
    assert plain.texts is None and plain.metadata is None
    full = shards.search(queries, top_k=6, exhaustive=True, include_text=True, include_metadata=True)
    assert full.ids.tolist() == plain.ids.tolist() and np.array_equal(full.scores, plain.scores)
    owner = {doc: s for s in shards.shards for doc in s.ids()}
    for q in range(2):
        for hit in full.hits(q):
            assert hit["text"] == owner[hit["id"]].text(hit["id"])
            assert hit["metadata"] == owner[hit["id"]].metadata(hit["id"])
    assert {h["id"] for h in full.hits(1)} & set(shards.shards[1].ids())  # hits from the shard without metadata
    only_text = shards.search(queries, top_k=6, include_text=True)
    assert only_text.metadata is None and only_text.texts.shape == (2, 6)
    via_text = shards.search(queries, top_k=3, subset=["d1", "d17"], include_text=True)
    assert sorted(t for t in via_text.texts[0] if t is not None) == ["text 1", "text 17"]


def test_merge_carries_extras_beside_ids():
    pos = [np.array([[0, 1]]), np.array([[0, -1]])]
    sc = [np.array([[0.9, 0.1]], np.float32), np.array([[0.5, -np.inf]], np.float32)]
    ids = [np.array([[10, 11]]), np.array([[20, -1]])]
    texts = [np.array([["a", "b"]], dtype=object), np.array([["c", None]], dtype=object)]
    res = merge(list(zip(pos, sc, ids)), [0, 2], 3, 1, "int", {"texts": texts})
    assert res.ids.tolist() == [[10, 20, 11]] and res.texts.tolist() == [["a", "c", "b"]]
    assert res.metadata is None

"""Regression tests of input validation at the API boundary: dims, float32 range, the id rule, metadata and text
checks, bounded exhaustive search, and searching an index whose documents were all deleted."""

import json
import tracemalloc

import numpy as np
import pytest

import gingham
from gingham.search import plaid as search_mod
from gingham.search import blocked_exact
from gingham.build.streaming import ArraySource, IteratorSource, build
from tests.conftest import normalised

DIM = 16


@pytest.fixture(scope="module")
def docs():
    rng = np.random.default_rng(11)
    return [normalised(rng, int(n), DIM) for n in rng.integers(1, 8, 40)]


@pytest.fixture(scope="module")
def str_index(tmp_path_factory, docs):
    ids = [f"d{i}" for i in range(len(docs))]
    return gingham.Index.create(tmp_path_factory.mktemp("inputs") / "s", docs, ids, nbits=2, n_centroids=8,
                                metadata=[{"n": i} for i in range(len(docs))])


@pytest.fixture()
def int_index(tmp_path, docs):
    return gingham.Index.create(tmp_path / "i", docs, list(range(len(docs))), nbits=2, n_centroids=8)


def _query(rng=None, n=3):
    rng = rng or np.random.default_rng(0)
    return normalised(rng, n, DIM)


# ------------------------------------------------------------------------------------------- 3: zero dims
def test_zero_dim_embeddings_are_rejected_at_every_entry_point(tmp_path, int_index):
    with pytest.raises(ValueError, match="dim 0"):
        gingham.Index.create(tmp_path / "a", [np.zeros((3, 0), np.float32)] * 2)
    with pytest.raises(ValueError, match="dim 0"):
        gingham.Index.create(tmp_path / "a", np.zeros((4, 0), np.float32), lengths=[2, 2])
    assert not (tmp_path / "a" / "manifest.json").exists()
    with pytest.raises(ValueError, match="dim 0"):
        int_index.add([np.zeros((3, 0), np.float32)], [100])
    with pytest.raises(ValueError, match="dim 0"):
        int_index.search(np.zeros((3, 0), np.float32))
    with pytest.raises(ValueError, match="dim 0"):
        int_index.rerank([np.zeros((3, 0), np.float32)], [[1]])
    with pytest.raises(ValueError, match="dim 0"):
        gingham.exact_search([np.zeros((2, 0), np.float32)], [np.zeros((3, 0), np.float32)], top_k=1)
    with pytest.raises(ValueError, match="dim 0"):
        build(tmp_path / "b", IteratorSource([(0, np.zeros((3, 0), np.float32))]), show_progress=False)


# ------------------------------------------------------------------------------- 5: range of float32
def test_float64_beyond_float32_is_rejected_before_commit(tmp_path, int_index, docs):
    huge = np.concatenate([docs[0], docs[2], docs[3]]).astype(np.float64)
    huge[1, 2] = 1e39  # finite in float64, infinite in float32
    with pytest.raises(ValueError, match="beyond float32's range"):
        gingham.Index.create(tmp_path / "a", [huge, docs[1]])
    generation = int_index.generation
    with pytest.raises(ValueError, match=r"1e\+39 at row 1, column 2, beyond float32's range"):
        int_index.add([huge], [100])
    assert int_index.generation == generation and 100 not in int_index
    assert np.isfinite(int_index.codebook_drift())
    manifest = (int_index.path / "manifest.json").read_text()
    json.loads(manifest, parse_constant=lambda c: pytest.fail(f"manifest holds {c}"))
    with pytest.raises(ValueError, match="beyond float32's range"):
        int_index.search(huge)
    with pytest.raises(ValueError, match="beyond float32's range"):
        gingham.exact_search(huge, docs)
    flat = np.concatenate([huge, docs[1].astype(np.float64)])
    with pytest.raises(ValueError, match="beyond float32's range"):
        build(tmp_path / "b", ArraySource(flat, [len(huge), len(docs[1])]), show_progress=False)


def test_vectors_whose_scores_would_overflow_are_rejected(tmp_path, docs):
    big = np.full((2, DIM), 1e30, np.float32)  # finite, but its squared length is not
    with pytest.raises(ValueError, match="squared length"):
        gingham.Index.create(tmp_path / "a", [big, docs[1]])


# ------------------------------------------------------------------------------------------- 6: ids
def test_a_bare_string_is_not_a_list_of_ids(tmp_path, docs, int_index, str_index):
    with pytest.raises(ValueError, match="must be a list, got a single str"):
        gingham.Index.create(tmp_path / "a", docs[:3], "abc")
    with pytest.raises(ValueError, match="must be a list, got a single str"):
        str_index.add(docs[:3], "abc")
    n = str_index.n_docs
    with pytest.raises(ValueError, match="must be a list, got a single str"):
        str_index.delete("d1d")
    with pytest.raises(ValueError, match="must be a list, got a single bytes"):
        str_index.delete(b"d1")
    assert str_index.n_docs == n
    with pytest.raises(ValueError, match="subset ids must be a list"):
        str_index.search(_query(), top_k=1, subset="d5")
    assert str_index.search(_query(), top_k=1, subset=["d5"]).ids[0, 0] == "d5"
    with pytest.raises(ValueError, match="not a single string"):
        str_index.rerank([_query()], "d5")
    with pytest.raises(ValueError, match="must be a list"):
        str_index.rerank([_query()], ["d5"])
    with pytest.raises(ValueError, match="must be a list"):
        ArraySource(np.concatenate(docs[:3]), [len(d) for d in docs[:3]], "abc")


@pytest.mark.parametrize("bad", [True, False, 1.0, np.float32(2), None, b"x", np.bool_(True)])
def test_bool_float_and_other_ids_are_rejected_everywhere(tmp_path, docs, int_index, bad):
    with pytest.raises(ValueError, match="ids must be str or non-negative int"):
        gingham.Index.create(tmp_path / "a", docs[:2], [0, bad])
    n = int_index.n_docs
    with pytest.raises(ValueError, match="ids must be str or non-negative int"):
        int_index.delete([bad])
    assert int_index.n_docs == n
    with pytest.raises(ValueError, match="ids must be str or non-negative int"):
        int_index.search(_query(), top_k=1, subset=[bad])
    with pytest.raises(ValueError, match="ids must be str or non-negative int"):
        int_index.rerank([_query()], [[1, bad]])
    for op in (int_index.text, int_index.metadata, int_index.decompress, int_index.__contains__):
        with pytest.raises(ValueError, match="ids must be str or non-negative int"):
            op(bad)


def test_ids_of_the_other_kind_are_an_error_not_missing(int_index, str_index):
    with pytest.raises(ValueError, match="this index uses integer ids"):
        int_index.delete(["1"])
    with pytest.raises(ValueError, match="this index uses string ids"):
        str_index.search(_query(), top_k=1, subset=[5])
    with pytest.raises(ValueError, match="this index uses integer ids"):
        "1" in int_index  # noqa: B015
    assert 1 in int_index and np.int64(1) in int_index and "d1" in str_index and "zz" not in str_index
    with pytest.raises(KeyError, match="'zz' is not in the index"):
        str_index.text("zz")


def test_negative_int_ids_are_reserved(tmp_path, docs, int_index):
    with pytest.raises(ValueError, match=r"-1 is negative.*-1 marks 'no result'"):
        gingham.Index.create(tmp_path / "a", docs[:2], [0, -1])
    with pytest.raises(ValueError, match="negative"):
        int_index.add(docs[:1], [-5])
    with pytest.raises(ValueError, match="negative"):
        int_index.delete([-1])
    with pytest.raises(ValueError, match="64-bit"):
        gingham.Index.create(tmp_path / "a", docs[:1], [2**63])
    ix = gingham.Index.create(tmp_path / "b", docs[:2], [0, 2**63 - 1], n_centroids=2)
    assert ix.search(docs[1], top_k=1).ids[0, 0] == 2**63 - 1


def test_numpy_ids_are_normalised(tmp_path, docs):
    ix = gingham.Index.create(tmp_path / "a", docs[:3], np.array([7, 8, 9]), n_centroids=2)
    assert ix.ids() == [7, 8, 9]
    ix.delete(np.array([8]))
    assert ix.ids() == [7, 9]
    ix = gingham.Index.create(tmp_path / "b", docs[:3], np.array(["x", "y", "z"]), n_centroids=2)
    assert ix.ids() == ["x", "y", "z"] and all(type(i) is str for i in ix.ids())


def test_metadata_keys_must_be_strings(tmp_path, docs):
    for meta, where in (({1: "x"}, "metadata 0 has the key 1"), ({"a": {2: 3}}, r"metadata 0\['a'\] has the key 2"),
                        ({True: 1}, "metadata 0 has the key True")):
        with pytest.raises(ValueError, match=f"{where}.*keys must be strings"):
            gingham.Index.create(tmp_path / "a", docs[:1], metadata=[meta])
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        gingham.Index.create(tmp_path / "a", docs[:1], metadata=[{"x": float("nan")}])
    with pytest.raises(ValueError, match="one entry per document, got a single dict"):
        gingham.Index.create(tmp_path / "a", docs[:1], metadata={"a": 1})
    assert not (tmp_path / "a" / "manifest.json").exists()


# ------------------------------------------------------------------------------------ 11: lone surrogates
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"doc_ids": ["a", "b\ud800"]}, r"document id 'b\\ud800' is not valid Unicode"),
        ({"texts": ["ok", "x\ud800y"]}, "text 1 is not valid Unicode"),
        ({"metadata": [{"k": "ok"}, {"k": ["\udfff"]}]}, r"metadata 1\['k'\]\[0\] is not valid Unicode"),
        ({"metadata": [None, {"\ud800": 1}]}, "metadata 1, key .* is not valid Unicode"),
        ({"texts": ["ok", 5]}, "text 1 must be a str"),
    ],
)
def test_lone_surrogates_are_rejected_naming_the_item(tmp_path, docs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gingham.Index.create(tmp_path / "a", docs[:2], n_centroids=2, **kwargs)
    assert not (tmp_path / "a" / "manifest.json").exists()


def test_lone_surrogates_in_updates_and_text_queries(str_index, docs, tmp_path):
    generation = str_index.generation
    with pytest.raises(ValueError, match="not valid Unicode"):
        str_index.add(docs[:1], ["new\ud800"])
    with pytest.raises(ValueError, match="not valid Unicode"):
        str_index.add(docs[:1], ["new"], metadata=[{"t": "\ud800"}])
    with pytest.raises(ValueError, match="not valid Unicode"):
        str_index.delete(["\ud800"])
    assert str_index.generation == generation
    with pytest.raises(ValueError, match="query 0 is not valid Unicode"):
        str_index.search_text("what\ud800", encoder=object())
    with pytest.raises(ValueError, match="text 0 is not valid Unicode"):
        gingham.Index.from_texts(tmp_path / "t", ["\ud800"], model="no-such-model")
    with pytest.raises(ValueError, match="got a single str"):
        gingham.Index.from_texts(tmp_path / "t", "one text", model="no-such-model")


def test_streaming_sources_go_through_the_same_checks(tmp_path, docs):
    flat = np.concatenate(docs[:4])
    lengths = [len(d) for d in docs[:4]]
    with pytest.raises(ValueError, match=r"documents 0\.\.3: metadata 2 has the key 1"):
        build(tmp_path / "a", ArraySource(flat, lengths, metadata=[{}, {}, {1: 2}, {}]), show_progress=False)
    with pytest.raises(ValueError, match="text 1 is not valid Unicode"):
        build(tmp_path / "a", ArraySource(flat, lengths, texts=["a", "\ud800", "c", "d"]), show_progress=False)
    with pytest.raises(ValueError, match="negative"):
        build(tmp_path / "a", IteratorSource([(-1, docs[0]), (0, docs[1])]), show_progress=False)


# ----------------------------------------------------------------------------- 11: all documents deleted
@pytest.mark.parametrize("compact", [False, True])
def test_search_with_no_live_documents_gives_empty_rows(int_index, compact):
    int_index.delete(int_index.ids())
    if compact:
        int_index.compact()
    assert int_index.n_docs == 0
    q = [_query(), _query(n=2)]
    for res in (int_index.search(q, top_k=5), int_index.search(q, top_k=5, exhaustive=True),
                int_index.exact_search(q, top_k=5), int_index.search(q[0], top_k=1000)):
        assert res.positions.shape == res.scores.shape == res.ids.shape
        assert (res.positions == -1).all() and (res.ids == -1).all() and np.isneginf(res.scores).all()
        assert res.rows(0) == []
    assert int_index.search(q, top_k=5).positions.shape == (2, 5)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        int_index.search(q, top_k=0)
    with pytest.raises(ValueError, match="dim 8"):
        int_index.search(np.ones((2, 8), np.float32))


# ------------------------------------------------------------------------------- 10: bounded exhaustive
def _maxsim_reference(queries, docs, mask=None):
    scores = np.array([[float((d @ q.T).max(axis=0).sum()) for d in docs] for q in queries])
    if mask is not None:
        scores[:, mask == 0] = -np.inf
    return scores


def _blocked(queries, docs, k, mask=None):
    flat = np.concatenate(docs).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    q_flat = np.concatenate(queries).astype(np.float32)
    q_offsets = np.concatenate([[0], np.cumsum([len(q) for q in queries])]).astype(np.int64)
    m = search_mod.NO_MASK if mask is None else mask
    return blocked_exact(lambda lo, hi: flat[offsets[lo]:offsets[hi]], offsets, q_flat, q_offsets, k, m)


@pytest.mark.parametrize("block_tokens,query_tokens", [(1, 1), (7, 5), (30, 3), (65_536, 512)])
def test_blocked_exact_equals_one_block(monkeypatch, block_tokens, query_tokens):
    rng = np.random.default_rng(3)
    # small integer vectors: every score is exact, so ties are real ties (lower position first)
    docs = [rng.integers(-1, 2, (int(n), 8)).astype(np.float32) for n in rng.integers(1, 6, 50)]
    docs += docs[:10]  # duplicates tie with their originals
    queries = [rng.integers(-1, 2, (int(n), 8)).astype(np.float32) for n in rng.integers(1, 9, 23)]
    mask = (rng.random(len(docs)) < 0.8).astype(np.uint8)
    want_pos, want_sc = _blocked(queries, docs, 12, mask)  # default budgets: one block of everything
    ref = _maxsim_reference(queries, docs, mask)
    for r in range(len(queries)):  # the one-block path is top-k of the reference, ties to the lower position
        order = np.lexsort((np.arange(len(docs)), -ref[r]))[:12]
        np.testing.assert_array_equal(want_pos[r], order)
    monkeypatch.setattr(search_mod, "EXACT_BLOCK_TOKENS", block_tokens)
    monkeypatch.setattr(search_mod, "EXACT_QUERY_TOKENS", query_tokens)
    pos, sc = _blocked(queries, docs, 12, mask)
    np.testing.assert_array_equal(pos, want_pos)
    np.testing.assert_array_equal(sc, want_sc)
    pos, _ = _blocked(queries, docs, 1000)  # k above the corpus: every document, width n_docs
    assert pos.shape == (len(queries), len(docs))


def test_exhaustive_index_search_with_tiny_blocks(monkeypatch, str_index):
    qs = [_query(np.random.default_rng(i), 4) for i in range(9)]
    want = str_index.search(qs, top_k=7, exhaustive=True)
    monkeypatch.setattr(search_mod, "EXACT_BLOCK_TOKENS", 5)
    monkeypatch.setattr(search_mod, "EXACT_QUERY_TOKENS", 6)
    got = str_index.search(qs, top_k=7, exhaustive=True)
    np.testing.assert_array_equal(got.positions, want.positions)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)


def test_blocked_exact_memory_does_not_grow_with_the_batch(monkeypatch):
    monkeypatch.setattr(search_mod, "EXACT_BLOCK_TOKENS", 512)
    monkeypatch.setattr(search_mod, "EXACT_QUERY_TOKENS", 64)
    rng = np.random.default_rng(4)
    docs = [normalised(rng, 8, 32) for _ in range(500)]
    k = 4

    def peak(n_q: int) -> int:
        queries = [normalised(rng, 16, 32) for _ in range(n_q)]
        flat = np.concatenate(docs)
        offsets = np.arange(0, 8 * 501, 8, dtype=np.int64)
        q_flat = np.concatenate(queries)
        q_offsets = np.arange(0, 16 * (n_q + 1), 16, dtype=np.int64)
        blocked_exact(lambda lo, hi: flat[offsets[lo]:offsets[hi]], offsets, q_flat, q_offsets, k)  # compile
        tracemalloc.start()
        try:
            blocked_exact(lambda lo, hi: flat[offsets[lo]:offsets[hi]], offsets, q_flat, q_offsets, k)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    few, many = peak(8), peak(512)
    output = 512 * k * (8 + 4)  # positions and scores of the result, kept twice while merging
    # unblocked, the score scratch alone would be 512 doc tokens x 8192 query tokens x 4 bytes = 16 MiB
    assert many < few + 3 * output + 256 * 1024, (few, many)

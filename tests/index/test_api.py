import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gingham
from tests.conftest import normalised


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(5)
    docs = [normalised(rng, int(n), 64) for n in rng.integers(1, 20, 120)]
    return docs


@pytest.fixture(scope="module")
def index(tmp_path_factory, corpus):
    ids = [f"d{i}" for i in range(len(corpus))]
    return gingham.Index.create(tmp_path_factory.mktemp("api") / "ix", corpus, ids, nbits=2)


def test_flat_input_equals_list_input(tmp_path, corpus):
    flat = np.concatenate(corpus)
    lengths = [len(d) for d in corpus]
    a = gingham.Index.create(tmp_path / "a", corpus, seed=3)
    b = gingham.Index.create(tmp_path / "b", flat, lengths=lengths, seed=3)
    np.testing.assert_array_equal(np.asarray(a._snap.segments[0].arrays.codes), np.asarray(b._snap.segments[0].arrays.codes))
    np.testing.assert_array_equal(np.asarray(a._snap.segments[0].arrays.residuals), np.asarray(b._snap.segments[0].arrays.residuals))


def test_int_ids_and_result_types(tmp_path, corpus):
    ids = list(range(1000, 1000 + len(corpus)))
    ix = gingham.Index.create(tmp_path / "ix", corpus, ids)
    res = ix.search([corpus[4][:3], corpus[9][:2]], top_k=4)
    assert res.positions.dtype == np.int64 and res.scores.dtype == np.float32 and res.ids.dtype == np.int64
    assert res.positions.shape == res.scores.shape == res.ids.shape == (2, 4)
    assert res.ids[0, 0] == 1004 and res.ids[1, 0] == 1009
    assert (np.diff(res.scores, axis=1) <= 0).all()
    assert res.rows(0)[0][0] == 1004
    assert res.to_records(["qa", "qb"])[4]["query"] == "qb"


def test_single_query_is_one_row_and_matches_batch(index, corpus):
    one = index.search(corpus[7], top_k=5)
    batch = index.search([corpus[7], corpus[8]], top_k=5)
    assert one.ids.shape == (1, 5)
    np.testing.assert_array_equal(one.positions[0], batch.positions[0])
    np.testing.assert_allclose(one.scores[0], batch.scores[0])
    three_d = index.search(np.stack([corpus[7][:1], corpus[8][:1]]), top_k=5)
    assert three_d.ids.shape == (2, 5)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), k=st.integers(1, 120), n_q_tokens=st.integers(1, 12))
def test_exhaustive_equals_exact_maxsim_over_decompressed(index, corpus, seed, k, n_q_tokens):
    rng = np.random.default_rng(seed)
    queries = [normalised(rng, n_q_tokens, 64) for _ in range(3)]
    decompressed = [index.decompress(f"d{i}") for i in range(len(corpus))]
    want = gingham.exact_search(queries, decompressed, top_k=k)
    got = index.search(queries, top_k=k, exhaustive=True)
    np.testing.assert_array_equal(got.positions, want.positions)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)


def test_subset_restricts_results(index, corpus):
    allowed = ["d3", "d50", "d77"]
    res = index.search(corpus[10], top_k=3, subset=allowed)
    assert sorted(res.ids[0].tolist()) == sorted(allowed)
    res = index.search(corpus[10], top_k=5, subset=allowed)
    assert res.positions[0, 3] == -1 and res.ids[0, 3] is None and res.scores[0, 3] == -np.inf
    big = [f"d{i}" for i in range(0, 120, 2)]
    res = index.search(corpus[10], top_k=5, subset=big, n_full_scores=8)
    assert all(int(i[1:]) % 2 == 0 for i in res.ids[0])
    with pytest.raises(KeyError, match="nope"):
        index.search(corpus[10], top_k=3, subset=["nope"])


def test_rerank_given_candidates(index, corpus):
    res = index.rerank([corpus[2][:4]], [["d5", "d2", "d9"]], top_k=2)
    assert res.ids[0, 0] == "d2" and res.ids.shape == (1, 2)


def test_overrides_apply_to_one_call_only(index, corpus):
    before = index.search_defaults
    index.search(corpus[1], top_k=3, n_ivf_probe=4, n_full_scores=16)
    assert index.search_defaults == before
    with pytest.raises(ValueError, match="unknown SearchConfig option"):
        index.search(corpus[1], top_k=3, nprobe=4)


def test_threads_give_same_results(index, corpus):
    qs = [corpus[i][:5] for i in range(20)]
    a = index.search(qs, top_k=5, n_threads=1)
    b = index.search(qs, top_k=5, n_threads=2)
    np.testing.assert_array_equal(a.positions, b.positions)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused_for_a_query_and_a_batch(index, corpus, bad):
    for queries in (corpus[1][:4], [corpus[1][:4], corpus[2][:4]]):
        with pytest.raises(ValueError, match="n_threads must be a positive integer"):
            index.search(queries, top_k=3, n_threads=bad)


@pytest.mark.parametrize("n_threads", [2, 3])
def test_a_query_alone_spreads_over_threads_with_the_same_results(index, corpus, monkeypatch, n_threads):
    """A query searched alone splits its centroid scores, centroid interaction and exact stage over threads
    (runs and row blocks made tiny here so that every stage splits): the same documents and the same scores, bit
    for bit, as on one thread, at the defaults and with every candidate scored."""
    from gingham.search import centroids, parallel

    monkeypatch.setattr(parallel, "MIN_RUN_TOKENS", 2)
    monkeypatch.setattr(centroids, "MIN_ROWS_PER_THREAD", 2)
    for i in range(12):
        for params in ({}, {"n_full_scores": 64, "n_ivf_probe": 8}):
            one = index.search(corpus[i][:6], top_k=5, n_threads=1, **params)
            many = index.search(corpus[i][:6], top_k=5, n_threads=n_threads, **params)
            np.testing.assert_array_equal(one.positions, many.positions)
            np.testing.assert_array_equal(one.scores, many.scores)


@pytest.mark.parametrize(
    "docs,kwargs,match",
    [
        ([np.zeros((2, 64), np.float32), np.zeros((0, 64), np.float32)], {}, "document 1 is empty"),
        ([np.ones((2, 64), np.float32), np.ones((2, 32), np.float32)], {}, "disagree on dim"),
        ([np.full((2, 64), np.nan, np.float32)], {}, "NaN"),
        ([np.ones((2, 64), np.int64)], {}, "floating-point"),
        ([], {}, "no documents"),
        ([np.ones((2, 64), np.float32)] * 2, {"doc_ids": ["a", "a"]}, "duplicate document id 'a'"),
        ([np.ones((2, 64), np.float32)] * 2, {"doc_ids": ["a", 1]}, "all strings or all integers"),
        ([np.ones((2, 64), np.float32)] * 2, {"doc_ids": ["a"]}, "1 document ids for 2 documents"),
        ([np.ones((2, 60), np.float32)], {"nbits": 1, "n_centroids": 1}, "multiple of 8"),
    ],
)
def test_create_rejects_bad_input(tmp_path, docs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gingham.Index.create(tmp_path / "ix", docs, **kwargs)
    assert not (tmp_path / "ix" / "manifest.json").exists()


def test_flat_without_lengths_is_explained(tmp_path):
    with pytest.raises(ValueError, match="lengths="):
        gingham.Index.create(tmp_path / "ix", np.ones((5, 64), np.float32))
    with pytest.raises(ValueError, match="lengths sum to 4"):
        gingham.Index.create(tmp_path / "ix", np.ones((5, 64), np.float32), lengths=[2, 2])


@pytest.mark.parametrize(
    "query,kwargs,match",
    [
        (np.ones((3, 32), np.float32), {}, "dim 32"),
        (np.zeros((0, 64), np.float32), {}, "empty"),
        (np.full((2, 64), np.inf, np.float32), {}, "NaN or infinity"),
        (np.ones(64, np.float32), {}, "2-D"),
        ([], {}, "no queries"),
        (np.ones((2, 64), np.float32), {"top_k": 0}, "top_k"),
        (np.ones((2, 64), np.float32), {"top_k": 121}, "larger than the number of documents"),
    ],
)
def test_search_rejects_bad_input(index, query, kwargs, match):
    with pytest.raises(ValueError, match=match):
        index.search(query, **kwargs)

"""Centroid scoring through the coarse level (gingham.search.centroids) against scoring every centroid."""

from __future__ import annotations

import numpy as np
import pytest

import gingham
from gingham.kernels import reference as ref
from gingham.codec.kmeans import two_level_kmeans
from gingham.search import centroids as sc
from gingham.evaluation.synthetic import make_hard_corpus, make_hard_queries


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def codebook():
    rng = np.random.default_rng(0)
    tokens = _unit(rng.standard_normal((6000, 32)) + 0.3 * rng.standard_normal((1, 32)))
    centroids, coarse = two_level_kmeans(tokens, 600, 3, seed=0)
    return centroids, coarse, _unit(rng.standard_normal((9, 32)))


@pytest.fixture
def any_size(monkeypatch):
    monkeypatch.setattr(sc, "COARSE_SCORING_MIN_CENTROIDS", 0)


@pytest.mark.parametrize("probe", [1, 3])
def test_coarse_scores_are_exact_where_chosen_and_coarse_elsewhere(codebook, any_size, probe):
    centroids, coarse, q = codebook
    scorer = sc.CentroidScorer(centroids, coarse)
    cs = scorer(q, rounds=7, n_coarse_probe=probe)
    full = centroids @ q.T
    groups = scorer.groups()
    gscores = coarse @ q.T
    # each query token's best `probe` groups are scored exactly, and nothing else is
    chosen = np.zeros(len(coarse), bool)
    chosen[np.argsort(-gscores, axis=0, kind="stable")[:probe].ravel()] = True
    exact = chosen[groups.group_of]
    assert cs.n_exact == exact.sum() < len(centroids)
    rows = cs.scores[cs.slot]
    np.testing.assert_allclose(rows[exact], full[exact], rtol=1e-5, atol=1e-5)
    # the rest score as their group's mean centroid: the group's average score
    means = np.stack([centroids[groups.group_of == g].mean(axis=0) if (groups.group_of == g).any()
                      else np.zeros(centroids.shape[1]) for g in range(len(coarse))])
    np.testing.assert_allclose(rows[~exact], (means @ q.T)[groups.group_of[~exact]], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(cs.best, cs.scores.max(axis=1))
    # candidate generation ranks the exactly scored centroids, as PLAID's ranking of that subset
    ids = np.flatnonzero(exact)
    want, _ = ref.rank_centroids(full[ids], 7)
    np.testing.assert_array_equal(cs.ranked, ids[want])


def test_exact_rows_for_candidate_centroids(codebook, any_size):
    centroids, coarse, q = codebook
    cs = sc.CentroidScorer(centroids, coarse)(q, rounds=3, n_coarse_probe=1)
    before = (cs.scores.copy(), cs.slot.copy())
    ids = np.arange(0, len(centroids), 7)
    done = sc.with_exact_rows(cs, centroids, q, ids)
    np.testing.assert_allclose(done.scores[done.slot[ids]], centroids[ids] @ q.T, rtol=1e-5, atol=1e-5)
    others = np.setdiff1d(np.arange(len(centroids)), ids)
    np.testing.assert_array_equal(done.scores[done.slot[others]], cs.scores[cs.slot[others]])  # unchanged
    np.testing.assert_array_equal(done.best, done.scores.max(axis=1))
    np.testing.assert_array_equal(cs.scores, before[0])  # shared by segments: never changed in place
    np.testing.assert_array_equal(cs.slot, before[1])


def test_token_centroids():
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 6, 30)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    codes = rng.integers(0, 64, offsets[-1]).astype(np.uint16)
    docs = np.array([0, 3, 4, 17, 29], dtype=np.int64)
    for shift in (0, 2):
        want = np.unique(np.concatenate([codes[offsets[d]:offsets[d + 1]] for d in docs]).astype(np.int64) >> shift)
        np.testing.assert_array_equal(sc.token_centroids(docs, offsets, codes, shift), want)
    assert sc.token_centroids(docs[:0], offsets, codes, 0).size == 0


def test_full_scoring_when_probe_is_zero_covers_all_or_codebook_is_small(codebook, any_size):
    centroids, coarse, q = codebook
    scorer = sc.CentroidScorer(centroids, coarse)
    for probe in (0, len(coarse)):
        cs = scorer(q, rounds=5, n_coarse_probe=probe)
        assert cs.slot.size == 0 and cs.n_exact == len(centroids)
        np.testing.assert_allclose(cs.scores, centroids @ q.T, rtol=1e-5, atol=1e-5)
    assert sc.CentroidScorer(centroids, None).coarse_probe(4) == 0  # no coarse level: always full


def test_small_codebooks_are_scored_in_full(codebook):
    centroids, coarse, _ = codebook
    assert len(centroids) < sc.COARSE_SCORING_MIN_CENTROIDS
    assert sc.CentroidScorer(centroids, coarse).coarse_probe(None) == 0


def test_index_search_through_the_coarse_level(tmp_path, any_size):
    corpus = make_hard_corpus(600, dim=32, seed=3)
    docs = corpus.docs()
    ix = gingham.Index.create(tmp_path / "ix", docs, n_centroids=1024, kmeans="two-level", calibrate=False,
                              show_progress=False)
    assert ix._snap.codec.coarse is not None
    queries, _ = make_hard_queries(corpus, 40, seed=5)
    settings = dict(top_k=10, n_ivf_probe=2, n_full_scores=256)
    full = ix.search(queries, n_coarse_probe=0, **settings)
    everything = ix.search(queries, n_coarse_probe=len(ix._snap.codec.coarse), **settings)
    np.testing.assert_array_equal(full.positions, everything.positions)
    coarse = ix.search(queries, n_coarse_probe=2, **settings)
    default = ix.search(queries, **settings)
    np.testing.assert_array_equal(coarse.positions, default.positions)  # 2 is the default
    overlap = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(coarse.positions, full.positions)])
    assert overlap >= 0.95
    for probe in (1, 4):  # the unpruned stage scores its centroids exactly: the same as full scoring here
        got = ix.search(queries, n_coarse_probe=probe, **settings)
        assert np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(got.positions, full.positions)]) >= 0.95
    with pytest.raises(ValueError, match="n_coarse_probe"):
        ix.search(queries[0], n_coarse_probe=-1)


def test_segments_share_one_scoring(tmp_path, any_size, monkeypatch):
    corpus = make_hard_corpus(300, dim=32, seed=4)
    docs = corpus.docs()
    ix = gingham.Index.create(tmp_path / "ix", docs[:200], n_centroids=512, kmeans="two-level", calibrate=False,
                              show_progress=False)
    ix.add(docs[200:], list(range(200, 300)))
    assert len(ix._snap.segments) == 2
    calls = []
    real = sc.CentroidScorer.__call__
    monkeypatch.setattr(sc.CentroidScorer, "__call__", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    ix.search(docs[250][:8], top_k=5, n_full_scores=64)
    assert len(calls) == 1


@pytest.mark.parametrize("n_threads", [1, 2, 3, 5])
def test_scores_ranked_in_blocks_equal_one_ranking(monkeypatch, n_threads):
    """Centroid scores split over threads, each block ranked on its own and the rankings merged: the same scores,
    the same best, and the same ranking as one pass over every row, ties included (duplicate centroids in
    different blocks: the lower id first)."""
    monkeypatch.setattr(sc, "MIN_ROWS_PER_THREAD", 4)
    rng = np.random.default_rng(n_threads)
    base = _unit(rng.standard_normal((20, 16)))
    centroids = np.concatenate([base, base[::-1], base[:7]])  # every row twice or more, across blocks
    q = _unit(rng.standard_normal((5, 16)))
    scores, ranked, best = sc.score_and_rank(centroids, q, 9, n_threads)
    np.testing.assert_allclose(scores, ref.dot_rows(centroids, q), rtol=1e-5, atol=1e-5)
    want_ranked, want_best = ref.rank_centroids(scores, 9)
    np.testing.assert_array_equal(ranked, want_ranked)
    np.testing.assert_array_equal(best, want_best)

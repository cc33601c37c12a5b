"""Two-level k-means and coarse approximate assignment: shares, quality against flat k-means, exactness limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gingham
from gingham.codec.assign import assign
from gingham.codec.kmeans import train_centroids
from gingham.codec.kmeans import CoarseAssigner, share_out, two_level_kmeans
from gingham.evaluation.synthetic import make_hard_corpus


@given(st.lists(st.integers(0, 500), min_size=1, max_size=40), st.data())
@settings(max_examples=200, deadline=None)
def test_share_out_sums_to_k_within_bounds(sizes, data):
    sizes = np.array(sizes)
    total = int(sizes.sum())
    if total == 0:
        return
    k = data.draw(st.integers(max(1, int((sizes > 0).sum())), total))
    out = share_out(sizes, k)
    assert out.sum() == k
    assert (out <= sizes).all() and (out[sizes > 0] >= 1).all() and (out[sizes == 0] == 0).all()
    # proportional: no cluster is more than one centroid off its share, plus what the one-per-cluster floors took
    want = sizes * k / total
    floors = int(((sizes > 0) & (want < 1)).sum())
    assert (np.abs(out - want) <= 1 + floors).all()


def test_share_out_refuses_more_centroids_than_points():
    with pytest.raises(ValueError):
        share_out(np.array([2, 3]), 6)


@pytest.fixture(scope="module")
def tokens():
    return make_hard_corpus(400, dim=32, seed=2).tokens


def quantisation_error(x, centroids):
    ids = assign(x, centroids)
    return float(np.mean(np.sum((x - centroids[ids]) ** 2, axis=1)))


def test_two_level_is_close_to_flat_kmeans(tokens):
    k = 256
    flat = train_centroids(tokens, k, 4, seed=0)
    two, coarse = two_level_kmeans(tokens, k, 4, seed=0, refine_iters=1)
    assert two.shape == (k, tokens.shape[1]) and coarse.shape[0] == 16
    np.testing.assert_allclose(np.linalg.norm(two, axis=1), 1, atol=1e-5)
    e_flat, e_two = quantisation_error(tokens, flat), quantisation_error(tokens, two)
    assert e_two <= 1.1 * e_flat, (e_two, e_flat)
    a, _ = two_level_kmeans(tokens, k, 4, seed=0)
    b, _ = two_level_kmeans(tokens, k, 4, seed=0)
    np.testing.assert_array_equal(a, b)  # seeded


def test_coarse_assigner_exact_with_every_list_and_close_with_few(tokens):
    centroids, coarse = two_level_kmeans(tokens, 256, 4, seed=0)
    exact = assign(tokens, centroids)
    np.testing.assert_array_equal(CoarseAssigner(centroids, coarse, nprobe=len(coarse))(tokens), exact)
    approx = CoarseAssigner(centroids, coarse, nprobe=4)(tokens)
    assert (approx == exact).mean() > 0.9
    scores = np.sum(tokens * centroids[approx], axis=1)
    assert (scores <= np.sum(tokens * centroids[exact], axis=1) + 1e-5).all()  # never better than exact
    assert CoarseAssigner(centroids, coarse, 2)(tokens[:0]).shape == (0,)


def test_build_with_two_level_and_approximate_assignment(tmp_path):
    corpus = make_hard_corpus(300, dim=32, seed=4)
    docs = corpus.docs()
    flat = gingham.Index.create(tmp_path / "a", docs, n_centroids=256, calibrate=False)
    two = gingham.Index.create(tmp_path / "b", docs, n_centroids=256, calibrate=False, kmeans="two-level",
                               assign_nprobe=4)
    q = [d[:8] for d in docs[:20]]
    truth = gingham.exact_search(q, docs, 10).positions
    for ix in (flat, two):
        found = ix.search(q, top_k=10, exhaustive=True).positions
        assert np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth)]) > 0.85
    assert two.build_config.kmeans == "two-level" and two.build_config.assign_nprobe == 4
    with pytest.raises(ValueError, match="two-level"):
        gingham.BuildConfig(kmeans="flat", assign_nprobe=4)
    with pytest.raises(ValueError, match="kmeans"):
        gingham.BuildConfig(kmeans="hierarchical")


def test_auto_kmeans_is_two_level_from_the_threshold():
    from gingham.common.config import TWO_LEVEL_FROM

    cfg = gingham.BuildConfig()
    assert cfg.kmeans == "auto"
    assert cfg.kmeans_for(TWO_LEVEL_FROM) == "two-level" and cfg.kmeans_for(TWO_LEVEL_FROM // 2) == "flat"
    assert gingham.BuildConfig(kmeans="flat").kmeans_for(1 << 18) == "flat"
    assert gingham.BuildConfig(kmeans="two-level").kmeans_for(16) == "two-level"
    gingham.BuildConfig(kmeans="auto", assign_nprobe=4)  # allowed: used when auto chooses two-level


def test_two_level_codebook_assigns_every_later_token_through_its_coarse_level(tmp_path):
    import pickle

    from gingham.kernels.codec import refine_codes

    corpus = make_hard_corpus(300, dim=32, seed=5)
    docs = corpus.docs()
    ix = gingham.Index.create(tmp_path / "ix", docs[:250], n_centroids=257, calibrate=False, kmeans="two-level",
                              assign_nprobe=2, sub_centroids=True)
    codec = ix.codec
    assert codec.coarse is not None and codec.assign_nprobe == 2 and codec.sub_bits == 2
    info = ix.info()
    assert info["coarse_centroids"] == len(codec.coarse) and info["assign_nprobe"] == 2
    reopened = gingham.Index.open(tmp_path / "ix")
    np.testing.assert_array_equal(reopened.codec.coarse, codec.coarse)
    assert reopened.codec.assign_nprobe == 2
    new = np.concatenate(docs[250:])
    expected = refine_codes(new, CoarseAssigner(codec.centroids, codec.coarse, 2)(new), codec.sub_centroids, 4)
    exact = codec.codes_for(new, assign(new, codec.centroids))
    assert not np.array_equal(expected, exact), "nprobe 2 should differ from exact somewhere on this corpus"
    reopened.add(docs[250:], list(range(250, 300)))
    seg = reopened._snap.segments[-1]
    np.testing.assert_array_equal(np.asarray(seg.arrays.codes), expected)  # the add went through the coarse level
    # the codec ships to Ray tasks by pickle: the faiss assigner is left behind and rebuilt
    codec.assign(new[:4])
    clone = pickle.loads(pickle.dumps(codec))
    assert "_assigner" not in clone.__dict__
    np.testing.assert_array_equal(clone.codes_for(new), expected)
    reopened.verify()

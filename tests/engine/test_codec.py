import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.codec import ResidualCodec, codes_dtype, fit_buckets, residual_scales, train_centroids
from gingham.config import BuildConfig
from gingham.kernels import reference as ref
from tests.conftest import normalised


@settings(max_examples=25, deadline=None)
@given(nbits=st.sampled_from([1, 2, 4]), dim=st.sampled_from([16, 96, 128, 384]), seed=st.integers(0, 2**16))
def test_round_trip_error_within_bucket_bound(nbits, dim, seed):
    """Decompression puts every residual entry inside its bucket: the error is at most the bucket's span."""
    rng = np.random.default_rng(seed)
    x = normalised(rng, 600, dim)
    centroids = train_centroids(x, 8, 3, seed)
    codec = ResidualCodec.fit(centroids, x, nbits)
    codes, packed = codec.compress(x)
    out = codec.decompress(codes, packed)
    residual = x.astype(np.float64) - codec.centroids[codes]
    scale = codec.scales[codes].astype(np.float64)[:, None]
    scaled = residual / scale  # what the buckets quantise
    buckets = ref.bucketize(scaled, codec.cutoffs)
    lo_edge = np.concatenate([scaled.min(0)[:, None], codec.cutoffs], axis=1)  # (dim, n_buckets)
    hi_edge = np.concatenate([codec.cutoffs, scaled.max(0)[:, None]], axis=1)
    dims = np.arange(dim)[None, :]
    span = np.maximum(hi_edge, codec.weights) - np.minimum(lo_edge, codec.weights)
    err = np.abs(out - x)
    assert (err <= scale * span[dims, buckets] + 1e-5).all()
    # and the codec beats the centroid alone
    assert np.mean((out - x) ** 2) < np.mean(residual**2)


@pytest.mark.parametrize("nbits,max_rel_err", [(1, 0.8), (2, 0.5), (4, 0.15)])
def test_reconstruction_error_shrinks_with_bits(nbits, max_rel_err):
    rng = np.random.default_rng(0)
    x = normalised(rng, 3000, 128)
    centroids = train_centroids(x, 64, 4, 0)
    codec = ResidualCodec.fit(centroids, x[:1500], nbits)
    codes, packed = codec.compress(x[1500:])
    out = codec.decompress(codes, packed)
    residual = x[1500:] - codec.centroids[codes]
    rel = np.linalg.norm(out - x[1500:]) / np.linalg.norm(residual)
    assert rel < max_rel_err


def test_codes_dtype_is_narrowest():
    assert codes_dtype(256) == np.uint8
    assert codes_dtype(257) == np.uint16
    assert codes_dtype(65536) == np.uint16
    assert codes_dtype(65537) == np.int32


def test_centroids_normalised_and_reproducible():
    rng = np.random.default_rng(1)
    x = normalised(rng, 2000, 32)
    a = train_centroids(x, 16, 5, seed=7)
    b = train_centroids(x, 16, 5, seed=7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("n_tokens,expected", [(2_400_000, 16384), (100_000, 4096), (1000, 128), (40, 8), (3, 1)])
def test_default_n_centroids(n_tokens, expected):
    assert BuildConfig().resolve_n_centroids(n_tokens) == expected


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 300), n_c=st.integers(1, 12), prior=st.sampled_from([0.5, 1.0, 8.0]), seed=st.integers(0, 2**16))
def test_residual_scales_match_reference(n, n_c, prior, seed):
    """Each centroid's scale is its RMS residual norm over the global one, shrunk towards 1 in log space by its
    token count (1 where it has no tokens)."""
    rng = np.random.default_rng(seed)
    centroids = normalised(rng, n_c, 16)
    codes = rng.integers(0, n_c, n)
    x = (centroids[codes] + rng.standard_normal((n, 16)) * rng.uniform(0.01, 0.5, n_c)[codes, None]).astype(np.float32)
    got = residual_scales(x, codes, centroids, prior)
    sq = ((x.astype(np.float64) - centroids[codes]) ** 2).sum(1)
    want = np.ones(n_c)
    if n and sq.sum() > 0:
        glob = sq.mean()
        for c in range(n_c):
            mine = sq[codes == c]
            if len(mine):
                rel = max(mine.mean() / glob, 1e-6)
                want[c] = max(np.exp(len(mine) / (len(mine) + prior) * 0.5 * np.log(rel)), 1e-3)
    assert got.dtype == np.float32 and got.shape == (n_c,)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_scales_fit_clusters_of_different_spread():
    """Clusters whose tokens lie at very different distances from their centroid: per-centroid scales cut the
    reconstruction error against one set of buckets for all."""
    rng = np.random.default_rng(3)
    dim, n_c = 64, 32
    centres = normalised(rng, n_c, dim)
    spread = np.where(np.arange(n_c) % 2 == 0, 0.05, 0.5)
    labels = rng.integers(0, n_c, 8000)
    x = centres[labels] + rng.standard_normal((8000, dim)) * (spread[labels] / np.sqrt(dim))[:, None]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    train, test = x[:4000], x[4000:]
    train_codes = ref.nearest_centroids(train, centres.T)  # the true centres as centroids
    scaled = ResidualCodec.fit(centres, train[:2000], 2, scales=residual_scales(train, train_codes, centres))
    assert scaled.scales.min() < 0.2 and scaled.scales.max() > 1.3
    codes = ref.nearest_centroids(train[:2000], scaled.centroids.T)
    cut, w = fit_buckets(train[:2000].astype(np.float64) - scaled.centroids[codes], 2, 12)
    flat = ResidualCodec(centroids=scaled.centroids, cutoffs=cut.astype(np.float32), weights=w.astype(np.float32),
                         nbits=2)
    np.testing.assert_array_equal(flat.scales, 1)

    tight = spread[labels[4000:]] < 0.1

    def mse(codec, rows=slice(None)):
        return float(np.mean((codec.decompress(*codec.compress(test)) - test)[rows] ** 2))

    # tight clusters get buckets their size instead of the wide clusters' (several times less error); the wide
    # ones lose nothing, so the error over all tokens drops too
    assert mse(scaled, tight) < 0.3 * mse(flat, tight)
    assert mse(scaled, ~tight) < 1.05 * mse(flat, ~tight)
    assert mse(scaled) < 0.9 * mse(flat)

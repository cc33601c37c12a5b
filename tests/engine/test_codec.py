import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.codec import ResidualCodec, codes_dtype, train_centroids
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
    buckets = ref.bucketize(residual, codec.cutoffs)
    lo_edge = np.concatenate([residual.min(0)[:, None], codec.cutoffs], axis=1)  # (dim, n_buckets)
    hi_edge = np.concatenate([codec.cutoffs, residual.max(0)[:, None]], axis=1)
    dims = np.arange(dim)[None, :]
    span = np.maximum(hi_edge, codec.weights) - np.minimum(lo_edge, codec.weights)
    err = np.abs(out - x)
    assert (err <= span[dims, buckets] + 1e-5).all()
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

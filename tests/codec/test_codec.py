import dataclasses

import numpy as np
import pytest

import gingham
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.codec.quantizers import fit_buckets, residual_scales, spare_code_bits, train_sub_centroids
from gingham.codec.residual import ResidualCodec
from gingham.codec.stored import codes_dtype, dequantize_rows, quantize_rows, stored_centroids
from gingham.codec.assign import assign, centroid_index
from gingham.codec.kmeans import train_centroids
from gingham.common.config import BuildConfig
from gingham.kernels import reference as ref
from tests.conftest import anisotropic, normalised


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 300), n_c=st.sampled_from([1, 7, 40, 1025, 2100]), dim=st.sampled_from([8, 96, 128]),
       seed=st.integers(0, 2**16))
def test_assign_equals_reference(n, n_c, dim, seed):
    """faiss's exact search picks the reference's centroid (up to float32 near-ties), across its centroid blocks."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    c = normalised(rng, n_c, dim)
    got = assign(x, c)
    want = ref.nearest_centroids(x, c.T)
    assert got.dtype == np.int64 and got.shape == (n,)
    # float32 vs float64 products may flip exact near-ties; the chosen centroid must score as well as the best
    s = x.astype(np.float64) @ c.T.astype(np.float64)
    np.testing.assert_allclose(s[np.arange(n), got], s[np.arange(n), want], atol=1e-5)
    np.testing.assert_array_equal(assign(x, c, centroid_index(c)), got)


def test_assign_ties_go_to_the_lowest_id_across_blocks():
    rng = np.random.default_rng(0)
    c = normalised(rng, 3000, 16) * 0.5  # every other centroid scores at most 0.5
    c[[7, 1500, 2999]] = [1.0] + [0.0] * 15  # the same best centroid, in three of faiss's 1,024-centroid blocks
    x = np.tile(np.array([[1.0] + [0.0] * 15], dtype=np.float32), (5, 1))
    np.testing.assert_array_equal(assign(x, c), [7] * 5)


@settings(max_examples=25, deadline=None)
@given(nbits=st.sampled_from([1, 2, 4]), dim=st.sampled_from([16, 96, 128, 384]), seed=st.integers(0, 2**16))
def test_round_trip_error_within_bucket_bound(nbits, dim, seed):
    """Decompression puts every residual entry inside its bucket: the error is at most the bucket's span."""
    rng = np.random.default_rng(seed)
    x = normalised(rng, 600, dim)
    centroids = train_centroids(x, 8, 3, seed)
    codec = ResidualCodec.fit(centroids, x, nbits, product=False)
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


@pytest.mark.parametrize("product", [False, True])
@pytest.mark.parametrize("nbits,max_rel_err", [(1, 0.8), (2, 0.5), (4, 0.15)])
def test_reconstruction_error_shrinks_with_bits(nbits, max_rel_err, product):
    rng = np.random.default_rng(0)
    x = normalised(rng, 3000, 128)
    centroids = train_centroids(x, 64, 4, 0)
    codec = ResidualCodec.fit(centroids, x[:1500], nbits, product=product)
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


@pytest.mark.parametrize("n_centroids,bits", [(16384, 2), (32768, 1), (65536, 0), (4096, 2), (128, 1), (256, 0),
                                              (2**17, 2), (1, 2)])
def test_spare_code_bits(n_centroids, bits):
    assert spare_code_bits(n_centroids) == bits
    # the codes with sub-centroids still fit the type chosen for the centroids alone
    assert codes_dtype(n_centroids << bits) == codes_dtype(n_centroids)


def _subanisotropic(rng, n_c, n_sub, n, dim, spread=0.15, noise=0.03):
    centres = normalised(rng, n_c, dim)
    subs = centres[:, None, :] + spread * rng.standard_normal((n_c, n_sub, dim)) / np.sqrt(dim)
    labels = rng.integers(0, n_c * n_sub, n)
    x = subs.reshape(-1, dim)[labels] + noise * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_sub_centroids_find_the_structure_inside_clusters():
    """Clusters made of 4 sub-clusters each: sub-centroids land on them, every code's centroid is the token's
    nearest centroid, and the reconstruction error drops well below that of the centroids alone."""
    rng = np.random.default_rng(5)
    x = _subanisotropic(rng, 16, 4, 6000, 64)
    train, test = x[:4000], x[4000:]
    centroids = train_centroids(train, 16, 10, 0)
    coarse = ref.nearest_centroids(train, centroids.T)
    sub = train_sub_centroids(train, coarse, centroids, 4, 8, 0)
    assert sub.shape == (64, 64) and sub.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(sub, axis=1), 1, rtol=5e-4)  # unit, at float16 precision
    np.testing.assert_array_equal(sub, sub.astype(np.float16))  # rounded to their on-disk type
    np.testing.assert_array_equal(sub, train_sub_centroids(train, coarse, centroids, 4, 8, 0))  # seeded
    plain = ResidualCodec.fit(centroids, train, 2)
    refined = ResidualCodec.fit(centroids, train, 2, sub_centroids=sub)
    assert plain.sub_bits == 0 and refined.sub_bits == 2 and refined.n_codes == 64
    codes, packed = refined.compress(test)
    np.testing.assert_array_equal(codes >> 2, ref.nearest_centroids(test, refined.centroids.T))
    assert codes.dtype == np.uint8  # 64 codes

    def mse(codec):
        return float(np.mean((codec.decompress(*codec.compress(test)) - test) ** 2))

    assert mse(refined) < 0.5 * mse(plain)


def test_codebook_arrays_round_trip_with_a_float16_sub_centroid_table():
    """The sub-centroid table is stored as float16 (half the bytes); any table a codec is given is rounded to that
    precision on construction, so the codec read back from its arrays compresses and decompresses identically."""
    rng = np.random.default_rng(9)
    x = _subanisotropic(rng, 8, 4, 2000, 32)
    centroids = train_centroids(x, 8, 6, 0)
    sub = normalised(rng, 32, 32)  # not float16-representable
    codec = ResidualCodec.fit(centroids, x, 2, sub_centroids=sub)
    np.testing.assert_array_equal(codec.sub_centroids, sub.astype(np.float16).astype(np.float32))
    arrays = codec.arrays()
    assert arrays["sub_centroids"].dtype == np.float16 and arrays["centroids"].dtype == np.float32
    again = ResidualCodec.from_arrays(arrays, 2)
    codes, packed = codec.compress(x)
    np.testing.assert_array_equal(again.compress(x)[1], packed)
    np.testing.assert_array_equal(again.decompress(codes, packed), codec.decompress(codes, packed))


def test_sub_centroids_of_tiny_clusters_keep_the_centroid():
    rng = np.random.default_rng(0)
    centroids = normalised(rng, 3, 8)
    x = normalised(rng, 2, 8)
    sub = train_sub_centroids(x, np.array([0, 0]), centroids, 4, 3, 0)
    stored = centroids.astype(np.float16).astype(np.float32)  # sub-centroids are kept at float16 precision
    np.testing.assert_array_equal(sub[4:], np.repeat(stored[1:], 4, axis=0))  # clusters without members


@pytest.mark.parametrize("enabled", [True, False])
def test_index_sub_centroids_setting(tmp_path, enabled):
    import gingham
    from gingham.evaluation.synthetic import make_corpus

    corpus = make_corpus(300, mean_length=40, seed=3)
    # 257 centroids: uint16 codes, 2 spare bits, and ~38 training tokens per sub-centroid
    ix = gingham.Index.create(tmp_path / "ix", corpus.docs(), nbits=2, n_centroids=257, sub_centroids=enabled)
    again = gingham.Index.open(tmp_path / "ix", verify=True)
    again.verify()
    assert again.codec.sub_bits == (2 if enabled else 0)
    assert again.info()["sub_centroids_per_centroid"] == (4 if enabled else 1)
    assert ("sub_centroids" in again.manifest["files"]) == enabled
    if enabled:
        assert again.manifest["files"]["sub_centroids"]["dtype"] == "<f2"
    assert len(again.codec.scales) == again.codec.n_codes == again.codec.n_centroids << again.codec.sub_bits
    codes = np.asarray(again._snap.segments[0].arrays.codes)
    assert int(codes.max()) < again.codec.n_codes
    np.testing.assert_array_equal(again.decompress(5), ix.decompress(5))


def test_sub_centroids_leave_out_excluded_rows_and_read_in_blocks():
    rng = np.random.default_rng(2)
    x = _subanisotropic(rng, 8, 4, 3000, 32)
    centroids = train_centroids(x, 8, 5, 0)
    coarse = ref.nearest_centroids(x, centroids.T)
    held = np.sort(rng.choice(3000, 500, replace=False))
    a = train_sub_centroids(x, coarse, centroids, 4, 5, 1, exclude=held, block=97)
    garbage = x.copy()
    garbage[held] = normalised(rng, len(held), 32)  # excluded rows never count
    b = train_sub_centroids(garbage, coarse, centroids, 4, 5, 1, exclude=held)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(a, train_sub_centroids(garbage, coarse, centroids, 4, 5, 1), atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 50), dim=st.sampled_from([1, 8, 128]), seed=st.integers(0, 2**16),
       magnitude=st.sampled_from([1e-3, 1.0, 40.0]), zero_row=st.booleans())
def test_centroids_round_to_int8_within_half_a_step_and_round_trip_bit_for_bit(n, dim, seed, magnitude, zero_row):
    rng = np.random.default_rng(seed)
    v = (rng.standard_normal((n, dim)) * magnitude).astype(np.float32)
    if zero_row and n:
        v[0] = 0
    q, scales = quantize_rows(v)
    assert q.dtype == np.int8 and scales.dtype == np.float16 and q.shape == v.shape and scales.shape == (n,)
    assert (scales > 0).all() and (np.abs(q.astype(int)) <= 127).all()
    back = dequantize_rows(q, scales)
    # rows whose scale is a normal float16 (every unit vector's): the documented guarantees
    ok = scales >= np.finfo(np.float16).tiny
    # plain numpy reference: each entry within half a step of its row's scale, at most max|row|/127
    top = np.abs(v).max(axis=1) if n else np.zeros(0, np.float32)
    step = scales.astype(np.float64)[:, None]
    assert (np.abs(back - v) <= 0.5 * step + 1e-6 * np.abs(v))[ok].all()
    assert (scales.astype(np.float64) <= np.where(top > 0, top / 127, 1.0) * (1 + 1e-6))[ok].all()
    assert (np.abs(q.astype(int)).max(axis=1, initial=0) == 127)[ok & (top > 0)].all()  # the largest is +-127
    # stored once, stored again: the same ints, scales and floats (a codebook survives every store/load)
    q2, scales2 = quantize_rows(back)
    np.testing.assert_array_equal(q2[ok], q[ok])
    np.testing.assert_array_equal(scales2[ok], scales[ok])
    np.testing.assert_array_equal(stored_centroids(back)[ok], back[ok])


def test_centroids_int8_cannot_hold_are_stored_as_floats_losslessly():
    """An older index's float32 (or float16) centroids, or a row too small for int8 scales, stay floats."""
    rng = np.random.default_rng(0)
    raw = normalised(rng, 5, 8)
    for centroids, kind in ((raw, "f"), (stored_centroids(raw), "i"), (raw.astype(np.float16).astype(np.float32), "f")):
        codec = ResidualCodec(centroids=centroids, cutoffs=np.zeros((8, 3), np.float32),
                              weights=np.zeros((8, 4), np.float32), nbits=2)
        arrays = codec.arrays()
        assert arrays["centroids"].dtype.kind == kind and ("centroid_scales" in arrays) == (kind == "i")
        np.testing.assert_array_equal(ResidualCodec.from_arrays(arrays, 2).centroids, centroids)


def test_index_stores_centroids_as_int8_and_reads_back_the_trained_ones(tmp_path):
    from gingham.evaluation.synthetic import make_hard_corpus

    corpus = make_hard_corpus(200, dim=32, seed=3)
    ix = gingham.Index.create(tmp_path / "ix", corpus.docs(), n_centroids=64, calibrate=False)
    files = ix.manifest["files"]
    assert files["centroids"]["dtype"] == "|i1" and files["centroid_scales"]["dtype"] == "<f2"
    again = gingham.Index.open(tmp_path / "ix", verify=True)
    np.testing.assert_array_equal(again.codec.centroids, ix.codec.centroids)
    assert np.allclose(np.linalg.norm(again.codec.centroids, axis=1), 1, atol=0.02)
    ix.add(corpus.docs()[:5], list(range(200, 205)))  # a commit writes the codebook it read back, unchanged
    assert gingham.Index.open(tmp_path / "ix").manifest["files"]["centroids"]["sha256"] == files["centroids"]["sha256"]


@settings(max_examples=15, deadline=None)
@given(nbits=st.sampled_from([1, 2, 4]), dim=st.sampled_from([16, 64, 128]), seed=st.integers(0, 2**16))
def test_product_codes_are_the_nearest_codewords(nbits, dim, seed):
    """Each byte of a product-quantised residual names the codeword of its byte position nearest to the scaled
    residual's sub-vector (numpy brute force; float32 near-ties may go either way), and decompression adds that
    codeword, scaled, to the centroid."""
    rng = np.random.default_rng(seed)
    x = anisotropic(rng, 1500, dim)
    codec = ResidualCodec.fit(train_centroids(x, 8, 3, seed), x[:1200], nbits, seed=seed, min_gain=-np.inf)
    assert codec.codewords is not None and codec.codewords.shape == (dim * nbits // 8, 256, 8 // nbits)
    codes, packed = codec.compress(x)
    assert packed.dtype == np.uint8 and packed.shape == (len(x), dim * nbits // 8)
    scaled = (x.astype(np.float64) - codec.fine[codes]) / codec.scales[codes, None]
    per = 8 // nbits
    sub = scaled.reshape(len(x), -1, per)  # (n, n_bytes, per_byte)
    dist = ((sub[:, :, None, :] - codec.codewords[None].astype(np.float64)) ** 2).sum(-1)  # (n, n_bytes, 256)
    chosen = np.take_along_axis(dist, packed[:, :, None].astype(np.int64), axis=2)[:, :, 0]
    np.testing.assert_allclose(chosen, dist.min(axis=2), atol=1e-5)
    want = codec.fine[codes] + codec.scales[codes, None] * codec.codewords[np.arange(sub.shape[1]), packed].reshape(
        len(x), dim)
    want /= np.linalg.norm(want, axis=1, keepdims=True)  # unit tokens: the codec rescales (normalize)
    codec_n = dataclasses.replace(codec, normalize=True)
    np.testing.assert_allclose(codec_n.decompress(codes, packed), want, atol=2e-5)


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_product_codewords_fit_better_than_the_bucket_grid(nbits):
    """Started from the bucket grid, the codewords' Lloyd steps lower the squared error on the residuals they are
    fitted on, and on held-out ones of the same distribution."""
    rng = np.random.default_rng(nbits)
    x = anisotropic(rng, 6000, 64)
    centroids = train_centroids(x, 16, 4, 0)
    errors = {}
    for product in (False, True):
        codec = ResidualCodec.fit(centroids, x[:3000], nbits, product=product, min_gain=-np.inf)
        for part, rows in (("fit", x[:3000]), ("held", x[3000:])):
            codes, packed = codec.compress(rows)
            errors[product, part] = float(np.mean((codec.decompress(codes, packed) - rows) ** 2))
    assert errors[True, "fit"] < errors[False, "fit"] * 0.97
    assert errors[True, "held"] < errors[False, "held"]


def test_product_codec_round_trips_through_arrays_and_pickle():
    """The codewords are stored as int8 rows (rounded at training, so lossless); a reopened or unpickled codec
    (Ray ships codecs) compresses and decodes bit for bit like the original."""
    import pickle

    rng = np.random.default_rng(3)
    x = anisotropic(rng, 2000, 32)
    codec = ResidualCodec.fit(train_centroids(x, 16, 3, 0), x[:1500], 2, min_gain=-np.inf)
    arrays = codec.arrays()
    assert arrays["residual_codewords"].dtype == np.int8 and arrays["codeword_scales"].dtype == np.float16
    again = ResidualCodec.from_arrays(arrays, 2, codec.normalize)
    shipped = pickle.loads(pickle.dumps(codec))
    codes, packed = codec.compress(x)
    for other in (again, shipped):
        np.testing.assert_array_equal(other.lut(), codec.lut())
        c2, p2 = other.compress(x)
        np.testing.assert_array_equal(c2, codes)
        np.testing.assert_array_equal(p2, packed)
        np.testing.assert_array_equal(other.decompress(codes, packed), codec.decompress(codes, packed))
    with pytest.raises(ValueError, match="codewords of shape"):
        dataclasses.replace(codec, codewords=codec.codewords[:, :128])


def test_product_codewords_are_reproducible_for_a_seed():
    rng = np.random.default_rng(4)
    x = anisotropic(rng, 1500, 32)
    c = train_centroids(x, 8, 3, 0)
    a, b = (ResidualCodec.fit(c, x, 2, seed=5, min_gain=-np.inf).codewords for _ in range(2))
    np.testing.assert_array_equal(a, b)


def test_codewords_are_kept_only_where_they_pay_for_their_table():
    """A build keeps product codewords when they lower the squared error of the held-out quarter of the residuals
    by ``min_gain`` or more against the bucket grid; fit_report records both errors and the choice. Token-like
    (correlated) residuals clear the default PQ_MIN_GAIN."""
    from gingham.codec.residual import PQ_MIN_GAIN

    rng = np.random.default_rng(9)
    x = anisotropic(rng, 8000, 64)
    c = train_centroids(x, 16, 4, 0)
    codec = ResidualCodec.fit(c, x, 2)
    report = codec.fit_report
    gain = 1 - report["mse_product"] / report["mse_buckets"]
    assert report["kind"] == "product" and codec.codewords is not None and gain >= PQ_MIN_GAIN
    for min_gain, kind in ((gain - 1e-3, "product"), (gain + 1e-3, "buckets")):
        again = ResidualCodec.fit(c, x, 2, min_gain=min_gain)
        assert again.fit_report == {**report, "kind": kind}
        assert (again.codewords is not None) == (kind == "product")
    plain = ResidualCodec.fit(c, x, 2, product=False)
    assert plain.codewords is None and set(plain.fit_report) == {"kind", "mse_buckets"}


def test_too_few_heldout_tokens_keep_the_grid():
    from gingham.codec.residual import PQ_MIN_TOKENS

    rng = np.random.default_rng(2)
    x = anisotropic(rng, PQ_MIN_TOKENS - 1, 32)
    codec = ResidualCodec.fit(train_centroids(x, 8, 3, 0), x, 2, min_gain=-np.inf)
    assert codec.codewords is None and codec.fit_report["kind"] == "buckets"

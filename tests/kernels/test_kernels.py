"""Every kernel against its plain numpy reference, on seeded random shapes and the edge cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.codec.quantizers import decode_lut, fit_buckets
from gingham.kernels import codec as kc
from gingham.kernels import ivf as ki
from gingham.kernels import reference as ref
from gingham.kernels import scoring as ks
from unshipped import kernels as uk
from unshipped import reference as uref

SETTINGS = settings(max_examples=40, deadline=None)


def _codebook(rng, n_c, dim):
    c = rng.standard_normal((n_c, dim)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


@SETTINGS
@given(n=st.integers(0, 200), nbits=st.sampled_from([1, 2, 4]), dim=st.sampled_from([8, 96, 128, 384]),
       code_dtype=st.sampled_from([np.uint8, np.uint16, np.int32]), unit=st.booleans(), seed=st.integers(0, 2**16))
def test_compress_and_decompress(n, nbits, dim, code_dtype, unit, seed):
    rng = np.random.default_rng(seed)
    c = _codebook(rng, 7, dim)
    x = rng.standard_normal((n, dim)).astype(np.float32) * 0.3
    codes = rng.integers(0, 7, n).astype(code_dtype)
    scales = _scales(rng, 7, unit)
    sample = rng.standard_normal((256, dim)) * 0.3
    cutoffs, weights = fit_buckets(sample, nbits, 3)
    cutoffs = cutoffs.astype(np.float32)
    weights = weights.astype(np.float32)
    packed = kc.compress_residuals(x, c, scales, codes, cutoffs, nbits)
    np.testing.assert_array_equal(packed, ref.compress_residuals(x, c, scales, codes, cutoffs, nbits))
    assert packed.shape == (n, dim * nbits // 8) and packed.dtype == np.uint8
    lut = decode_lut(weights, nbits)
    out = kc.decompress(codes, packed, c, scales, lut, False)
    np.testing.assert_allclose(out, ref.decompress(codes, packed, c, scales, lut), rtol=0, atol=1e-6)
    normed = kc.decompress(codes, packed, c, scales, lut, True)
    np.testing.assert_allclose(normed, ref.decompress(codes, packed, c, scales, lut, True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, ref.decompress_with_weights(codes, packed, c, scales, weights, nbits),
                               atol=1e-6)


@SETTINGS
@given(n=st.integers(0, 120), n_c=st.integers(1, 9), n_sub=st.sampled_from([1, 2, 4]), dim=st.sampled_from([8, 96]),
       ties=st.booleans(), seed=st.integers(0, 2**16))
def test_refine_codes(n, n_c, n_sub, dim, ties, seed):
    rng = np.random.default_rng(seed)
    fine = _codebook(rng, n_c * n_sub, dim)
    if ties:  # duplicated sub-centroids: the lowest sub-centroid wins
        fine[1::2] = fine[::2][: len(fine[1::2])]
    x = rng.standard_normal((n, dim)).astype(np.float32)
    coarse = rng.integers(0, n_c, n).astype(np.uint16)
    got = kc.refine_codes(x, coarse, fine, n_sub)
    want = ref.refine_codes(x, coarse, fine, n_sub)
    assert got.dtype == np.int64 and got.shape == (n,)
    assert ((got // n_sub) == coarse).all()
    # float32 vs float64 dot products may flip near-ties: the chosen sub-centroid scores as well as the best
    s = np.einsum("nd,nd->n", x.astype(np.float64), fine[got].astype(np.float64))
    s_want = np.einsum("nd,nd->n", x.astype(np.float64), fine[want].astype(np.float64))
    np.testing.assert_allclose(s, s_want, atol=1e-4)
    if ties and not (n_sub == 1):
        exact = np.einsum("nd,nd->n", x, fine[got]) == np.einsum("nd,nd->n", x, fine[want])
        assert (got[exact & (got != want)] < want[exact & (got != want)]).all()


@SETTINGS
@given(n=st.integers(0, 200), n_out=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_sum_rows(n, n_out, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 16)).astype(np.float32)
    ids = rng.integers(0, n_out, n)
    sums, counts = kc.sum_rows(x, ids, n_out)
    want_sums, want_counts = ref.sum_rows(x, ids, n_out)
    np.testing.assert_allclose(sums, want_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(counts, want_counts)


def test_pack_layout_is_low_bits_first():
    buckets = np.array([[1, 2, 3, 0]])
    assert ref.pack_bits(buckets, 2)[0, 0] == 1 | (2 << 2) | (3 << 4)
    np.testing.assert_array_equal(ref.unpack_bits(ref.pack_bits(buckets, 2), 2), buckets)


def _scales(rng, n_c, unit=False):
    """Per-centroid residual scales: all ones (an index without scales) or spread over [0.25, 4)."""
    if unit:
        return np.ones(n_c, dtype=np.float32)
    return np.exp2(rng.uniform(-2, 2, n_c)).astype(np.float32)


def _ragged(rng, n_docs, max_len, n_c, allow_empty=False):
    lengths = rng.integers(0 if allow_empty else 1, max_len + 1, n_docs)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(0, n_c, int(offsets[-1])).astype(np.uint16)
    return codes, offsets


@SETTINGS
@given(n_docs=st.integers(0, 60), max_len=st.integers(1, 12), n_c=st.integers(1, 20), shift=st.integers(0, 2),
       seed=st.integers(0, 2**16))
def test_build_ivf(n_docs, max_len, n_c, shift, seed):
    rng = np.random.default_rng(seed)
    codes, offsets = _ragged(rng, n_docs, max_len, n_c << shift)  # codes carry sub-centroid bits
    docs, ivf_off = ki.build_ivf(codes, shift, offsets, n_c)
    want_docs, want_off = ref.build_ivf(codes, shift, offsets, n_c)
    np.testing.assert_array_equal(docs, want_docs)
    np.testing.assert_array_equal(ivf_off, want_off)
    assert docs.dtype == np.int32 and ivf_off.dtype == np.int64


@SETTINGS
@given(n_docs=st.integers(1, 60), n_c=st.integers(1, 20), n_qt=st.integers(1, 6), rounds=st.integers(1, 5),
       min_rounds=st.integers(1, 5), min_cands=st.integers(0, 70), use_mask=st.booleans(), seed=st.integers(0, 2**16))
def test_ivf_candidates(n_docs, n_c, n_qt, rounds, min_rounds, min_cands, use_mask, seed):
    rng = np.random.default_rng(seed)
    codes, offsets = _ragged(rng, n_docs, 8, n_c)
    ivf_docs, ivf_off = ki.build_ivf(codes, 0, offsets, n_c)
    ranked = rng.integers(0, n_c, (n_qt, rounds)).astype(np.int64)
    mask = (rng.random(n_docs) < 0.5).astype(np.uint8) if use_mask else np.zeros(0, np.uint8)
    args = (ranked, ivf_docs, ivf_off, mask, n_docs, min_rounds, min_cands)
    np.testing.assert_array_equal(ks.ivf_candidates(*args), ref.ivf_candidates(*args))


@SETTINGS
@given(n_docs=st.integers(0, 40), n_c=st.integers(1, 30), nq=st.integers(1, 8), prune=st.booleans(),
       shift=st.integers(0, 2), n_rows=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_centroid_interaction(n_docs, n_c, nq, prune, shift, n_rows, seed):
    rng = np.random.default_rng(seed)
    codes, offsets = _ragged(rng, n_docs, 10, n_c << shift)
    # n_rows = 0: a row per centroid (no slot); else centroids share n_rows rows through slot
    slot = rng.integers(0, n_rows, n_c).astype(np.int32) if n_rows else np.zeros(0, np.int32)
    rows = n_rows or n_c
    cscores = rng.standard_normal((rows, nq)).astype(np.float32)
    keep = rng.random(rows) < 0.5
    cands = np.sort(rng.choice(max(n_docs, 1), min(n_docs, 15), replace=False)).astype(np.int64)
    got = ks.centroid_interaction(cands, offsets, codes, shift, slot, cscores, keep, prune)
    want = ref.centroid_interaction(cands, offsets, codes, shift, slot, cscores, keep, prune)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if n_rows:  # the slot is the same as scoring every centroid with its row's scores
        dense = ks.centroid_interaction(cands, offsets, codes, shift, np.zeros(0, np.int32), cscores[slot],
                                        keep[slot], prune)
        np.testing.assert_allclose(got, dense, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(n_docs=st.integers(0, 30), nbits=st.sampled_from([1, 2, 4]), normalize=st.booleans(),
       seed=st.integers(0, 2**16))
def test_gather_decompress(n_docs, nbits, normalize, seed):
    rng = np.random.default_rng(seed)
    dim, n_c = 16, 5
    codes, offsets = _ragged(rng, n_docs, 6, n_c)
    c = _codebook(rng, n_c, dim)
    packed = rng.integers(0, 256, (len(codes), dim * nbits // 8)).astype(np.uint8)
    weights = np.sort(rng.standard_normal((dim, 2**nbits)), axis=1).astype(np.float32)
    lut = decode_lut(weights, nbits)
    scales = _scales(rng, n_c)
    docs = rng.permutation(n_docs)[: n_docs // 2].astype(np.int64)
    got, seg = uk.gather_decompress(docs, offsets, codes, packed, c, scales, lut, normalize)
    want, want_seg = ref.gather_decompress(docs, offsets, codes, packed, c, scales, lut, normalize)
    np.testing.assert_array_equal(seg, want_seg)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(n_rows=st.integers(0, 40), dim=st.sampled_from([1, 8, 24, 128]), nq=st.integers(1, 7),
       seed=st.integers(0, 2**16))
def test_dot_rows(n_rows, dim, nq, seed):
    """Every row against every query token, for row counts around the 4-row blocks and odd token counts."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n_rows, dim)).astype(np.float32)
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    got = ks.dot_rows(rows, q)
    assert got.dtype == np.float32 and got.shape == (n_rows, nq) and got.flags.c_contiguous
    np.testing.assert_allclose(got, ref.dot_rows(rows, q), rtol=1e-4, atol=1e-4)


@SETTINGS
@given(n_docs=st.integers(0, 30), nbits=st.sampled_from([1, 2, 4]), normalize=st.booleans(),
       dim=st.sampled_from([8, 16, 24]), nq=st.integers(1, 6), max_len=st.integers(1, 11), seed=st.integers(0, 2**16))
def test_maxsim_decompress(n_docs, nbits, normalize, dim, nq, max_len, seed):
    """The fused exact stage equals MaxSim over the reference's decompressed tokens: documents of every length
    around the kernel's 4-row blocks (empty ones score 0), any order of candidates, every width."""
    rng = np.random.default_rng(seed)
    n_c = 5
    codes, offsets = _ragged(rng, n_docs, max_len, n_c, allow_empty=True)
    c = _codebook(rng, n_c, dim)
    packed = rng.integers(0, 256, (len(codes), dim * nbits // 8)).astype(np.uint8)
    lut = decode_lut(np.sort(rng.standard_normal((dim, 2**nbits)), axis=1).astype(np.float32), nbits)
    scales = _scales(rng, n_c)
    docs = rng.permutation(n_docs)[: max(1, n_docs // 2)].astype(np.int64) if n_docs else np.zeros(0, np.int64)
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    got = ks.maxsim_decompress(docs, offsets, codes, packed, c, scales, lut, normalize, q)
    want = ref.maxsim_decompress(docs, offsets, codes, packed, c, scales, lut, normalize, q)
    assert got.dtype == np.float32 and got.shape == (len(docs),)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.all(got[(offsets[docs + 1] - offsets[docs]) == 0] == 0)


@SETTINGS
@given(n_docs=st.integers(0, 30), n_queries=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_segment_maxsim(n_docs, n_queries, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 6, n_docs)  # empty documents included
    seg = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=seg[1:])
    qlens = rng.integers(1, 5, n_queries)
    q_off = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(qlens, out=q_off[1:])
    scores = rng.standard_normal((int(seg[-1]), int(q_off[-1]))).astype(np.float32)
    want = ref.segment_maxsim(scores, seg, q_off)
    np.testing.assert_allclose(uk.segment_maxsim(scores, seg, q_off), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ks.segment_maxsim_parallel(scores, seg, q_off), want, rtol=1e-5, atol=1e-5)


def test_maxsim_matches_definition():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((4, 8)).astype(np.float32)
    docs = [rng.standard_normal((n, 8)).astype(np.float32) for n in (1, 3, 7)]
    flat = np.concatenate(docs)
    seg = np.array([0, 1, 4, 11], dtype=np.int64)
    got = uk.segment_maxsim(np.ascontiguousarray(flat @ q.T), seg, np.array([0, 4], dtype=np.int64))[0]
    np.testing.assert_allclose(got, [ref.maxsim(q, d) for d in docs], rtol=1e-5)


@SETTINGS
@given(scores=st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]) | st.floats(-5, 5, width=32), max_size=60),
       k=st.integers(1, 80))
def test_topk(scores, k):
    s = np.array(scores, dtype=np.float32)
    got = ks.topk(s, k)
    np.testing.assert_array_equal(got, ref.topk(s, k))  # ties: lower position first; k > n gives n


def test_topk_rows():
    rng = np.random.default_rng(3)
    s = rng.integers(0, 4, (5, 17)).astype(np.float32)  # many ties
    np.testing.assert_array_equal(ks.topk_rows(s, 6), ref.topk_rows(s, 6))
    assert ks.topk_rows(s, 100).shape == (5, 17)


def test_warmup_runs():
    from gingham.kernels import warmup

    warmup()


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_fit_buckets_lowers_error_versus_quantiles(nbits):
    rng = np.random.default_rng(nbits)
    r = rng.laplace(size=(4000, 8)) * 0.1
    c0, w0 = fit_buckets(r, nbits, 0)
    c1, w1 = fit_buckets(r, nbits, 10)

    def mse(c, w):
        b = ref.bucketize(r, c)
        return np.mean((w[np.arange(8)[None, :], b] - r) ** 2)

    assert mse(c1, w1) <= mse(c0, w0) + 1e-12
    assert (np.diff(w1, axis=1) >= 0).all() and (np.diff(c1, axis=1) >= 0).all()


@SETTINGS
@given(n_c=st.integers(1, 50), nq=st.integers(1, 6), rounds=st.integers(1, 60), ties=st.booleans(),
       seed=st.integers(0, 2**16))
def test_rank_centroids(n_c, nq, rounds, ties, seed):
    rng = np.random.default_rng(seed)
    cs = rng.standard_normal((n_c, nq)).astype(np.float32)
    if ties:
        cs = np.round(cs)  # many equal scores: lower centroid id first
    ranked, best = ks.rank_centroids(cs, rounds)
    want_ranked, want_best = ref.rank_centroids(cs, rounds)
    np.testing.assert_array_equal(ranked, want_ranked)
    np.testing.assert_array_equal(best, want_best)


@SETTINGS
@given(n_docs=st.integers(0, 25), nbits=st.sampled_from([1, 2, 4]), dim=st.sampled_from([8, 96, 128]),
       nq=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_lut_maxsim_equals_maxsim_over_decompressed(n_docs, nbits, dim, nq, seed):
    rng = np.random.default_rng(seed)
    n_c = 6
    codes, offsets = _ragged(rng, n_docs, 7, n_c, allow_empty=True)
    c = _codebook(rng, n_c, dim)
    packed = rng.integers(0, 256, (len(codes), dim * nbits // 8)).astype(np.uint8)
    weights = np.sort(rng.standard_normal((dim, 2**nbits)) * 0.1, axis=1).astype(np.float32)
    lut = decode_lut(weights, nbits)
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    np.testing.assert_allclose(uk.query_lut(lut, q), uref.query_lut(lut, q), rtol=1e-4, atol=1e-5)
    docs = rng.permutation(n_docs)[: max(0, n_docs - 3)].astype(np.int64)
    cscores = np.ascontiguousarray(c @ q.T)
    scales = _scales(rng, n_c)
    got = uk.lut_maxsim(docs, offsets, codes, packed, cscores, scales, uk.query_lut(lut, q))
    want = uref.lut_maxsim(docs, offsets, codes, packed, c, scales, lut, q)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

"""Packed-domain scorers (gingham.kernels.packed) against their numpy references and against MaxSim over
decompressed tokens, at nbits 1, 2 and 4, with the bucket grid and with product codewords."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.codec.quantizers import decode_lut
from gingham.kernels import packed as kp
from gingham.kernels import packed_reference as pref
from gingham.kernels import reference as ref
from gingham.kernels import scoring as ks
from unshipped import kernels as uk
from unshipped import reference as uref

SETTINGS = settings(max_examples=40, deadline=None)
NO_NORMS = np.zeros(0, np.float32)  # the kernels decode each token for its norm


def _frozen(a):
    view = a.view()
    view.flags.writeable = False
    return view


def _case(rng, n_docs, max_len, nbits, dim, nq, n_c=7, product=False, code_dtype=np.uint16, use_slot=False):
    """A ragged corpus of packed tokens (empty documents included), its codebook, a query and its centroid scores
    (a row per code, or shared rows reached through a slot, with rows no code uses)."""
    lengths = rng.integers(0, max_len + 1, n_docs)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(0, n_c, int(offsets[-1])).astype(code_dtype)
    packed = rng.integers(0, 256, (len(codes), dim * nbits // 8)).astype(np.uint8)
    fine = rng.standard_normal((n_c, dim)).astype(np.float32)
    fine /= np.linalg.norm(fine, axis=1, keepdims=True)
    scales = np.exp2(rng.uniform(-2, 2, n_c)).astype(np.float32)
    if product:  # 256 free codewords per byte position, as a product quantiser holds them
        lut = (rng.standard_normal((dim * nbits // 8, 256, 8 // nbits)) * 0.1).astype(np.float32)
    else:  # the bucket grid: at nbits 1, each bit of a byte one dimension's bucket
        lut = decode_lut(np.sort(rng.standard_normal((dim, 2**nbits)) * 0.1, axis=1).astype(np.float32), nbits)
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    exact = np.ascontiguousarray(fine @ q.T)
    if use_slot:
        slot = rng.permutation(n_c + 3)[:n_c].astype(np.int32)
        cscores = rng.standard_normal((n_c + 3, nq)).astype(np.float32)  # rows no code reads: noise
        cscores[slot] = exact
    else:
        slot, cscores = np.zeros(0, np.int32), exact
    docs = rng.permutation(n_docs)[: max(1, n_docs - 2)].astype(np.int64) if n_docs else np.zeros(0, np.int64)
    return docs, offsets, codes, packed, cscores, slot, fine, scales, lut, q


@SETTINGS
@given(nbits=st.sampled_from([1, 2, 4]), dim=st.sampled_from([8, 16, 64, 128]), nq=st.integers(1, 40),
       product=st.booleans(), seed=st.integers(0, 2**16))
def test_query_table(nbits, dim, nq, product, seed):
    """Each row is a byte value's residual values dotted with every query token's matching dimensions; the columns
    are padded with zeros to a multiple of LANES."""
    rng = np.random.default_rng(seed)
    *_, lut, q = _case(rng, 0, 1, nbits, dim, nq, product=product)
    got = kp.packed_query_table(lut, q)
    want = pref.packed_query_table(lut, q)
    assert got.dtype == np.float32 and got.shape == (dim * nbits // 8 * 256, kp.table_width(nq))
    assert got.shape[1] % kp.LANES == 0 and got.shape[1] - nq < kp.LANES
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not got[:, nq:].any()
    # the table is the query's view of decoding: byte value v at position p decodes to lut[p, v]
    p, v = dim * nbits // 8 - 1, 200
    np.testing.assert_allclose(got[p * 256 + v, :nq], q[:, p * (8 // nbits):] @ lut[p, v], rtol=1e-5, atol=1e-6)


@SETTINGS
@given(n_docs=st.integers(0, 25), max_len=st.integers(1, 9), nbits=st.sampled_from([1, 2, 4]),
       dim=st.sampled_from([8, 16, 64, 128]), nq=st.integers(1, 36), normalize=st.booleans(), product=st.booleans(),
       use_slot=st.booleans(), code_dtype=st.sampled_from([np.uint8, np.uint16, np.int32]), stored=st.booleans(),
       seed=st.integers(0, 2**16))
def test_maxsim_packed(n_docs, max_len, nbits, dim, nq, normalize, product, use_slot, code_dtype, stored, seed):
    """Equal to its reference and to MaxSim over the decompressed tokens (compiled and reference), within float
    rounding: every nbits, grid and product codes, a row per code or a slot, empty and one-token documents, norms
    decoded per token or given (``stored``)."""
    rng = np.random.default_rng(seed)
    docs, offsets, codes, packed, cscores, slot, fine, scales, lut, q = _case(
        rng, n_docs, max_len, nbits, dim, nq, product=product, code_dtype=code_dtype, use_slot=use_slot)
    table = kp.packed_query_table(lut, q)
    norms = uk.token_inv_norms(codes, packed, fine, scales, lut) if stored else NO_NORMS
    got = kp.maxsim_packed(docs, offsets, codes, packed, cscores, slot, fine, scales, lut, normalize, norms, table, nq)
    assert got.dtype == np.float32 and got.shape == (len(docs),)
    want = pref.maxsim_packed(docs, offsets, codes, packed, cscores, slot, fine, scales, lut, normalize, norms, table,
                              nq)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    decoded = ref.maxsim_decompress(docs, offsets, codes, packed, fine, scales, lut, normalize, q)
    np.testing.assert_allclose(got, decoded, rtol=1e-4, atol=1e-4)
    fused = ks.maxsim_decompress(docs, offsets, codes, packed, fine, scales, lut, normalize, q)
    np.testing.assert_allclose(got, fused, rtol=1e-4, atol=1e-4)
    assert np.all(got[(offsets[docs + 1] - offsets[docs]) == 0] == 0)


@SETTINGS
@given(n_docs=st.integers(0, 25), max_len=st.integers(1, 9), nbits=st.sampled_from([1, 2, 4]),
       dim=st.sampled_from([8, 64, 128]), nq=st.integers(1, 36), normalize=st.booleans(), product=st.booleans(),
       use_slot=st.booleans(), seed=st.integers(0, 2**16))
def test_maxsim_packed_int8(n_docs, max_len, nbits, dim, nq, normalize, product, use_slot, seed):
    """The int8 table: equal to its reference (the integer sums are exact), and within the quantisation bound of
    the float scorer: per query token j, at most n_bytes half-steps of j's scale, times the token's residual scale
    and inverse norm."""
    rng = np.random.default_rng(seed)
    docs, offsets, codes, packed, cscores, slot, fine, scales, lut, q = _case(
        rng, n_docs, max_len, nbits, dim, nq, product=product, use_slot=use_slot)
    table = kp.packed_query_table(lut, q)
    n_bytes = packed.shape[1]
    t8, ts = kp.quantize_table(table, n_bytes)
    args = (docs, offsets, codes, packed, cscores, slot, fine, scales, lut, normalize, NO_NORMS)
    got = kp.maxsim_packed_int8(*args, t8, ts, nq)
    assert got.dtype == np.float32 and got.shape == (len(docs),)
    np.testing.assert_allclose(got, pref.maxsim_packed_int8(*args, t8, ts, nq), rtol=1e-5, atol=1e-5)
    exact = kp.maxsim_packed(*args, table, nq)
    if len(codes):
        decoded = ref.decompress(codes, packed, fine, scales, lut)
        inv = 1.0 / np.linalg.norm(decoded, axis=1) if normalize else np.ones(len(codes))
        worst = float(np.max(scales[codes.astype(np.int64)] * inv))
        bound = worst * n_bytes * 0.5 * float(ts[:nq].sum()) + 1e-4 * (1 + np.abs(exact))
        assert np.all(np.abs(got - exact) <= bound)


@SETTINGS
@given(n=st.integers(0, 60), nbits=st.sampled_from([1, 2, 4]), dim=st.sampled_from([8, 64, 128]),
       product=st.booleans(), seed=st.integers(0, 2**16))
def test_token_inv_norms(n, nbits, dim, product, seed):
    """Each token's inverse norm, as decompress-then-score rescales it (a zero token: 1)."""
    rng = np.random.default_rng(seed)
    _, _, codes, packed, _, _, fine, scales, lut, _ = _case(rng, 1, 1, nbits, dim, 1, product=product)
    codes = rng.integers(0, len(fine), n).astype(np.uint16)
    packed = rng.integers(0, 256, (n, packed.shape[1])).astype(np.uint8)
    if n:
        fine[codes[0]] = 0  # with a zero residual at byte value 0: a zero token
        lut[:, 0] = 0
        packed[0] = 0
        packed[1:, 0] |= 1  # and no other
    got = uk.token_inv_norms(codes, packed, fine, scales, lut)
    assert got.dtype == np.float32 and got.shape == (n,)
    np.testing.assert_allclose(got, uref.token_inv_norms(codes, packed, fine, scales, lut), rtol=1e-5)
    if n:
        assert got[0] == 1
        x = ref.decompress(codes, packed, fine, scales, lut)
        np.testing.assert_allclose(got[1:] * np.linalg.norm(x[1:], axis=1), 1, rtol=1e-5)


@SETTINGS
@given(rows=st.integers(1, 300), width_tiles=st.integers(1, 3), n_bytes=st.sampled_from([1, 16, 64, 192, 400]),
       zero_col=st.booleans(), seed=st.integers(0, 2**16))
def test_quantize_table(rows, width_tiles, n_bytes, zero_col, seed):
    """int8 entries within half a step of the table; a column's largest entry uses every level allowed; the
    levels are few enough that n_bytes entries sum exactly in int16; an all-zero column gets scale 1."""
    rng = np.random.default_rng(seed)
    table = (rng.standard_normal((rows, width_tiles * kp.LANES)) * rng.uniform(0.01, 3)).astype(np.float32)
    if zero_col:
        table[:, -1] = 0
    q, sc = kp.quantize_table(table, n_bytes)
    want_q, want_sc = pref.quantize_table(table, n_bytes)
    np.testing.assert_array_equal(q, want_q)
    np.testing.assert_array_equal(sc, want_sc)
    levels = min(127, 32767 // n_bytes)
    assert q.dtype == np.int8 and np.abs(q.astype(np.int64)).max() <= levels
    assert n_bytes * levels <= np.iinfo(np.int16).max
    assert np.all(np.abs(q * sc[None, :] - table) <= 0.5 * sc[None, :] * (1 + 1e-5))
    live = np.abs(table).max(axis=0) > 0
    assert np.all(np.abs(q[:, live]).max(axis=0) == levels)
    if zero_col:
        assert sc[-1] == 1 and not q[:, -1].any()


def test_int16_sums_do_not_wrap_at_the_widest_tokens():
    """Every byte at the same, largest entry: the int16 lanes hold n_bytes * levels exactly (dim 384 at nbits 4 is
    192 bytes a token; 1,280 dimensions at nbits 4 are 640, where 51 levels are left)."""
    for n_bytes in (192, 640):
        table = np.zeros((n_bytes * 256, kp.LANES), dtype=np.float32)
        table[:, :] = 1.0
        t8, ts = kp.quantize_table(table, n_bytes)
        lut = np.zeros((n_bytes, 256, 2), dtype=np.float32)
        packed = np.full((1, n_bytes), 7, dtype=np.uint8)
        args = (np.array([0], np.int64), np.array([0, 1], np.int64), np.zeros(1, np.uint8), packed,
                np.zeros((1, 1), np.float32), np.zeros(0, np.int32), np.zeros((1, 2 * n_bytes), np.float32),
                np.ones(1, np.float32), lut, False, NO_NORMS)
        got = kp.maxsim_packed_int8(*args, t8, ts, 1)
        np.testing.assert_allclose(got, [n_bytes], rtol=1e-6)
        np.testing.assert_allclose(kp.maxsim_packed(*args, table, 1), [n_bytes], rtol=1e-6)


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_read_only_index_arrays(nbits):
    """An opened index's codes and residuals are read-only memory maps: the scorers take them as they are."""
    rng = np.random.default_rng(nbits)
    docs, offsets, codes, packed, cscores, slot, fine, scales, lut, q = _case(rng, 12, 6, nbits, 32, 5)
    table = kp.packed_query_table(lut, q)
    want = kp.maxsim_packed(docs, offsets, codes, packed, cscores, slot, fine, scales, lut, True, NO_NORMS, table, 5)
    got = kp.maxsim_packed(docs, offsets, _frozen(codes), _frozen(packed), cscores, slot, fine, scales, lut, True,
                           NO_NORMS, table, 5)
    np.testing.assert_array_equal(got, want)
    t8, ts = kp.quantize_table(table, packed.shape[1])
    np.testing.assert_array_equal(
        kp.maxsim_packed_int8(docs, offsets, _frozen(codes), _frozen(packed), cscores, slot, fine, scales, lut, True,
                              NO_NORMS, t8, ts, 5),
        kp.maxsim_packed_int8(docs, offsets, codes, packed, cscores, slot, fine, scales, lut, True, NO_NORMS, t8, ts,
                              5))
    norms = uk.token_inv_norms(_frozen(codes), _frozen(packed), fine, scales, lut)
    np.testing.assert_array_equal(norms, uk.token_inv_norms(codes, packed, fine, scales, lut))


@pytest.mark.parametrize("product", [True, False])
def test_agrees_with_decompress_on_a_real_codec(product):
    """Tokens compressed by the codec at nbits 1 (product codewords, or one-bit buckets: a byte is eight
    dimensions either way): the float scorer gives decompress-then-score's scores and top 10, the int8 one scores
    within a small share of them."""
    from gingham.codec.kmeans import train_centroids
    from gingham.codec.residual import ResidualCodec

    from tests.conftest import anisotropic

    rng = np.random.default_rng(5)
    dim, n_docs, doc_len = 64, 200, 12
    x = anisotropic(rng, n_docs * doc_len, dim)
    codec = ResidualCodec.fit(train_centroids(x, 16, 4, 0), x, 1, normalize=True, product=product, min_gain=0.0)
    assert (codec.codewords is not None) == product
    codes, packed = codec.compress(x)
    assert packed.shape == (len(x), dim // 8)
    offsets = np.arange(n_docs + 1, dtype=np.int64) * doc_len
    q = x[rng.choice(len(x), 8, replace=False)] + 0.05 * rng.standard_normal((8, dim)).astype(np.float32)
    q = np.ascontiguousarray(q, dtype=np.float32)
    docs = np.arange(n_docs, dtype=np.int64)
    lut = codec.lut()
    cscores = np.ascontiguousarray(codec.fine @ q.T)
    table = kp.packed_query_table(lut, q)
    args = (docs, offsets, codes, packed, cscores, np.zeros(0, np.int32), codec.fine, codec.scales, lut, True, NO_NORMS)
    fl = kp.maxsim_packed(*args, table, len(q))
    dec = ks.maxsim_decompress(docs, offsets, codes, packed, codec.fine, codec.scales, lut, True, q)
    np.testing.assert_allclose(fl, dec, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.sort(ks.topk(fl, 10)), np.sort(ks.topk(dec, 10)))
    t8, ts = kp.quantize_table(table, packed.shape[1])
    i8 = kp.maxsim_packed_int8(*args, t8, ts, len(q))
    assert np.abs(i8 - fl).max() < 0.01 * np.abs(fl).max()

"""Exact MaxSim straight from packed residuals: the exact stage of PLAID without decompressing candidates.

A token t of code c with packed bytes v_0..v_{n_bytes-1} stands for ``x = fine[c] + s_c * r`` where byte position p
contributes the residual values ``lut[p, v_p]`` (``8 // nbits`` dimensions: the bucket grid of
:func:`gingham.codec.decode_lut`, or product codewords). Its score against query token j is

    q_j . x = cscores[c, j] + s_c * sum_p table[p * 256 + v_p, j],   table[p * 256 + v, j] = lut[p, v] . q_j[p]

so one per-query table (:func:`packed_query_table`, ``256 x dim x n_q`` multiply-adds, the cost of decoding and
scoring about 256 tokens) turns each token's ``dim x n_q`` multiply-adds into ``n_bytes`` row reads of ``n_q``
values: 16 rows at dim 128 / nbits 1, 32 at nbits 2, 64 at nbits 4. The centroid term ``cscores`` is what candidate
generation already computed (a row per code, or a ``slot`` per code into shared rows, as
:func:`gingham.kernels.centroid_interaction` reads them). At nbits 1 a byte is eight one-bit buckets (the bucket
grid: sign-like bits) or one of 256 product codewords; the kernel reads both the same way, and never materialises
a token as floats.

Unit-length indexes (``normalize``) rescale each token by 1 / ||x||, which no table gives: the kernels compute
||x||^2 from the token's bytes (``dim`` multiply-adds, no stores; the decoder's ``dim x n_q`` product is what the
table saves), so the scores equal decompress-then-score (:func:`gingham.kernels.maxsim_decompress`) up to float
rounding.

Why the first table kernel (:func:`gingham.kernels.lut_maxsim`) was not faster, read from its code and from the
arithmetic at the issue's shapes (query 32 x 128, ~100 tokens per candidate; this machine: AMD EPYC, 32 KiB L1d
and 1 MiB L2 per core), and from the one measurement on record (docs/benchmarks/exact-stage-decode, dim 384):

1. It could not rescale tokens to unit length (it has no norms), so on the indexes users build (unit vectors,
   ``normalize``) it was not an exact stage at all. The recorded variant that computed each norm by decoding the
   token took 41 ms against 30.6 ms for decompress-then-score: the decode it was meant to save came back whole,
   written to memory and read again.
2. It accumulated into a heap array, ``acc[q] += qlut[p, v, q]`` for every byte: a loop of n_q (a run-time count)
   floats with its vector prologue, epilogue and alias checks, and a load and a store of ``acc`` per byte, then a
   conditional store per query token for the running maximum. For 32 query tokens that loop is 2-4 vectors long,
   so the loop overhead is a large share of the work the table was meant to save.
3. Its table is (n_bytes, 256, n_q) float32: 512 KiB at nbits 1, 1 MiB at nbits 2 and 2 MiB at nbits 4 for a
   32-token query at dim 128 (1.9 / 3.7 MB at dim 384, the measured case). A token reads n_bytes random rows of
   it, so from nbits 2 up the rows come from L2 or L3. The record measured it at 21.6 ms with precomputed norms (an
   extra 4 bytes a token, not stored by any index), against 30.6 ms for the decode path of the time and 22.2 ms
   for the faster decode path that followed: about even, even without computing the norm.
4. Its centroid term read ``cscores[code]``, a row per code, while a search holds a row per centroid (or a slot
   into shared rows at large codebooks), so the search's own scores could not be passed in.

The kernels here fix 1, 2 and 4: the norm comes from the bytes with per-dimension lane accumulators (``dim``
multiply-adds, nothing stored), every row read goes into a register block (:data:`LANES` query tokens in local
accumulators, one store per token), and the centroid term is read through ``slot``. Point 3 stays for the float32
table at nbits 2 and 4 (the same size); :func:`maxsim_packed_int8` answers it with an int8 table (per query token
scale, exact int16 sums): a quarter of the bytes (512 KiB at nbits 4, dim 128, 32 tokens: L2 instead of L3) and
half the vector lanes, for an error bounded by ``n_bytes / 2`` quantisation steps per token score. These causes are
read from the code and the record, not profiled anew (the machine was shared); bench/bench_packed_scoring.py
times every scorer, ``lut_maxsim`` included, per candidate on a quiet machine.

Which scorer is faster depends on the CPU's caches and vector width, not only on nbits, so the engine times them
at first use (:mod:`gingham.search.scorer`) instead of fixing a rule. bench/bench_packed_scoring.py measures each
against decompress-then-score per candidate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gingham.kernels.codec import lut_by_row

#: Query tokens scored per pass over a token's bytes: sixteen accumulators in registers (two AVX2 or one AVX-512
#: float32 vector; one AVX2 vector of int16). Tables are padded with zero columns to a multiple of it.
LANES = 16

#: Freedoms of the packed scorers: reassociation and contraction vectorise the sums and fuse multiply-adds; "no
#: NaN" lets the running maxima be vector max instructions (tables, centroid scores and queries are finite).
PACKED_FASTMATH = {"reassoc", "contract", "nsz", "nnan"}


def table_width(n_q: int) -> int:
    """Columns of a query table for ``n_q`` query tokens: the next multiple of :data:`LANES` (at least one)."""
    return max(1, -(-int(n_q) // LANES)) * LANES


@njit(cache=True, nogil=True, fastmath=PACKED_FASTMATH)
def packed_query_table(lut, q):
    """The per-query table: float32 (n_bytes * 256, width), row ``p * 256 + v``, column j the dot product of the
    residual values that byte value v stands for at byte position p (``lut[p, v]``, (n_bytes, 256, per_byte)) with
    query token j's dimensions ``p * per_byte ...``; ``width`` = :func:`table_width` (n_q), columns >= n_q zero.

    Serial and GIL-free (no BLAS threads): per dimension, one scaled query column added to 256 rows, each a run of
    ``width`` contiguous floats. 256 x dim x n_q multiply-adds (1M at dim 128, 32 query tokens).
    """
    n_bytes, n_vals, per_byte = lut.shape
    nq = q.shape[0]
    width = max(1, (nq + LANES - 1) // LANES) * LANES
    qt = np.zeros((q.shape[1], width), dtype=np.float32)  # query columns by dimension, zero-padded
    for j in range(nq):
        for d in range(q.shape[1]):
            qt[d, j] = q[j, d]
    out = np.zeros((n_bytes * n_vals, width), dtype=np.float32)
    for p in range(n_bytes):
        for v in range(n_vals):
            row = out[p * n_vals + v]
            for k in range(per_byte):
                w = lut[p, v, k]
                col = qt[p * per_byte + k]
                for j in range(width):
                    row[j] += w * col[j]
    return out


@njit(cache=True, nogil=True)
def quantize_table(table, n_bytes):
    """``table`` (rows, width) float32 as int8 times a per-column float32 scale: ``(int8 (rows, width), scales
    (width,))`` with ``table[r, j] ~ scales[j] * q[r, j]`` within half a step.

    Each column's largest magnitude maps to ``L = min(127, 32767 // n_bytes)`` steps, so that a token's sum of
    ``n_bytes`` entries fits an int16 exactly (:func:`maxsim_packed_int8`). An all-zero column gets scale 1.
    """
    rows, width = table.shape
    levels = min(127, 32767 // max(1, n_bytes))
    scales = np.ones(width, dtype=np.float32)
    out = np.zeros((rows, width), dtype=np.int8)
    for j in range(width):
        top = np.float32(0.0)
        for r in range(rows):
            top = max(top, abs(table[r, j]))
        if top > 0:
            scales[j] = top / np.float32(levels)
    inv = np.float32(1.0) / scales
    for r in range(rows):
        for j in range(width):
            out[r, j] = np.int8(min(levels, max(-levels, np.rint(table[r, j] * inv[j]))))
    return out, scales


@njit(cache=True, nogil=True, fastmath=PACKED_FASTMATH, inline="always")
def _norm_sq(packed, t, cen, s, lut_rows, n_bytes, per_byte):
    """||cen + s * residual(t)||^2 from token t's bytes, without writing the token anywhere: per-dimension lane
    accumulators for the common widths (eight, four and two dimensions a byte), so that LLVM keeps them in a
    register and sums them once."""
    n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = np.float32(0.0)
    if per_byte == 8:
        for p in range(n_bytes):
            r = p * 256 + packed[t, p]
            b = p * 8
            o0 = cen[b] + s * lut_rows[r, 0]
            o1 = cen[b + 1] + s * lut_rows[r, 1]
            o2 = cen[b + 2] + s * lut_rows[r, 2]
            o3 = cen[b + 3] + s * lut_rows[r, 3]
            o4 = cen[b + 4] + s * lut_rows[r, 4]
            o5 = cen[b + 5] + s * lut_rows[r, 5]
            o6 = cen[b + 6] + s * lut_rows[r, 6]
            o7 = cen[b + 7] + s * lut_rows[r, 7]
            n0 += o0 * o0
            n1 += o1 * o1
            n2 += o2 * o2
            n3 += o3 * o3
            n4 += o4 * o4
            n5 += o5 * o5
            n6 += o6 * o6
            n7 += o7 * o7
    elif per_byte == 4:
        for p in range(n_bytes):
            r = p * 256 + packed[t, p]
            b = p * 4
            o0 = cen[b] + s * lut_rows[r, 0]
            o1 = cen[b + 1] + s * lut_rows[r, 1]
            o2 = cen[b + 2] + s * lut_rows[r, 2]
            o3 = cen[b + 3] + s * lut_rows[r, 3]
            n0 += o0 * o0
            n1 += o1 * o1
            n2 += o2 * o2
            n3 += o3 * o3
    elif per_byte == 2:
        p = 0
        while p + 4 <= n_bytes:  # four bytes (eight dimensions) a step
            b = p * 2
            r0 = p * 256 + packed[t, p]
            r1 = (p + 1) * 256 + packed[t, p + 1]
            r2 = (p + 2) * 256 + packed[t, p + 2]
            r3 = (p + 3) * 256 + packed[t, p + 3]
            o0 = cen[b] + s * lut_rows[r0, 0]
            o1 = cen[b + 1] + s * lut_rows[r0, 1]
            o2 = cen[b + 2] + s * lut_rows[r1, 0]
            o3 = cen[b + 3] + s * lut_rows[r1, 1]
            o4 = cen[b + 4] + s * lut_rows[r2, 0]
            o5 = cen[b + 5] + s * lut_rows[r2, 1]
            o6 = cen[b + 6] + s * lut_rows[r3, 0]
            o7 = cen[b + 7] + s * lut_rows[r3, 1]
            n0 += o0 * o0
            n1 += o1 * o1
            n2 += o2 * o2
            n3 += o3 * o3
            n4 += o4 * o4
            n5 += o5 * o5
            n6 += o6 * o6
            n7 += o7 * o7
            p += 4
        for pp in range(p, n_bytes):
            r = pp * 256 + packed[t, pp]
            o0 = cen[pp * 2] + s * lut_rows[r, 0]
            o1 = cen[pp * 2 + 1] + s * lut_rows[r, 1]
            n0 += o0 * o0
            n1 += o1 * o1
    else:
        for p in range(n_bytes):
            r = p * 256 + packed[t, p]
            for k in range(per_byte):
                o = cen[p * per_byte + k] + s * lut_rows[r, k]
                n0 += o * o
    return ((n0 + n1) + (n2 + n3)) + ((n4 + n5) + (n6 + n7))


@njit(cache=True, nogil=True, fastmath=PACKED_FASTMATH, inline="always")
def _inv_norm_packed(packed, t, cen, s, lut_rows, n_bytes, per_byte):
    """1 / ||x|| of token t (1 for a zero token), as :func:`gingham.kernels.codec.inv_norm` of its decoded row."""
    n = _norm_sq(packed, t, cen, s, lut_rows, n_bytes, per_byte)
    return np.float32(1.0) / np.sqrt(n) if n > 0 else np.float32(1.0)


@njit(cache=True, nogil=True, fastmath=PACKED_FASTMATH, inline="always")
def _sum_rows16(table, packed, t, n_bytes, n_vals, jc, acc):
    """``acc[jc:jc + 16] = sum_p table[p * n_vals + packed[t, p], jc:jc + 16]``: sixteen local accumulators, which
    LLVM keeps in vector registers across the byte loop (one store at the end, not one per byte)."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0.0)
    a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = np.float32(0.0)
    for p in range(n_bytes):
        row = table[p * n_vals + packed[t, p]]
        a0 += row[jc]
        a1 += row[jc + 1]
        a2 += row[jc + 2]
        a3 += row[jc + 3]
        a4 += row[jc + 4]
        a5 += row[jc + 5]
        a6 += row[jc + 6]
        a7 += row[jc + 7]
        a8 += row[jc + 8]
        a9 += row[jc + 9]
        a10 += row[jc + 10]
        a11 += row[jc + 11]
        a12 += row[jc + 12]
        a13 += row[jc + 13]
        a14 += row[jc + 14]
        a15 += row[jc + 15]
    acc[jc], acc[jc + 1], acc[jc + 2], acc[jc + 3] = a0, a1, a2, a3
    acc[jc + 4], acc[jc + 5], acc[jc + 6], acc[jc + 7] = a4, a5, a6, a7
    acc[jc + 8], acc[jc + 9], acc[jc + 10], acc[jc + 11] = a8, a9, a10, a11
    acc[jc + 12], acc[jc + 13], acc[jc + 14], acc[jc + 15] = a12, a13, a14, a15


@njit(cache=True, nogil=True, inline="always")
def _sum_rows16_int(table, packed, t, n_bytes, n_vals, jc, acc):
    """:func:`_sum_rows16` over an int8 table into int16 lanes (exact: :func:`quantize_table` bounds the sum)."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.int16(0)
    a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = np.int16(0)
    for p in range(n_bytes):
        row = table[p * n_vals + packed[t, p]]
        a0 = np.int16(a0 + row[jc])
        a1 = np.int16(a1 + row[jc + 1])
        a2 = np.int16(a2 + row[jc + 2])
        a3 = np.int16(a3 + row[jc + 3])
        a4 = np.int16(a4 + row[jc + 4])
        a5 = np.int16(a5 + row[jc + 5])
        a6 = np.int16(a6 + row[jc + 6])
        a7 = np.int16(a7 + row[jc + 7])
        a8 = np.int16(a8 + row[jc + 8])
        a9 = np.int16(a9 + row[jc + 9])
        a10 = np.int16(a10 + row[jc + 10])
        a11 = np.int16(a11 + row[jc + 11])
        a12 = np.int16(a12 + row[jc + 12])
        a13 = np.int16(a13 + row[jc + 13])
        a14 = np.int16(a14 + row[jc + 14])
        a15 = np.int16(a15 + row[jc + 15])
    acc[jc], acc[jc + 1], acc[jc + 2], acc[jc + 3] = a0, a1, a2, a3
    acc[jc + 4], acc[jc + 5], acc[jc + 6], acc[jc + 7] = a4, a5, a6, a7
    acc[jc + 8], acc[jc + 9], acc[jc + 10], acc[jc + 11] = a8, a9, a10, a11
    acc[jc + 12], acc[jc + 13], acc[jc + 14], acc[jc + 15] = a12, a13, a14, a15


@njit(cache=True, nogil=True, fastmath=PACKED_FASTMATH)
def maxsim_packed(docs, doc_offsets, codes, packed, cscores, slot, fine, scales, lut, normalize, table, n_q):
    """Exact MaxSim of one query (``n_q`` tokens) against each of ``docs`` from their packed residuals, equal to
    :func:`gingham.kernels.maxsim_decompress` up to float rounding. Returns float32 (len(docs),); an empty document
    scores 0.

    cscores: (n_rows, >= n_q) float32, row-major: each code's (sub-)centroid ``fine[c]`` scored against the query
    tokens, row ``slot[c]`` (int32), or row ``c`` when ``slot`` is empty; every code of ``docs`` must have its exact
    row. fine, scales, lut: as :func:`maxsim_decompress` takes them (read only for the norms when ``normalize``).
    table: :func:`packed_query_table` (lut, q). Serial and GIL-free: a search splits one query's candidates over
    threads (:mod:`gingham.search.parallel`).
    """
    n_bytes = packed.shape[1]
    n_vals = lut.shape[1]
    per_byte = lut.shape[2]
    width = table.shape[1]
    lut_rows = lut_by_row(lut)
    use_slot = slot.shape[0] > 0
    acc = np.zeros(width, dtype=np.float32)
    best = np.empty(width, dtype=np.float32)
    out = np.empty(docs.shape[0], dtype=np.float32)
    for i in range(docs.shape[0]):
        d = docs[i]
        lo, hi = doc_offsets[d], doc_offsets[d + 1]
        if lo == hi:
            out[i] = 0.0
            continue
        best[:] = -np.inf
        for t in range(lo, hi):
            c = np.int64(codes[t])
            row = cscores[np.int64(slot[c]) if use_slot else c]
            s = scales[c]
            inv = _inv_norm_packed(packed, t, fine[c], s, lut_rows, n_bytes, per_byte) if normalize \
                else np.float32(1.0)
            for jc in range(0, width, LANES):
                _sum_rows16(table, packed, t, n_bytes, n_vals, jc, acc)
            for j in range(n_q):
                best[j] = max(best[j], (row[j] + s * acc[j]) * inv)
        total = np.float32(0.0)
        for j in range(n_q):
            total += best[j]
        out[i] = total
    return out


@njit(cache=True, nogil=True, fastmath=PACKED_FASTMATH)
def maxsim_packed_int8(docs, doc_offsets, codes, packed, cscores, slot, fine, scales, lut, normalize, table8,
                       table_scales, n_q):
    """:func:`maxsim_packed` over an int8 table (:func:`quantize_table`): a token's residual term against query
    token j is ``table_scales[j] * (exact int16 sum of its bytes' entries)``. Each entry is within half a step of
    the float table, so a token's score is within ``s_c * inv * n_bytes * table_scales[j] / 2`` of the float
    scorer's (plus rounding), and a document's MaxSim within the sum of that over j."""
    n_bytes = packed.shape[1]
    n_vals = lut.shape[1]
    per_byte = lut.shape[2]
    width = table8.shape[1]
    lut_rows = lut_by_row(lut)
    use_slot = slot.shape[0] > 0
    acc = np.zeros(width, dtype=np.int16)
    best = np.empty(width, dtype=np.float32)
    out = np.empty(docs.shape[0], dtype=np.float32)
    for i in range(docs.shape[0]):
        d = docs[i]
        lo, hi = doc_offsets[d], doc_offsets[d + 1]
        if lo == hi:
            out[i] = 0.0
            continue
        best[:] = -np.inf
        for t in range(lo, hi):
            c = np.int64(codes[t])
            row = cscores[np.int64(slot[c]) if use_slot else c]
            s = scales[c]
            inv = _inv_norm_packed(packed, t, fine[c], s, lut_rows, n_bytes, per_byte) if normalize \
                else np.float32(1.0)
            for jc in range(0, width, LANES):
                _sum_rows16_int(table8, packed, t, n_bytes, n_vals, jc, acc)
            for j in range(n_q):
                best[j] = max(best[j], (row[j] + s * (table_scales[j] * np.float32(acc[j]))) * inv)
        total = np.float32(0.0)
        for j in range(n_q):
            total += best[j]
        out[i] = total
    return out

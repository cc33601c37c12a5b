"""Exact MaxSim straight from packed residuals: the exact stage of PLAID without decompressing candidates.

A token t of code c with packed bytes v_0..v_{n_bytes-1} stands for ``x = fine[c] + s_c * r`` where byte position p
contributes the residual values ``lut[p, v_p]`` (``8 // nbits`` dimensions: the bucket grid of
:func:`gingham.codec.quantizers.decode_lut`, or product codewords). Its score against query token j is

    q_j . x = cscores[c, j] + s_c * sum_p table[p * 256 + v_p, j],   table[p * 256 + v, j] = lut[p, v] . q_j[p]

so one per-query table (:func:`packed_query_table`, ``256 x dim x n_q`` multiply-adds, the cost of decoding and
scoring about 256 tokens) turns each token's ``dim x n_q`` multiply-adds into ``n_bytes`` row reads of ``n_q``
values: 16 rows at dim 128 / nbits 1, 32 at nbits 2, 64 at nbits 4. The centroid term ``cscores`` is what candidate
generation already computed (a row per code, or a ``slot`` per code into shared rows, as
:func:`gingham.kernels.centroid_interaction` reads them). At nbits 1 a byte is eight one-bit buckets (the bucket
grid: sign-like bits) or one of 256 product codewords; the kernel reads both the same way, and materialises no
token as floats (but one decoded row for a norm it is not given, below).

Unit-length indexes (``normalize``) rescale each token by 1 / ||x||, which no table gives. Given per-token inverse
norms (``inv_norms``, which bench/unshipped_kernels.py's ``token_inv_norms`` computes) the kernels read one float a
token; without them they decode the token into one row in L1 for its norm
(:func:`gingham.kernels.codec.decompress_row`, as decompress-then-score does), and save only the product with the
query. That decode is the larger share of decompress-then-score's time (docs/benchmarks/exact-stage-decode: 14.4 ms
of decode against 8.2 ms of product), so a stored inverse norm per token (2 bytes as float16: 16 residual bytes + 2
code bytes + 2 at nbits 1, dim 128) is what lets the packed scorers skip it; no index stores one yet. A first look
on this machine, taken while it was loaded (load average about 9 on 2 cores: ratios within one process only, not
figures; 4,096 synthetic tokens, dim 128, 32 query tokens, one thread), time per token relative to
decompress-then-score at the same nbits, float32 / int8 table:
nbits 1 0.81 / 0.71 decoding for the norm, 0.39 / 0.31 with norms given; nbits 2 1.38 / 0.93 and 0.81 / 0.50;
nbits 4 2.37 / 1.60 and 1.80 / 1.04 (the float32 table spills to L3). Against decompress at nbits 2 (the issue's
bar of 3x), nbits 1 with norms given came to 2.7x (float32) and 3.4x (int8), without them 1.3x / 1.5x.
bench/bench_packed_scoring.py takes the figures on a quiet machine. Either way the scores equal
decompress-then-score (:func:`gingham.kernels.maxsim_decompress`) up to float rounding (int8: within its bound).

Why the first table kernel (``lut_maxsim``, now in bench/unshipped_kernels.py) was not faster, read from its code
and from the arithmetic at the issue's shapes (query 32 x 128, ~100 tokens per candidate; this machine: AMD EPYC,
32 KiB L1d and 1 MiB L2 per core), and from the one measurement on record (docs/benchmarks/exact-stage-decode,
dim 384):

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

The kernels here fix 2 and 4, and 1 as far as the index allows (see above: given norms, or a decode per token);
the rows of a block of tokens are summed byte position by byte position
(:func:`_sum_rows`: vector adds into the rows of an L1-resident block, which do not wait on each other), and the
centroid term is read through ``slot``. Point 3 stays for the float32
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

from gingham.kernels.codec import decompress_row, inv_norm, lut_by_row

#: Tables are padded with zero columns to a multiple of this many query tokens (one AVX-512 float32 vector, one
#: AVX2 vector of int16), so that the row sums have no scalar remainder.
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


#: Tokens whose table rows are summed together, byte position by byte position: each token's sums are a row of a
#: small block in L1, so consecutive additions go to different rows and never wait on each other.
BLOCK = 32


@njit(cache=True, nogil=True, fastmath=PACKED_FASTMATH, inline="always")
def _sum_rows(table, packed, t0, nb, n_bytes, n_vals, blk):
    """``blk[r] = sum_p table[p * n_vals + packed[t0 + r, p]]`` for the ``nb`` tokens from ``t0``: byte position
    outside, tokens inside, each addition a run of ``width`` contiguous floats (vector instructions). Summing one
    token's bytes into sixteen scalar accumulators instead gave scalar adds (16 per row read: LLVM does not
    vectorise accumulators carried around a loop), and runs of a constant 16 were unrolled into scalar adds too
    (the table and the block may alias, as far as LLVM knows); this loop gets a run-time alias check and vector
    adds (read in this machine's assembly, not timed: at 32 columns, 8 floats or 16 int16 an instruction; from 64
    columns, AVX-512's 16 floats or 32 int16)."""
    width = blk.shape[1]
    for r in range(nb):
        for j in range(width):
            blk[r, j] = 0
    for p in range(n_bytes):
        base = p * n_vals
        for r in range(nb):
            src = table[base + packed[t0 + r, p]]
            dst = blk[r]
            for j in range(width):
                dst[j] += src[j]


@njit(cache=True, nogil=True, fastmath=PACKED_FASTMATH)
def maxsim_packed(docs, doc_offsets, codes, packed, cscores, slot, fine, scales, lut, normalize, inv_norms, table,
                  n_q):
    """Exact MaxSim of one query (``n_q`` tokens) against each of ``docs`` from their packed residuals, equal to
    :func:`gingham.kernels.maxsim_decompress` up to float rounding. Returns float32 (len(docs),); an empty document
    scores 0.

    cscores: (n_rows, >= n_q) float32, row-major: each code's (sub-)centroid ``fine[c]`` scored against the query
    tokens, row ``slot[c]`` (int32), or row ``c`` when ``slot`` is empty; every code of ``docs`` must have its exact
    row. fine, scales, lut: as :func:`maxsim_decompress` takes them (read only for the norms when ``normalize``).
    inv_norms: float32 (n_tokens,), each token's 1 / ||x|| when the caller has them (no index stores them yet), or
    empty: then each token is decoded for its norm, which costs about what decompress-then-score spends decoding
    it (the larger share of that scorer's time at nbits 1 and 2), so only the product is saved.
    table: :func:`packed_query_table` (lut, q). Serial and GIL-free: a search splits one query's candidates over
    threads (:mod:`gingham.search.parallel`).
    """
    n_bytes = packed.shape[1]
    n_vals = lut.shape[1]
    per_byte = lut.shape[2]
    lut_rows = lut_by_row(lut)
    use_slot = slot.shape[0] > 0
    use_norms = inv_norms.shape[0] > 0
    blk = np.zeros((BLOCK, table.shape[1]), dtype=np.float32)
    xrow = np.empty((1, fine.shape[1]), dtype=np.float32)  # a token decoded for its norm
    best = np.empty(table.shape[1], dtype=np.float32)
    out = np.empty(docs.shape[0], dtype=np.float32)
    for i in range(docs.shape[0]):
        d = docs[i]
        lo, hi = doc_offsets[d], doc_offsets[d + 1]
        if lo == hi:
            out[i] = 0.0
            continue
        best[:] = -np.inf
        for t0 in range(lo, hi, BLOCK):
            nb = min(BLOCK, hi - t0)
            _sum_rows(table, packed, t0, nb, n_bytes, n_vals, blk)
            for r in range(nb):
                t = t0 + r
                c = np.int64(codes[t])
                row = cscores[np.int64(slot[c]) if use_slot else c]
                s = scales[c]
                inv = np.float32(1.0)
                if normalize:
                    if use_norms:
                        inv = inv_norms[t]
                    else:  # the token decoded into one row in L1, as decompress-then-score decodes it
                        decompress_row(xrow, 0, t, codes, packed, fine, scales, lut_rows, False)
                        inv = inv_norm(xrow[0])
                acc = blk[r]
                for j in range(n_q):
                    best[j] = max(best[j], (row[j] + s * acc[j]) * inv)
        total = np.float32(0.0)
        for j in range(n_q):
            total += best[j]
        out[i] = total
    return out


@njit(cache=True, nogil=True, inline="always")
def _sum_rows_int(table, packed, t0, nb, n_bytes, n_vals, blk):
    """:func:`_sum_rows` over an int8 table into int16 rows (exact: :func:`quantize_table` bounds the sums)."""
    width = blk.shape[1]
    for r in range(nb):
        for j in range(width):
            blk[r, j] = 0
    for p in range(n_bytes):
        base = p * n_vals
        for r in range(nb):
            src = table[base + packed[t0 + r, p]]
            dst = blk[r]
            for j in range(width):
                dst[j] = np.int16(dst[j] + src[j])


@njit(cache=True, nogil=True, fastmath=PACKED_FASTMATH)
def maxsim_packed_int8(docs, doc_offsets, codes, packed, cscores, slot, fine, scales, lut, normalize, inv_norms,
                       table8, table_scales, n_q):
    """:func:`maxsim_packed` over an int8 table (:func:`quantize_table`): a token's residual term against query
    token j is ``table_scales[j] * (exact int16 sum of its bytes' entries)``. Each entry is within half a step of
    the float table, so a token's score is within ``s_c * inv * n_bytes * table_scales[j] / 2`` of the float
    scorer's (plus rounding), and a document's MaxSim within the sum of that over j."""
    n_bytes = packed.shape[1]
    n_vals = lut.shape[1]
    per_byte = lut.shape[2]
    lut_rows = lut_by_row(lut)
    use_slot = slot.shape[0] > 0
    use_norms = inv_norms.shape[0] > 0
    blk = np.zeros((BLOCK, table8.shape[1]), dtype=np.int16)
    xrow = np.empty((1, fine.shape[1]), dtype=np.float32)  # a token decoded for its norm
    best = np.empty(table8.shape[1], dtype=np.float32)
    out = np.empty(docs.shape[0], dtype=np.float32)
    for i in range(docs.shape[0]):
        d = docs[i]
        lo, hi = doc_offsets[d], doc_offsets[d + 1]
        if lo == hi:
            out[i] = 0.0
            continue
        best[:] = -np.inf
        for t0 in range(lo, hi, BLOCK):
            nb = min(BLOCK, hi - t0)
            _sum_rows_int(table8, packed, t0, nb, n_bytes, n_vals, blk)
            for r in range(nb):
                t = t0 + r
                c = np.int64(codes[t])
                row = cscores[np.int64(slot[c]) if use_slot else c]
                s = scales[c]
                inv = np.float32(1.0)
                if normalize:
                    if use_norms:
                        inv = inv_norms[t]
                    else:  # the token decoded into one row in L1, as decompress-then-score decodes it
                        decompress_row(xrow, 0, t, codes, packed, fine, scales, lut_rows, False)
                        inv = inv_norm(xrow[0])
                acc = blk[r]
                for j in range(n_q):
                    best[j] = max(best[j], (row[j] + s * (table_scales[j] * np.float32(acc[j]))) * inv)
        total = np.float32(0.0)
        for j in range(n_q):
            total += best[j]
        out[i] = total
    return out

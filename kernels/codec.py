"""Codec kernels: sub-centroid assignment, residual quantisation + bit packing, decompression, per-code sums.

Packing layout (shared with :mod:`gingham.kernels.reference`): a token's ``dim`` bucket codes of ``nbits`` bits
each are packed little-end first, ``8 // nbits`` dimensions per byte; dimension ``j`` lives in byte
``j // (8 // nbits)`` at bit offset ``(j % (8 // nbits)) * nbits``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def refine_codes(x, coarse, fine, n_sub):
    """Token codes with sub-centroids: ``coarse[i] * n_sub + j`` for the sub-centroid j (highest dot product; ties
    to the lowest j) among the ``n_sub`` rows ``fine[coarse[i] * n_sub : (coarse[i] + 1) * n_sub]``.

    x: (n, dim) float32; coarse: (n,) integer centroid ids; fine: (n_centroids * n_sub, dim) float32.
    Returns int64 (n,).
    """
    n, dim = x.shape
    out = np.empty(n, dtype=np.int64)
    for i in prange(n):
        base = np.int64(coarse[i]) * n_sub
        best = base
        best_score = -np.inf
        for j in range(n_sub):
            s = np.float32(0.0)
            for d in range(dim):
                s += x[i, d] * fine[base + j, d]
            if s > best_score:
                best_score = s
                best = base + j
        out[i] = best
    return out


@njit(cache=True, nogil=True)
def sum_rows(x, ids, n_out):
    """Per id, the float64 sum of the rows of ``x`` (n, dim) carrying it, and their count.

    Returns (sums float64 (n_out, dim), counts int64 (n_out,)). Serial: one pass, no shared slots.
    """
    n, dim = x.shape
    sums = np.zeros((n_out, dim), dtype=np.float64)
    counts = np.zeros(n_out, dtype=np.int64)
    for i in range(n):
        k = ids[i]
        counts[k] += 1
        for d in range(dim):
            sums[k, d] += x[i, d]
    return sums, counts


@njit(parallel=True, cache=True, nogil=True)
def compress_residuals(x, centroids, scales, codes, cutoffs, nbits):
    """Quantise the scaled residual ``(x - centroids[codes]) / scales[codes]`` per dimension with ``cutoffs`` and
    pack the bucket ids.

    x: (n, dim) float32; centroids: (n_centroids, dim) float32; scales: (n_centroids,) float32 > 0, each
    centroid's residual scale (the residual is multiplied by ``1 / scale`` in float32); codes: (n,) integer
    centroid ids; cutoffs: (dim, 2**nbits - 1) float32, ascending per row; bucket b of dimension d holds scaled
    residuals r with ``cutoffs[d, b-1] <= r < cutoffs[d, b]``. Returns uint8 (n, dim * nbits // 8).
    """
    n, dim = x.shape
    per_byte = 8 // nbits
    n_bytes = dim // per_byte
    n_cut = cutoffs.shape[1]
    out = np.zeros((n, n_bytes), dtype=np.uint8)
    for i in prange(n):
        c = codes[i]
        inv = np.float32(1.0) / scales[c]
        for byte in range(n_bytes):
            packed = 0
            for slot in range(per_byte):
                d = byte * per_byte + slot
                r = (x[i, d] - centroids[c, d]) * inv
                b = 0
                while b < n_cut and r >= cutoffs[d, b]:
                    b += 1
                packed |= b << (slot * nbits)
            out[i, byte] = packed
    return out


@njit(parallel=True, cache=True, nogil=True)
def decompress(codes, packed, centroids, scales, lut, normalize):
    """Rebuild token vectors: ``centroids[codes] + scales[codes] * decoded residuals``, rescaled to unit length if ``normalize``
    (for indexes whose input tokens were unit vectors: it removes the radial part of the quantisation error).

    lut: (n_bytes, 256, 8 // nbits) float32 from :func:`gingham.codec.quantizers.decode_lut`: the residual values
    that byte value v at byte position p stands for. Returns float32 (n, dim).
    """
    n = codes.shape[0]
    out = np.empty((n, centroids.shape[1]), dtype=np.float32)
    lut_rows = lut_by_row(lut)
    for i in prange(n):
        decompress_row(out, i, i, codes, packed, centroids, scales, lut_rows, normalize)
    return out


#: Floating-point freedoms of the row decoder: reassociation lets LLVM vectorise the squared-norm sum, contraction
#: fuses multiply-adds. No approximate functions: the square root stays exact. Every path decodes through this one
#: function (checked bit for bit on XQuAD-R's indexes: exhaustive search's ``decompress`` and the exact stage's
#: ``gather_decompress`` of the time, now in bench/unshipped_kernels.py, gave the same vectors; the exact stage,
#: ``maxsim_decompress``, folds the rescale into its scores instead).
ROW_FASTMATH = {"reassoc", "contract", "nsz"}


@njit(cache=True, nogil=True, fastmath=ROW_FASTMATH, inline="always")
def inv_norm(o):
    """1 / ||o|| (float32), or 1 for a zero row: the factor that rescales a decoded token to unit length. Inlined
    into its callers: as a call, the exact stage ran 3-4% slower at dim 128."""
    norm = np.float32(0.0)
    for j in range(o.shape[0]):
        norm += o[j] * o[j]
    return np.float32(1.0) / np.sqrt(norm) if norm > 0 else np.float32(1.0)


@njit(cache=True, nogil=True)
def lut_by_row(lut):
    """``lut`` (n_bytes, 256, per_byte) viewed as (n_bytes * 256, per_byte): row ``byte * 256 + v``. Taken once per
    call by the kernels that decode rows (reshaping inside :func:`decompress_row`, once per token, made nbits-4
    decoding 1.6x slower)."""
    return lut.reshape(lut.shape[0] * lut.shape[1], lut.shape[2])


@njit(cache=True, nogil=True, fastmath=ROW_FASTMATH)
def decompress_row(out, row, t, codes, packed, centroids, scales, lut_rows, normalize):
    """Decompress token ``t`` (its code and packed bytes) into ``out[row]``: the (sub-)centroid plus the scaled
    residual values its bytes decode to through ``lut_rows`` (:func:`lut_by_row`), rescaled to unit length if
    ``normalize``."""
    c = codes[t]
    s = scales[c]
    per_byte = lut_rows.shape[1]
    o = out[row]
    cen = centroids[c]
    n_bytes = packed.shape[1]
    # the common widths spelt out, so that LLVM sees fixed-length runs: measured against one loop for every width
    # (numba caches cleared between the two), XQuAD-R's nbits-4 default p50 25 vs 31 ms, nbits 2 7.6 vs 7.7 ms
    if per_byte == 4:
        for byte in range(n_bytes):
            r = byte * 256 + packed[t, byte]
            b = byte * 4
            o[b] = cen[b] + s * lut_rows[r, 0]
            o[b + 1] = cen[b + 1] + s * lut_rows[r, 1]
            o[b + 2] = cen[b + 2] + s * lut_rows[r, 2]
            o[b + 3] = cen[b + 3] + s * lut_rows[r, 3]
    elif per_byte == 2:
        for byte in range(n_bytes):
            r = byte * 256 + packed[t, byte]
            b = byte * 2
            o[b] = cen[b] + s * lut_rows[r, 0]
            o[b + 1] = cen[b + 1] + s * lut_rows[r, 1]
    else:
        for byte in range(n_bytes):
            r = byte * 256 + packed[t, byte]
            b = byte * per_byte
            for slot in range(per_byte):
                o[b + slot] = cen[b + slot] + s * lut_rows[r, slot]
    if normalize:
        inv = inv_norm(o)
        for j in range(o.shape[0]):
            o[j] *= inv

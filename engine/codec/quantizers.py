"""Fitting the residual quantisers of :class:`gingham.codec.residual.ResidualCodec`: sub-centroids inside each
centroid's cluster, per-centroid residual scales, per-dimension buckets (PLAID's quantiles refined by Lloyd-Max) and
product-quantiser codewords, with the table that decodes either (:func:`decode_lut`).
"""

from __future__ import annotations

import numpy as np

from gingham.codec.stored import codes_dtype, stored_codewords, stored_precision
from gingham.kernels.codec import refine_codes, sum_rows

#: Most sub-centroids per centroid (2 spare code bits).
MAX_SUB_BITS = 2


def spare_code_bits(n_centroids: int) -> int:
    """Bits of the code type of ``n_centroids`` centroids that centroid ids leave unused (at most MAX_SUB_BITS)."""
    dtype = codes_dtype(n_centroids)
    width = dtype.itemsize * 8 - (1 if dtype.kind == "i" else 0)
    return max(0, min(MAX_SUB_BITS, width - max(1, int(n_centroids - 1).bit_length())))


def train_sub_centroids(x: np.ndarray, coarse: np.ndarray, centroids: np.ndarray, n_sub: int, niters: int,
                        seed: int, exclude: np.ndarray | None = None, block: int = 1 << 18) -> np.ndarray:
    """Spherical k-means with ``n_sub`` clusters inside every centroid's cluster, over tokens ``x`` (n, dim; may
    be memory-mapped: read in blocks of ``block`` rows) and their centroid ids ``coarse``, leaving out the rows
    ``exclude``. Returns L2-normalised float32 (n_centroids * n_sub, dim), rounded to float16 precision (their
    on-disk type): rows ``c * n_sub + j``.

    Sub-centroids start from members spread over the cluster (stratified by a seeded random order); a cluster
    with fewer members than ``n_sub`` keeps its centroid for the rest, and an emptied sub-centroid keeps its place.
    """
    k, dim = centroids.shape
    coarse = np.asarray(coarse, dtype=np.int64)
    keep = np.ones(len(coarse), dtype=bool)
    if exclude is not None:
        keep[exclude] = False
    rng = np.random.default_rng(seed)
    # members of each cluster together, shuffled, excluded rows last (never picked)
    order = np.lexsort((rng.random(len(coarse)), ~keep, coarse))
    counts = np.bincount(coarse[keep], minlength=k)
    starts = np.concatenate([[0], np.cumsum(np.bincount(coarse, minlength=k))[:-1]])
    fine = np.repeat(centroids, n_sub, axis=0).astype(np.float32)
    for j in range(n_sub):
        ok = counts > j
        pick = starts[ok] + (j * counts[ok]) // n_sub
        fine[np.flatnonzero(ok) * n_sub + j] = x[order[pick]]
    for _ in range(niters):
        sums = np.zeros((k * n_sub, dim), dtype=np.float64)
        n = np.zeros(k * n_sub, dtype=np.int64)
        for lo in range(0, len(coarse), block):
            rows = np.flatnonzero(keep[lo:lo + block]) + lo
            xb = np.ascontiguousarray(x[rows], dtype=np.float32)
            codes = refine_codes(xb, coarse[rows], fine, n_sub)
            s, c = sum_rows(xb, codes, k * n_sub)
            sums += s
            n += c
        norms = np.linalg.norm(sums, axis=1)
        ok = (n > 0) & (norms > 0)
        fine[ok] = (sums[ok] / norms[ok, None]).astype(np.float32)
    return stored_precision(fine)  # so that the build and every reader use the same vectors


def decode_lut(weights: np.ndarray, nbits: int) -> np.ndarray:
    """Per byte position and byte value, the residual values the byte encodes: float32 (n_bytes, 256, 8//nbits)."""
    dim = weights.shape[0]
    per_byte = 8 // nbits
    n_bytes = dim // per_byte
    values = np.arange(256)
    shifts = np.arange(per_byte) * nbits
    buckets = (values[:, None] >> shifts[None, :]) & ((1 << nbits) - 1)  # (256, per_byte)
    dims = np.arange(dim).reshape(n_bytes, per_byte)  # (n_bytes, per_byte)
    lut = weights[dims[:, None, :], buckets[None, :, :]]  # (n_bytes, 256, per_byte)
    return np.ascontiguousarray(lut, dtype=np.float32)


def fit_buckets(residuals: np.ndarray, nbits: int, lloyd_iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension scalar quantiser of ``residuals`` (n, dim): (cutoffs (dim, 2**nbits-1), values (dim, 2**nbits)).

    A residual r of dimension d falls in bucket b when ``cutoffs[d, b-1] <= r < cutoffs[d, b]``.
    """
    n_buckets = 2**nbits
    cols = np.sort(residuals, axis=0).T  # (dim, n), each row ascending
    dim, n = cols.shape
    prefix = np.zeros((dim, n + 1))
    np.cumsum(cols, axis=1, out=prefix[:, 1:])
    cutoffs = np.quantile(cols, np.arange(1, n_buckets) / n_buckets, axis=1).T
    weights = np.quantile(cols, (np.arange(n_buckets) + 0.5) / n_buckets, axis=1).T
    rows = np.arange(dim)[:, None]
    for _ in range(lloyd_iters):
        # bucket b of dimension d holds the sorted entries [edges[d, b], edges[d, b+1])
        inner = np.stack([np.searchsorted(cols[d], cutoffs[d], side="left") for d in range(dim)])
        edges = np.concatenate([np.zeros((dim, 1), np.int64), inner, np.full((dim, 1), n)], axis=1)
        counts = np.diff(edges, axis=1)
        sums = prefix[rows, edges[:, 1:]] - prefix[rows, edges[:, :-1]]
        weights = np.where(counts > 0, sums / np.maximum(counts, 1), weights)
        weights = np.sort(weights, axis=1)
        cutoffs = (weights[:, :-1] + weights[:, 1:]) / 2
    return cutoffs, weights


#: Pseudo-count of the shrinkage of per-centroid residual scales towards 1 (the global scale): a centroid with n
#: sample tokens keeps the fraction ``n / (n + SCALE_PRIOR)`` of its log-scale.
SCALE_PRIOR = 8.0

#: Smallest scale (relative to the global one), so that a cluster whose sample tokens sit on its centroid still
#: quantises the residuals of other tokens sensibly.
MIN_SCALE = 1e-3


def residual_scales(x: np.ndarray, codes: np.ndarray, centroids: np.ndarray,
                    prior: float = SCALE_PRIOR) -> np.ndarray:
    """Per-centroid residual scales (float32) from tokens ``x`` and their centroid ids.

    A centroid's scale is its root mean square residual norm over the global one, shrunk towards 1 in log space:
    ``exp(n / (n + prior) * log(rms_c / rms))`` for a centroid with n tokens (``prior`` > 0), at least
    :data:`MIN_SCALE`. Centroids without tokens get 1.
    """
    if not prior > 0:
        raise ValueError(f"prior must be > 0, got {prior!r}")
    n_c = centroids.shape[0]
    sq = np.zeros(n_c, dtype=np.float64)
    for lo in range(0, len(x), 1 << 16):
        block = np.asarray(x[lo:lo + (1 << 16)], dtype=np.float32)
        c = codes[lo:lo + (1 << 16)]
        r = block - centroids[c]
        sq += np.bincount(c, weights=np.einsum("ij,ij->i", r, r), minlength=n_c)
    counts = np.bincount(codes, minlength=n_c).astype(np.float64)
    total = counts.sum()
    if total == 0 or sq.sum() <= 0:
        return np.ones(n_c, dtype=np.float32)
    glob = sq.sum() / total
    ratio = np.maximum(sq / np.maximum(counts, 1) / glob, MIN_SCALE**2)
    log_scale = 0.5 * np.log(ratio) * counts / (counts + prior)
    return np.maximum(np.exp(log_scale), MIN_SCALE).astype(np.float32)


#: Lloyd iterations of the product codewords (:func:`train_codewords`).
PQ_NITERS = 12


def train_codewords(residuals: np.ndarray, weights: np.ndarray, nbits: int, niters: int = PQ_NITERS) -> np.ndarray:
    """Product-quantiser codewords for scaled ``residuals`` (n, dim): float32 (dim * nbits // 8, 256, 8 // nbits),
    rounded to their stored precision (:func:`stored_codewords`).

    Byte position p's 256 codewords quantise the residuals' sub-vectors over dimensions ``p * (8 // nbits)``
    onwards. They start as the grid of the per-dimension bucket values ``weights`` (:func:`decode_lut`) and take
    ``niters`` Lloyd steps, every position at once: faiss assigns each sub-vector its nearest codeword, then each
    codeword moves to the mean of its sub-vectors (one that none chose stays). A Lloyd step never raises the
    squared error on the residuals it is fitted on, so the codewords fit them at least as well as the grid.
    """
    cw = decode_lut(np.asarray(weights, dtype=np.float32), nbits).copy()  # (n_bytes, 256, per_byte)
    n_bytes, ksub, dsub = cw.shape
    x = np.ascontiguousarray(residuals, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n_bytes * dsub:
        raise ValueError(f"residuals of shape {x.shape} for codewords of dim {n_bytes * dsub}")
    parts = x.reshape(len(x), n_bytes, dsub)
    base = np.arange(n_bytes, dtype=np.int64) * ksub
    for _ in range(niters if len(x) else 0):
        codes = product_quantizer(cw).compute_codes(x).reshape(len(x), n_bytes)
        idx = (codes.astype(np.int64) + base).ravel()  # (token, position) -> position * 256 + codeword
        counts = np.bincount(idx, minlength=n_bytes * ksub)
        sums = np.stack([np.bincount(idx, weights=parts[:, :, j].ravel(), minlength=n_bytes * ksub)
                         for j in range(dsub)], axis=1)
        flat = cw.reshape(n_bytes * ksub, dsub)
        used = counts > 0
        flat[used] = sums[used] / counts[used, None]
    return stored_codewords(cw)


def validation_rows(n: int, seed: int) -> np.ndarray:
    """The quarter of ``n`` held-out tokens (sorted positions, ``seed``-ed) that :meth:`ResidualCodec.fit` leaves
    out of the product codewords' fit, to judge them, and on which a build measures its reconstruction error."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:n // 4])


def quantised_mse(residuals: np.ndarray, codewords: np.ndarray) -> float:
    """Mean squared error per token of ``residuals`` (n, dim) quantised to their nearest ``codewords`` (a grid from
    :func:`decode_lut` or product codewords; the nearest grid entry is the bucket a residual falls in)."""
    if len(residuals) == 0:
        return 0.0
    x = np.ascontiguousarray(residuals, dtype=np.float32)
    pq = product_quantizer(codewords)
    return float(np.mean(np.sum((pq.decode(pq.compute_codes(x)) - x) ** 2, axis=1)))


def product_quantizer(codewords: np.ndarray):
    """A faiss ProductQuantizer holding ``codewords`` (n_bytes, 256, per_byte): its ``compute_codes`` gives, per
    byte position, the id of the nearest codeword of that position's sub-vector."""
    import faiss

    n_bytes, ksub, dsub = codewords.shape
    pq = faiss.ProductQuantizer(n_bytes * dsub, n_bytes, 8)
    faiss.copy_array_to_vector(np.ascontiguousarray(codewords, dtype=np.float32).ravel(), pq.centroids)
    return pq

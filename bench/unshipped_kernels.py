"""Kernels the engine does not ship: alternatives that benches time against the shipped ones, kept so that their
records can be rerun.

- :func:`gather_decompress` and :func:`segment_maxsim`: the exact stage as it was before
  :func:`gingham.kernels.maxsim_decompress` (decode every candidate token into one block, one matrix product,
  then MaxSim per document); bench/bench_exact_stage.py times them (docs/benchmarks/exact-stage-decode).
- :func:`lut_maxsim` and its per-query table :func:`query_lut`: the first kernel that scored from packed residuals;
  :mod:`gingham.kernels.packed` says why it lost, bench/bench_packed_scoring.py times it.
- :func:`token_inv_norms`: each token's inverse norm, what an index would store for the packed scorers to skip a
  decode per token (no index stores it); bench/bench_packed_scoring.py gives it to them, and the packed scorers'
  tests use it for their ``inv_norms`` input.

Same rules as ``kernels/``: pure numba functions over numpy arrays, each with a plain numpy reference
(bench/unshipped_reference.py) and a test against it (tests/kernels/). Scripts in bench/ import this module by
name (bench/ is on their ``sys.path``); tests load it by path (tests/kernels/unshipped.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gingham.kernels.codec import decompress_row, inv_norm, lut_by_row
from gingham.kernels.scoring import pair_maxsim


@njit(cache=True, nogil=True)
def gather_decompress(docs, doc_offsets, codes, packed, centroids, scales, lut, normalize):
    """Decompress the tokens of ``docs`` into one flat block (unit-length rows if ``normalize``).

    Returns (vectors float32 (n_tokens, dim), seg_offsets int64 (len(docs) + 1,)) where document ``docs[i]`` owns
    rows ``seg_offsets[i]:seg_offsets[i+1]``.
    """
    n = docs.shape[0]
    seg = np.empty(n + 1, dtype=np.int64)
    seg[0] = 0
    for i in range(n):
        d = docs[i]
        seg[i + 1] = seg[i] + doc_offsets[d + 1] - doc_offsets[d]
    out = np.empty((seg[n], centroids.shape[1]), dtype=np.float32)
    lut_rows = lut_by_row(lut)
    row = 0
    for i in range(n):
        d = docs[i]
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            decompress_row(out, row, t, codes, packed, centroids, scales, lut_rows, normalize)
            row += 1
    return out, seg


@njit(cache=True, nogil=True)
def segment_maxsim(scores, seg_offsets, q_offsets):
    """MaxSim of every (query, document) pair from a token-by-query-token score block, on one thread.

    scores: (n_doc_tokens, n_query_tokens) float32, row t = one document token against every query token of every
    query in the batch; seg_offsets: (n_docs + 1,) int64 over rows; q_offsets: (n_queries + 1,) int64 over
    columns. Returns float32 (n_queries, n_docs); an empty document scores 0. The engine runs
    :func:`gingham.kernels.segment_maxsim_parallel`, the same over numba's threads.
    """
    n_docs = seg_offsets.shape[0] - 1
    n_queries = q_offsets.shape[0] - 1
    out = np.zeros((n_queries, n_docs), dtype=np.float32)
    for d in range(n_docs):
        for qi in range(n_queries):
            out[qi, d] = pair_maxsim(scores, seg_offsets[d], seg_offsets[d + 1], q_offsets[qi], q_offsets[qi + 1])
    return out


def query_lut(lut: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The per-query table of :func:`lut_maxsim`: float32 (n_bytes, 256, n_query_tokens).

    Entry [p, v, j] is the dot product of the residual values byte value v encodes at byte position p with query
    token j's matching dimensions. One batched matrix product: (n_bytes, 256, per_byte) @ (n_bytes, per_byte, n_q).
    """
    n_bytes, _, per_byte = lut.shape
    q_parts = q.reshape(q.shape[0], n_bytes, per_byte).transpose(1, 2, 0)  # (n_bytes, per_byte, n_q)
    return np.ascontiguousarray(np.matmul(lut, q_parts), dtype=np.float32)


@njit(cache=True, nogil=True)
def lut_maxsim(docs, doc_offsets, codes, packed, cscores, scales, qlut):
    """Exact MaxSim of one query against ``docs`` straight from the packed residuals (implicit decompression).

    A token t scores ``cscores[codes[t], q] + scales[codes[t]] * sum_p qlut[p, packed[t, p], q]`` against query
    token q: the centroid's score plus the residual's, read from a per-query table that holds, for every byte
    position p and byte value v, the dot product of the residual values v encodes with q's matching dimensions.
    Tokens are not rescaled to unit length (use :func:`gather_decompress` for normalised indexes).
    qlut: (n_bytes, 256, n_query_tokens) float32. Returns float32 (len(docs),).
    """
    nq = cscores.shape[1]
    n_bytes = packed.shape[1]
    out = np.zeros(docs.shape[0], dtype=np.float32)
    acc = np.empty(nq, dtype=np.float32)
    best = np.empty(nq, dtype=np.float32)
    for i in range(docs.shape[0]):
        d = docs[i]
        lo = doc_offsets[d]
        hi = doc_offsets[d + 1]
        if hi == lo:
            continue
        best[:] = -np.inf
        for t in range(lo, hi):
            c = codes[t]
            acc[:] = 0
            for p in range(n_bytes):
                v = packed[t, p]
                for q in range(nq):
                    acc[q] += qlut[p, v, q]
            s = scales[c]
            for q in range(nq):
                a = cscores[c, q] + s * acc[q]
                if a > best[q]:
                    best[q] = a
        total = np.float32(0.0)
        for q in range(nq):
            total += best[q]
        out[i] = total
    return out


@njit(cache=True, nogil=True)
def token_inv_norms(codes, packed, fine, scales, lut):
    """Each token's 1 / ||x|| (1 for a zero token) in float32, decoded once (the ``inv_norms`` of
    :func:`gingham.kernels.maxsim_packed`: what an index would store per token for the packed scorers to skip the
    decode)."""
    n = codes.shape[0]
    out = np.empty(n, dtype=np.float32)
    xrow = np.empty((1, fine.shape[1]), dtype=np.float32)
    lut_rows = lut_by_row(lut)
    for t in range(n):
        decompress_row(xrow, 0, t, codes, packed, fine, scales, lut_rows, False)
        out[t] = inv_norm(xrow[0])
    return out

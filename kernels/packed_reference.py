"""Plain numpy references of the packed-domain scorers (:mod:`gingham.kernels.packed`), written for clarity, not
speed. Tests compare the kernels to these, and these to MaxSim over decompressed tokens
(:func:`gingham.kernels.reference.maxsim_decompress`)."""

from __future__ import annotations

import numpy as np

from gingham.kernels.packed import LANES


def packed_query_table(lut, q):
    """Row ``p * 256 + v``, column j: ``lut[p, v] . q[j, p * per_byte : (p + 1) * per_byte]`` (float64 products),
    zero columns up to a multiple of LANES."""
    n_bytes, n_vals, per_byte = lut.shape
    nq = q.shape[0]
    width = max(1, -(-nq // LANES)) * LANES
    parts = q.astype(np.float64).reshape(nq, n_bytes, per_byte)
    out = np.zeros((n_bytes * n_vals, width), dtype=np.float32)
    out[:, :nq] = np.einsum("pvk,jpk->pvj", lut.astype(np.float64), parts).reshape(n_bytes * n_vals, nq)
    return out


def quantize_table(table, n_bytes):
    levels = min(127, 32767 // max(1, n_bytes))
    top = np.abs(table).max(axis=0) if len(table) else np.zeros(table.shape[1], np.float32)
    scales = np.where(top > 0, top / np.float32(levels), np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(table * (np.float32(1.0) / scales)[None, :]), -levels, levels).astype(np.int8)
    return q, scales


def _token_terms(t, codes, packed, cscores, slot, fine, scales, lut, normalize, n_q, inv_norms=()):
    """(centroid scores (n_q,), residual scale, 1 / norm) of token t, in float64 from its decoded vector (or
    ``inv_norms[t]`` when given)."""
    n_bytes, _, per_byte = lut.shape
    c = int(codes[t])
    row = int(slot[c]) if len(slot) else c
    x = fine[c].astype(np.float64) + float(scales[c]) * np.concatenate(
        [lut[p, packed[t, p]].astype(np.float64) for p in range(n_bytes)])
    norm = np.linalg.norm(x)
    inv = 1.0 / norm if (normalize and norm > 0) else 1.0
    if normalize and len(inv_norms):
        inv = float(inv_norms[t])
    return cscores[row, :n_q].astype(np.float64), float(scales[c]), inv


def maxsim_packed(docs, doc_offsets, codes, packed, cscores, slot, fine, scales, lut, normalize, inv_norms, table,
                  n_q):
    """Per document: the sum over query tokens of the best ``(cscores[row] + s * sum_p table[p * 256 + v_p]) / norm``
    over its tokens (float64)."""
    n_bytes = packed.shape[1]
    out = np.zeros(len(docs), dtype=np.float32)
    for i, d in enumerate(docs):
        scores = []
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            cs, s, inv = _token_terms(t, codes, packed, cscores, slot, fine, scales, lut, normalize, n_q, inv_norms)
            rows = np.arange(n_bytes) * 256 + packed[t].astype(np.int64)
            resid = table[rows, :n_q].astype(np.float64).sum(axis=0)
            scores.append((cs + s * resid) * inv)
        if scores:
            out[i] = np.max(scores, axis=0).sum()
    return out


def maxsim_packed_int8(docs, doc_offsets, codes, packed, cscores, slot, fine, scales, lut, normalize, inv_norms,
                       table8, table_scales, n_q):
    """:func:`maxsim_packed` with the residual term ``table_scales[j] * (integer sum of the int8 entries)``."""
    n_bytes = packed.shape[1]
    out = np.zeros(len(docs), dtype=np.float32)
    for i, d in enumerate(docs):
        scores = []
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            cs, s, inv = _token_terms(t, codes, packed, cscores, slot, fine, scales, lut, normalize, n_q, inv_norms)
            rows = np.arange(n_bytes) * 256 + packed[t].astype(np.int64)
            isum = table8[rows, :n_q].astype(np.int64).sum(axis=0)
            scores.append((cs + s * table_scales[:n_q].astype(np.float64) * isum) * inv)
        if scores:
            out[i] = np.max(scores, axis=0).sum()
    return out

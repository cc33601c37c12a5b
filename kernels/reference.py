"""Plain numpy references of every kernel, written for clarity, not speed. Tests compare the kernels to these."""

from __future__ import annotations

import numpy as np


def nearest_centroids(x, centroids_t):
    """Reference of ``gingham.codec.residual.assign`` (faiss): highest dot product, ties to the lowest id."""
    return np.argmax(x.astype(np.float64) @ centroids_t.astype(np.float64), axis=1).astype(np.int64)


def refine_codes(x, coarse, fine, n_sub):
    coarse = np.asarray(coarse, dtype=np.int64)
    cand = fine.reshape(-1, n_sub, fine.shape[1])[coarse].astype(np.float64)  # (n, n_sub, dim)
    return coarse * n_sub + np.argmax(np.einsum("nsd,nd->ns", cand, x.astype(np.float64)), axis=1)


def sum_rows(x, ids, n_out):
    sums = np.zeros((n_out, x.shape[1]))
    np.add.at(sums, ids, x.astype(np.float64))
    return sums, np.bincount(ids, minlength=n_out).astype(np.int64)


def bucketize(residuals, cutoffs):
    """Bucket id of each residual entry: number of the dimension's cutoffs that are <= the value."""
    return np.stack(
        [np.searchsorted(cutoffs[d], residuals[:, d], side="right") for d in range(residuals.shape[1])], axis=1
    )


def pack_bits(buckets, nbits):
    per_byte = 8 // nbits
    n, dim = buckets.shape
    grouped = buckets.reshape(n, dim // per_byte, per_byte).astype(np.uint16)
    shifts = (np.arange(per_byte) * nbits).astype(np.uint16)
    return (grouped << shifts).sum(axis=2).astype(np.uint8)


def unpack_bits(packed, nbits):
    per_byte = 8 // nbits
    shifts = np.arange(per_byte) * nbits
    vals = (packed[:, :, None].astype(np.int64) >> shifts) & ((1 << nbits) - 1)
    return vals.reshape(packed.shape[0], packed.shape[1] * per_byte)


def compress_residuals(x, centroids, scales, codes, cutoffs, nbits):
    inv = (np.float32(1.0) / scales[codes].astype(np.float32))[:, None]
    residuals = (x - centroids[codes]) * inv
    return pack_bits(bucketize(residuals, cutoffs), nbits)


def decompress_with_weights(codes, packed, centroids, scales, weights, nbits):
    """Decompression straight from the bucket values ``weights`` (dim, 2**nbits), no lookup table."""
    buckets = unpack_bits(packed, nbits)
    dims = np.arange(centroids.shape[1])
    return (centroids[codes] + scales[codes][:, None] * weights[dims[None, :], buckets]).astype(np.float32)


def decompress(codes, packed, centroids, scales, lut, normalize=False):
    n_bytes, _, per_byte = lut.shape
    out = centroids[codes].astype(np.float32).copy()
    s = scales[codes].astype(np.float32)[:, None]
    for p in range(n_bytes):
        out[:, p * per_byte:(p + 1) * per_byte] += s * lut[p, packed[:, p]]
    if normalize and len(out):
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-30)
    return out


def build_ivf(codes, shift, doc_offsets, n_centroids):
    lists = [set() for _ in range(n_centroids)]
    for d in range(len(doc_offsets) - 1):
        for c in codes[doc_offsets[d]:doc_offsets[d + 1]]:
            lists[int(c) >> shift].add(d)
    docs = [sorted(s) for s in lists]
    offsets = np.zeros(n_centroids + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in docs])
    flat = np.array([d for s in docs for d in s], dtype=np.int32)
    return flat, offsets


def ivf_candidates(ranked, ivf_docs, ivf_offsets, doc_mask, n_docs, min_rounds, min_candidates):
    found = set()
    for r in range(ranked.shape[1]):
        if r >= min_rounds and len(found) >= min_candidates:
            break
        for c in set(ranked[:, r].tolist()):
            docs = ivf_docs[ivf_offsets[c]:ivf_offsets[c + 1]].tolist()
            found.update(d for d in docs if not len(doc_mask) or doc_mask[d])
    return np.array(sorted(found), dtype=np.int64)


def centroid_interaction(cands, doc_offsets, codes, shift, slot, cscores, keep, prune):
    out = np.zeros(len(cands), dtype=np.float32)
    for i, d in enumerate(cands):
        doc_codes = codes[doc_offsets[d]:doc_offsets[d + 1]].astype(np.int64) >> shift
        if len(slot):
            doc_codes = slot[doc_codes].astype(np.int64)
        if prune:
            doc_codes = doc_codes[keep[doc_codes]]
        if len(doc_codes):
            out[i] = cscores[doc_codes].max(axis=0).sum()
    return out


def gather_decompress(docs, doc_offsets, codes, packed, centroids, scales, lut, normalize=False):
    rows = np.concatenate([np.arange(doc_offsets[d], doc_offsets[d + 1]) for d in docs] or [np.zeros(0, np.int64)])
    seg = np.zeros(len(docs) + 1, dtype=np.int64)
    seg[1:] = np.cumsum([doc_offsets[d + 1] - doc_offsets[d] for d in docs])
    return decompress(codes[rows], packed[rows], centroids, scales, lut, normalize), seg


def maxsim(query, doc):
    """MaxSim of one query (n_q, dim) against one document (n_d, dim); an empty document scores 0."""
    if len(doc) == 0:
        return np.float32(0.0)
    return np.float32((query.astype(np.float64) @ doc.astype(np.float64).T).max(axis=1).sum())


def dot_rows(rows, q):
    return (rows.astype(np.float64) @ q.astype(np.float64).T).astype(np.float32)


def maxsim_decompress(docs, doc_offsets, codes, packed, centroids, scales, lut, normalize, q):
    """MaxSim of ``q`` against each document of ``docs`` over its decompressed tokens (float64 products)."""
    out = np.zeros(len(docs), dtype=np.float32)
    for i, d in enumerate(docs):
        vecs, _ = gather_decompress(np.array([d]), doc_offsets, codes, packed, centroids, scales, lut, normalize)
        out[i] = maxsim(q, vecs)
    return out


def segment_maxsim(scores, seg_offsets, q_offsets):
    out = np.zeros((len(q_offsets) - 1, len(seg_offsets) - 1), dtype=np.float32)
    for d in range(len(seg_offsets) - 1):
        block = scores[seg_offsets[d]:seg_offsets[d + 1]]
        if len(block) == 0:
            continue
        for q in range(len(q_offsets) - 1):
            out[q, d] = block[:, q_offsets[q]:q_offsets[q + 1]].max(axis=0).sum()
    return out


def topk(scores, k):
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64)))
    return order[:k].astype(np.int64)


def topk_rows(scores, k):
    return np.stack([topk(row, k) for row in scores]) if len(scores) else np.zeros((0, k), np.int64)


def rank_centroids(cscores, n_rounds):
    r = min(n_rounds, cscores.shape[0])
    ranked = np.stack([np.lexsort((np.arange(cscores.shape[0]), -col))[:r] for col in cscores.T]).astype(np.int64)
    return ranked, cscores.max(axis=1).astype(np.float32)

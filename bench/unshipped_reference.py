"""Plain numpy references of the kernels the engine does not ship (bench/unshipped_kernels.py), written for
clarity, not speed. Tests compare the kernels to these; :func:`gingham.kernels.reference.gather_decompress` and
:func:`gingham.kernels.reference.segment_maxsim` stay with the shipped references, which use them."""

from __future__ import annotations

import numpy as np

from gingham.kernels.reference import decompress, maxsim


def query_lut(lut, q):
    """Per byte position p, byte value v and query token j: the residual values of v dotted with q's dims."""
    n_bytes, _, per_byte = lut.shape
    qr = q.reshape(q.shape[0], n_bytes, per_byte)
    return np.einsum("pvs,jps->pvj", lut.astype(np.float64), qr.astype(np.float64)).astype(np.float32)


def lut_maxsim(docs, doc_offsets, codes, packed, centroids, scales, lut, q):
    """MaxSim of q against the decompressed tokens of each document in ``docs``."""
    out = np.zeros(len(docs), dtype=np.float32)
    for i, d in enumerate(docs):
        rows = slice(doc_offsets[d], doc_offsets[d + 1])
        out[i] = maxsim(q, decompress(codes[rows], packed[rows], centroids, scales, lut))
    return out


def token_inv_norms(codes, packed, fine, scales, lut):
    x = np.concatenate([fine[int(c)].astype(np.float64)[None] for c in codes] or [np.zeros((0, fine.shape[1]))])
    if len(codes):
        x = x + scales[codes.astype(np.int64)].astype(np.float64)[:, None] * np.concatenate(
            [lut[p, packed[:, p]].astype(np.float64) for p in range(packed.shape[1])], axis=1)
    norms = np.linalg.norm(x, axis=1)
    return np.where(norms > 0, 1.0 / np.maximum(norms, 1e-300), 1.0).astype(np.float32)

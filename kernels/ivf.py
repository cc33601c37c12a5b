"""Inverted-list construction: centroid -> sorted unique document numbers, as a flat array plus offsets."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def build_ivf(codes, shift, doc_offsets, n_centroids):
    """Inverted lists of the centroids ``codes >> shift`` grouped into documents by ``doc_offsets``.

    codes: (n_tokens,) token codes, whose centroid id is ``code >> shift`` (the low ``shift`` bits name a
    sub-centroid); doc_offsets: (n_docs + 1,) int64, document d owns tokens
    ``doc_offsets[d]:doc_offsets[d+1]``. Returns (ivf_docs int32, ivf_offsets int64 (n_centroids + 1,)):
    centroid c lists ``ivf_docs[ivf_offsets[c]:ivf_offsets[c+1]]``, ascending and unique.
    """
    n_docs = doc_offsets.shape[0] - 1
    last = np.full(n_centroids, -1, dtype=np.int64)
    counts = np.zeros(n_centroids + 1, dtype=np.int64)
    for d in range(n_docs):
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            c = codes[t] >> shift
            if last[c] != d:
                last[c] = d
                counts[c + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    docs = np.empty(offsets[-1], dtype=np.int32)
    last[:] = -1
    for d in range(n_docs):
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            c = codes[t] >> shift
            if last[c] != d:
                last[c] = d
                docs[fill[c]] = d
                fill[c] += 1
    return docs, offsets

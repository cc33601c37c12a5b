"""Structural checks of an index's arrays, beyond checksums: what a reader relies on to never read out of bounds."""

from __future__ import annotations

import numpy as np

from gingham.errors import IndexCorruptError
from gingham.kernels.ivf import build_ivf


def check_arrays(ix, n_centroids: int) -> None:
    """Raise :class:`IndexCorruptError` if offsets, codes or inverted lists are inconsistent."""
    offsets = np.asarray(ix.doc_offsets)
    if offsets[0] != 0 or (np.diff(offsets) <= 0).any():
        raise IndexCorruptError("doc_offsets must start at 0 and strictly increase (every document has tokens)")
    if offsets[-1] != len(ix.codes) or len(ix.codes) != len(ix.residuals):
        raise IndexCorruptError("codes, residuals and doc_offsets disagree on the number of tokens")
    if len(ix.codes) and int(np.max(ix.codes)) >= n_centroids:
        raise IndexCorruptError("a token's centroid id is out of range")
    docs, ivf_offsets = build_ivf(np.asarray(ix.codes), offsets, n_centroids)
    if not (np.array_equal(docs, ix.ivf_docs) and np.array_equal(ivf_offsets, ix.ivf_offsets)):
        raise IndexCorruptError("the inverted lists do not match the stored codes")

"""Structural checks of an index, beyond checksums: what a reader relies on to never read out of bounds."""

from __future__ import annotations

import numpy as np

from gingham.errors import IndexCorruptError
from gingham.kernels.ivf import build_ivf


def check_arrays(ix, n_centroids: int, where: str = "", n_codes: int | None = None) -> None:
    """Raise :class:`IndexCorruptError` if offsets, codes or inverted lists of one segment are inconsistent."""
    offsets = np.asarray(ix.doc_offsets)
    if offsets[0] != 0 or (np.diff(offsets) <= 0).any():
        raise IndexCorruptError(f"{where}doc_offsets must start at 0 and strictly increase")
    if offsets[-1] != len(ix.codes) or len(ix.codes) != len(ix.residuals):
        raise IndexCorruptError(f"{where}codes, residuals and doc_offsets disagree on the number of tokens")
    if len(ix.codes) and int(np.max(ix.codes)) >= (n_codes or n_centroids):
        raise IndexCorruptError(f"{where}a token's centroid id is out of range")
    docs, ivf_offsets = build_ivf(np.asarray(ix.codes), ix.shift, offsets, n_centroids)
    if not (np.array_equal(docs, ix.ivf_docs) and np.array_equal(ivf_offsets, ix.ivf_offsets)):
        raise IndexCorruptError(f"{where}the inverted lists do not match the stored codes")


def check_snapshot(snap) -> None:
    """Every segment consistent, ids unique among live documents, counts as the manifest records."""
    seen = set()
    for seg, meta in zip(snap.segments, snap.manifest["segments"]):
        where = f"segment {seg.name}: "
        check_arrays(seg.arrays, snap.codec.n_centroids, where, snap.codec.n_codes)
        if seg.n_docs != meta["n_docs"] or seg.n_tokens != meta["n_tokens"]:
            raise IndexCorruptError(f"{where}holds {seg.n_docs} docs / {seg.n_tokens} tokens, manifest says "
                                    f"{meta['n_docs']} / {meta['n_tokens']}")
        if len(seg.ids) != seg.n_docs:
            raise IndexCorruptError(f"{where}has {len(seg.ids)} ids for {seg.n_docs} documents")
        if seg.deleted is not None and len(seg.deleted) != seg.n_docs:
            raise IndexCorruptError(f"{where}deletion mask has the wrong length")
        live = seg.live_mask()
        for pos, i in enumerate(seg.ids.to_list()):
            if live[pos]:
                if i in seen:
                    raise IndexCorruptError(f"{where}document id {i!r} is live in two places")
                seen.add(i)

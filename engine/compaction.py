"""Compaction: rewrite the live documents of every segment into one segment, out of core."""

from __future__ import annotations

import numpy as np

from gingham import progress
from gingham.ids import DocIds, pack_strings, unpack_string
from gingham.kernels.ivf import build_ivf

#: Tokens copied per step (bounds the memory compaction needs beyond the new segment's offsets and ids).
COPY_BLOCK_TOKENS = 1 << 20


def merge_segments(snap, writer, name: str, show_progress=None) -> tuple[int, int]:
    """Write segment ``name`` holding every live document of ``snap``, in position order, into ``writer``.

    Codes and residuals are streamed through memory-mapped output files. Returns (n_docs, n_tokens).
    """
    plans = []
    n_docs = n_tokens = 0
    for seg in snap.segments:
        live = np.flatnonzero(seg.live_mask())
        lengths = np.diff(seg.arrays.doc_offsets)[live]
        plans.append((seg, live, lengths))
        n_docs += len(live)
        n_tokens += int(lengths.sum())
    if n_docs == 0:
        return 0, 0
    n_bytes = snap.segments[0].arrays.residuals.shape[1]
    codes = writer.create(f"{name}/codes", (n_tokens,), snap.segments[0].arrays.codes.dtype)
    residuals = writer.create(f"{name}/residuals", (n_tokens, n_bytes), np.uint8)
    doc_offsets = np.zeros(n_docs + 1, dtype=np.int64)
    ids, texts, metas = [], [], []
    has_texts = all(seg.texts is not None for seg in snap.segments)
    has_meta = all(seg.meta is not None for seg in snap.segments)
    row = doc = 0
    with progress.bar(n_tokens, "compact", show_progress, unit="tok") as bar:
        for seg, live, lengths in plans:
            src = seg.arrays
            starts = src.doc_offsets[live]
            # copy runs of consecutive live documents in blocks
            i = 0
            while i < len(live):
                j = i
                budget = 0
                while j < len(live) and (j == i or live[j] == live[j - 1] + 1) and budget < COPY_BLOCK_TOKENS:
                    budget += int(lengths[j])
                    j += 1
                a = int(starts[i])
                b = a + budget
                codes[row:row + budget] = src.codes[a:b]
                residuals[row:row + budget] = src.residuals[a:b]
                doc_offsets[doc + 1:doc + 1 + (j - i)] = row + np.cumsum(lengths[i:j])
                row += budget
                doc += j - i
                bar.update(budget)
                i = j
            ids.extend(seg.ids[int(p)] for p in live)
            if has_texts:
                texts.extend(unpack_string(*seg.texts, int(p)) for p in live)
            if has_meta:
                metas.extend(unpack_string(*seg.meta, int(p)) for p in live)
    writer.seal(f"{name}/codes", codes)
    writer.seal(f"{name}/residuals", residuals)
    ivf_docs, ivf_offsets = build_ivf(codes, doc_offsets, snap.codec.n_centroids)
    writer.save(f"{name}/doc_offsets", doc_offsets)
    writer.save(f"{name}/ivf_docs", ivf_docs)
    writer.save(f"{name}/ivf_offsets", ivf_offsets)
    for key, arr in DocIds.from_user(ids, n_docs).arrays().items():
        writer.save(f"{name}/{key}", arr)
    if has_texts:
        utf8, offsets = pack_strings(texts)
        writer.save(f"{name}/texts_utf8", utf8)
        writer.save(f"{name}/texts_offsets", offsets)
    if has_meta:
        utf8, offsets = pack_strings(metas)
        writer.save(f"{name}/meta_utf8", utf8)
        writer.save(f"{name}/meta_offsets", offsets)
    return n_docs, n_tokens

"""Compaction: rewrite the live documents of every segment into one segment, out of core.

Memory stays bounded whatever the corpus size: source arrays are read block by block through the file (never
through their memory maps, whose touched pages would count towards the process's RSS), the new segment's files
are written front to back (:meth:`gingham.storage.disk.GenerationWriter.stream`); inverted lists are not stored (readers
build them from the codes). What is held in memory grows with the number of documents only (offsets, ids, the
position remap), never with the number of tokens.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from gingham.common import progress
from gingham.common.ids import DocIds
from gingham.storage.segment import narrow_offsets

#: Tokens copied per step (bounds the memory compaction needs beyond the new segment's offsets and ids).
COPY_BLOCK_TOKENS = 1 << 20


def read_rows(arr: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of ``arr`` as an in-memory array. A memory-mapped .npy is read through its file, so that
    the rows never become resident pages of this process."""
    fname = getattr(arr, "filename", None)
    if isinstance(arr, np.memmap) and fname and arr.offset + arr.nbytes == os.path.getsize(fname):
        row = int(np.prod(arr.shape[1:], dtype=np.int64))
        with open(fname, "rb") as f:
            f.seek(arr.offset + lo * row * arr.dtype.itemsize)
            out = np.fromfile(f, dtype=arr.dtype, count=(hi - lo) * row)
        return out.reshape((hi - lo,) + arr.shape[1:])
    return np.array(arr[lo:hi])


@dataclass
class _Plan:
    """The live documents of one source segment and where they land in the merged one."""

    seg: object
    live: np.ndarray  # sorted live positions in the segment
    lengths: np.ndarray  # their token counts
    new_base: int  # merged position of the first live document

    def runs(self):
        """(i, j): runs ``live[i:j]`` of consecutive documents of at most COPY_BLOCK_TOKENS tokens (or one doc)."""
        i = 0
        while i < len(self.live):
            j, budget = i, 0
            while j < len(self.live) and (j == i or self.live[j] == self.live[j - 1] + 1) \
                    and budget < COPY_BLOCK_TOKENS:
                budget += int(self.lengths[j])
                j += 1
            yield i, j
            i = j

    def remap(self) -> np.ndarray:
        """Segment position -> merged position (int32), -1 for deleted documents."""
        out = np.full(self.seg.n_docs, -1, dtype=np.int32)
        out[self.live] = self.new_base + np.arange(len(self.live), dtype=np.int32)
        return out


def merge_segments(snap, writer, name: str, show_progress=None) -> tuple[int, int]:
    """Write segment ``name`` holding every live document of ``snap``, in position order, into ``writer``.

    Returns (n_docs, n_tokens).
    """
    plans = []
    n_docs = n_tokens = 0
    for seg in snap.segments:
        live = np.flatnonzero(seg.live_mask())
        lengths = np.diff(seg.stored.doc_offsets)[live]
        plans.append(_Plan(seg, live, lengths, n_docs))
        n_docs += len(live)
        n_tokens += int(lengths.sum())
    if n_docs == 0:
        return 0, 0
    first = snap.segments[0].stored
    doc_offsets = np.zeros(n_docs + 1, dtype=np.int64)
    with writer.stream(f"{name}/codes", (n_tokens,), first.codes.dtype) as codes, \
            writer.stream(f"{name}/residuals", (n_tokens, first.residuals.shape[1]), np.uint8) as residuals, \
            progress.bar(n_tokens, "compact", show_progress, unit="tok") as bar:
        row = 0
        for p in plans:
            src = p.seg.stored
            for i, j in p.runs():
                a = int(src.doc_offsets[p.live[i]])
                b = a + int(p.lengths[i:j].sum())
                codes.write(read_rows(src.codes, a, b))
                residuals.write(read_rows(src.residuals, a, b))
                doc = p.new_base + i
                doc_offsets[doc + 1:doc + 1 + (j - i)] = row + np.cumsum(p.lengths[i:j])
                row += b - a
                bar.update(b - a)
    writer.save(f"{name}/doc_offsets", narrow_offsets(doc_offsets))
    ids = [p.seg.ids[int(pos)] for p in plans for pos in p.live]
    for key, arr in DocIds.from_list(ids, snap.manifest["doc_id_kind"]).arrays().items():  # checked when added
        writer.save(f"{name}/{key}", arr)
    # texts: every segment stores them or none does (writes refuse to mix); metadata is per document, and a
    # segment added without any holds JSON null for each of its documents in the merged one
    if all(p.seg.texts is not None for p in plans):
        _merge_strings(plans, "texts", writer, f"{name}/texts")
    if any(p.seg.meta is not None and len(p.live) for p in plans):
        _merge_strings(plans, "meta", writer, f"{name}/meta", missing=b"null")
    return n_docs, n_tokens


def _merge_strings(plans, attr: str, writer, prefix: str, missing: bytes | None = None) -> None:
    """Concatenate the live documents' strings (UTF-8 + offsets) of every segment, streamed; a segment without
    them contributes ``missing`` for each of its documents."""
    sizes = [np.diff(getattr(p.seg, attr)[1])[p.live] if getattr(p.seg, attr) is not None
             else np.full(len(p.live), len(missing), dtype=np.int64) for p in plans]
    offsets = np.zeros(sum(len(s) for s in sizes) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(sizes), out=offsets[1:])
    with writer.stream(f"{prefix}_utf8", (int(offsets[-1]),), np.uint8) as out:
        for p in plans:
            if getattr(p.seg, attr) is None:
                out.write(np.frombuffer(missing * len(p.live), dtype=np.uint8))
                continue
            utf8, offs = getattr(p.seg, attr)
            for i, j in p.runs():
                out.write(read_rows(utf8, int(offs[p.live[i]]), int(offs[p.live[j - 1] + 1])))
    writer.save(f"{prefix}_offsets", offsets)

"""Re-clustering a live index without losing writes committed while it trains.

Training a new codebook takes long (minutes on a large index), far too long to hold the write lock: other
writers would wait, or time out. So :func:`rebuild` trains and compresses outside the lock, from one snapshot,
and then, holding the lock, reconciles with the newest committed state before it commits:

- documents live in the newest state that it already compressed are taken as they are;
- documents committed meanwhile (added, upserted, or rewritten by a compaction or another rebuild) are
  decompressed from the newest state and compressed with the new codebook, under the lock;
- documents deleted meanwhile are left out.

A document's identity is the file its codes live in (generation directories carry a random suffix, files are
immutable) plus its position there, so a deletion mask rewritten by a commit does not change it, and an
upsert, a compaction or another rebuild does. The commit therefore holds exactly the live documents of the
newest state when it is made: nothing another writer acknowledged is lost or brought back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np

from gingham.codec.training import train_codec
from gingham.common import progress
from gingham.common.config import BuildConfig
from gingham.common.ids import DocIds
from gingham.storage import disk
from gingham.storage.commits import commit_arrays, load_snapshot, now
from gingham.storage.segment import Segment, Snapshot
from gingham.storage.writes import check_packable, compress, first_generation, new_manifest

log = logging.getLogger(__name__)

#: (codes file of the document's segment, position in that segment)
DocKey = tuple[str, int]


def live_documents(snap: Snapshot) -> list[tuple[DocKey, Segment, int]]:
    """Every live document of ``snap`` in position order, with its identity."""
    out = []
    for seg in snap.segments:
        source = snap.manifest["files"][f"{seg.name}/codes"]["path"]
        out.extend(((source, int(p)), seg, int(p)) for p in np.flatnonzero(seg.live_mask()))
    return out


def decompressed(docs: list[tuple[DocKey, Segment, int]], show_progress=None) -> tuple[np.ndarray, np.ndarray]:
    """The decompressed tokens of ``docs`` (each with its own snapshot's codec) as (flat, doc offsets)."""
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    for i, (_, seg, p) in enumerate(docs):
        offsets[i + 1] = offsets[i] + seg.stored.doc_offsets[p + 1] - seg.stored.doc_offsets[p]
    dim = docs[0][1].stored.centroids.shape[1] if docs else 0
    flat = np.empty((int(offsets[-1]), dim), dtype=np.float32)
    with progress.bar(len(docs), "decompress", show_progress, unit="doc") as bar:
        for i, (_, seg, p) in enumerate(docs):
            flat[offsets[i]:offsets[i + 1]] = seg.decompress(p)
            bar.update(1)
    return flat, offsets


def token_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The token indices ``starts[i] .. starts[i] + lengths[i] - 1`` of every document, concatenated."""
    total = int(lengths.sum())
    first = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=first[1:])
    return np.repeat(starts - first, lengths) + np.arange(total, dtype=np.int64)


def rebuild(root: Path, snap: Snapshot, cfg: BuildConfig, show_progress=None,
            lock: Callable[[], ContextManager] | None = None) -> dict:
    """Train a codebook on the live documents of ``snap`` and commit every document live at commit time,
    compressed with it, as one segment. ``lock`` holds the index's write lock (default: the cross-process lock
    alone). Returns the committed manifest; on any failure the index is left as it was."""
    trained_docs = live_documents(snap)
    if not trained_docs:
        raise ValueError("the index has no live documents to rebuild from")
    dim = snap.codec.dim
    check_packable(dim, cfg.nbits)
    flat, offsets = decompressed(trained_docs, show_progress)
    codec, codec_mse, all_codes = train_codec(flat, cfg, show_progress)
    codes, residuals, _ = compress(codec, flat, cfg.batch_size, show_progress, codes=all_codes)
    del flat, all_codes
    where = {key: i for i, (key, _, _) in enumerate(trained_docs)}

    with (lock or (lambda: disk.write_lock(root)))():
        manifest = disk.read_manifest(root)
        newest = snap if manifest["generation"] == snap.generation else load_snapshot(root, manifest, lazy=True)
        final = live_documents(newest)
        if not final:
            raise ValueError("every document was deleted while the rebuild trained; there is nothing to rebuild")
        starts, lens = offsets[:-1], np.diff(offsets)
        late = [d for d in final if d[0] not in where]
        if late:  # committed while the codebook trained: compressed with it now
            log.info("rebuild: %d documents committed during training are compressed with the new codebook",
                     len(late))
            late_flat, late_offsets = decompressed(late)
            late_codes, late_res, _ = compress(codec, late_flat, cfg.batch_size, False)
            where.update({d[0]: len(starts) + i for i, d in enumerate(late)})
            starts = np.concatenate([starts, late_offsets[:-1] + len(codes)])
            lens = np.concatenate([lens, np.diff(late_offsets)])
            codes, residuals = np.concatenate([codes, late_codes]), np.concatenate([residuals, late_res])
        src = np.array([where[key] for key, _, _ in final], dtype=np.int64)
        lengths = lens[src]
        take = token_ranges(starts[src], lengths)
        doc_offsets = np.zeros(len(final) + 1, dtype=np.int64)
        np.cumsum(lengths, out=doc_offsets[1:])
        ids = DocIds.from_list([seg.ids[p] for _, seg, p in final], newest.manifest["doc_id_kind"])
        with_texts = all(seg.texts is not None for seg in newest.segments)
        with_meta = any(seg.meta is not None for seg in newest.segments)
        texts = [seg.text(p) for _, seg, p in final] if with_texts else None
        metas = [seg.metadata(p) for _, seg, p in final] if with_meta else None
        rebuilt = new_manifest(cfg, codec, dim, newest.manifest["doc_id_kind"], codec_mse,
                               newest.manifest.get("encoder"), newest.manifest.get("search_defaults"))
        rebuilt["created"] = newest.manifest.get("created", rebuilt["created"])
        arrays = first_generation(rebuilt, codec, codes[take], residuals[take], doc_offsets, ids, texts, metas)
        rebuilt["rebuilt"] = now()
        return commit_arrays(root, manifest, rebuilt, arrays, keep={})


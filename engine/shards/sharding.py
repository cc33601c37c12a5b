"""Build a corpus as shards that share one codebook, searchable as one (:class:`gingham.ShardedIndex`).

::

    import gingham.shards.sharding
    shards = gingham.shards.sharding.build_shards("corpus-shards", embeddings, ids, n_shards=3, nbits=2)
    shards.search(queries, top_k=10)

The codebook is trained once, on the whole corpus as :meth:`gingham.Index.create` trains it; the documents are
cut into ``n_shards`` contiguous runs of about equal tokens, each built as an index with that codec. Shards can
also be built one by one, on different machines, with ``Index.create(..., codec=first_shard.codec)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gingham.codec.training import train_codec
from gingham.common import validation
from gingham.common.config import resolve_build_config
from gingham.common.ids import DocIds
from gingham.shards.sharded import ShardedIndex, write_shard_set

PathLike = str | os.PathLike


def split_points(doc_offsets: np.ndarray, n_shards: int) -> np.ndarray:
    """Document boundaries (n_shards + 1,) cutting the corpus into contiguous runs of about equal tokens, each of
    at least one document."""
    n_docs = len(doc_offsets) - 1
    if isinstance(n_shards, bool) or not isinstance(n_shards, (int, np.integer)) or n_shards < 1:
        raise ValueError(f"n_shards must be a positive integer, got {n_shards!r}")
    if n_shards > n_docs:
        raise ValueError(f"n_shards={n_shards} is more than the {n_docs} documents; use at most {n_docs} shards")
    cuts = [0]
    for i in range(1, n_shards):
        cut = int(np.searchsorted(doc_offsets, doc_offsets[-1] * i / n_shards, side="left"))
        # at least one document in this shard, and one left for each shard after it
        cuts.append(min(max(cut, cuts[-1] + 1), n_docs - (n_shards - i)))
    return np.array(cuts + [n_docs], dtype=np.int64)


def build_shards(
    folder: PathLike,
    embeddings,
    doc_ids: Sequence | np.ndarray | None = None,
    *,
    n_shards: int,
    lengths=None,
    texts: Sequence[str] | None = None,
    metadata: Sequence[Mapping] | None = None,
    config=None,
    overwrite: bool = False,
    show_progress: bool | None = None,
    **options: Any,
) -> ShardedIndex:
    """Train one codebook on the whole corpus and build ``n_shards`` indexes with it, as ``folder/shard-NNN``
    plus ``folder/shards.json``; returns them opened as a :class:`ShardedIndex`.

    Arguments as :meth:`gingham.Index.create`. Each shard is calibrated on its own documents (``calibrate``).
    """
    from gingham.index import Index

    cfg = resolve_build_config(config, options)
    flat, doc_offsets = validation.documents(embeddings, lengths)
    n_docs = len(doc_offsets) - 1
    ids = DocIds.from_user(doc_ids, n_docs).to_list()  # checked before the codebook is trained
    cuts = split_points(doc_offsets, n_shards)
    codec, _, _ = train_codec(flat, cfg, show_progress)
    root = Path(folder)
    paths = []
    for i in range(n_shards):
        lo, hi = int(cuts[i]), int(cuts[i + 1])
        path = root / f"shard-{i:03d}"
        Index.create(path, flat[doc_offsets[lo]:doc_offsets[hi]], ids[lo:hi],
                     lengths=np.diff(doc_offsets[lo:hi + 1]), config=cfg, overwrite=overwrite,
                     show_progress=show_progress, codec=codec,
                     texts=None if texts is None else list(texts[lo:hi]),
                     metadata=None if metadata is None else list(metadata[lo:hi]))
        paths.append(path)
    write_shard_set(root, paths)
    return ShardedIndex.open(root)

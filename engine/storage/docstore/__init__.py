"""Per-segment SQLite databases: metadata columns for SQL filters (``filters``) and FTS5 for BM25 (``lexical``).

A segment's database is derived from its stored metadata and texts, written by the commit that writes the
segment (:func:`complete`, called by every commit before the manifest is replaced), so it is part of the
generation and as crash-safe as the arrays. Segments of format 1 and 2 indexes have none: their database is built
in memory when first needed, and written by the index's next update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gingham.storage import npy
from gingham.storage.docstore.database import DocStore, write

__all__ = ["DocStore", "complete", "database_name"]


def database_name(segment: str) -> str:
    """The logical name (manifest key) of a segment's database."""
    return f"{segment}/docs"


def _strings(root: Path, files: Mapping[str, Any], prefix: str):
    """The strings of ``prefix_utf8`` + ``prefix_offsets`` among ``files``, decoded one by one (None: absent)."""
    if f"{prefix}_utf8" not in files:
        return None
    utf8, offsets = (_load(root, files[f"{prefix}_{k}"]) for k in ("utf8", "offsets"))
    return (bytes(utf8[offsets[i]:offsets[i + 1]]).decode("utf-8") for i in range(len(offsets) - 1))


def _load(root: Path, meta: Mapping[str, Any]) -> np.ndarray:
    return npy.load(root / meta["path"])  # not np.load: see gingham.storage.npy


def complete(root: Path, writer, manifest: Mapping[str, Any]) -> None:
    """Write the database of every segment of ``manifest`` that the generation being written (``writer``, a
    :class:`gingham.storage.disk.GenerationWriter`) does not list one for: new segments, and old segments of an index
    written before databases existed (migrated on its first update)."""
    for seg in manifest.get("segments", []):
        name = seg["name"]
        if database_name(name) in writer.files:
            continue
        files = writer.files
        metas = _strings(root, files, f"{name}/meta")
        texts = _strings(root, files, f"{name}/texts")
        metadata = [json.loads(m) for m in metas] if metas is not None else None
        with writer.database(database_name(name)) as path:
            write(path, metadata, texts, int(seg["n_docs"]))

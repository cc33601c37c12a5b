"""Committing generations of an index: the first commit of a new index, a change applied to the newest committed
state, and the manifest bookkeeping they share (segment names, merged reconstruction error, deletion masks).

:class:`gingham.Index` and streaming builds both write through here; :mod:`gingham.storage.disk` does the file work
(checksummed arrays, atomic manifest replacement), this module decides what a commit holds.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from gingham.common.errors import GinghamError, IndexCorruptError, IndexFormatError
from gingham.storage import docstore, disk
from gingham.storage.consistency import check_structure
from gingham.storage.segment import CODEBOOK_ARRAYS, SEGMENT_ARRAYS, Snapshot


def commit_change(root: Path, change: Callable[[Snapshot, disk.GenerationWriter, dict], None],
                  current: Snapshot | None = None) -> dict:
    """Apply ``change`` to the newest committed state at ``root`` and commit it as a new generation.

    The caller holds the write lock. ``current`` is reused when it is still the newest state. Returns the
    committed manifest; a failed change leaves the index as it was.
    """
    manifest = disk.read_manifest(root)
    same = current is not None and manifest["generation"] == current.generation
    snap = current if same else load_snapshot(root, manifest, lazy=True)
    new_manifest = {k: v for k, v in manifest.items() if k not in ("files", "generation")}
    new_manifest["segments"] = [dict(s) for s in manifest["segments"]]
    writer = disk.GenerationWriter(root, manifest["generation"] + 1, keep=manifest["files"])
    try:
        if "residual_scales" not in manifest["files"]:  # a format-1 index becomes format 2 (scales all 1)
            writer.save("residual_scales", snap.codec.scales)
        change(snap, writer, new_manifest)
        docstore.complete(root, writer, new_manifest)
        committed = writer.commit(new_manifest)
    except BaseException:
        writer.abort()
        raise
    disk.remove_stale(root, disk.referenced_dirs(committed))
    return committed


def now() -> str:
    """The current UTC time, as the manifest records it."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def load_snapshot(root: Path, manifest: Mapping[str, Any], verify: bool = False, lazy: bool = False) -> Snapshot:
    """Memory-map the arrays ``manifest`` lists, check that the codebook and every segment are complete and that
    their structure is safe to search (:func:`gingham.storage.consistency.check_structure`: cheap, always on), and open
    the segments' databases. ``lazy`` opens a database when first used instead: for a writer's snapshot under the
    write lock, whose files no one removes meanwhile (an open database holds a file descriptor, and a streaming
    build has a segment per chunk); a reader's snapshot opens them at once, so that it keeps them when a writer
    removes their generation."""
    arrays = disk.load_arrays(root, manifest, verify=verify)
    required = CODEBOOK_ARRAYS + (("residual_scales",) if manifest.get("format_version", 1) >= 2 else ())
    missing = [k for k in required if k not in arrays]
    for seg in manifest.get("segments", []):
        missing += [f"{seg['name']}/{k}" for k in SEGMENT_ARRAYS if f"{seg['name']}/{k}" not in arrays]
    if missing or "segments" not in manifest:
        raise IndexFormatError(f"{root / disk.MANIFEST} lacks the arrays {sorted(missing)}; rebuild the index")
    check_structure(root, manifest, arrays)
    databases = disk.load_databases(root, manifest, verify=verify)
    stores = {}
    for seg in manifest["segments"]:
        path = databases.get(docstore.database_name(seg["name"]))
        if path is not None:
            stores[seg["name"]] = path if lazy else docstore.DocStore.open(path, seg["n_docs"])
        elif manifest.get("format_version", 1) >= 3:
            raise IndexCorruptError(f"{root / disk.MANIFEST} lists no database for segment {seg['name']}; "
                                   "restore the index from a backup or rebuild it")
    return Snapshot(manifest, arrays, stores)


def read_if_any(root: Path) -> dict | None:
    """The manifest at ``root``, or None when there is none or it cannot be read (it will be replaced)."""
    if not (root / disk.MANIFEST).exists():
        return None
    try:
        return disk.read_manifest(root)
    except Exception:  # a corrupt previous manifest is replaced, not read
        return None


def commit_arrays(root: Path, previous: dict | None, manifest: dict, arrays: Mapping[str, np.ndarray], keep) -> dict:
    """Write ``arrays`` and ``manifest`` as the generation after ``previous`` (None: the first), keeping the files
    ``keep`` of earlier generations; a failure leaves ``root`` as it was. Returns the committed manifest."""
    generation = (previous["generation"] + 1) if previous else 1
    disk.remove_stale(root, keep=disk.referenced_dirs(previous))
    writer = disk.GenerationWriter(root, generation, keep=keep)
    try:
        for name, arr in arrays.items():
            writer.save(name, arr)
        docstore.complete(root, writer, manifest)
        full = writer.commit(manifest)
    except BaseException:
        writer.abort()
        raise
    disk.remove_stale(root, keep=disk.referenced_dirs(full))
    return full


def check_target(root: Path, overwrite: bool) -> None:
    """Refuse to build over a non-directory, an index (unless ``overwrite``), or a folder holding other files."""
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a directory; choose another path for the index")
    existing = (root / disk.MANIFEST).exists()
    if existing and not overwrite:
        raise FileExistsError(f"an index already exists at {root}; pass overwrite=True to replace it")
    if root.exists() and not existing and any(
        not (p.name.startswith(disk.GEN_PREFIX) or p.name == disk.LOCK) for p in root.iterdir()
    ):
        raise FileExistsError(f"{root} exists, is not empty and holds no Gingham index; choose an empty path")


def next_segment(manifest: dict) -> str:
    """A fresh segment name; advances the manifest's counter."""
    n = int(manifest.get("next_segment", len(manifest["segments"]) + 1))
    manifest["next_segment"] = n + 1
    return f"s{n:06d}"


def merged_mse(manifest: Mapping[str, Any]) -> float | None:
    """Token-weighted reconstruction error over the build and the added segments (None: nothing was added)."""
    added = [(s["mse"], s["n_tokens"]) for s in manifest["segments"] if s.get("mse") is not None]
    total = sum(s["n_tokens"] for s in manifest["segments"])
    if not added or total == 0:
        return None
    base = manifest.get("codec_mse") or 0.0
    built = total - sum(n for _, n in added)
    return float((sum(m * n for m, n in added) + base * built) / total)


def write_deletions(snap: Snapshot, writer: disk.GenerationWriter, manifest: dict, positions: np.ndarray) -> None:
    """Mark the global document ``positions`` deleted in their segments' deletion masks."""
    if len(positions) == 0:
        return
    for seg in snap.segments:
        local = positions[(positions >= seg.base) & (positions < seg.base + seg.n_docs)] - seg.base
        if len(local) == 0:
            continue
        deleted = np.zeros(seg.n_docs, dtype=np.uint8) if seg.deleted is None else np.array(seg.deleted)
        deleted[local] = 1
        writer.save(f"{seg.name}/deleted", deleted)


#: How many times a reader starts again from a newer manifest before it gives up (each time, a writer committed
#: and removed the files of the generation the reader had begun to load).
OPEN_RETRIES = 100


def open_newest(root: Path, verify: bool = False, current: Snapshot | None = None) -> Snapshot:
    """Load the newest committed generation at ``root`` (``current`` when it still is the newest).

    A writer removes the files of a superseded generation right after its commit, so a reader that read the
    previous manifest may find one of them gone. That is not damage: the manifest has moved on, and the reader
    starts again from the new one. A file missing while the manifest still names the same generation is damage,
    and raises :class:`IndexCorruptError`; any other OSError (too many open files, no memory to map a file, no
    permission) is raised as it is: the files may be intact.
    """
    for _ in range(OPEN_RETRIES):
        manifest = disk.read_manifest(root)
        if current is not None and manifest["generation"] == current.generation:
            return current
        try:
            return load_snapshot(root, manifest, verify)
        except (IndexCorruptError, OSError) as exc:
            try:
                moved_on = disk.read_manifest(root)["generation"] != manifest["generation"]
            except (GinghamError, OSError, KeyError, TypeError):
                moved_on = False
            if not moved_on:
                if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                    raise IndexCorruptError(f"index at {root}: {exc}; restore the index from a backup or rebuild "
                                            "it") from exc
                raise
    raise IndexCorruptError(f"the index at {root} changed {OPEN_RETRIES} times while it was being opened; writers "
                            "are committing faster than it can be read: retry when they pause")


def codebook_id(manifest: Mapping[str, Any]) -> tuple:
    """What identifies the codebook a manifest's documents are compressed with: its files (immutable, in
    directories with random names). Equal ids mean codes compressed against one manifest are valid in the other."""
    files = manifest["files"]
    return tuple(files[k]["path"] for k in CODEBOOK_ARRAYS + ("sub_centroids", "coarse_centroids", "residual_codewords")
                 if k in files) \
        + (manifest["nbits"],)

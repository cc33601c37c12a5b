"""The on-disk format: a self-describing directory whose ``manifest.json`` is the single commit point.

::

    index/
      manifest.json        format, versions, configs, counts, and every data file with size, shape, dtype, sha256
      gen-000001-<rand>/   the arrays of one generation, as plain .npy (memory-mapped read-only on open)
      LOCK                 the writers' lock file

A write puts a complete new generation directory beside the current one, fsyncs it, then replaces
``manifest.json`` atomically (write to a temporary file, fsync, ``os.replace``, fsync the directory). A crash at any
point leaves either the old manifest (and a stray directory that the next writer removes) or the new one:
never a torn index. Old generations are removed after the swap; readers that still map them keep working.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from gingham.errors import IndexCorruptError, IndexFormatError, IndexLockedError

log = logging.getLogger(__name__)

FORMAT_NAME = "gingham-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = "LOCK"
GEN_PREFIX = "gen-"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path, chunk: int = 16 * 2**20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def write_lock(root: Path, blocking: bool = True) -> Iterator[None]:
    """Hold the index's writer lock (one writer at a time, across processes)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise IndexLockedError(
                f"another process is writing the index at {root}; wait for it to finish or stop it"
            ) from exc
        yield
    finally:
        os.close(fd)  # closing releases the lock


class GenerationWriter:
    """Writes the arrays of one new generation; :meth:`commit` makes it the index's current state."""

    def __init__(self, root: Path, generation: int):
        self.root = root
        self.generation = generation
        self.name = f"{GEN_PREFIX}{generation:06d}-{secrets.token_hex(4)}"
        self.dir = root / self.name
        self.dir.mkdir(parents=True)
        self.files: dict[str, dict[str, Any]] = {}

    def save(self, name: str, array: np.ndarray) -> None:
        path = self.dir / f"{name}.npy"
        array = np.ascontiguousarray(array)
        with open(path, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        self.files[name] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "sha256": sha256_file(path),
        }

    def commit(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Atomically publish ``manifest`` (plus the files written here) as the index's current state."""
        _fsync_path(self.dir)
        full = dict(manifest)
        full.update(
            format=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            generation=self.generation,
            data_dir=self.name,
            files=self.files,
        )
        tmp = self.root / f".{MANIFEST}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(full, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / MANIFEST)
        _fsync_path(self.root)
        return full

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def remove_stale(root: Path, keep: str | None) -> None:
    """Remove generation directories and temporary manifests other than ``keep`` (call under the write lock)."""
    for entry in root.iterdir():
        stale_gen = entry.name.startswith(GEN_PREFIX) and entry.name != keep and entry.is_dir()
        stale_tmp = entry.name.startswith(f".{MANIFEST}.") and entry.name.endswith(".tmp")
        if stale_gen:
            shutil.rmtree(entry, ignore_errors=True)
        elif stale_tmp:
            entry.unlink(missing_ok=True)


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not root.exists():
        raise FileNotFoundError(f"no index at {root}: the directory does not exist")
    if not path.exists():
        raise IndexFormatError(
            f"{root} is not a Gingham index: it has no {MANIFEST}; build one with gingham.Index.create or "
            "`gingham index`"
        )
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path} cannot be read as JSON ({exc}); restore the index from a backup") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{path} is not a Gingham manifest (format field is {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{root} has index format version {version!r}, but this Gingham reads version {FORMAT_VERSION}; "
            "install the Gingham version that wrote it, or rebuild the index"
        )
    return manifest


def load_arrays(root: Path, manifest: Mapping[str, Any], verify: bool = False) -> dict[str, np.ndarray]:
    """Memory-map every array the manifest lists, checking size, shape and dtype (and sha256 if ``verify``)."""
    data_dir = root / manifest["data_dir"]
    arrays: dict[str, np.ndarray] = {}
    for name, meta in manifest["files"].items():
        path = data_dir / meta["file"]
        if not path.exists():
            raise IndexCorruptError(f"index file {path} is missing; restore the index from a backup or rebuild it")
        size = path.stat().st_size
        if size != meta["bytes"]:
            raise IndexCorruptError(
                f"index file {path} has {size} bytes but the manifest records {meta['bytes']} (truncated or "
                "overwritten); restore the index from a backup or rebuild it"
            )
        if verify:
            digest = sha256_file(path)
            if digest != meta["sha256"]:
                raise IndexCorruptError(
                    f"index file {path} does not match its checksum; restore the index from a backup or rebuild it"
                )
        try:
            # numpy cannot memory-map a zero-length array; such arrays are read (they are only a header)
            mode = "r" if int(np.prod(meta["shape"])) > 0 else None
            arr = np.load(path, mmap_mode=mode, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise IndexCorruptError(f"index file {path} is not a valid .npy file ({exc}); rebuild the index") from exc
        if list(arr.shape) != list(meta["shape"]) or arr.dtype.str != meta["dtype"]:
            raise IndexCorruptError(
                f"index file {path} holds {arr.dtype.str}{list(arr.shape)} but the manifest records "
                f"{meta['dtype']}{meta['shape']}; rebuild the index"
            )
        arrays[name] = arr
    return arrays

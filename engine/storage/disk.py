"""The on-disk format: a self-describing directory whose ``manifest.json`` is the single commit point.

::

    index/
      manifest.json        format, versions, configs, counts, segments, and every data file with its path, size,
                           shape, dtype and sha256
      gen-000001-<rand>/   arrays written by generation 1 (codebook, first segment), plain .npy, memory-mapped
      gen-000002-<rand>/   arrays written by generation 2 (say, a segment of added documents, deletion masks)
      LOCK                 the writers' lock file

Files are immutable once written. A commit writes its new files into a new generation directory, fsyncs them,
then replaces ``manifest.json`` atomically (write to a temporary file, fsync, ``os.replace``, fsync the
directory); files it keeps from earlier generations are referenced, not copied. A crash at any point leaves either
the old manifest (plus a stray directory that the next writer removes) or the new one: never a torn index.
Directories no manifest references are removed after a commit; readers that still map them keep working.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from gingham.common.errors import IndexCorruptError, IndexFormatError, IndexLockedError
from gingham.storage import npy

log = logging.getLogger(__name__)

FORMAT_NAME = "gingham-index"
#: The format this Gingham writes. Version 2 added per-centroid residual scales (``residual_scales.npy``);
#: version 3 a SQLite database per segment (metadata columns and a full-text index, :mod:`gingham.storage.docstore`);
#: version 4 stopped storing inverted lists, which readers build from the codes (:func:`gingham.storage.segment.
#: inverted_lists`): a version 3 reader would look for them; version 5 product-quantised residuals
#: (``residual_codewords.npy``, :mod:`gingham.codec.residual`), which a version 4 reader would decode with the bucket grid.
FORMAT_VERSION = 5
#: Formats this Gingham reads: version 1 indexes open with every residual scale equal to 1, versions 1 and 2
#: without segment databases (built in memory when a filter or BM25 needs one, written by their next update),
#: versions 1 to 3 with stored inverted lists, which are left unread.
READABLE_VERSIONS = (1, 2, 3, 4, 5)
#: The ``kind`` of a manifest file entry that is a SQLite database rather than a .npy array.
SQLITE = "sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"
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


class ArrayStream:
    """Rows of one .npy file written in order: the header first, then :meth:`write` appends blocks of rows."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype) -> None:
        self.path, self.shape, self.dtype = path, tuple(int(n) for n in shape), np.dtype(dtype)
        self.rows = 0
        self.file = open(path, "wb")
        self._hash = hashlib.sha256()
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape})
        self._put(header.getvalue())

    def _put(self, data) -> None:
        self.file.write(data)
        self._hash.update(data)

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:] or self.rows + len(block) > self.shape[0]:
            raise ValueError(f"cannot append {block.shape} to {self.path.name}: {self.rows} of {self.shape} written")
        self._put(block.data)
        self.rows += len(block)

    def close(self) -> str:
        """Flush and fsync; returns the file's sha256."""
        if self.rows != self.shape[0]:
            self.file.close()
            raise ValueError(f"{self.path.name}: {self.rows} rows written, {self.shape[0]} declared")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return self._hash.hexdigest()


class GenerationWriter:
    """Writes the new files of one generation; :meth:`commit` makes it the index's current state.

    ``keep`` holds the file entries carried over from the previous generation (referenced, not copied).
    """

    def __init__(self, root: Path, generation: int, keep: Mapping[str, Mapping[str, Any]] | None = None):
        self.root = root
        self.generation = generation
        self.name = f"{GEN_PREFIX}{generation:06d}-{secrets.token_hex(4)}"
        self.dir = root / self.name
        self.dir.mkdir(parents=True)
        self.files: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (keep or {}).items()}

    def _path(self, name: str, suffix: str = ".npy") -> Path:
        """File of logical array ``name`` ("segment/array" names become "segment.array.npy")."""
        return self.dir / (name.replace("/", ".") + suffix)

    def _record(self, name: str, path: Path, shape, dtype: np.dtype, sha256: str | None = None) -> None:
        self.files[name] = {
            "path": f"{self.name}/{path.name}",
            "bytes": path.stat().st_size,
            "shape": list(shape),
            "dtype": np.dtype(dtype).str,
            "sha256": sha256 or sha256_file(path),
        }

    @contextlib.contextmanager
    def database(self, name: str) -> Iterator[Path]:
        """A SQLite database file of this generation: the block fills the file at the path it is given (and closes
        its connection); the file is then fsynced and recorded with its size and sha256 (``kind: "sqlite"``)."""
        path = self._path(name, ".sqlite")
        yield path
        for extra in (path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
            if extra.exists():
                raise ValueError(f"{extra.name} was left beside {path.name}: close the database before the commit")
        _fsync_path(path)
        self.files[name] = {"path": f"{self.name}/{path.name}", "bytes": path.stat().st_size, "kind": SQLITE,
                            "sha256": sha256_file(path)}

    def save(self, name: str, array: np.ndarray) -> None:
        path = self._path(name)
        array = np.ascontiguousarray(array)
        with open(path, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        self._record(name, path, array.shape, array.dtype)

    @contextlib.contextmanager
    def stream(self, name: str, shape: tuple[int, ...], dtype) -> Iterator["ArrayStream"]:
        """A .npy of known ``shape`` written front to back in blocks of rows (see :class:`ArrayStream`).

        Nothing is memory-mapped, so writing a file larger than memory adds nothing to the process's RSS; the
        checksum is computed on the way. Leaving the block with rows missing is an error.
        """
        out = ArrayStream(self._path(name), shape, dtype)
        try:
            yield out
        except BaseException:
            out.file.close()
            raise
        digest = out.close()
        self._record(name, out.path, out.shape, out.dtype, sha256=digest)

    def drop(self, name: str) -> None:
        """Stop referencing a carried-over file (its directory is removed once nothing references it)."""
        self.files.pop(name, None)

    def commit(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Atomically publish ``manifest`` (plus the files written here) as the index's current state."""
        _fsync_path(self.dir)
        full = dict(manifest)
        full.update(
            format=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            generation=self.generation,
            files=self.files,
        )
        try:  # strict JSON: a NaN or infinity in the manifest is a bug to report, never a file to write
            text = json.dumps(full, indent=2, sort_keys=True, allow_nan=False)
        except ValueError as exc:
            raise ValueError(f"the manifest of generation {self.generation} holds a value JSON cannot represent "
                             f"({exc}); nothing was committed") from exc
        tmp = self.root / f".{MANIFEST}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / MANIFEST)
        except BaseException:  # a full disk, say: the old manifest stays, and so must nothing else
            tmp.unlink(missing_ok=True)
            raise
        _fsync_path(self.root)
        return full

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def referenced_dirs(manifest: Mapping[str, Any] | None) -> set[str]:
    if not manifest:
        return set()
    return {meta["path"].split("/", 1)[0] for meta in manifest["files"].values()}


def remove_stale(root: Path, keep: set[str]) -> None:
    """Remove generation directories not in ``keep`` and temporary manifests (call under the write lock)."""
    for entry in root.iterdir():
        stale_gen = entry.name.startswith(GEN_PREFIX) and entry.name not in keep and entry.is_dir()
        stale_tmp = entry.name.startswith(f".{MANIFEST}.") and entry.name.endswith(".tmp")
        if stale_gen:
            shutil.rmtree(entry, ignore_errors=True)
        elif stale_tmp:
            entry.unlink(missing_ok=True)


#: Keys every manifest holds, with the types a reader relies on (``bool`` is never accepted for ``int``).
REQUIRED_KEYS = {"generation": int, "files": dict, "segments": list, "nbits": int, "dim": int, "n_centroids": int,
                 "codes_dtype": str, "doc_id_kind": str, "build_config": dict}
FILE_KEYS = {"path": str, "bytes": int, "shape": list, "dtype": str, "sha256": str}
DATABASE_KEYS = {"path": str, "bytes": int, "sha256": str}
SEGMENT_KEYS = {"name": str, "n_docs": int, "n_tokens": int}


def _typed(value, kind) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def check_manifest(manifest: Any, path: Path) -> None:
    """Raise a typed error naming ``path`` unless ``manifest`` has the structure a reader relies on.

    Format and version first (:class:`IndexFormatError`: another program's or another version's file), then the
    required keys, file entries and segment entries with their types (:class:`IndexCorruptError`).
    """
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        found = manifest.get("format") if isinstance(manifest, dict) else f"a JSON {type(manifest).__name__}"
        raise IndexFormatError(f"{path} is not a Gingham manifest (format field is {found!r}, expected "
                               f"{FORMAT_NAME!r}); open the index directory Gingham wrote")
    version = manifest.get("format_version")
    if not _typed(version, int) or version not in READABLE_VERSIONS:
        raise IndexFormatError(
            f"{path} has index format version {version!r}, but this Gingham reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}; "
            "install the Gingham version that wrote it, or rebuild the index"
        )

    def bad(what: str) -> IndexCorruptError:
        return IndexCorruptError(f"{path} is damaged: {what}; restore the index from a backup or rebuild it")

    def need(obj: Mapping, keys: Mapping[str, type], where: str) -> None:
        for key, kind in keys.items():
            if key not in obj:
                raise bad(f"{where}lacks the key {key!r}")
            if not _typed(obj[key], kind):
                raise bad(f"{where}{key!r} is {obj[key]!r}, expected a JSON {kind.__name__}")

    need(manifest, REQUIRED_KEYS, "")
    for name, meta in manifest["files"].items():
        if not isinstance(meta, dict):
            raise bad(f"file entry {name!r} is {meta!r}, expected an object")
        kind = meta.get("kind")
        if kind not in (None, SQLITE):
            raise bad(f"file entry {name!r} has kind {kind!r}; expected {SQLITE!r} or none (an array)")
        need(meta, DATABASE_KEYS if kind == SQLITE else FILE_KEYS, f"file entry {name!r} ")
        if meta["bytes"] < 0 or (kind is None and not all(_typed(n, int) and n >= 0 for n in meta["shape"])):
            raise bad(f"file entry {name!r} has shape {meta.get('shape')!r} and {meta['bytes']!r} bytes")
        rel = meta["path"]
        if not rel or os.path.isabs(rel) or "\\" in rel or any(part in ("", ".", "..") for part in rel.split("/")):
            raise bad(f"file entry {name!r} has the path {rel!r}, which leaves the index directory or is not "
                      "a plain relative path")
    names = set()
    for i, seg in enumerate(manifest["segments"]):
        if not isinstance(seg, dict):
            raise bad(f"segment entry {i} is {seg!r}, expected an object")
        need(seg, SEGMENT_KEYS, f"segment entry {i} ")
        if seg["name"] in names or "/" in seg["name"] or seg["n_docs"] < 0 or seg["n_tokens"] < 0:
            raise bad(f"segment entry {i} ({seg!r}) repeats a name or has negative counts")
        names.add(seg["name"])
    nprobe = manifest.get("assign_nprobe", 0)
    if not _typed(nprobe, int) or nprobe < 0:
        raise bad(f"'assign_nprobe' is {nprobe!r}, expected a non-negative integer")
    if manifest["doc_id_kind"] not in ("int", "str"):
        raise bad(f"'doc_id_kind' is {manifest['doc_id_kind']!r}, expected 'int' or 'str'")


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest at ``root``, checked by :func:`check_manifest`."""
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
    check_manifest(manifest, path)
    return manifest


def resolve_file(root: Path, rel: str) -> Path:
    """The path of index file ``rel``, refusing any that resolves outside ``root`` (through ``..`` or symlinks)."""
    path = root / rel
    real_root = root.resolve()
    if not path.resolve().is_relative_to(real_root):
        raise IndexCorruptError(
            f"{root / MANIFEST} lists the file {rel!r}, which resolves to {path.resolve()} outside the index "
            f"directory {real_root}; an index never reads files outside its directory: rebuild the index"
        )
    return path


def load_arrays(root: Path, manifest: Mapping[str, Any], verify: bool = False) -> dict[str, np.ndarray]:
    """Memory-map every array the manifest lists, checking size, shape and dtype (and sha256 if ``verify``).

    ``manifest`` has passed :func:`check_manifest`; no path may leave ``root``.
    """
    arrays: dict[str, np.ndarray] = {}
    listed = root / MANIFEST
    for name, meta in manifest["files"].items():
        if meta.get("kind") == SQLITE:
            continue
        path = _checked_file(root, meta, verify)
        try:  # damaged bytes only: any other failure (a file removed meanwhile, no memory) is not damage
            arr = npy.load(path)
        except npy.NpyFormatError as exc:
            raise IndexCorruptError(f"index file {exc}; restore the index from a backup or rebuild it") from exc
        if not isinstance(arr, np.memmap):  # an empty array, read (numpy cannot map zero bytes)
            arr.setflags(write=False)
        if list(arr.shape) != list(meta["shape"]) or arr.dtype.str != meta["dtype"]:
            raise IndexCorruptError(
                f"index file {path} holds {arr.dtype.str}{list(arr.shape)} but {listed} records "
                f"{meta['dtype']}{meta['shape']}; rebuild the index"
            )
        arrays[name] = arr
    return arrays


def _checked_file(root: Path, meta: Mapping[str, Any], verify: bool) -> Path:
    """The path of a listed file after checking it exists with the recorded size (and sha256 if ``verify``)."""
    listed = root / MANIFEST
    path = resolve_file(root, meta["path"])
    if not path.is_file():
        what = "is not a file" if path.exists() else "is missing"
        raise IndexCorruptError(f"index file {path}, listed in {listed}, {what}; restore the index from a backup "
                                "or rebuild it")
    size = path.stat().st_size
    if size != meta["bytes"]:
        raise IndexCorruptError(
            f"index file {path} has {size} bytes but {listed} records {meta['bytes']} (truncated or "
            "overwritten); restore the index from a backup or rebuild it"
        )
    if verify and sha256_file(path) != meta["sha256"]:
        raise IndexCorruptError(
            f"index file {path} does not match its checksum in {listed}; restore the index from a backup "
            "or rebuild it"
        )
    return path


def load_databases(root: Path, manifest: Mapping[str, Any], verify: bool = False) -> dict[str, Path]:
    """The SQLite databases the manifest lists, by logical name, each checked like an array file (presence, size,
    sha256 if ``verify``) and for SQLite's header; :mod:`gingham.storage.docstore` opens them."""
    out = {}
    for name, meta in manifest["files"].items():
        if meta.get("kind") != SQLITE:
            continue
        path = _checked_file(root, meta, verify)
        with open(path, "rb") as f:
            if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                raise IndexCorruptError(f"index file {path} is not a SQLite database (its header is damaged); "
                                        "restore the index from a backup or rebuild it")
        out[name] = path
    return out

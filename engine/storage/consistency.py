"""Checks of an index beyond checksums, in two tiers.

:func:`check_structure` runs on every open (from :func:`gingham.storage.commits.load_snapshot`, so ``Index.open``,
``refresh`` and every writer get it): array dtypes and shapes against the manifest's counts, ``nbits`` and ``dim``
against the codebook's and residuals' widths, offsets that start at 0, never decrease and end at their data's
length, codes below the number of codes, deletion masks of 0/1, a finite codebook and string ids that decode:
what the kernels (and the counting sort that builds each segment's inverted lists on open) rely on never to read
or write out of bounds. Vectorised min / max / diff passes over the memory-mapped arrays: codes are read in full
(about 1 ms per million tokens, measured by ``bench/bench_open.py``), everything else is O(documents +
centroids).

:func:`check_snapshot` (from :meth:`gingham.Index.verify`) checks meaning, at the cost of reading everything:
no empty document, ids unique among live documents, texts, ids
and metadata valid UTF-8 at every string boundary and metadata valid JSON objects, and each segment's SQLite
database sound (SQLite's integrity check) and equal to the segment's metadata, with a full-text index iff texts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gingham.common.config import NBITS_ALLOWED
from gingham.common.errors import IndexCorruptError
from gingham.common.ids import unpack_string
from gingham.storage.disk import MANIFEST

FIX = "restore the index from a backup or rebuild it"
#: Sub-centroids per centroid a codebook may have.
SUB_RATIOS = (1, 2, 4)


class _Files:
    """Names index files in error messages: the path of a logical array, or the manifest."""

    def __init__(self, root: Path, manifest: Mapping[str, Any]):
        self.root, self.files, self.manifest = root, manifest["files"], root / MANIFEST

    def path(self, name: str) -> str:
        return str(self.root / self.files[name]["path"]) if name in self.files else str(self.manifest)

    def corrupt(self, name: str, what: str) -> IndexCorruptError:
        return IndexCorruptError(f"index file {self.path(name)} {what}; {FIX}")

    def disagree(self, name: str, what: str) -> IndexCorruptError:
        return IndexCorruptError(f"{self.manifest} and index file {self.path(name)} disagree: {what}; {FIX}")


def _offsets(files: _Files, arrays, name: str, n: int, end: int | None, end_name: str) -> None:
    """``name`` is int64 or int32 (n + 1,), starts at 0, never decreases and ends at ``end`` (the manifest's count;
    None: the length of ``end_name``)."""
    off = arrays[name]
    if off.dtype not in (np.int64, np.int32) or off.shape != (n + 1,):
        raise files.disagree(name, f"it holds {off.dtype}{list(off.shape)} offsets, expected int64[{n + 1}]")
    recorded = end is not None  # the manifest's count, or the data's length
    end = len(arrays[end_name]) if end is None else end
    if off[0] != 0 or off[-1] != end:
        what = f"its offsets run from {off[0]} to {off[-1]}, expected 0 to {end}"
        raise files.disagree(name, what) if recorded and off[0] == 0 else files.corrupt(name, what)
    if n > 1 and int(np.diff(off).min()) < 0:
        raise files.corrupt(name, "holds decreasing offsets")


def _layout(files: _Files, arrays, name: str, dtype, shape: tuple) -> np.ndarray:
    """``name`` has ``dtype`` (a dtype, or a string of dtype kinds) and ``shape`` (None: any length)."""
    a = arrays[name]
    ok_type = a.dtype.kind in dtype if isinstance(dtype, str) else a.dtype == dtype
    ok_shape = a.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, a.shape))
    if not (ok_type and ok_shape):
        want = [("any" if s is None else s) for s in shape]
        raise files.disagree(name, f"it holds {a.dtype}{list(a.shape)}, expected {dtype}{want}")
    return a


def _positive_scales(files: _Files, arrays, name: str, shape: tuple) -> None:
    """``name`` is float16 of ``shape``, every value a positive number (the scales of int8 rows)."""
    if name not in arrays:
        raise files.disagree(name, "is missing: int8 rows come with their scales")
    scales = _layout(files, arrays, name, np.float16, shape)
    if not _finite(scales) or not (scales > 0).all():
        raise files.corrupt(name, "holds a scale that is not a positive number")


def _strings(files: _Files, arrays, prefix: str, n_docs: int) -> None:
    """The ragged strings ``prefix_utf8`` (uint8) + ``prefix_offsets`` of one segment: one per document."""
    utf8, offsets = f"{prefix}_utf8", f"{prefix}_offsets"
    if (utf8 in arrays) != (offsets in arrays):
        raise files.disagree(utf8 if utf8 in arrays else offsets, f"{utf8} and {offsets} come together")
    if utf8 in arrays:
        _layout(files, arrays, utf8, np.uint8, (None,))
        _offsets(files, arrays, offsets, n_docs, None, utf8)


def _finite(a: np.ndarray) -> bool:
    """No NaN or infinity in ``a``. float16 (the sub-centroid table) through its bits: numpy's isfinite on
    float16 is 8x slower than this test of the exponent (all ones: NaN or infinity)."""
    if a.dtype == np.float16:
        return a.size == 0 or int(np.max(a.view(np.uint16) & np.uint16(0x7FFF))) < 0x7C00
    return bool(np.isfinite(a).all())


def check_codebook(root: Path, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> int:
    """The codebook's shapes against ``nbits``, ``dim`` and ``n_centroids``, and its values finite (scales > 0).
    Returns the number of codes (centroids times sub-centroids per centroid)."""
    files = _Files(root, manifest)
    nbits, dim, n_c = manifest["nbits"], manifest["dim"], manifest["n_centroids"]
    if nbits not in NBITS_ALLOWED or dim <= 0 or (dim * nbits) % 8 or n_c <= 0:
        raise IndexCorruptError(f"{files.manifest} records nbits {nbits}, dim {dim} and n_centroids {n_c}: nbits "
                                f"must be one of {NBITS_ALLOWED}, dim * nbits a positive multiple of 8 and "
                                f"n_centroids positive; {FIX}")
    if "centroid_scales" in arrays:  # int8 centroids times a float16 scale per centroid (format 4)
        _layout(files, arrays, "centroids", np.int8, (n_c, dim))
        _positive_scales(files, arrays, "centroid_scales", (n_c,))
    else:
        _layout(files, arrays, "centroids", "f", (n_c, dim))
    _layout(files, arrays, "bucket_cutoffs", "f", (dim, 2**nbits - 1))
    _layout(files, arrays, "bucket_weights", "f", (dim, 2**nbits))
    n_codes = n_c
    if "sub_centroids" in arrays:
        n_codes = len(arrays["sub_centroids"])
        if n_codes % n_c or n_codes // n_c not in SUB_RATIOS:
            raise files.disagree("sub_centroids", f"{n_codes} sub-centroids for {n_c} centroids (need 1, 2 or 4 "
                                 "per centroid)")
        _layout(files, arrays, "sub_centroids", "f", (n_codes, dim))
    if "residual_scales" in arrays:
        scales = _layout(files, arrays, "residual_scales", "f", (n_codes,))
        if not (scales > 0).all() or not np.isfinite(scales).all():
            raise files.corrupt("residual_scales", "holds a residual scale that is not a positive number")
    if "residual_codewords" in arrays:  # int8 per byte position times a float16 scale (format 5)
        _layout(files, arrays, "residual_codewords", np.int8, (dim * nbits // 8, 256, 8 // nbits))
        _positive_scales(files, arrays, "codeword_scales", (dim * nbits // 8,))
    if "coarse_centroids" in arrays:
        if "coarse_scales" in arrays:  # int8 times a float16 scale per coarse centroid (format 5)
            coarse = _layout(files, arrays, "coarse_centroids", np.int8, (None, dim))
            _positive_scales(files, arrays, "coarse_scales", (len(coarse),))
        else:
            coarse = _layout(files, arrays, "coarse_centroids", "f", (None, dim))
        nprobe = manifest.get("assign_nprobe")
        if not 1 <= len(coarse) <= n_c or isinstance(nprobe, bool) or not isinstance(nprobe, int) or nprobe < 1:
            raise files.disagree("coarse_centroids", f"{len(coarse)} coarse centroids for {n_c} centroids with "
                                 f"assign_nprobe {nprobe!r} (need 1 to n_centroids, and assign_nprobe >= 1)")
    for name in ("centroids", "sub_centroids", "coarse_centroids", "bucket_cutoffs", "bucket_weights",
                 "residual_codewords"):
        if name in arrays and not _finite(arrays[name]):
            raise files.corrupt(name, "holds a value that is not finite (NaN or infinity)")
    return n_codes


def check_structure(root: Path, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`IndexCorruptError` naming the file unless the arrays are safe for every kernel (see the
    module's docstring). ``manifest`` has passed :func:`gingham.storage.disk.check_manifest`."""
    files = _Files(root, manifest)
    n_codes = check_codebook(root, manifest, arrays)
    n_bytes = manifest["dim"] * manifest["nbits"] // 8
    try:
        codes_dtype = np.dtype(manifest["codes_dtype"])
    except TypeError:
        codes_dtype = None
    if codes_dtype is None or codes_dtype.kind not in "iu":
        raise IndexCorruptError(f"{files.manifest} records codes_dtype {manifest['codes_dtype']!r}, expected an "
                                f"integer type; {FIX}")
    id_arrays = ("doc_ids",) if manifest["doc_id_kind"] == "int" else ("doc_ids_utf8", "doc_ids_offsets")
    for seg in manifest["segments"]:
        name, n_docs, n_tokens = seg["name"], seg["n_docs"], seg["n_tokens"]
        local = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{name}/")}
        missing = sorted(set(id_arrays) - set(local))
        if missing:
            raise IndexCorruptError(f"{files.manifest} lists no {missing} for segment {name}; {FIX}")
        seg_files = _Files(root, {"files": {k.split("/", 1)[1]: v for k, v in manifest["files"].items()
                                            if k.startswith(f"{name}/")}})
        _offsets(seg_files, local, "doc_offsets", n_docs, n_tokens, "codes")
        codes = _layout(seg_files, local, "codes", codes_dtype, (n_tokens,))
        _layout(seg_files, local, "residuals", np.uint8, (n_tokens, n_bytes))
        if n_tokens and (int(codes.min()) < 0 or int(codes.max()) >= n_codes):
            raise seg_files.corrupt("codes", f"holds codes outside 0..{n_codes - 1}")
        if manifest["doc_id_kind"] == "int":
            ids_dtype = np.int32 if local["doc_ids"].dtype == np.int32 else np.int64  # int32 when every id fits
            _layout(seg_files, local, "doc_ids", ids_dtype, (n_docs,))
        else:  # every search result decodes ids: O(documents) bytes, cheap enough to check on open
            _strings(seg_files, local, "doc_ids", n_docs)
            _decoded(seg_files, "doc_ids_utf8", local["doc_ids_utf8"], local["doc_ids_offsets"])
        _strings(seg_files, local, "texts", n_docs)
        _strings(seg_files, local, "meta", n_docs)
        if "deleted" in local:
            deleted = _layout(seg_files, local, "deleted", np.uint8, (n_docs,))
            if n_docs and int(deleted.max()) > 1:
                raise seg_files.corrupt("deleted", "holds deletion-mask values other than 0 and 1")


def _decoded(files: _Files, name: str, utf8: np.ndarray, offsets: np.ndarray) -> None:
    """Raise unless the strings of ``name`` (UTF-8 bytes cut at ``offsets``) each decode."""
    utf8, offsets = np.asarray(utf8), np.asarray(offsets)
    try:
        bytes(utf8).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise files.corrupt(name, f"is not valid UTF-8 ({exc})") from exc
    starts = offsets[:-1][np.diff(offsets) > 0]
    if len(starts) and ((utf8[starts] & 0xC0) == 0x80).any():  # a string starts inside a character
        raise files.corrupt(name, "cuts a UTF-8 character between two strings")


def check_segment(seg, codec, files: _Files) -> None:
    """One segment's meaning: documents non-empty, strings decodable, metadata JSON objects (or null)."""
    ix = seg.stored
    if (np.diff(np.asarray(ix.doc_offsets)) <= 0).any():
        raise files.corrupt(f"{seg.name}/doc_offsets", "holds an empty document")
    if seg.ids.kind == "str":
        ids = seg.ids.arrays()
        _decoded(files, f"{seg.name}/doc_ids_utf8", ids["doc_ids_utf8"], ids["doc_ids_offsets"])
    if seg.texts is not None:
        _decoded(files, f"{seg.name}/texts_utf8", *seg.texts)
    if seg.meta is not None:
        name = f"{seg.name}/meta_utf8"
        _decoded(files, name, *seg.meta)
        for i in range(seg.n_docs):
            try:
                value = seg.metadata(i)
            except ValueError as exc:
                raise files.corrupt(name, f"holds metadata of document {i} that is not JSON ({exc})") from exc
            if value is not None and not isinstance(value, dict):
                raise files.corrupt(name, f"holds metadata of document {i} that is not a JSON object")
    stored = [unpack_string(*seg.meta, i) for i in range(seg.n_docs)] if seg.meta is not None \
        else [None] * seg.n_docs
    seg.docstore().check(stored, seg.texts is not None)


def check_snapshot(snap, root: Path) -> None:
    """Each segment's meaning (:func:`check_segment`) and ids unique among live documents, for a snapshot whose
    structure :func:`check_structure` passed. ``root`` is the index directory, so that messages name files."""
    files = _Files(Path(root), snap.manifest)
    seen: dict = {}
    for seg in snap.segments:
        check_segment(seg, snap.codec, files)
        live = seg.live_mask()
        for pos, i in enumerate(seg.ids.to_list()):
            if live[pos]:
                if i in seen:
                    ids = "doc_ids" if seg.ids.kind == "int" else "doc_ids_utf8"
                    raise files.corrupt(f"{seg.name}/{ids}", f"holds document id {i!r}, which is live in "
                                        f"segments {seen[i]} and {seg.name}")
                seen[i] = seg.name

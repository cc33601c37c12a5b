"""Segments and snapshots: the in-memory view of one committed generation of an index.

An index is a shared codebook plus a list of immutable segments (documents added together); deletions are a
per-segment mask, rewritten by the commit that deletes. Documents are numbered by a global position: segment
``i`` owns positions ``base_i .. base_i + n_docs_i - 1``. A :class:`Snapshot` never changes once loaded, so a
search that holds one sees one consistent state while writers commit new generations.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np

from gingham.codec.residual import ResidualCodec
from gingham.common.errors import IndexCorruptError
from gingham.common.ids import DocIds, pack_strings, unpack_string
from gingham.kernels.codec import decompress
from gingham.kernels.ivf import build_ivf
from gingham.storage.docstore.database import DocStore

#: Codebook arrays every index has; ``residual_scales`` joined them in format version 2.
CODEBOOK_ARRAYS = ("centroids", "bucket_cutoffs", "bucket_weights")
#: Arrays every segment has. Its inverted lists are not among them: they are a function of the codes and the
#: document offsets, built when a segment is opened (:func:`inverted_lists`); segments of format 3 and older
#: also stored them (``ivf_docs``, ``ivf_offsets``), which readers ignore.
SEGMENT_ARRAYS = ("codes", "residuals", "doc_offsets")


class IndexArrays(NamedTuple):
    """One segment's arrays as search reads them (the codebook's beside the segment's own); they cross into the
    kernels (:mod:`gingham.search.plaid`)."""

    centroids: np.ndarray  # (n_centroids, dim) float32: candidate generation and centroid interaction
    fine: np.ndarray  # (n_codes, dim) float32: what residuals are added to (sub-centroids, or the centroids)
    scales: np.ndarray  # (n_codes,) float32, per-(sub-)centroid residual scales
    lut: np.ndarray  # (n_bytes, 256, 8 // nbits) float32
    codes: np.ndarray  # (n_tokens,) uint8/uint16/int32
    residuals: np.ndarray  # (n_tokens, n_bytes) uint8
    doc_offsets: np.ndarray  # (n_docs + 1,) int64
    ivf_docs: np.ndarray  # (n_postings,) int32
    ivf_offsets: np.ndarray  # (n_centroids + 1,) int64
    normalize: bool = False  # rescale decompressed tokens to unit length
    shift: int = 0  # a token's centroid is codes >> shift (the low bits name its sub-centroid)


def narrow_offsets(offsets: np.ndarray) -> np.ndarray:
    """Document offsets as stored: int32 when the segment has fewer than 2**31 tokens (half the bytes), else int64.
    Readers widen them to int64 (O(documents))."""
    offsets = np.asarray(offsets)
    return offsets.astype(np.int32) if len(offsets) and int(offsets[-1]) < 2**31 else offsets.astype(np.int64)


def segment_arrays(codec: ResidualCodec, codes: np.ndarray, residuals: np.ndarray, doc_offsets: np.ndarray,
                   ids: DocIds, texts=None, metadata=None) -> dict[str, np.ndarray]:
    """The arrays of a new segment, keyed by their file names."""
    arrays = {"codes": codes, "residuals": residuals, "doc_offsets": narrow_offsets(doc_offsets), **ids.arrays()}
    if texts is not None:
        arrays["texts_utf8"], arrays["texts_offsets"] = pack_strings([str(t) for t in texts])
    if metadata is not None:
        arrays["meta_utf8"], arrays["meta_offsets"] = pack_strings(
            [json.dumps(m, ensure_ascii=False, sort_keys=True) for m in metadata])
    return arrays


class _InvertedLists:
    """A segment's inverted lists, shared by every snapshot that holds the segment (see :func:`inverted_lists`)."""

    __slots__ = ("docs", "offsets", "__weakref__")

    def __init__(self, docs: np.ndarray, offsets: np.ndarray) -> None:
        self.docs, self.offsets = docs, offsets


#: Inverted lists of open segments, by their codes file: a commit that keeps a segment reuses its lists instead
#: of building them again. An entry lives as long as a snapshot holds its segment.
_LISTS: "weakref.WeakValueDictionary[tuple, _InvertedLists]" = weakref.WeakValueDictionary()
_LISTS_LOCK = threading.Lock()


def inverted_lists(codes: np.ndarray, doc_offsets: np.ndarray, shift: int, n_centroids: int,
                   key: tuple | None = None) -> _InvertedLists:
    """The inverted lists (centroid -> ascending unique documents) of a segment's codes, built by a counting
    sort over its tokens: two passes, about 35 ms per million tokens on one core (measured with 65,536 centroids
    and random codes), so they need not be stored (3 bytes per token saved on disk). ``key`` (the codes file
    and its checksum) shares them between snapshots of the same committed segment. ``codes`` and ``doc_offsets``
    have passed :func:`gingham.storage.consistency.check_structure` (codes within range, offsets monotonic)."""
    if key is not None:
        with _LISTS_LOCK:
            found = _LISTS.get(key)
        if found is not None:
            return found
    docs, offsets = build_ivf(np.asarray(codes), shift, np.asarray(doc_offsets), n_centroids)
    docs.setflags(write=False)
    offsets.setflags(write=False)
    lists = _InvertedLists(docs, offsets)
    if key is not None:
        with _LISTS_LOCK:
            lists = _LISTS.setdefault(key, lists)
    return lists


def _file(arr: np.ndarray, segment: str) -> str:
    """The file an array was memory-mapped from (for error messages), else its segment's name."""
    name = getattr(arr, "filename", None)
    return f"index file {name}" if name else f"segment {segment}"


@dataclass
class Segment:
    """One immutable segment of a snapshot. ``stored`` are its arrays as committed, without inverted lists;
    :attr:`arrays` adds them, built on first use (a search) and shared with every snapshot holding the segment."""

    name: str
    base: int
    stored: IndexArrays  # ivf_docs and ivf_offsets are None
    ids: DocIds
    texts: tuple[np.ndarray, np.ndarray] | None
    meta: tuple[np.ndarray, np.ndarray] | None
    deleted: np.ndarray | None  # uint8 (n_docs,), 1 = deleted
    _docs: DocStore | Path | None = field(default=None, repr=False)  # its database, or the file to open, or None
    _meta_cache: list | None = field(default=None, repr=False)
    _docs_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _lists_key: tuple | None = field(default=None, repr=False)  # the codes file, for sharing the lists
    _arrays: IndexArrays | None = field(default=None, repr=False)
    _lists: _InvertedLists | None = field(default=None, repr=False)  # keeps the shared inverted lists alive
    _lists_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def arrays(self) -> IndexArrays:
        """The arrays search reads: ``stored`` plus the inverted lists (built by the first call)."""
        if self._arrays is None:
            with self._lists_lock:
                if self._arrays is None:
                    ix = self.stored
                    self._lists = inverted_lists(ix.codes, ix.doc_offsets, ix.shift, len(ix.centroids),
                                                 self._lists_key)
                    self._arrays = ix._replace(ivf_docs=self._lists.docs, ivf_offsets=self._lists.offsets)
        return self._arrays

    @property
    def n_docs(self) -> int:
        return len(self.stored.doc_offsets) - 1

    def decompress(self, lo: int, hi: int | None = None) -> np.ndarray:
        """The decompressed token vectors (n_tokens, dim) of local documents ``lo .. hi - 1`` in order (of document
        ``lo`` alone when ``hi`` is None)."""
        ix = self.stored
        a, b = ix.doc_offsets[lo], ix.doc_offsets[lo + 1 if hi is None else hi]
        return decompress(ix.codes[a:b], ix.residuals[a:b], ix.fine, ix.scales, ix.lut, ix.normalize)

    @property
    def n_tokens(self) -> int:
        return int(self.stored.doc_offsets[-1])

    @property
    def n_live(self) -> int:
        return self.n_docs - (int(self.deleted.sum()) if self.deleted is not None else 0)

    def live_mask(self) -> np.ndarray:
        """uint8 (n_docs,), 1 for live documents."""
        if self.deleted is None:
            return np.ones(self.n_docs, dtype=np.uint8)
        return (1 - self.deleted).astype(np.uint8)

    def text(self, pos: int) -> str | None:
        if self.texts is None:
            return None
        try:
            return unpack_string(*self.texts, pos)
        except UnicodeDecodeError as exc:
            where = _file(self.texts[0], self.name)
            raise IndexCorruptError(f"{where}: the stored text of document {pos} is not valid UTF-8 ({exc}); run "
                                    "`gingham verify`, restore the index or rebuild it") from exc

    def metadata(self, pos: int) -> dict | None:
        if self.meta is None:
            return None
        try:
            value = json.loads(unpack_string(*self.meta, pos))
        except (UnicodeDecodeError, ValueError) as exc:
            where = _file(self.meta[0], self.name)
            raise IndexCorruptError(f"{where}: the stored metadata of document {pos} is not valid JSON ({exc}); "
                                    "run `gingham verify`, restore the index or rebuild it") from exc
        if value is not None and not isinstance(value, dict):
            where = _file(self.meta[0], self.name)
            raise IndexCorruptError(f"{where}: the stored metadata of document {pos} is a {type(value).__name__}, "
                                    "not an object; restore the index or rebuild it")
        return value

    def docstore(self) -> DocStore:
        """The segment's SQLite database (metadata columns, full-text index): the committed file, or for a
        segment of a format 1 or 2 index one built in memory from its arrays on first use."""
        if not isinstance(self._docs, DocStore):
            with self._docs_lock:
                if isinstance(self._docs, Path):
                    self._docs = DocStore.open(self._docs, self.n_docs)
                elif self._docs is None:
                    texts = None if self.texts is None else (self.text(i) for i in range(self.n_docs))
                    metas = None if self.meta is None else self.all_metadata()
                    self._docs = DocStore.in_memory(metas, texts, self.n_docs, self.name)
        return self._docs

    def all_metadata(self) -> list:
        if self._meta_cache is None:
            self._meta_cache = [self.metadata(i) for i in range(self.n_docs)]
        return self._meta_cache


class Snapshot:
    """One committed generation: manifest, codec and segments. Immutable after construction."""

    def __init__(self, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                 stores: Mapping[str, DocStore | Path] | None = None):
        self.manifest = dict(manifest)
        self.generation = int(manifest["generation"])
        self.codec = ResidualCodec.from_arrays(arrays, int(manifest["nbits"]), bool(manifest.get("normalized", False)),
                                               manifest.get("assign_nprobe", 0))
        lut = self.codec.lut()
        self.segments: list[Segment] = []
        base = 0
        for seg in manifest["segments"]:
            name = seg["name"]

            def get(key: str, _n=name):
                return arrays.get(f"{_n}/{key}")

            codes_file = getattr(get("codes"), "filename", None)  # memory-mapped from a committed file
            key = None if codes_file is None else (
                str(codes_file), self.manifest.get("files", {}).get(f"{name}/codes", {}).get("sha256"),
                self.codec.sub_bits, self.codec.n_centroids)
            ix = IndexArrays(
                centroids=self.codec.centroids, fine=self.codec.fine, scales=self.codec.scales, lut=lut,
                codes=get("codes"), residuals=get("residuals"), doc_offsets=np.ascontiguousarray(get("doc_offsets"), dtype=np.int64),
                ivf_docs=None, ivf_offsets=None,
                normalize=self.codec.normalize, shift=self.codec.sub_bits,
            )
            ids = DocIds.from_arrays(manifest["doc_id_kind"], {k.split("/", 1)[1]: v for k, v in arrays.items()
                                                               if k.startswith(f"{name}/doc_ids")})
            texts = (get("texts_utf8"), get("texts_offsets")) if get("texts_utf8") is not None else None
            meta = (get("meta_utf8"), get("meta_offsets")) if get("meta_utf8") is not None else None
            deleted = get("deleted")
            segment = Segment(name, base, ix, ids, texts, meta, np.asarray(deleted) if deleted is not None else None,
                              (stores or {}).get(name), _lists_key=key)
            self.segments.append(segment)
            base += segment.n_docs
        self.n_positions = base
        self.bases = np.array([s.base for s in self.segments] + [base], dtype=np.int64)
        self._lookup: dict | None = None
        self._lock = threading.Lock()

    @property
    def n_live(self) -> int:
        return sum(s.n_live for s in self.segments)

    @property
    def n_tokens(self) -> int:
        return sum(s.n_tokens for s in self.segments)

    def locate(self, position: int) -> tuple[Segment, int]:
        i = int(np.searchsorted(self.bases, position, side="right")) - 1
        seg = self.segments[i]
        return seg, position - seg.base

    def lookup(self) -> dict:
        """Caller id -> global position, live documents only (built on first use)."""
        if self._lookup is None:
            with self._lock:
                if self._lookup is None:
                    table = {}
                    for seg in self.segments:
                        ids = seg.ids.to_list()
                        live = seg.live_mask()
                        for pos, i in enumerate(ids):
                            if live[pos]:
                                table[i] = seg.base + pos
                    self._lookup = table
        return self._lookup

    def positions(self, ids, missing_ok: bool = False) -> np.ndarray:
        table = self.lookup()
        kind = self.manifest["doc_id_kind"]
        out = []
        for i in ids:
            key = int(i) if kind == "int" and isinstance(i, (int, np.integer)) else i
            pos = table.get(key)
            if pos is None:
                if missing_ok:
                    continue
                raise KeyError(f"document id {i!r} is not in the index")
            out.append(pos)
        return np.array(out, dtype=np.int64)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Caller ids at global ``positions``; -1 gives -1 (int ids) or None (str ids)."""
        positions = np.asarray(positions, dtype=np.int64)
        int_ids = self.manifest["doc_id_kind"] == "int"
        out = np.full(positions.shape, -1, dtype=np.int64) if int_ids else np.empty(positions.shape, dtype=object)
        for idx, pos in np.ndenumerate(positions):
            if pos < 0:
                continue
            seg, local = self.locate(int(pos))
            out[idx] = seg.ids[local]
        return out

    def all_ids(self) -> list:
        """Every live document's caller id, in position order."""
        return [i for seg in self.segments for i, live in zip(seg.ids.to_list(), seg.live_mask()) if live]

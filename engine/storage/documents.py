"""Documents as records: reading them by id, attaching them to search hits, deleting by filter, and updating their
metadata (or stored text) without re-embedding.

Reads take one :class:`gingham.storage.segment.Snapshot`, so a document and the hit it belongs to come from one committed
generation. The two writes are ``change`` functions for :meth:`gingham.Index._write`: they run under the index's
write lock on the newest committed state and are published by one atomic manifest replace, so a failure at any
point (a bad filter, an unknown id, a full disk, a kill) leaves the index as it was.

An update rewrites the metadata (or text) arrays of the segments that hold the updated documents and their SQLite
databases (metadata columns, full-text index), which :func:`gingham.storage.docstore.complete` builds again from the new
arrays, exactly as a new segment's; codes, residuals, ids and deletion masks are kept as they are (referenced, not
copied). Its cost is therefore that of the affected segments' metadata and texts, not of their vectors: a compacted
index is one segment, so an update of one document there rewrites every document's metadata and full-text index
(seconds per 100,000 documents). Batch updates into one call.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gingham.common import validation
from gingham.common.errors import DocumentNotFoundError
from gingham.common.results import SearchResults
from gingham.storage.docstore import database_name, filters

#: What an update does with a document's stored metadata object.
METADATA_MODES = ("merge", "replace")
_NULL = b"null"  # the stored metadata of a document that has none (as compaction writes it)


class Unchanged(Exception):
    """Raised inside a write's change to commit nothing (the writer is aborted; the index stays as it was)."""


# ------------------------------------------------------------------------------------------------- reading
def check_flags(**flags: Any) -> None:
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")


def record(snap, position: int, doc_id, include_text: bool, include_metadata: bool) -> dict:
    """The document at global ``position`` of ``snap`` as ``{"id", "text"?, "metadata"?}``: text is None when the
    index stores no texts, metadata None when the document has none."""
    seg, local = snap.locate(int(position))
    out: dict[str, Any] = {"id": doc_id}
    if include_text:
        out["text"] = seg.text(local)
    if include_metadata:
        out["metadata"] = seg.metadata(local)
    return out


def fetch(snap, doc_ids, kind: str, *, include_text: bool = True, include_metadata: bool = True,
          missing_ok: bool = False) -> list[dict | None]:
    """The documents with caller ids ``doc_ids``, in that order (see :meth:`gingham.Index.documents`)."""
    check_flags(include_text=include_text, include_metadata=include_metadata, missing_ok=missing_ok)
    ids = validation.ids(doc_ids, kind)
    table = snap.lookup()
    positions = [table.get(i) for i in ids]
    missing = [i for i, p in zip(ids, positions) if p is None]
    if missing and not missing_ok:
        raise DocumentNotFoundError(missing)
    return [None if p is None else record(snap, p, i, include_text, include_metadata)
            for i, p in zip(ids, positions)]


def attach(snap, results: SearchResults, include_text: bool, include_metadata: bool) -> SearchResults:
    """``results`` (answered by ``snap``) with the hits' stored texts and / or metadata beside them: object arrays
    shaped like ``results.ids``, None at gaps (and for documents without them)."""
    check_flags(include_text=include_text, include_metadata=include_metadata)
    if not (include_text or include_metadata):
        return results
    texts = np.full(results.positions.shape, None, dtype=object) if include_text else None
    metas = np.full(results.positions.shape, None, dtype=object) if include_metadata else None
    for idx, pos in np.ndenumerate(results.positions):
        if pos < 0:
            continue
        seg, local = snap.locate(int(pos))
        if texts is not None:
            texts[idx] = seg.text(local)
        if metas is not None:
            metas[idx] = seg.metadata(local)
    return SearchResults(results.positions, results.scores, results.ids, results.generation, texts=texts,
                         metadata=metas)


# ------------------------------------------------------------------------------------------------- delete by filter
class DeleteWhere:
    """The change that deletes every live document whose metadata satisfies the SQL filter ``where`` (the language
    of :meth:`gingham.Index.search`'s ``where=``, :mod:`gingham.storage.docstore.filters`: same checks, same deadline),
    evaluated on the newest committed state under the write lock. ``deleted`` is set by a successful run; when the
    filter matches nothing it raises :class:`Unchanged` (nothing is committed)."""

    def __init__(self, where: Any, params: Sequence | Mapping | None = None) -> None:
        if callable(where) and not isinstance(where, str):
            raise ValueError("delete_where takes a SQL expression over metadata fields (where=\"lang = ?\", "
                             "params=[\"de\"]), not a callable; to delete by a Python predicate, collect the ids "
                             "(index.ids(), index.metadata(id)) and call delete(ids)")
        filters.check_expression(where, params)  # a malformed filter fails here, before the lock
        self.where, self.params, self.deleted = where, params, 0

    def __call__(self, snap, writer, manifest: dict) -> None:
        from gingham.storage.commits import write_deletions

        masks = [seg.live_mask() for seg in snap.segments]
        filters.allowed([seg.docstore() for seg in snap.segments], masks, self.where, self.params)
        positions = np.concatenate([np.flatnonzero(m) + seg.base for m, seg in zip(masks, snap.segments)]
                                   or [np.zeros(0, np.int64)]).astype(np.int64)
        if len(positions) == 0:
            raise Unchanged()
        write_deletions(snap, writer, manifest, positions)
        self.deleted = int(len(positions))


# ------------------------------------------------------------------------------------------------- update
class Update:
    """The change that updates documents' metadata and / or stored texts in place (see the module's docstring and
    :meth:`gingham.Index.update`). Everything is checked before the lock but the ids' presence, which is checked
    on the state the commit builds on."""

    def __init__(self, kind: str, doc_ids, metadata=None, texts=None, mode: str = "merge") -> None:
        self.ids = validation.ids(doc_ids, kind)
        n = len(self.ids)
        if n == 0:
            raise ValueError("no document ids given; pass the ids to update, with one metadata dict (and / or text) "
                             "per id")
        seen: set = set()
        for i in self.ids:
            if i in seen:
                raise ValueError(f"document id {i!r} appears twice in one update; merge its changes into one")
            seen.add(i)
        if mode not in METADATA_MODES:
            raise ValueError(f"mode must be one of {METADATA_MODES} (merge: the given keys replace theirs, the "
                             f"others stay; replace: the given object replaces the stored one), got {mode!r}")
        if metadata is None and texts is None:
            raise ValueError("nothing to update: pass metadata= (one dict per id) and / or texts= (one str per id)")
        self.metadata = _entries(metadata, self.ids, "metadata", _check_metadata) if metadata is not None else None
        self.texts = _entries(texts, self.ids, "text", _check_text) if texts is not None else None
        self.mode = mode

    def __call__(self, snap, writer, manifest: dict) -> None:
        table = snap.lookup()
        positions = [table.get(i) for i in self.ids]
        missing = [i for i, p in zip(self.ids, positions) if p is None]
        if missing:
            raise DocumentNotFoundError(missing, "nothing was updated")
        if self.texts is not None and any(t is not None for t in self.texts) \
                and any(seg.texts is None for seg in snap.segments):
            raise ValueError("this index does not store its documents' texts, so there is no text to update; "
                             "update metadata only, or rebuild it with texts")
        by_segment: dict[int, dict[str, dict[int, bytes]]] = {}
        for k, pos in enumerate(positions):
            i = int(np.searchsorted(snap.bases, pos, side="right")) - 1
            seg, local = snap.segments[i], int(pos) - int(snap.bases[i])
            changes = by_segment.setdefault(i, {"meta": {}, "texts": {}})
            if self.metadata is not None and self.metadata[k] is not None:
                given = self.metadata[k]
                new = given if self.mode == "replace" else {**(seg.metadata(local) or {}), **given}
                changes["meta"][local] = json.dumps(new, ensure_ascii=False, sort_keys=True).encode("utf-8")
            if self.texts is not None and self.texts[k] is not None:
                changes["texts"][local] = self.texts[k].encode("utf-8")
        touched = False
        for i, changes in by_segment.items():
            seg = snap.segments[i]
            for attr, replaced in changes.items():
                if not replaced:
                    continue
                utf8, offsets = splice(getattr(seg, attr), seg.n_docs, replaced)
                writer.save(f"{seg.name}/{attr}_utf8", utf8)
                writer.save(f"{seg.name}/{attr}_offsets", offsets)
                touched = True
            writer.drop(database_name(seg.name))  # built again from the new arrays by docstore.complete
        if not touched:
            raise Unchanged()


def splice(stored: tuple[np.ndarray, np.ndarray] | None, n_docs: int,
           replaced: Mapping[int, bytes]) -> tuple[np.ndarray, np.ndarray]:
    """A segment's strings (UTF-8 bytes + int64 offsets, as :func:`gingham.common.ids.pack_strings` lays them out) with
    the strings of the documents in ``replaced`` (local position -> UTF-8) replaced; ``stored`` None stands for
    ``null`` for every document (a segment stored without metadata). Unchanged runs are copied as slices."""
    if stored is None:
        sizes = np.full(n_docs, len(_NULL), dtype=np.int64)
    else:
        sizes = np.diff(np.asarray(stored[1], dtype=np.int64))
    pieces, prev = [], 0
    for local in sorted(replaced):
        pieces.append(_run(stored, prev, local))
        pieces.append(np.frombuffer(replaced[local], dtype=np.uint8))
        sizes[local] = len(replaced[local])
        prev = local + 1
    pieces.append(_run(stored, prev, n_docs))
    new_offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(sizes, out=new_offsets[1:])
    out = np.concatenate(pieces) if pieces else np.zeros(0, np.uint8)
    return out.astype(np.uint8, copy=False), new_offsets


def _run(stored, lo: int, hi: int) -> np.ndarray:
    """The bytes of documents ``lo:hi`` as stored."""
    if hi <= lo:
        return np.zeros(0, np.uint8)
    if stored is None:
        return np.frombuffer(_NULL * (hi - lo), dtype=np.uint8)
    utf8, offsets = stored
    return np.asarray(utf8[int(offsets[lo]):int(offsets[hi])], dtype=np.uint8)


def _check_metadata(m: Any) -> dict:
    return validation.metadata([m], 1)[0]  # type: ignore[return-value]


def _check_text(t: Any) -> str:
    return validation.texts([t], "text", n=1, allow_blank=True)[0]


def _entries(items: Any, ids: list, what: str, check: Callable[[Any], Any]) -> list:
    """One entry per id (None: leave that document's ``what`` as it is), each checked."""
    n = len(ids)
    if isinstance(items, (str, bytes, Mapping)):
        raise ValueError(f"pass a list with one {what} per id (or None to leave it), got a single "
                         f"{type(items).__name__}")
    try:
        items = list(items)
    except TypeError:
        raise ValueError(f"pass a list with one {what} per id, got {type(items).__name__}") from None
    if len(items) != n:
        raise ValueError(f"got {len(items)} {what} entries for {n} ids; pass one per id (None leaves one as it is)")
    out = []
    for k, item in enumerate(items):
        if item is None:
            out.append(None)
            continue
        try:
            out.append(check(item))
        except ValueError as exc:  # "metadata 0 must be ..." names the entry of a one-entry check: name the id
            raise ValueError(str(exc).replace(f"{what} 0", f"the {what} of document {ids[k]!r}", 1)) from None
    return out

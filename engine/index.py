"""The Index: build from token embeddings, open, search, and update in place.

``Index`` is a facade: it holds the committed snapshot it answers from, the write locks and the encoder handle, and
each verb delegates to the layer that does the work: searches to :mod:`gingham.search.query` (functions of a
snapshot), writes to :mod:`gingham.storage.writes` (the one write path: validate, compress, segment arrays,
commit), the encoder to :mod:`gingham.encoder.handle`.

An open Index is safe to search from many threads at once: each search holds one immutable :class:`Snapshot`
(memory-mapped read-only arrays) for its whole run. Writes (``add``, ``delete``, ``upsert``, ``compact``,
``rebuild``) take the index's cross-process write lock, build on the newest committed state on disk, and publish a
new generation atomically; readers pick it up with :meth:`Index.refresh`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from gingham.codec.residual import ResidualCodec
from gingham.common import validation
from gingham.common.config import BuildConfig, SearchConfig, resolve_build_config
from gingham.common.ids import check_id
from gingham.common.results import SearchResults
from gingham.encoder.handle import EncoderHandle
from gingham.search import query
from gingham.search.query import HYBRID_CANDIDATES, HYBRID_MODES, exact_search  # noqa: F401 - public here too
from gingham.storage import disk, writes
from gingham.storage.commits import commit_change, load_snapshot, open_newest
from gingham.storage.segment import Snapshot
from gingham.storage.writes import DRIFT_MIN_TOKENS, DRIFT_WARNING  # noqa: F401 - public here too

PathLike = str | os.PathLike
Change = Callable[[Snapshot, disk.GenerationWriter, dict], None]


class Index:
    """A compressed late-interaction index on disk. Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path: Path, snapshot: Snapshot):
        self.path = path
        self._snap = snapshot
        self._encoders = EncoderHandle(snapshot.manifest.get("encoder"), path)
        self._write_mutex = threading.Lock()

    # ---------------------------------------------------------------------------------------------- properties
    @property
    def snapshot(self) -> Snapshot:
        """The committed generation this Index answers from (immutable; :meth:`refresh` moves to a newer one)."""
        return self._snap

    @property
    def manifest(self) -> dict[str, Any]:
        return self._snap.manifest

    @property
    def codec(self) -> ResidualCodec:
        return self._snap.codec

    @property
    def dim(self) -> int:
        return self._snap.codec.dim

    @property
    def nbits(self) -> int:
        return self._snap.codec.nbits

    @property
    def n_docs(self) -> int:
        """Live documents."""
        return self._snap.n_live

    @property
    def n_tokens(self) -> int:
        return self._snap.n_tokens

    @property
    def generation(self) -> int:
        return self._snap.generation

    @property
    def build_config(self) -> BuildConfig:
        return BuildConfig.from_dict(self.manifest["build_config"])

    @property
    def search_defaults(self) -> SearchConfig:
        return SearchConfig.from_dict(self.manifest.get("search_defaults", {}))

    def __len__(self) -> int:
        return self.n_docs

    def __contains__(self, doc_id) -> bool:
        """Whether ``doc_id`` is a live document. An id that breaks the id rule (:mod:`gingham.common.ids`) or is of the
        other kind than this index's ids is a ValueError, as everywhere else, not False."""
        return len(self._snap.positions([self._id(doc_id)], missing_ok=True)) == 1

    def _id(self, doc_id, what: str = "document id"):
        return check_id(doc_id, self.manifest["doc_id_kind"], what)

    def __repr__(self) -> str:
        return (f"Index({str(self.path)!r}, n_docs={self.n_docs}, n_tokens={self.n_tokens}, dim={self.dim}, "
                f"nbits={self.nbits}, n_centroids={self.codec.n_centroids}, segments={len(self._snap.segments)})")

    def ids(self) -> list:
        """Every live document's id."""
        return self._snap.all_ids()

    def info(self) -> dict[str, Any]:
        """Counts, sizes, configs and codebook health, as committed plus sizes measured on disk."""
        from gingham.storage.describe import describe

        return describe(self._snap, self.path)

    def codebook_drift(self) -> float:
        """Reconstruction error of tokens added after the build, relative to the build's own (1.0 = as good).

        Above ~1.5 the codebook fits new data badly: :meth:`rebuild` re-clusters.
        """
        return writes.codebook_drift(self.manifest)

    # ---------------------------------------------------------------------------------------------- build/open
    @classmethod
    def create(cls, path: PathLike, embeddings: Sequence[np.ndarray] | np.ndarray,
               doc_ids: Sequence | np.ndarray | None = None, *, lengths: Sequence[int] | np.ndarray | None = None,
               config: BuildConfig | Mapping[str, Any] | None = None, overwrite: bool = False,
               show_progress: bool | None = None, texts: Sequence[str] | None = None,
               metadata: Sequence[Mapping] | None = None, encoder: Mapping[str, Any] | None = None,
               codec: ResidualCodec | None = None, **options: Any) -> "Index":
        """Build an index at ``path`` from per-document token embeddings and return it opened.

        embeddings: a list of (n_tokens_i, dim) float arrays, or one flat (n_tokens, dim) array with ``lengths``.
        doc_ids: the caller's ids, a list of all str or all int (>= 0; negative ints are reserved, -1 marks "no
            result"), unique; default 0..n-1. The id rule is in :mod:`gingham.common.ids`.
        config / options: a :class:`BuildConfig`, a dict, or its fields as keyword arguments.
        overwrite: replace an existing index at ``path`` (atomically: readers see the old or the new one).
        texts: the documents' texts, stored to show with results (optional).
        metadata: one JSON-serialisable dict per document, for filtered search (optional).
        encoder: how the embeddings were made (``{"model": ..., "options": {...}}``), so that text queries can be
            encoded the same way; set by :meth:`from_texts`.
        codec: compress with this trained codebook (``other_index.codec``) instead of training one: indexes built
            with one codec are shards of one corpus whose scores compare (:class:`gingham.ShardedIndex`). Its
            ``nbits`` and codebook size are recorded in the build config; k-means options are unused.
        """
        cfg = resolve_build_config(config, options)
        if codec is not None:
            nbits_given = "nbits" in options or (config is not None and (not isinstance(config, Mapping)
                                                                           or "nbits" in config))
            cfg = writes.config_for_codec(cfg, codec, nbits_given)
        docs = writes.documents(embeddings, lengths, doc_ids, texts, metadata)
        root = Path(path)

        def measure(snap: Snapshot) -> dict:  # calibration, on the new arrays before they are committed
            from gingham.search import calibration

            return calibration.calibrate(cls(root, snap), seed=cfg.seed)

        writes.create(root, docs, cfg, codec, overwrite=overwrite, encoder=encoder, show_progress=show_progress,
                      measure=measure if cfg.calibrate else None)
        return cls.open(root)

    @classmethod
    def open(cls, path: PathLike, verify: bool = False) -> "Index":
        """Open the index at ``path`` (arrays memory-mapped read-only). ``verify`` also checks every sha256."""
        root = Path(path)
        return cls(root, open_newest(root, verify))

    def refresh(self) -> bool:
        """Pick up a generation committed since this Index was opened (by this or another process).

        Searches already running finish on the state they started with. Returns True if the state changed.
        """
        snap = open_newest(self.path, current=self._snap)
        if snap is self._snap:
            return False
        self._snap = snap
        return True

    def verify(self) -> None:
        """Check this generation's files on disk: every sha256, the structure every open checks, and meaning
        (inverted lists, UTF-8, JSON metadata, unique ids); raise :class:`IndexCorruptError` naming the file."""
        from gingham.storage.consistency import check_snapshot

        check_snapshot(load_snapshot(self.path, self.manifest, verify=True), self.path)

    # ---------------------------------------------------------------------------------------------- updates
    def add(self, embeddings: Sequence[np.ndarray] | np.ndarray, doc_ids: Sequence | np.ndarray, *, lengths=None,
            texts: Sequence[str] | None = None, metadata: Sequence[Mapping] | None = None,
            show_progress: bool | None = None) -> int:
        """Add documents under new ids (an id already in the index is an error: use :meth:`upsert`).

        New tokens are compressed with the existing codebook; see :meth:`codebook_drift`. Returns the generation.
        """
        return self._upsert(embeddings, doc_ids, lengths, texts, metadata, replace=False, show_progress=show_progress)

    def upsert(self, embeddings, doc_ids, *, lengths=None, texts=None, metadata=None, show_progress=None) -> int:
        """Add documents, replacing any live document with the same id, in one atomic commit."""
        return self._upsert(embeddings, doc_ids, lengths, texts, metadata, replace=True, show_progress=show_progress)

    def _upsert(self, embeddings, doc_ids, lengths, texts, metadata, replace: bool, show_progress) -> int:
        docs = writes.documents(embeddings, lengths, doc_ids, texts, metadata, dim=self.dim,
                                id_kind=self.manifest["doc_id_kind"])
        generation = self._write(writes.AddDocuments(docs, self._snap, self.build_config.batch_size, replace,
                                                     show_progress))
        writes.warn_if_drifted(self.manifest)
        return generation

    def delete(self, doc_ids: Iterable, *, missing_ok: bool = False) -> int:
        """Delete documents by id: invisible to searches at once (after :meth:`refresh` in other readers);
        space is reclaimed by :meth:`compact`. Returns the generation."""
        return self._write(writes.delete(validation.ids(doc_ids, self.manifest["doc_id_kind"]), missing_ok))

    def delete_where(self, where: str, params: Sequence | Mapping | None = None) -> int:
        """Delete every live document whose metadata satisfies ``where``, a SQL expression over metadata fields
        with ``params`` (as :meth:`search`'s ``where=``: same checks, same deadline), in one atomic commit; the
        filter is evaluated on the newest committed state under the write lock. Returns how many documents were
        deleted (0: the filter matched none, and nothing was committed)."""
        from gingham.storage.documents import DeleteWhere, Unchanged

        change = DeleteWhere(where, params)
        with contextlib.suppress(Unchanged):
            self._write(change)
        return change.deleted

    def update(self, doc_ids: Iterable, *, metadata: Sequence[Mapping | None] | None = None,
               texts: Sequence[str | None] | None = None, mode: str = "merge") -> int:
        """Update documents' metadata (and / or stored texts) in place, without re-embedding, in one atomic commit.

        ``metadata``: one dict per id (None leaves that document's as it is). ``mode="merge"`` (the default): its
        keys replace the stored object's top-level keys of the same name and the other keys stay (a value of None
        is stored as null, not removed); ``mode="replace"``: it replaces the stored object. ``texts``: one str per
        id (None: unchanged), the new stored text (results, BM25); the vectors are not re-encoded, so MaxSim still
        scores the text that was embedded: to change what a document means, :meth:`upsert` it. Filters, BM25 and
        reads see the update at once (other readers after :meth:`refresh`); it survives reopening and compaction.
        An id that is not in the index raises :class:`gingham.DocumentNotFoundError` and updates nothing. Cost: the
        affected segments' metadata and texts are rewritten (see :mod:`gingham.storage.documents`). Returns the
        generation."""
        from gingham.storage.documents import Unchanged, Update

        change = Update(self.manifest["doc_id_kind"], doc_ids, metadata, texts, mode)
        with contextlib.suppress(Unchanged):
            self._write(change)
        return self.generation

    def compact(self, show_progress: bool | None = None) -> int:
        """Rewrite the live documents into one segment (same codebook), dropping deleted ones. Readers keep
        searching the old generation until they refresh. Returns the generation."""
        self._write(lambda snap, writer, manifest: writes.compact(snap, writer, manifest, show_progress))
        self.recalibrate()
        return self.generation

    def rebuild(self, show_progress: bool | None = None, **options: Any) -> "Index":
        """Re-cluster: train a new codebook on the live documents' (decompressed) tokens and recompress them all.

        Use when :meth:`codebook_drift` reports that added documents fit the codebook badly. Build options (for
        example ``nbits``) may change. Training runs without the write lock, so other writers go on; the commit
        holds exactly the documents live when it is made, including those committed while it trained (see
        :mod:`gingham.storage.rebuild`). Readers keep the old generation until they refresh.
        """
        from gingham.storage.rebuild import rebuild

        self.refresh()
        cfg = BuildConfig.from_dict({**self.manifest["build_config"], **options})
        self._snap = load_snapshot(self.path, rebuild(self.path, self._snap, cfg, show_progress, lock=self._locked))
        self.recalibrate()
        return self

    def set_search_defaults(self, **settings: Any) -> int:
        """Store search settings (``SearchConfig`` fields) as this index's defaults. Returns the generation."""
        checked = SearchConfig.from_dict(settings).to_dict()
        return self._write(writes.set_field("search_defaults", {k: checked[k] for k in settings}))

    def calibrate(self, queries=None, *, top_ks: Sequence[int] | None = None, target: float | None = None,
                  n_queries: int | None = None, seed: int | None = None) -> dict[str, Any]:
        """Measure and store the cheapest search settings per top_k that reach ``target`` recall@k against
        exhaustive search (see :mod:`gingham.search.calibration`); searches use them for settings left unset.

        ``queries``: real queries (a list of (n_q, dim) arrays) to tune with; default: pseudo-queries drawn from
        the index, seeded by ``seed`` (default: the build's). ``top_ks`` (default (10, 100)) may not exceed the
        number of live documents, as a search's top_k may not. Returns the stored record.
        """
        from gingham.search import calibration

        self.refresh()
        record = calibration.measure(self, queries, top_ks=top_ks, target=target, n_queries=n_queries, seed=seed)
        self._write(writes.set_field("calibration", record))
        return record

    def recalibrate(self) -> None:
        """Calibrate the search defaults again as the build config says (after a compaction, a rebuild or a
        streaming build: a commit of its own; nothing when the build config has ``calibrate=False``, nor on an
        index too small to calibrate that has no stale record to replace)."""
        if not self.build_config.calibrate:
            return
        from gingham.search import calibration

        record = calibration.calibrate(self, seed=self.build_config.seed)
        if "skipped" not in record or self.manifest.get("calibration"):  # else nothing to store or replace
            self._write(writes.set_field("calibration", record))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This handle's writers one at a time, and the index's cross-process write lock."""
        with self._write_mutex, disk.write_lock(self.path):
            yield

    def _write(self, change: Change) -> int:
        """Apply ``change`` to the newest committed state under the write lock and commit a new generation."""
        with self._locked():
            committed = commit_change(self.path, change, self._snap)
            self._snap = load_snapshot(self.path, committed)
            return self._snap.generation

    # ---------------------------------------------------------------------------------------------- text
    @classmethod
    def from_texts(cls, path: PathLike, texts: Sequence[str], doc_ids: Sequence | None = None, *,
                   model: str = "multilingual-e5-small", encoder_options: Mapping[str, Any] | None = None,
                   store_texts: bool = True, metadata: Sequence[Mapping] | None = None, batch_size: int | None = None,
                   show_progress: bool | None = None, overwrite: bool = False, pool_factor: int = 1,
                   pool_renormalize: bool = False, query_pack: bool = True, **options: Any) -> "Index":
        """Encode ``texts`` with a late-interaction ``model`` (a folder, a cached hub name, or the offline
        ``multilingual-e5-small``) and build an index; text queries are later encoded the same way.

        ``pool_factor`` > 1 pools each document's tokens (first token kept) to about 1/pool_factor of them, and
        texts added later are pooled the same way (see :mod:`gingham.encoder.pooling`; ``pool_renormalize`` rescales
        each pooled vector to unit length).

        ``query_pack`` (default on): where ONNX Runtime and the exporter are installed (the ``encoder`` extra) and
        the encoder runs float32 on the CPU, also write the model's query pack once per machine (an ONNX export,
        tens of seconds for a small model), so that later processes encode text queries without importing torch
        (:attr:`query_encoder`, :mod:`gingham.encoder.light`)."""
        from gingham.encoder.handle import encode_corpus, write_query_pack
        from gingham.encoder.pooling import pooling_entry

        texts = validation.texts(texts, "text")
        pooling = pooling_entry(pool_factor, pool_renormalize)
        writes.precheck_create(Path(path), len(texts), doc_ids, metadata, overwrite, options)
        encoder, embeddings, info = encode_corpus(texts, model, encoder_options, pooling, batch_size, show_progress)
        index = cls.create(path, embeddings, doc_ids, overwrite=overwrite, show_progress=show_progress,
                           texts=texts if store_texts else None, metadata=metadata, encoder=info, **options)
        index._encoders = EncoderHandle(info, index.path, encoder)
        if query_pack:
            write_query_pack(encoder, info)
        return index

    def add_texts(self, texts: Sequence[str], doc_ids: Sequence, *, metadata=None, upsert: bool = False,
                  show_progress: bool | None = None) -> int:
        """Encode ``texts`` with the index's encoder and add (or upsert) them."""
        from gingham.encoder.pooling import pool_as_recorded

        texts = validation.texts(texts, "text")
        self.refresh()
        writes.precheck_add(self._snap, doc_ids, len(texts), metadata, upsert)
        embeddings = pool_as_recorded(self.manifest.get("encoder"),
                                      self.encoder.encode_documents(texts, show_progress=show_progress))
        stored = texts if any(s.texts is not None for s in self._snap.segments) else None
        op = self.upsert if upsert else self.add
        return op(embeddings, doc_ids, texts=stored, metadata=metadata, show_progress=show_progress)

    @property
    def encoder(self):
        """The encoder the index was built with (loaded on first use; needs ``gingham[encoder]``)."""
        return self._encoders.documents()

    @property
    def query_encoder(self):
        """What encodes text queries: this machine's query pack for the index's model and settings (ONNX Runtime
        and ``tokenizers``, no torch or transformers: seconds less for a new process's first query; see
        :mod:`gingham.encoder.light`) when there is one and it applies, else :attr:`encoder`."""
        return self._encoders.queries()

    @property
    def encoder_revision_note(self) -> str | None:
        """Why text queries encoded now may not match the index's documents (encoder revision), or None."""
        return self._encoders.revision_note()

    def search_text(self, queries: str | Sequence[str], top_k: int | None = None, *, encoder=None,
                    hybrid: str | None = None, alpha: float = 0.5, n_candidates: int | None = None,
                    **kwargs: Any) -> SearchResults:
        """Encode text queries with the index's encoder (or ``encoder``) and :meth:`search`.

        ``hybrid="rrf"`` or ``"relative"`` also runs :meth:`search_bm25` and fuses the two rankings (the best
        ``n_candidates`` of each, default max(top_k, 100)) by reciprocal-rank fusion (k = 60) or by min-max
        normalised scores (:mod:`gingham.search.fusion`), with weight ``alpha`` on MaxSim and ``1 - alpha`` on
        BM25. Scores are then the fused ones.
        """
        texts = validation.texts([queries] if isinstance(queries, str) else queries, "query")
        if hybrid is not None:
            query.check_hybrid(hybrid, alpha)  # before encoding
        embeddings = self._encoders.checked(encoder, self.dim).encode_queries(texts)
        if hybrid is None:
            return self.search(embeddings, top_k, **kwargs)
        return self.hybrid_search(texts, embeddings, top_k, hybrid=hybrid, alpha=alpha, n_candidates=n_candidates,
                                  **kwargs)

    def hybrid_search(self, texts: str | Sequence[str], queries, top_k: int | None = None, *, hybrid: str = "rrf",
                      alpha: float = 0.5, n_candidates: int | None = None, **kwargs: Any) -> SearchResults:
        """BM25 over the stored texts for ``texts`` fused with MaxSim :meth:`search` for the same queries'
        token embeddings ``queries`` (see :meth:`search_text`, which encodes them); ``kwargs`` go to
        :meth:`search` (``subset`` / ``where`` / ``params`` to both rankings). Both rankings come from one
        snapshot (:func:`gingham.search.query.hybrid`)."""
        return query.hybrid(self._snap, texts, queries, top_k, hybrid=hybrid, alpha=alpha, n_candidates=n_candidates,
                            path=self.path, **kwargs)

    # ---------------------------------------------------------------------------------------------- documents
    def _locate(self, doc: Any):
        return self._snap.locate(int(self._snap.positions([self._id(doc)])[0]))

    def text(self, doc: Any) -> str | None:
        """The stored text of the document with caller id ``doc`` (None if texts were not stored)."""
        seg, local = self._locate(doc)
        return seg.text(local)

    def metadata(self, doc: Any) -> dict | None:
        """The metadata dict of the document with caller id ``doc`` (None if none was stored)."""
        seg, local = self._locate(doc)
        return seg.metadata(local)

    def decompress(self, doc: Any) -> np.ndarray:
        """The decompressed token vectors (n_tokens, dim) of the document with caller id ``doc``."""
        seg, local = self._locate(doc)
        return seg.decompress(local)

    def document(self, doc: Any, *, include_text: bool = True, include_metadata: bool = True) -> dict:
        """The document with caller id ``doc`` as ``{"id", "text", "metadata"}`` (text None when the index stores
        no texts, metadata None when the document has none); :class:`gingham.DocumentNotFoundError` if it is not
        in the index."""
        return self.documents([doc], include_text=include_text, include_metadata=include_metadata)[0]

    def documents(self, doc_ids: Iterable, *, include_text: bool = True, include_metadata: bool = True,
                  missing_ok: bool = False) -> list[dict | None]:
        """The documents with caller ids ``doc_ids``, in that order, each as :meth:`document` gives it, read from
        one generation. An id not in the index raises :class:`gingham.DocumentNotFoundError` naming every such
        id; with ``missing_ok`` its entry is None instead."""
        from gingham.storage import documents

        return documents.fetch(self._snap, doc_ids, self.manifest["doc_id_kind"], include_text=include_text,
                               include_metadata=include_metadata, missing_ok=missing_ok)

    # ---------------------------------------------------------------------------------------------- search
    def search_config(self, top_k: int | None = None, **overrides: Any) -> SearchConfig:
        """The settings a search with ``top_k`` and ``overrides`` runs with: the call's, else the stored
        defaults, else the calibrated ones, else PLAID's."""
        return self._config(top_k, overrides, self.n_docs)

    def _config(self, top_k: int | None, overrides: Mapping[str, Any], n_live: int) -> SearchConfig:
        return query.config(self.manifest, top_k, overrides, n_live)

    #: Per-segment masks of the documents a search may return (:func:`gingham.search.query.masks`).
    _masks = staticmethod(query.masks)

    def search(self, queries, top_k: int | None = None, *, subset: Iterable | None = None,
               where: str | Callable[[dict], bool] | None = None, params: Sequence | Mapping | None = None,
               n_threads: int | None = None, show_progress: bool | None = None, include_text: bool = False,
               include_metadata: bool = False, **overrides: Any) -> SearchResults:
        """Search with one query (a 2-D array) or a batch (a list of 2-D arrays or a 3-D array).

        top_k and overrides (``n_ivf_probe``, ``centroid_score_threshold``, ``n_full_scores``, ``min_candidates``,
        ``max_ivf_probe``, ``exhaustive``) apply to this call only. ``subset`` restricts results to the given ids;
        ``where`` to documents whose metadata satisfies a SQL expression over metadata fields (``"lang = ? AND
        year >= ?"`` with ``params=["en", 2020]``; see :mod:`gingham.storage.docstore.filters`) or a Python predicate on
        the metadata dict. Candidate generation counts only allowed documents, so selective filters probe further
        instead of losing recall. ``n_threads`` (default: numba's thread count): a batch spreads its queries over
        that many threads, a query searched alone its candidates (the results are the same either way). Returns
        :class:`SearchResults` with one row per query; ``include_text`` / ``include_metadata`` add the hits' stored
        texts / metadata (``results.texts``, ``results.metadata``, ``results.hits(q)``) from the same generation.
        """
        return query.search(self._snap, queries, top_k, subset=subset, where=where, params=params, n_threads=n_threads,
                            show_progress=show_progress, include_text=include_text,
                            include_metadata=include_metadata, **overrides)

    def exact_search(self, queries, top_k: int | None = None, *, subset=None, where=None, params=None,
                     show_progress=None) -> SearchResults:
        """Exhaustive exact MaxSim over every document's decompressed tokens (ground truth for the index)."""
        return self.search(queries, top_k, subset=subset, where=where, params=params, exhaustive=True,
                           show_progress=show_progress)

    def search_bm25(self, queries: str | Sequence[str], top_k: int | None = None, *, subset=None, where=None,
                    params=None, include_text: bool = False, include_metadata: bool = False) -> SearchResults:
        """BM25 over the stored texts (SQLite FTS5, :mod:`gingham.storage.docstore.lexical`): documents holding any word
        of each text query, best first; ``subset`` / ``where`` / ``params`` filter and ``include_text`` /
        ``include_metadata`` add the hits' documents as in :meth:`search`.
        Scores are BM25's (higher is better); rows have fewer than ``top_k`` results when fewer documents match."""
        return query.bm25(self._snap, queries, top_k, subset=subset, where=where, params=params,
                          include_text=include_text, include_metadata=include_metadata, path=self.path)

    def rerank(self, queries, candidates: Sequence[Iterable], top_k: int | None = None, *, include_text: bool = False,
               include_metadata: bool = False) -> SearchResults:
        """Exact MaxSim over the decompressed tokens of each query's given candidate ids (caller ids);
        ``include_text`` / ``include_metadata`` add the hits' documents as in :meth:`search`."""
        return query.rerank(self._snap, queries, candidates, top_k, include_text=include_text,
                            include_metadata=include_metadata)

    def explain(self, query, doc: Any, *, encoder=None):
        """Why document ``doc`` scores what it does for ``query``: for each query token, the document token it
        matches best, the score of that match and both tokens' text spans (:class:`gingham.search.explain.Explanation`).

        ``query``: a text (encoded with the index's encoder, or ``encoder``) or one query's (n_tokens, dim)
        embeddings (no query spans then). The document tokens are the index's compressed ones, decompressed, so the
        scores add up to the MaxSim the index ranks by (``Explanation.source`` says so). Document spans need the
        index to store texts and know its encoder; without them the matches come as token positions only.
        """
        from gingham.search.query import explain

        default = self._encoders.documents if self.manifest.get("encoder") else None
        return explain(self._snap, query, self._id(doc), encoder, default, self.path)

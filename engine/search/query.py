"""Searching one snapshot: the query verbs of :class:`gingham.Index` as functions of a
:class:`~gingham.storage.segment.Snapshot` (``Index.search`` is ``query.search(index.snapshot, ...)``).

Each verb checks the caller's input, resolves the settings (:func:`config`: the call's, else the index's stored
defaults, else its calibrated ones, else PLAID's), works out which documents a search may return (:func:`masks`),
and hands the rest to :mod:`gingham.search.fanout` (a plan per segment, one fan-out, one merge). The hits' stored
texts and metadata come from the same snapshot (:func:`gingham.storage.documents.attach`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from gingham.common import progress, validation
from gingham.common.config import SearchConfig
from gingham.common.ids import DocIds
from gingham.common.results import SearchResults
from gingham.search import fanout
from gingham.search.calibration import settings_for
from gingham.search.plaid import NO_MASK, blocked_exact
from gingham.storage.documents import attach, check_flags
from gingham.storage.segment import Snapshot

#: Fusion methods of a hybrid search, and how deep each ranking is read by default.
HYBRID_MODES = ("rrf", "relative")
HYBRID_CANDIDATES = 100


def config(manifest: Mapping[str, Any], top_k: int | None, overrides: Mapping[str, Any], n_live: int) -> SearchConfig:
    """The settings a search with ``top_k`` and ``overrides`` runs with on an index of ``n_live`` live documents:
    the call's, else the manifest's stored defaults, else its calibrated ones, else PLAID's."""
    defaults = SearchConfig.from_dict(manifest.get("search_defaults", {}))
    changes = dict(overrides)
    if top_k is not None:
        changes["top_k"] = top_k
    cfg = defaults.replace(**changes) if changes else defaults
    # with no live documents (all deleted) any top_k is answered with empty rows; otherwise at most n_live
    validation.top_k(cfg.top_k, n_live or None)
    return cfg.resolved(settings_for(manifest.get("calibration"), cfg.top_k))


def masks(snap: Snapshot, subset, where, params=None) -> list[np.ndarray] | None:
    """Per-segment uint8 masks of searchable documents, or None when every stored document is."""
    if params is not None and not isinstance(where, str):
        raise ValueError("params= binds the placeholders of a SQL where= string; pass where= as a string "
                         "such as \"lang = ? AND year >= ?\" (a callable where= takes no params)")
    if subset is None and where is None and snap.n_live == snap.n_positions:
        return None
    out = [seg.live_mask() for seg in snap.segments]
    if subset is not None:
        allowed = np.zeros(snap.n_positions, dtype=np.uint8)
        allowed[snap.positions(validation.ids(subset, snap.manifest["doc_id_kind"], "subset id"))] = 1
        out = [m & allowed[seg.base:seg.base + seg.n_docs] for m, seg in zip(out, snap.segments)]
    if isinstance(where, str):
        from gingham.storage.docstore import filters

        filters.allowed([seg.docstore() for seg in snap.segments], out, where, params)
    elif where is not None:
        if not callable(where):
            raise ValueError("where= must be a SQL expression over metadata fields (a string, with params=) "
                             "or a callable taking a document's metadata dict and returning a bool")
        for m, seg in zip(out, snap.segments):
            metas = seg.all_metadata()
            for pos in np.flatnonzero(m):
                if not where(metas[pos] or {}):
                    m[pos] = 0
    return out


def search(snap: Snapshot, queries, top_k: int | None = None, *, subset: Iterable | None = None,
           where: str | Callable[[dict], bool] | None = None, params: Sequence | Mapping | None = None,
           n_threads: int | None = None, show_progress: bool | None = None, include_text: bool = False,
           include_metadata: bool = False, **overrides: Any) -> SearchResults:
    """:meth:`gingham.Index.search` of ``snap``."""
    check_flags(include_text=include_text, include_metadata=include_metadata)
    cfg = config(snap.manifest, top_k, overrides, snap.n_live)
    q_flat, q_offsets, _ = validation.queries(queries, snap.codec.dim)
    allowed = masks(snap, subset, where, params)
    if snap.n_live == 0:  # every document deleted: rows of no-result markers, as for an unmatched filter
        res = fanout.no_results(snap, len(q_offsets) - 1, cfg.top_k)
    else:
        res = fanout.plaid(snap, q_flat, q_offsets, cfg, allowed, n_threads, show_progress)
    return attach(snap, res, include_text, include_metadata)


def bm25(snap: Snapshot, queries: str | Sequence[str], top_k: int | None = None, *, subset=None, where=None,
         params=None, include_text: bool = False, include_metadata: bool = False, path=None) -> SearchResults:
    """:meth:`gingham.Index.search_bm25` of ``snap`` (``path`` names the index in errors)."""
    check_flags(include_text=include_text, include_metadata=include_metadata)
    texts = validation.texts([queries] if isinstance(queries, str) else queries, "query")
    if any(seg.texts is None for seg in snap.segments):
        raise ValueError(f"the index at {path} does not store its documents' texts, and BM25 needs them; "
                         "build it with texts= (Index.create) or from_texts(..., store_texts=True)")
    k = config(snap.manifest, top_k, {}, snap.n_live).top_k
    res = fanout.bm25(snap, texts, k, masks(snap, subset, where, params))
    return attach(snap, res, include_text, include_metadata)


def rerank(snap: Snapshot, queries, candidates: Sequence[Iterable], top_k: int | None = None, *,
           include_text: bool = False, include_metadata: bool = False) -> SearchResults:
    """:meth:`gingham.Index.rerank` of ``snap``."""
    check_flags(include_text=include_text, include_metadata=include_metadata)
    q_flat, q_offsets, _ = validation.queries(queries, snap.codec.dim)
    n_q = len(q_offsets) - 1
    if isinstance(candidates, (str, bytes)):
        raise ValueError("candidates must be a list of id lists, one per query, not a single string")
    candidates = list(candidates)
    if len(candidates) != n_q:
        raise ValueError(f"got {len(candidates)} candidate lists for {n_q} queries; pass one list per query")
    kind = snap.manifest["doc_id_kind"]
    lists = [np.unique(snap.positions(validation.ids(c, kind, f"candidate id (query {i})")))
             for i, c in enumerate(candidates)]
    k = validation.top_k(top_k if top_k is not None else max(1, max(len(c) for c in lists)), None)
    return attach(snap, fanout.rerank(snap, q_flat, q_offsets, lists, k), include_text, include_metadata)


def check_hybrid(hybrid, alpha) -> None:
    """A hybrid search's fusion method and weight, checked (before any query is encoded)."""
    if hybrid not in HYBRID_MODES:
        raise ValueError(f"hybrid must be one of {HYBRID_MODES} (or None for MaxSim alone), got {hybrid!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha (the weight of MaxSim against BM25) must be a number in [0, 1], got {alpha!r}")


def hybrid(snap: Snapshot, texts: str | Sequence[str], queries, top_k: int | None = None, *, hybrid: str = "rrf",
           alpha: float = 0.5, n_candidates: int | None = None, path=None, **kwargs: Any) -> SearchResults:
    """:meth:`gingham.Index.hybrid_search` of ``snap``: both rankings from this one snapshot, fused."""
    texts = validation.texts([texts] if isinstance(texts, str) else texts, "query")
    check_hybrid(hybrid, alpha)
    n_q = len(validation.queries(queries, snap.codec.dim)[1]) - 1
    if n_q != len(texts):
        raise ValueError(f"got {len(texts)} query texts and {n_q} query embeddings; pass one of each per query")
    k = config(snap.manifest, top_k, {}, snap.n_live).top_k
    if n_candidates is not None and (isinstance(n_candidates, bool) or not isinstance(n_candidates, int)
                                     or n_candidates < 1):
        raise ValueError(f"n_candidates must be a positive integer, got {n_candidates!r}")
    filters = {key: kwargs[key] for key in ("subset", "where", "params", "include_text", "include_metadata")
               if key in kwargs}
    depth = max(1, min(max(k, n_candidates or HYBRID_CANDIDATES), snap.n_live))
    dense = search(snap, queries, depth, **kwargs)
    lexical = bm25(snap, texts, depth, path=path, **filters)
    return fanout.fuse(dense, lexical, hybrid, float(alpha), k)


def exact_search(queries, embeddings, top_k: int = 10, *, lengths=None, doc_ids=None,
                 show_progress: bool | None = None) -> SearchResults:
    """Brute-force exact MaxSim of queries against caller-given (uncompressed) document embeddings."""
    flat, doc_offsets = validation.documents(embeddings, lengths)
    ids = DocIds.from_user(doc_ids, len(doc_offsets) - 1)
    k = validation.top_k(top_k, len(doc_offsets) - 1)
    q_flat, q_offsets, _ = validation.queries(queries, flat.shape[1])

    def tokens(lo: int, hi: int) -> np.ndarray:
        return flat[doc_offsets[lo]:doc_offsets[hi]]

    with progress.bar(len(doc_offsets) - 1, "search", show_progress, unit="doc") as bar:
        pos, scores = blocked_exact(tokens, doc_offsets, q_flat, q_offsets, k, NO_MASK, bar)
    return SearchResults(positions=pos, scores=scores.astype(np.float32), ids=ids.take(pos))


def explain(snap: Snapshot, query, doc, encoder, default_encoder: Callable[[], Any] | None, path=None):
    """:meth:`gingham.Index.explain` of ``snap`` for document ``doc`` (a checked id): ``encoder``, else
    ``default_encoder()`` (the index's; None when it has none), encodes a text ``query`` and aligns the spans."""
    from gingham.search.explain import explain as explain_match

    seg, local = snap.locate(int(snap.positions([doc])[0]))
    enc = encoder if encoder is not None else (default_encoder() if default_encoder is not None else None)
    if enc is not None and enc.dim != snap.codec.dim:
        raise ValueError(f"the encoder makes {enc.dim}-dim vectors but the index holds {snap.codec.dim}-dim ones")
    if isinstance(query, str):
        if enc is None:
            raise ValueError(f"the index at {path} has no encoder to encode a text query; pass the "
                             "query's embeddings, or an encoder= that made the index's vectors")
        query_text = validation.texts([query], "query")[0]
        q = enc.encode_queries([query_text])[0]
    else:
        query_text = None
        q, q_offsets, _ = validation.queries(query, snap.codec.dim)
        if len(q_offsets) != 2:
            raise ValueError(f"explain takes one query, got {len(q_offsets) - 1}; call it once per query")
    return explain_match(doc, q, seg.decompress(local), encoder=enc, query_text=query_text, doc_text=seg.text(local))

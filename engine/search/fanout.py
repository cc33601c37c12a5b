"""How one snapshot answers a batch of queries: a plan per segment, one fan-out over the queries (threads), and one
merge of the segments' results, for PLAID search (:func:`plaid`), exhaustive search (:func:`exhaustive`),
reranking given candidates (:func:`rerank`) and BM25 (:func:`bm25`); :func:`fuse` fuses a MaxSim and a BM25
ranking. The inputs are checked and the settings resolved already (:mod:`gingham.search.query` does both).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from gingham.common import progress
from gingham.common.config import SearchConfig
from gingham.common.results import SearchResults
from gingham.kernels.scoring import topk
from gingham.search.centroids import scorer_for
from gingham.search.plaid import NO_MASK, blocked_exact, plaid_search, probe_rounds
from gingham.search.plaid import rerank as rerank_segment
from gingham.storage.segment import Snapshot

Masks = list[np.ndarray] | None


def results(snap: Snapshot, positions: np.ndarray, scores: np.ndarray) -> SearchResults:
    """Typed results of ``snap``: gaps (non-finite scores) as position -1 and score -inf, with the caller's ids."""
    positions = np.where(np.isfinite(scores), positions, -1).astype(np.int64)
    scores = np.where(positions >= 0, scores, -np.inf).astype(np.float32)
    return SearchResults(positions=positions, scores=scores, ids=snap.take(positions), generation=snap.generation)


def empty(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_queries, k) positions and scores of no result (-1, -inf), to be filled."""
    return np.full((n_queries, k), -1, dtype=np.int64), np.full((n_queries, k), -np.inf, dtype=np.float32)


def no_results(snap: Snapshot, n_queries: int, k: int) -> SearchResults:
    """Rows of no-result markers (every document deleted)."""
    return results(snap, *empty(n_queries, k))


def threads(n_threads: int | None) -> int:
    """The threads a search may use: ``n_threads``, or numba's thread count."""
    if n_threads is None:
        import numba

        return max(1, numba.get_num_threads())
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    return n_threads


def merge(pos_parts: list[np.ndarray], score_parts: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """One query's results from several segments (global positions), the best ``k`` first; ties: the lower
    position first, as within a segment. One part is returned as it is."""
    if len(pos_parts) == 1:
        return pos_parts[0], score_parts[0]
    if not pos_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    pos, sc = np.concatenate(pos_parts), np.concatenate(score_parts)
    order = np.lexsort((pos, -sc))[:k]
    return pos[order], sc[order]


def fan_out(run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], queries: list, k: int, workers: int,
            show_progress) -> tuple[np.ndarray, np.ndarray]:
    """``run`` for every query, on ``workers`` threads (in order when 1), into (n_queries, k) positions and scores
    (-1 / -inf where a query has fewer than ``k`` results)."""
    out_pos, out_scores = empty(len(queries), k)
    with progress.bar(len(queries), "search", show_progress if len(queries) > 1 else False, unit="query") as bar:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="gingham-search") if workers > 1 else None
        try:
            found = pool.map(run, queries) if pool else (run(q) for q in queries)
            for i, (pos, sc) in enumerate(found):
                out_pos[i, :len(pos)] = pos
                out_scores[i, :len(sc)] = sc
                bar.update(1)
        finally:
            if pool:
                pool.shutdown()
    return out_pos, out_scores


def plan(snap: Snapshot, allowed: Masks, cfg: SearchConfig) -> list[tuple]:
    """Per segment with an allowed document: (segment, "exact", its allowed documents) when a filter leaves no
    more than ``n_full_scores`` of them (score each exactly), else (segment, "plaid", its mask)."""
    plans = []
    for i, seg in enumerate(snap.segments):
        mask = NO_MASK if allowed is None else allowed[i]
        n_allowed = seg.n_docs if allowed is None else int(mask.sum())
        if n_allowed == 0:
            continue
        if allowed is not None and n_allowed <= cfg.n_full_scores:
            plans.append((seg, "exact", np.flatnonzero(mask)))  # selective: score every allowed doc exactly
        else:
            plans.append((seg, "plaid", mask))
    return plans


def plaid(snap: Snapshot, q_flat: np.ndarray, q_offsets: np.ndarray, cfg: SearchConfig, allowed: Masks,
          n_threads: int | None, show_progress) -> SearchResults:
    """PLAID search (or exhaustive, as ``cfg`` says) of a batch of queries under a resolved config."""
    if cfg.exhaustive:
        return exhaustive(snap, q_flat, q_offsets, cfg.top_k, allowed, show_progress)
    qs = [q_flat[q_offsets[i]:q_offsets[i + 1]] for i in range(len(q_offsets) - 1)]
    plans = plan(snap, allowed, cfg)
    # a batch spreads its queries over the threads; a query alone spreads its candidates over them
    n = threads(n_threads)
    workers, per_query = (n, 1) if len(qs) > 1 else (1, n)

    def run(q: np.ndarray):
        pos_parts, score_parts = [], []
        cs = None  # the query's centroid scores, shared by the segments (one codebook)
        for seg, how, arg in plans:
            if how == "exact":
                pos, sc = rerank_segment(seg.arrays, q, arg, cfg.top_k, per_query)
            else:
                if cs is None:
                    cs = scorer_for(snap)(q, probe_rounds(cfg), cfg.n_coarse_probe, per_query)
                pos, sc = plaid_search(seg.arrays, q, cfg, arg, cs, per_query)
            pos_parts.append(pos + seg.base)
            score_parts.append(sc)
        return merge(pos_parts, score_parts, cfg.top_k)

    return results(snap, *fan_out(run, qs, cfg.top_k, workers, show_progress))


def exhaustive(snap: Snapshot, q_flat: np.ndarray, q_offsets: np.ndarray, k: int, allowed: Masks,
               show_progress) -> SearchResults:
    """Exact MaxSim of a batch of queries over every allowed document's decompressed tokens."""
    n_q = len(q_offsets) - 1
    pos_parts, score_parts = [], []
    with progress.bar(snap.n_positions, "search", show_progress, unit="doc") as bar:
        for i, seg in enumerate(snap.segments):
            mask = NO_MASK if allowed is None else allowed[i]
            pos, sc = blocked_exact(seg.decompress, seg.stored.doc_offsets, q_flat, q_offsets, min(k, seg.n_docs),
                                    mask, bar)
            pos_parts.append(pos + seg.base)
            score_parts.append(sc)
    pos = np.concatenate(pos_parts, axis=1)
    sc = np.concatenate(score_parts, axis=1)
    out_pos, out_sc = empty(n_q, k)
    for r in range(n_q):
        order = np.lexsort((pos[r], -sc[r]))[:k]
        out_pos[r, :len(order)] = pos[r, order]
        out_sc[r, :len(order)] = sc[r, order]
    return results(snap, out_pos, out_sc)


def rerank(snap: Snapshot, q_flat: np.ndarray, q_offsets: np.ndarray, candidates: list[np.ndarray],
           k: int) -> SearchResults:
    """Exact MaxSim of each query over its candidates (global positions, unique), the best ``k`` first."""
    out_pos, out_scores = empty(len(q_offsets) - 1, k)
    for i, positions in enumerate(candidates):
        q = q_flat[q_offsets[i]:q_offsets[i + 1]]
        pos_parts, score_parts = [], []
        for seg in snap.segments:
            local = positions[(positions >= seg.base) & (positions < seg.base + seg.n_docs)] - seg.base
            if len(local):
                pos, sc = rerank_segment(seg.arrays, q, local, k)
                pos_parts.append(pos + seg.base)
                score_parts.append(sc)
        if not pos_parts:
            continue
        pos, sc = np.concatenate(pos_parts), np.concatenate(score_parts)
        order = topk(sc, k)
        out_pos[i, :len(order)] = pos[order]
        out_scores[i, :len(order)] = sc[order]
    return results(snap, out_pos, out_scores)


def bm25(snap: Snapshot, texts: list[str], k: int, allowed: Masks) -> SearchResults:
    """BM25 of each text query over the segments' stored texts (:mod:`gingham.storage.docstore.lexical`)."""
    from gingham.storage.docstore import lexical

    out_pos, out_scores = empty(len(texts), k)
    for i, text in enumerate(texts):
        match = lexical.match_query(text)
        parts = []
        for j, seg in enumerate(snap.segments):
            mask = allowed[j] if allowed is not None else None
            pos, sc = lexical.search(seg.docstore(), match, k, mask)
            parts.append((pos + seg.base, sc))
        pos, sc = lexical.merge(parts, k)
        out_pos[i, :len(pos)] = pos
        out_scores[i, :len(sc)] = sc
    return results(snap, out_pos, out_scores)


def fuse(dense: SearchResults, lexical: SearchResults, mode: str, alpha: float, k: int) -> SearchResults:
    """A MaxSim and a BM25 ranking of the same queries (one generation) fused per query (:mod:`.fusion`): by
    reciprocal rank (``mode="rrf"``) or min-max normalised scores (``"relative"``), weight ``alpha`` on MaxSim.
    The hits' texts / metadata, where the rankings carry them, come along."""
    from gingham.search import fusion

    n_q = len(dense)
    out_pos, out_scores = empty(n_q, k)
    out_ids = np.full((n_q, k), -1, dtype=np.int64) if dense.ids.dtype != object \
        else np.full((n_q, k), None, dtype=object)
    extras = {name: np.full((n_q, k), None, dtype=object) for name in ("texts", "metadata")
              if getattr(dense, name) is not None}
    weights = (alpha, 1.0 - alpha)
    for i in range(n_q):
        if mode == "rrf":
            pos, sc = fusion.rrf([dense.positions[i], lexical.positions[i]], weights, k)
        else:
            pos, sc = fusion.relative([dense.positions[i], lexical.positions[i]],
                                      [dense.scores[i], lexical.scores[i]], weights, k)
        out_pos[i, :len(pos)] = pos
        out_scores[i, :len(sc)] = sc
        for name, out in [("ids", out_ids), *extras.items()]:
            found = dict(zip(dense.positions[i].tolist(), getattr(dense, name)[i].tolist()))
            found.update(zip(lexical.positions[i].tolist(), getattr(lexical, name)[i].tolist()))
            out[i, :len(pos)] = [found[p] for p in pos.tolist()]
    return SearchResults(positions=out_pos, scores=out_scores, ids=out_ids, generation=dense.generation, **extras)

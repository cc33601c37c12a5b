"""PLAID search over the compressed index, and exact MaxSim for ground truth and reranking.

The index crosses into this module as :class:`IndexArrays`, a NamedTuple of arrays. Every function here is
policy (which kernel, with which sizes); the arithmetic lives in :mod:`gingham.kernels`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from gingham.common.config import SearchConfig
from gingham.kernels.scoring import (
    centroid_interaction,
    ivf_candidates,
    segment_maxsim_parallel,
    topk,
    topk_rows,
)
from gingham.search.centroids import CentroidScorer, CentroidScores, token_centroids, with_exact_rows
from gingham.search.parallel import MIN_RUN_TOKENS, map_runs, runs
from gingham.search.scorer import pick, scorer_for
from gingham.storage.segment import IndexArrays

#: Document tokens scored per block by exhaustive and brute-force search (bounds scratch memory).
EXACT_BLOCK_TOKENS = 65_536
#: Query tokens scored per block against each block of document tokens: the float32 score scratch of one block
#: is at most EXACT_BLOCK_TOKENS x EXACT_QUERY_TOKENS x 4 bytes (128 MiB), whatever the number of queries.
EXACT_QUERY_TOKENS = 512
NO_MASK = np.zeros(0, dtype=np.uint8)


def exact_scores_for(ix: IndexArrays, q: np.ndarray, docs: np.ndarray, n_threads: int = 1,
                     cs: CentroidScores | None = None) -> np.ndarray:
    """MaxSim of one query against the decompressed tokens of ``docs`` (sorted int64), over up to ``n_threads``
    threads (:mod:`gingham.search.parallel`).

    The scorer is decompress-then-score (:func:`gingham.kernels.maxsim_decompress`: each token decoded and scored
    while it is in cache) or scoring from the packed residuals (:func:`gingham.kernels.maxsim_packed`), whichever
    :mod:`gingham.search.scorer` measured faster on this CPU for this shape; both give the same scores up to float
    rounding. ``cs``: the query's centroid scores when they hold an exact row for every code of ``docs`` (the
    packed scorer's centroid term), else None. Measured (docs/benchmarks/intra-query-threads): XQuAD-R's nbits-4
    default query 27.4 -> 14.9 ms p50 on two threads against the previous decode-into-a-buffer plus BLAS product.
    """
    if len(docs) == 0:
        return np.empty(0, dtype=np.float32)
    q = np.ascontiguousarray(q, dtype=np.float32)
    n_tokens = int((ix.doc_offsets[docs + 1] - ix.doc_offsets[docs]).sum())
    score = scorer_for(ix, q, docs, pick(ix, len(q), n_tokens, cs), cs)
    return map_runs(score, docs, runs(docs, ix.doc_offsets, n_threads))


def interaction_scores(ix: IndexArrays, cands: np.ndarray, slot: np.ndarray, cscores: np.ndarray,
                       keep: np.ndarray, prune: bool, n_threads: int = 1) -> np.ndarray:
    """:func:`gingham.kernels.centroid_interaction` over ``cands``, over up to ``n_threads`` threads."""

    def score(part: np.ndarray) -> np.ndarray:
        return centroid_interaction(part, ix.doc_offsets, ix.codes, ix.shift, slot, cscores, keep, prune)

    # a token costs a row of maxima here, not a decode and a dot product per query token: runs need more tokens
    return map_runs(score, cands, runs(cands, ix.doc_offsets, n_threads, 8 * MIN_RUN_TOKENS))


def _rank(docs: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = topk(scores, k)
    return docs[order], scores[order]


def score_centroids(ix: IndexArrays, q: np.ndarray, cfg: SearchConfig, n_threads: int = 1) -> CentroidScores:
    """Every centroid's scores against ``q``, ranked for candidate generation (one segment's codebook alone)."""
    return CentroidScorer(ix.centroids)(q, probe_rounds(cfg), None, n_threads)


def probe_rounds(cfg: SearchConfig) -> int:
    """Centroids ranked per query token: as many as candidate generation may probe."""
    return cfg.n_ivf_probe if cfg.min_candidates == 0 else max(cfg.n_ivf_probe, cfg.max_ivf_probe)


def plaid_search(ix: IndexArrays, q: np.ndarray, cfg: SearchConfig, doc_mask: np.ndarray = NO_MASK,
                 cs: CentroidScores | None = None, n_threads: int = 1):
    """One query (n_q, dim) through PLAID's four stages. ``cfg`` must be resolved. Returns (positions, scores).
    Centroid interaction and the exact stage spread the query's candidates over up to ``n_threads`` threads (the
    results do not depend on it).

    ``cs``: the query's centroid scores (:class:`CentroidScorer`, ranked for :func:`probe_rounds`), computed once
    and shared by the segments of an index; computed here, over every centroid, when not given.

    1. candidates: documents listed under each query token's ``n_ivf_probe`` best centroids, probing further
       (up to ``max_ivf_probe`` per token) while fewer than ``min_candidates`` documents were found;
    2. pruned centroid interaction (centroids scoring below the threshold for every query token are skipped),
       keeping ``n_full_scores`` documents;
    3. full centroid interaction, keeping ``n_exact`` (a quarter, at least ``top_k``);
    4. exact MaxSim over their decompressed tokens.
    """
    if cs is None:
        cs = score_centroids(ix, q, cfg, n_threads)
    cscores, slot, ranked = cs.scores, cs.slot, cs.ranked
    exact_rows = slot.size == 0  # every candidate's centroids scored exactly (the packed exact stage reads them)
    n_docs = len(ix.doc_offsets) - 1
    n_allowed = n_docs if len(doc_mask) == 0 else int(doc_mask.sum())
    # never probe for more candidates than there are documents to find
    cands = ivf_candidates(ranked, ix.ivf_docs, ix.ivf_offsets, doc_mask, n_docs, cfg.n_ivf_probe,
                           min(cfg.min_candidates, n_allowed))
    if len(cands) > cfg.n_full_scores:
        keep = cs.best >= cfg.centroid_score_threshold
        approx = interaction_scores(ix, cands, slot, cscores, keep, True, n_threads)
        cands = np.sort(cands[topk(approx, cfg.n_full_scores)])
    if len(cands) > cfg.n_exact:
        # the survivors' centroids scored exactly where only their group was (a coarse-level scoring)
        if slot.size:
            cs = with_exact_rows(cs, ix.centroids, q, token_centroids(cands, ix.doc_offsets, ix.codes, ix.shift))
            cscores, slot, exact_rows = cs.scores, cs.slot, True
        approx = interaction_scores(ix, cands, slot, cscores, np.zeros(0, np.bool_), False, n_threads)
        cands = np.sort(cands[topk(approx, cfg.n_exact)])
    return _rank(cands, exact_scores_for(ix, q, cands, n_threads, cs if exact_rows else None), cfg.top_k)


def rerank(ix: IndexArrays, q: np.ndarray, docs: np.ndarray, k: int, n_threads: int = 1):
    """Exact MaxSim over the decompressed tokens of the given ``docs``; the best ``k``."""
    docs = np.unique(np.asarray(docs, dtype=np.int64))
    return _rank(docs, exact_scores_for(ix, q, docs, n_threads), k)


def _query_blocks(q_offsets: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive queries holding at most ``EXACT_QUERY_TOKENS`` tokens (at least one query each)."""
    blocks, lo, n_q = [], 0, len(q_offsets) - 1
    while lo < n_q:
        hi = int(np.searchsorted(q_offsets, q_offsets[lo] + EXACT_QUERY_TOKENS, side="right")) - 1
        hi = min(max(hi, lo + 1), n_q)
        blocks.append((lo, hi))
        lo = hi
    return blocks


def blocked_exact(
    get_tokens: Callable[[int, int], np.ndarray],
    doc_offsets: np.ndarray,
    q_flat: np.ndarray,
    q_offsets: np.ndarray,
    k: int,
    doc_mask: np.ndarray = NO_MASK,
    progress=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force MaxSim of a batch of queries against every document, in blocks of documents and of queries.

    get_tokens(lo, hi) returns the float32 token vectors of documents lo..hi-1 (flat); each block of documents
    (``EXACT_BLOCK_TOKENS`` tokens) is fetched once and scored against the queries in blocks of
    ``EXACT_QUERY_TOKENS`` query tokens, each block of queries keeping a running top ``k``. Scratch memory is
    therefore bounded by the two budgets (a longer document or query is a block of its own), not by the number
    of queries or documents. Masked-out documents score -inf. Returns (positions, scores), each
    (n_queries, min(k, n_docs)); equal scores rank the lower position first, as one top-k over every document.
    """
    n_docs = len(doc_offsets) - 1
    n_q = len(q_offsets) - 1
    kk = min(k, n_docs)
    q_blocks = _query_blocks(q_offsets)
    q_parts = [(q_flat[q_offsets[a]:q_offsets[b]].T, q_offsets[a:b + 1] - q_offsets[a]) for a, b in q_blocks]
    best_pos = np.zeros((n_q, 0), dtype=np.int64)
    best_sc = np.zeros((n_q, 0), dtype=np.float32)
    lo = 0
    while lo < n_docs:
        # the largest run of documents that fits in the block (at least one document)
        hi = int(np.searchsorted(doc_offsets, doc_offsets[lo] + EXACT_BLOCK_TOKENS, side="right")) - 1
        hi = min(max(hi, lo + 1), n_docs)
        vecs = get_tokens(lo, hi)
        seg = doc_offsets[lo:hi + 1] - doc_offsets[lo]
        width = min(kk, best_pos.shape[1] + hi - lo)
        new_pos = np.empty((n_q, width), dtype=np.int64)
        new_sc = np.empty((n_q, width), dtype=np.float32)
        for (a, b), (q_t, q_off) in zip(q_blocks, q_parts):
            block = segment_maxsim_parallel(np.ascontiguousarray(vecs @ q_t), seg, q_off)  # (b - a, hi - lo)
            if len(doc_mask):
                block[:, doc_mask[lo:hi] == 0] = -np.inf
            # merge with the best so far: they hold lower positions than this block and come first, best first,
            # so topk's "lower index first" on ties is "lower position first"
            cand_sc = np.concatenate([best_sc[a:b], block], axis=1)
            cand_pos = np.concatenate([best_pos[a:b], np.broadcast_to(np.arange(lo, hi, dtype=np.int64), block.shape)], axis=1)
            order = topk_rows(cand_sc, kk)
            new_pos[a:b] = np.take_along_axis(cand_pos, order, axis=1)
            new_sc[a:b] = np.take_along_axis(cand_sc, order, axis=1)
            del block, cand_sc, cand_pos
        best_pos, best_sc = new_pos, new_sc
        if progress is not None:
            progress.update(hi - lo)
        lo = hi
    return best_pos, best_sc

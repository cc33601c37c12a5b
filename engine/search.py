"""PLAID search over the compressed index, and exact MaxSim for ground truth and reranking.

The index crosses into this module as :class:`IndexArrays`, a NamedTuple of arrays. Every function here is
policy (which kernel, with which sizes); the arithmetic lives in :mod:`gingham.kernels`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from gingham.config import SearchConfig
from gingham.kernels.scoring import (
    centroid_interaction,
    gather_decompress,
    ivf_candidates,
    rank_centroids,
    segment_maxsim,
    segment_maxsim_parallel,
    topk,
    topk_rows,
)

#: Document tokens scored per block by exhaustive and brute-force search (bounds scratch memory).
EXACT_BLOCK_TOKENS = 65_536
NO_MASK = np.zeros(0, dtype=np.uint8)


class IndexArrays(NamedTuple):
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


def exact_scores_for(ix: IndexArrays, q: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """MaxSim of one query against the decompressed tokens of ``docs`` (sorted int64). Serial kernels.

    Decompression into one block plus a single matrix product measured as fast as scoring straight from the
    packed bytes through a per-query table (:func:`gingham.kernels.lut_maxsim`) at nbits=2, and faster at nbits=4.
    """
    vecs, seg = gather_decompress(docs, ix.doc_offsets, ix.codes, ix.residuals, ix.fine, ix.scales, ix.lut,
                                  ix.normalize)
    scores = np.ascontiguousarray(vecs @ q.T)
    return segment_maxsim(scores, seg, np.array([0, q.shape[0]], dtype=np.int64))[0]


def _rank(docs: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = topk(scores, k)
    return docs[order], scores[order]


def plaid_search(ix: IndexArrays, q: np.ndarray, cfg: SearchConfig, doc_mask: np.ndarray = NO_MASK):
    """One query (n_q, dim) through PLAID's four stages. ``cfg`` must be resolved. Returns (positions, scores).

    1. candidates: documents listed under each query token's ``n_ivf_probe`` best centroids, probing further
       (up to ``max_ivf_probe`` per token) while fewer than ``min_candidates`` documents were found;
    2. pruned centroid interaction (centroids scoring below the threshold for every query token are skipped),
       keeping ``n_full_scores`` documents;
    3. full centroid interaction, keeping ``n_exact`` (a quarter, at least ``top_k``);
    4. exact MaxSim over their decompressed tokens.
    """
    cscores = np.ascontiguousarray(ix.centroids @ q.T)  # (n_centroids, n_q)
    rounds = cfg.n_ivf_probe if cfg.min_candidates == 0 else max(cfg.n_ivf_probe, cfg.max_ivf_probe)
    ranked, best = rank_centroids(cscores, rounds)
    n_docs = len(ix.doc_offsets) - 1
    n_allowed = n_docs if len(doc_mask) == 0 else int(doc_mask.sum())
    # never probe for more candidates than there are documents to find
    cands = ivf_candidates(ranked, ix.ivf_docs, ix.ivf_offsets, doc_mask, n_docs, cfg.n_ivf_probe,
                           min(cfg.min_candidates, n_allowed))
    if len(cands) > cfg.n_full_scores:
        keep = best >= cfg.centroid_score_threshold
        approx = centroid_interaction(cands, ix.doc_offsets, ix.codes, ix.shift, cscores, keep, True)
        cands = np.sort(cands[topk(approx, cfg.n_full_scores)])
    if len(cands) > cfg.n_exact:
        approx = centroid_interaction(cands, ix.doc_offsets, ix.codes, ix.shift, cscores, np.zeros(0, np.bool_),
                                      False)
        cands = np.sort(cands[topk(approx, cfg.n_exact)])
    return _rank(cands, exact_scores_for(ix, q, cands), cfg.top_k)


def rerank(ix: IndexArrays, q: np.ndarray, docs: np.ndarray, k: int):
    """Exact MaxSim over the decompressed tokens of the given ``docs``; the best ``k``."""
    docs = np.unique(np.asarray(docs, dtype=np.int64))
    return _rank(docs, exact_scores_for(ix, q, docs), k)


def blocked_exact(
    get_tokens: Callable[[int, int], np.ndarray],
    doc_offsets: np.ndarray,
    q_flat: np.ndarray,
    q_offsets: np.ndarray,
    k: int,
    doc_mask: np.ndarray = NO_MASK,
    progress=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force MaxSim of a batch of queries against every document, in blocks of documents.

    get_tokens(lo, hi) returns the float32 token vectors of documents lo..hi-1 (flat). Every query's tokens are
    scored in one matrix product per block. Masked-out documents score -inf. Returns (positions, scores), each
    (n_queries, k).
    """
    n_docs = len(doc_offsets) - 1
    n_q = len(q_offsets) - 1
    all_scores = np.empty((n_q, n_docs), dtype=np.float32)
    lo = 0
    while lo < n_docs:
        # the largest run of documents that fits in the block (at least one document)
        hi = int(np.searchsorted(doc_offsets, doc_offsets[lo] + EXACT_BLOCK_TOKENS, side="right")) - 1
        hi = min(max(hi, lo + 1), n_docs)
        vecs = get_tokens(lo, hi)
        scores = np.ascontiguousarray(vecs @ q_flat.T)
        seg = doc_offsets[lo:hi + 1] - doc_offsets[lo]
        all_scores[:, lo:hi] = segment_maxsim_parallel(scores, seg, q_offsets)
        if progress is not None:
            progress.update(hi - lo)
        lo = hi
    if len(doc_mask):
        all_scores[:, doc_mask == 0] = -np.inf
    positions = topk_rows(all_scores, k)
    scores = np.take_along_axis(all_scores, positions, axis=1)
    return positions, scores

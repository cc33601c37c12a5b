"""Search: the query verbs as functions of a snapshot (:mod:`.query`: settings, filters, PLAID, exhaustive, rerank,
BM25 and hybrid search), how a snapshot answers them (:mod:`.fanout`: a plan per segment, one fan-out, one merge),
PLAID's stages and exact MaxSim over a segment's arrays (:mod:`.plaid`, centroid scores in :mod:`.centroids`), and
the search defaults calibrated to each index's own data (:mod:`.calibration`). Search over shards of one corpus is
in :mod:`gingham.shards`. The arithmetic lives in :mod:`gingham.kernels`."""

from gingham.search.plaid import (
    EXACT_BLOCK_TOKENS,
    NO_MASK,
    IndexArrays,
    blocked_exact,
    exact_scores_for,
    plaid_search,
    probe_rounds,
    rerank,
)

__all__ = ["EXACT_BLOCK_TOKENS", "NO_MASK", "IndexArrays", "blocked_exact", "exact_scores_for", "plaid_search",
           "probe_rounds", "rerank"]

"""Search: PLAID's stages and exact MaxSim over the compressed index (:mod:`.plaid`, centroid scores in
:mod:`.centroids`), and the search defaults calibrated to each index's own data (:mod:`.calibration`). Search over
shards of one corpus is in :mod:`gingham.shards`. The arithmetic lives in :mod:`gingham.kernels`."""

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

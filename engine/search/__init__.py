"""Search: PLAID's stages and exact MaxSim over the compressed index (:mod:`.plaid`), and the search defaults
calibrated to each index's own data (:mod:`.calibration`), and search over shards of one corpus
(:mod:`.sharded`; on Ray: :mod:`.ray_shards`). The arithmetic lives in :mod:`gingham.kernels`."""

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

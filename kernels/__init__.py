"""Numba kernels of Gingham: pure functions over numpy arrays.

Nothing here takes or returns an object, a config or a global; the engine (``gingham``) owns objects, files and
policy. Every kernel has a plain numpy reference in :mod:`gingham.kernels.reference` and a test against it.
"""

from gingham.kernels.codec import compress_residuals, decompress, refine_codes, sum_rows
from gingham.kernels.ivf import build_ivf
from gingham.kernels.scoring import (
    centroid_interaction,
    dot_rows,
    gather_decompress,
    ivf_candidates,
    lut_maxsim,
    maxsim_decompress,
    rank_centroids,
    segment_maxsim,
    segment_maxsim_parallel,
    topk,
    topk_rows,
)
from gingham.kernels.warmup import warmup

__all__ = [
    "build_ivf",
    "centroid_interaction",
    "compress_residuals",
    "decompress",
    "dot_rows",
    "gather_decompress",
    "ivf_candidates",
    "lut_maxsim",
    "maxsim_decompress",
    "rank_centroids",
    "refine_codes",
    "sum_rows",
    "segment_maxsim",
    "segment_maxsim_parallel",
    "topk",
    "topk_rows",
    "warmup",
]

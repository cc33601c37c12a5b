"""Compile every kernel on tiny inputs, so the first real call does not pay for JIT compilation."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

#: warmup's steps, for a progress bar: one per residual width and code dtype, and the width-free kernels
N_STEPS = 3 * 3 + 1


def dispatchers() -> list:
    """The kernels :func:`warmup` compiles (numba dispatchers cached on disk); helpers inlined into them have no
    cache entry of their own."""
    import gingham.kernels as kernels

    return [getattr(kernels, name) for name in kernels.__all__ if name != "warmup"]


def is_cached() -> Optional[bool]:
    """Whether numba's cache holds compiled code for every kernel of this source (so a process loads instead of
    compiling: about a second instead of minutes). None when it cannot tell (numba's cache layout is its own)."""
    try:
        for dispatcher in dispatchers():
            index = dispatcher._cache._cache_file
            if not index._load_index():  # empty when missing, stale (source changed) or from another numba
                return False
        return True
    except Exception:  # noqa: BLE001 - numba internals: unknown rather than wrong
        return None


def _frozen(array: np.ndarray, frozen: bool) -> np.ndarray:
    """``array``, or a read-only view of it (as a memory-mapped index gives)."""
    if not frozen:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


def warmup(progress: Optional[Callable[[int, int], None]] = None) -> None:
    """Compile (or load from numba's cache) each kernel for the dtypes Gingham uses. ``progress(done, total)`` is
    called after each of the :data:`N_STEPS` steps."""
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

    rng = np.random.default_rng(0)
    dim, n_c = 8, 4
    x = rng.standard_normal((6, dim)).astype(np.float32)
    cents = rng.standard_normal((n_c, dim)).astype(np.float32)
    ref_codes = np.argmax(x @ cents.T, axis=1)
    doc_offsets = np.array([0, 2, 6], dtype=np.int64)
    q = rng.standard_normal((3, dim)).astype(np.float32)
    cscores = np.ascontiguousarray((cents @ q.T).astype(np.float32))
    keep = np.ones(n_c, dtype=np.bool_)
    scales = np.ones(n_c, dtype=np.float32)
    step = 0

    def advance() -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, N_STEPS)

    for nbits in (1, 2, 4):
        cutoffs = np.sort(rng.standard_normal((dim, 2**nbits - 1)).astype(np.float32), axis=1)
        lut = np.zeros((dim * nbits // 8, 256, 8 // nbits), dtype=np.float32)
        for code_dtype in (np.uint8, np.uint16, np.int32):
            written = ref_codes.astype(code_dtype)
            packed_written = compress_residuals(x, cents, scales, written, cutoffs, nbits)
            refine_codes(x, written, cents, 1)
            sum_rows(x, written, n_c)
            # An opened index's codes, residuals and inverted lists are read-only (memory-mapped); numba compiles
            # read-only arrays apart, so the read side is compiled for both kinds.
            for frozen in (False, True):
                codes, packed = _frozen(written, frozen), _frozen(packed_written, frozen)
                for norm in (False, True):
                    decompress(codes, packed, cents, scales, lut, norm)
                ivf_docs, ivf_offsets = build_ivf(codes, 0, doc_offsets, n_c)
                ivf_docs, ivf_offsets = _frozen(ivf_docs, frozen), _frozen(ivf_offsets, frozen)
                for mask in (np.zeros(0, np.uint8), np.ones(2, np.uint8)):
                    ranked = np.arange(n_c, dtype=np.int64).reshape(1, n_c)
                    cands = ivf_candidates(ranked, ivf_docs, ivf_offsets, mask, 2, 1, 1)
                for slot in (np.zeros(0, np.int32), np.arange(n_c, dtype=np.int32)):
                    centroid_interaction(cands, doc_offsets, codes, 0, slot, cscores, keep, True)
                for norm in (False, True):
                    vecs, seg = gather_decompress(cands, doc_offsets, codes, packed, cents, scales, lut, norm)
                    maxsim_decompress(cands, doc_offsets, codes, packed, cents, scales, lut, norm, q)
                qlut = np.zeros((lut.shape[0], 256, 3), dtype=np.float32)
                lut_maxsim(cands, doc_offsets, codes, packed, cscores, scales, qlut)
            advance()
    scores = np.ascontiguousarray(vecs @ q.T)
    sims = segment_maxsim(scores, seg, np.array([0, 3], dtype=np.int64))
    segment_maxsim_parallel(scores, seg, np.array([0, 3], dtype=np.int64))
    rank_centroids(cscores, 2)
    dot_rows(cents, q)
    topk(sims[0], 1)
    topk_rows(sims, 1)
    advance()

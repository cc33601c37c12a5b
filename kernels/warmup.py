"""Compile every kernel on tiny inputs, so the first real call does not pay for JIT compilation."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

#: What a full warm-up covers: every residual width, every code dtype an index may store, and arrays both
#: writable (built in memory) and read-only (memory-mapped from an opened index).
ALL_NBITS = (1, 2, 4)
ALL_CODE_DTYPES = ("uint8", "uint16", "int32")
BOTH_KINDS = (False, True)
#: The packed scorers' ``inv_norms`` when an index stores none (as none does): each token is decoded for its norm.
NO_NORMS = np.zeros(0, dtype=np.float32)


def n_steps(nbits=ALL_NBITS, code_dtypes=ALL_CODE_DTYPES) -> int:
    """warmup's steps, for a progress bar: one per residual width and code dtype, and the width-free kernels."""
    return len(nbits) * len(code_dtypes) + 1


N_STEPS = n_steps()


def dispatchers() -> list:
    """The kernels :func:`warmup` compiles (numba dispatchers cached on disk); helpers inlined into them have no
    cache entry of their own."""
    import gingham.kernels as kernels

    return [getattr(kernels, name) for name in kernels.__all__ if name != "warmup"]


#: Kernels only writing an index runs: ``warmup(build=False)`` leaves them out.
BUILD_ONLY = ("compress_residuals", "refine_codes", "sum_rows")


def is_cached(search_only: bool = False) -> Optional[bool]:
    """Whether numba's cache holds compiled code for every kernel of this source (so a process loads instead of
    compiling: about a second instead of minutes); with ``search_only``, every kernel a search runs (what
    ``warmup(build=False)`` compiled). None when it cannot tell (numba's cache layout is its own)."""
    try:
        for dispatcher in dispatchers():
            if search_only and dispatcher.py_func.__name__ in BUILD_ONLY:
                continue
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


def warmup(progress: Optional[Callable[[int, int], None]] = None, *, nbits: Sequence[int] = ALL_NBITS,
           code_dtypes: Sequence[str] = ALL_CODE_DTYPES, read_only: Sequence[bool] = BOTH_KINDS,
           build: bool = True) -> None:
    """Compile (or load from numba's cache) each kernel for the dtypes Gingham uses. ``progress(done, total)`` is
    called after each of the :func:`n_steps` steps.

    By default everything (``gingham warmup``); a process about to search one index can ask for what that search
    runs alone: its ``nbits`` and ``code_dtypes``, ``read_only=(True,)`` for memory-mapped arrays, and
    ``build=False`` to leave out the kernels that only write an index (compressing residuals, refining codes,
    summing rows). That is a few seconds instead of a minute on a cold cache."""
    total = n_steps(nbits, code_dtypes)
    from gingham.kernels.codec import compress_residuals, decompress, refine_codes, sum_rows
    from gingham.kernels.ivf import build_ivf
    from gingham.kernels.packed import (
        maxsim_packed,
        maxsim_packed_int8,
        packed_query_table,
        quantize_table,
    )
    from gingham.kernels.scoring import (
        centroid_interaction,
        dot_rows,
        ivf_candidates,
        maxsim_decompress,
        rank_centroids,
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
            progress(step, total)

    for width in nbits:
        cutoffs = np.sort(rng.standard_normal((dim, 2**width - 1)).astype(np.float32), axis=1)
        lut = np.zeros((dim * width // 8, 256, 8 // width), dtype=np.float32)
        table = packed_query_table(lut, q)
        for code_dtype in code_dtypes:
            written = ref_codes.astype(np.dtype(code_dtype))
            if build:
                packed_written = compress_residuals(x, cents, scales, written, cutoffs, width)
                refine_codes(x, written, cents, 1)
                sum_rows(x, written, n_c)
            else:  # residuals as a search reads them, without compiling the compressor
                packed_written = rng.integers(0, 256, (len(x), dim * width // 8), dtype=np.uint8)
            # An opened index's codes, residuals and inverted lists are read-only (memory-mapped); numba compiles
            # read-only arrays apart, so the read side is compiled for both kinds.
            for frozen in read_only:
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
                table8, table_scales = quantize_table(table, packed.shape[1])
                for norm in (False, True):
                    maxsim_decompress(cands, doc_offsets, codes, packed, cents, scales, lut, norm, q)
                    # the exact stage without decompressing (gingham.search.scorer): a row per code or a slot
                    for slot in (np.zeros(0, np.int32), np.arange(n_c, dtype=np.int32)):
                        maxsim_packed(cands, doc_offsets, codes, packed, cscores, slot, cents, scales, lut, norm,
                                      NO_NORMS, table, 3)
                        maxsim_packed_int8(cands, doc_offsets, codes, packed, cscores, slot, cents, scales, lut,
                                           norm, NO_NORMS, table8, table_scales, 3)
            advance()
    scores = np.ascontiguousarray(x @ q.T)
    sims = segment_maxsim_parallel(scores, doc_offsets, np.array([0, 3], dtype=np.int64))
    rank_centroids(cscores, 2)
    dot_rows(cents, q)
    topk(sims[0], 1)
    topk_rows(sims, 1)
    advance()

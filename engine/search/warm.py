"""What a new process pays before its first answer, paid up front and shown: the numba kernels (loaded from
numba's cache, or compiled once with a progress bar when the cache lacks them) and, for a server, the index's
arrays and its encoder."""

from __future__ import annotations

import logging
import time

import numpy as np

from gingham.progress import bar

log = logging.getLogger(__name__)


def compile_kernels(show_progress: bool | None = None) -> bool:
    """Compile the kernels now, with a progress bar, when numba's cache lacks them (a new install, another numba,
    a changed source); otherwise do nothing, and the first search loads them from the cache. Returns whether it
    compiled. Without this, the first query of such a process silently spends minutes compiling."""
    from gingham.kernels.warmup import N_STEPS, is_cached, warmup

    if is_cached() is not False:
        return False
    log.warning("compiling Gingham's kernels (once: numba caches them for later processes)")
    t = time.perf_counter()
    with bar(N_STEPS, "compile kernels", show_progress, unit="step") as progress:
        warmup(lambda done, total: progress.update(1))
    log.info("kernels compiled in %.0f s", time.perf_counter() - t)
    return True


def warm(index, show_progress: bool | None = None) -> dict:
    """Run what a first request would pay for, so that it does not: the kernels a search uses (compiled first if
    numba's cache lacks them), the index's arrays and inverted lists, a single query and a batch, and the encoder
    with one encoded query when the index has one. Returns the seconds each step took."""
    took = {}
    t = time.perf_counter()
    compile_kernels(show_progress)
    if len(index):
        rng = np.random.default_rng(0)
        query = rng.standard_normal((32, index.dim)).astype(np.float32)
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        top_k = min(10, len(index))
        index.search(query, top_k)  # a single query (split over threads)
        index.search([query, query], top_k)  # a batch (one query per thread)
    took["kernels_s"] = time.perf_counter() - t
    if index.manifest.get("encoder") is not None:
        t = time.perf_counter()
        index.encoder.encode_queries(["warm up"])
        if len(index):
            index.search_text("warm up", min(10, len(index)))
        took["encoder_s"] = time.perf_counter() - t
    return took

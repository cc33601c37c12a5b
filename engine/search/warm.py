"""What a new process pays before its first answer, paid up front and shown: the numba kernels (loaded from
numba's cache, or compiled once with a progress bar when the cache lacks them) and, for a server, the index's
arrays and its encoder."""

from __future__ import annotations

import logging
import time

import numpy as np

from gingham.common.progress import bar

log = logging.getLogger(__name__)


def compile_kernels(show_progress: bool | None = None, indexes=None) -> bool:
    """Compile the kernels now, with a progress bar, when numba's cache lacks them (a new install, another numba,
    a changed source); otherwise do nothing, and the first search loads them from the cache. Returns whether it
    compiled. Without this, the first query of such a process silently spends minutes compiling.

    With ``indexes`` (opened indexes, or shard sets, about to be searched), only what searching them runs is
    compiled: their residual widths and code dtypes, for memory-mapped arrays; seconds instead of the minute that
    everything (``gingham warmup``) takes. Other kernels compile when first used."""
    from gingham.kernels.warmup import is_cached, n_steps, warmup

    if is_cached(search_only=indexes is not None) is not False:
        return False
    only = search_signatures(indexes) if indexes is not None else {}
    log.warning("compiling Gingham's kernels%s (once: numba caches them for later processes)",
                " for this index" if only else "")
    t = time.perf_counter()
    steps = n_steps(only["nbits"], only["code_dtypes"]) if only else n_steps()
    with bar(steps, "compile kernels", show_progress, unit="step") as progress:
        warmup(lambda done, total: progress.update(1), **only)
    log.info("kernels compiled in %.0f s", time.perf_counter() - t)
    return True


def search_signatures(indexes) -> dict:
    """The :func:`gingham.kernels.warmup.warmup` arguments that cover searching ``indexes`` (each an
    :class:`~gingham.Index` or anything with ``.shards`` of them): their widths and code dtypes, read-only."""
    flat = []
    for ix in indexes:
        flat.extend(getattr(ix, "shards", None) or [ix])
    nbits = sorted({int(ix.nbits) for ix in flat})
    code_dtypes = sorted({str(ix.manifest["codes_dtype"]) for ix in flat})
    return {"nbits": tuple(nbits), "code_dtypes": tuple(code_dtypes), "read_only": (True,), "build": False}


def warm(index, show_progress: bool | None = None) -> dict:
    """Run what a first request would pay for, so that it does not: the kernels a search uses (compiled first if
    numba's cache lacks them), the index's arrays and inverted lists, a single query and a batch, and the encoder
    with one encoded query when the index has one. Returns the seconds each step took."""
    took = {}
    t = time.perf_counter()
    compile_kernels(show_progress, [index])
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
        index.query_encoder.encode_queries(["warm up"])
        if len(index):
            index.search_text("warm up", min(10, len(index)))
        took["encoder_s"] = time.perf_counter() - t
    return took

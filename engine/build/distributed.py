"""Distributed builds on a Ray cluster (``pip install 'gingham[ray]'``).

A text corpus (:class:`gingham.build.sources.TextSource`, JSONL) is encoded *and* compressed on Ray workers: Ray Data
``map_batches`` over its groups of documents with an actor pool that loads the model once per actor (a GPU each
when the cluster has GPUs); only codes and residuals come back (:mod:`gingham.build.ray_encode`).

For sources of embeddings, the driver runs :func:`gingham.build.streaming.build` with Ray as its compressor: it reads the source, trains the codebook
on the first tokens (as a local build does), then hands each chunk to a Ray task that compresses it with the shared
codebook and writes the codes and residuals as ``.npy`` files into a staging folder on storage every node can
reach. The driver commits the chunks in order as segments of the index (so a crash resumes like a local build,
locally or on Ray), and finally merges them into one segment. The result is identical to a single-process build
of the same source and options.

::

    import ray, gingham.build.distributed
    ray.init(address="auto")
    index = gingham.build.distributed.build("/shared/big-index", "/shared/shards/", memory_budget_mb=2048)
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from gingham.codec.residual import ResidualCodec
from gingham.common.errors import MissingDependencyError

log = logging.getLogger(__name__)


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            "Ray is needed for distributed builds but is not installed; install it with: pip install 'gingham[ray]'"
        ) from exc
    return ray


def compress_to_files(codebook: dict[str, np.ndarray], nbits: int, normalize: bool,
                      flat: np.ndarray, batch_size: int, prefix: str, assign_nprobe: int = 0) -> tuple[str, str]:
    """Compress ``flat`` with the codebook and write ``PREFIX.codes.npy`` / ``PREFIX.residuals.npy`` (a Ray task's
    body; plain function so it is testable without Ray). Returns the two paths."""
    from gingham.codec.training import compress_all

    codec = ResidualCodec.from_arrays(codebook, nbits, normalize, assign_nprobe)
    codes, residuals = compress_all(codec, flat, batch_size, False)
    paths = (f"{prefix}.codes.npy", f"{prefix}.residuals.npy")
    for path, arr in zip(paths, (codes, residuals)):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return paths


class RayCompressor:
    """Compress chunks as Ray tasks, at most ``max_in_flight`` at a time, yielding results in chunk order."""

    def __init__(self, staging: Path, max_in_flight: int | None = None, cpus_per_task: float = 1):
        ray = _ray()
        if not ray.is_initialized():
            raise RuntimeError("Ray is not initialised: call ray.init(...) (or pass address=) before building")
        self.ray = ray
        self.staging = Path(staging)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = max_in_flight or max(2, cpus // max(1, int(cpus_per_task)) + 1)
        self.task = ray.remote(num_cpus=cpus_per_task)(_task)

    def __call__(self, codec: ResidualCodec, chunks: Iterable, batch_size: int) -> Iterator[tuple[Any, Any, Any]]:
        ray = self.ray
        self.staging.mkdir(parents=True, exist_ok=True)
        book = ray.put(codec.arrays())
        pending: deque = deque()
        n = 0
        try:
            for chunk in chunks:
                prefix = str(self.staging / f"chunk-{n:08d}")
                n += 1
                ref = self.task.remote(book, codec.nbits, codec.normalize, chunk.flat, batch_size, prefix,
                                       codec.assign_nprobe)
                pending.append((chunk, ref))
                if len(pending) >= self.max_in_flight:
                    yield self._collect(*pending.popleft())
            while pending:
                yield self._collect(*pending.popleft())
        finally:
            for _, ref in pending:
                ray.cancel(ref, force=True)

    def _collect(self, chunk, ref):
        codes_path, residuals_path = self.ray.get(ref)
        codes, residuals = np.load(codes_path), np.load(residuals_path)
        os.unlink(codes_path)
        os.unlink(residuals_path)
        return chunk, codes, residuals


def _task(codebook, nbits, normalize, flat, batch_size, prefix, assign_nprobe=0):
    try:  # numba's and faiss's threads (kernels, centroid assignment): the CPUs Ray gave this task, not the node
        import faiss
        import numba
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS, int(cpus))))
        faiss.omp_set_num_threads(max(1, int(cpus)))
    except Exception:  # pragma: no cover
        pass
    return compress_to_files(codebook, nbits, normalize, np.asarray(flat), batch_size, prefix, assign_nprobe)


def build(path, source, *, address: str | None = None, staging_dir=None, max_in_flight: int | None = None,
          cpus_per_task: float = 1, concurrency: int | None = None, num_gpus: float | None = None, **kwargs: Any):
    """:func:`gingham.build.streaming.build` with the expensive work on Ray; same arguments, same result.

    A :class:`gingham.build.sources.TextSource` is encoded and compressed by ``concurrency`` Ray actors (default: one
    per GPU, else one per ``cpus_per_task`` CPUs), each with ``cpus_per_task`` CPUs and ``num_gpus`` GPUs
    (default: 1 when the cluster has GPUs, else 0); the options ``memory_budget_mb``, ``sample_tokens``,
    ``expected_tokens``, ``resume``, ``overwrite``, ``show_progress`` and the BuildConfig fields apply. Other
    sources are read at the driver and compressed by Ray tasks.

    address: a Ray cluster to connect to when Ray is not initialised yet (``"auto"``; None starts a local one).
    staging_dir: where tasks write their compressed chunks (default: ``PATH.ray-staging`` beside the index; it
        must be reachable from every node, like the index itself). Removed when the build ends.
    max_in_flight: chunks compressed at once (default: the cluster's CPUs + 1; each holds a chunk in the object
        store).
    """
    from gingham.build import streaming

    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False)
    if isinstance(source, streaming.TextSource):
        return _build_texts(path, source, cpus_per_task, concurrency, num_gpus, kwargs)
    staging = Path(staging_dir) if staging_dir else Path(str(path).rstrip("/\\") + ".ray-staging")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        compressor = RayCompressor(staging, max_in_flight, cpus_per_task)
        return streaming.build(path, source, compressor=compressor, **kwargs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_texts(path, source, cpus_per_task, concurrency, num_gpus, kwargs):
    from gingham.common.config import resolve_build_config
    from gingham.build.ray_encode import build_texts

    opts = dict(kwargs)
    run = {k: opts.pop(k, d) for k, d in (("memory_budget_mb", 1024), ("sample_tokens", None),
                                           ("expected_tokens", None), ("resume", True), ("overwrite", False),
                                           ("show_progress", None))}
    if opts.pop("train_on", None) not in (None, "first"):
        raise ValueError("a text build on Ray trains the codebook on the first tokens (each text is encoded once "
                         "more, not the whole corpus twice): leave train_on out or pass train_on='first'")
    for unused in ("chunk_tokens", "prefetch"):
        if opts.pop(unused, None) is not None:
            log.info("%s does not apply to a text build on Ray (one segment per group of encode_docs documents, "
                     "trained on the first tokens); ignored", unused)
    cfg = resolve_build_config(opts.pop("config", None), opts)
    return build_texts(path, source, cfg, concurrency=concurrency, num_cpus=cpus_per_task, num_gpus=num_gpus, **run)

"""Codebook training and assignment at PLAID's sizes, in minutes on a few cores.

A flat k-means over ``k`` centroids costs ``n * k * dim`` per iteration, and so does assigning every token to the
trained centroids: at 16,384 centroids this is most of a build, at 65,536+ it takes hours on two cores. Both get
a coarse level here:

- :func:`two_level_kmeans`: a spherical k-means into ``k1 ~ sqrt(k)`` coarse clusters, then, inside each coarse
  cluster, a k-means into a share of the ``k`` centroids proportional to the cluster's size. Per iteration it
  costs about ``n * (k1 + k / k1) * dim`` instead of ``n * k * dim``. Optional global Lloyd steps over all ``k``
  centroids then fix what the partition got wrong near coarse boundaries.
- :class:`CoarseAssigner`: nearest-centroid search through a faiss inverted file whose lists are the centroids
  grouped by their coarse cluster: each token is compared with the centroids of its ``nprobe`` best coarse
  clusters only (approximate: a token whose nearest centroid lies in a coarse cluster it did not probe gets the
  best one it saw).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from gingham.codec.assign import CoarseAssigner, assign

log = logging.getLogger(__name__)


def train_centroids(sample: np.ndarray, n_centroids: int, niters: int, seed: int) -> np.ndarray:
    """Spherical k-means (faiss) over ``sample``; returns L2-normalised float32 centroids (n_centroids, dim)."""
    import faiss

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    kmeans = faiss.Kmeans(
        sample.shape[1],
        n_centroids,
        niter=niters,
        seed=seed,
        spherical=True,
        verbose=False,
        max_points_per_centroid=max(256, -(-len(sample) // n_centroids)),
        min_points_per_centroid=1,
    )
    kmeans.train(sample)
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    return centroids / np.maximum(norms, 1e-12)


def _spherical_kmeans(x: np.ndarray, k: int, niters: int, seed: int) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=niters, seed=seed, spherical=True, verbose=False,
                      max_points_per_centroid=max(256, -(-len(x) // k)), min_points_per_centroid=1)
    km.train(np.ascontiguousarray(x, dtype=np.float32))
    c = np.ascontiguousarray(km.centroids, dtype=np.float32)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def share_out(sizes: np.ndarray, k: int) -> np.ndarray:
    """Centroids per coarse cluster: proportional to ``sizes`` (largest remainders), summing to ``k``, at least
    one per non-empty cluster and never more than its points."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if k > total:
        raise ValueError(f"cannot place {k} centroids on {total} points")
    want = sizes * (k / total)
    out = np.minimum(np.floor(want).astype(np.int64), sizes)
    out[(out == 0) & (sizes > 0)] = 1
    while out.sum() > k:  # the minimum of one per cluster overshot: take from the largest shares
        i = int(np.argmax(np.where(out > 1, out - want, -np.inf)))
        out[i] -= 1
    order = np.argsort(-(want - out), kind="stable")
    i = 0
    while out.sum() < k:
        j = order[i % len(order)]
        if out[j] < sizes[j]:
            out[j] += 1
        i += 1
    return out


def two_level_kmeans(x: np.ndarray, k: int, niters: int, seed: int, refine_iters: int = 1,
                     n_coarse: int | None = None, assign_nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``k`` L2-normalised centroids of ``x`` (n, dim) trained coarse-then-fine (see the module docstring).

    ``assign_nprobe``: the global refinement steps assign points through the coarse level (:class:`CoarseAssigner`,
    this many coarse clusters per point) instead of against all ``k`` centroids, which at 65,536 centroids is the
    difference between seconds and minutes. Returns (centroids (k, dim) float32 grouped by coarse cluster, coarse
    centroids (k1, dim) float32). Seeded.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    k1 = n_coarse or max(1, min(k, int(round(math.sqrt(k)))))
    if k1 <= 1 or k <= 2 * k1:
        flat = _spherical_kmeans(x, k, niters, seed)
        return flat, flat
    coarse = _spherical_kmeans(x, k1, niters, seed)
    labels = assign(x, coarse)
    sizes = np.bincount(labels, minlength=k1)
    per = share_out(sizes, k)
    order = np.argsort(labels, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    parts = []
    for c in range(k1):
        if per[c] == 0:
            continue
        pts = x[order[bounds[c]:bounds[c + 1]]]
        if per[c] >= len(pts):
            fine = pts / np.maximum(np.linalg.norm(pts, axis=1, keepdims=True), 1e-12)
        elif per[c] == 1:
            m = pts.mean(axis=0)
            fine = (m / max(np.linalg.norm(m), 1e-12))[None]
        else:
            fine = _spherical_kmeans(pts, int(per[c]), niters, seed + 1 + c)
        parts.append(fine.astype(np.float32))
    centroids = np.ascontiguousarray(np.concatenate(parts))
    for _ in range(refine_iters):  # global Lloyd steps: points may move across coarse boundaries
        ids = assign(x, centroids) if assign_nprobe is None else CoarseAssigner(centroids, coarse, assign_nprobe)(x)
        sums = np.zeros_like(centroids)
        np.add.at(sums, ids, x)
        counts = np.bincount(ids, minlength=len(centroids))
        moved = counts > 0
        sums[moved] /= np.maximum(np.linalg.norm(sums[moved], axis=1, keepdims=True), 1e-12)
        centroids[moved] = sums[moved]
    return centroids, coarse

"""Search-settings sweeps (latency vs recall against exact MaxSim), their Pareto frontier, and the tuner."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Mapping, Sequence

import numpy as np

from .metrics import overlap_recall
from .timing import summarize

log = logging.getLogger(__name__)

DEFAULT_GRID: dict[str, tuple] = {
    "n_ivf_probe": (1, 2, 4, 8),
    "centroid_score_threshold": (0.3, 0.45, 0.5),
    "n_full_scores": (64, 256, 1024, 4096),
}
SWEEP_KEYS = ("n_ivf_probe", "centroid_score_threshold", "n_full_scores", "min_candidates", "max_ivf_probe")


def grid_points(grid: Mapping[str, Sequence] | None = None, top_k: int = 10) -> list[dict]:
    """Every combination of ``grid`` (default :data:`DEFAULT_GRID`), dropping n_full_scores below top_k."""
    grid = dict(DEFAULT_GRID if grid is None else grid)
    unknown = sorted(set(grid) - set(SWEEP_KEYS))
    if unknown:
        raise ValueError(f"unknown search setting(s) {unknown} in the sweep grid; allowed: {list(SWEEP_KEYS)}")
    keys = list(grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    return [p for p in points if p.get("n_full_scores", top_k) >= top_k]


def measure(index, queries: Sequence[np.ndarray], exact_positions: np.ndarray | None, top_k: int,
            settings: Mapping | None = None, warm: int = 3) -> dict:
    """One query at a time with ``settings``: latency summary, per-query seconds and recall vs exact."""
    settings = dict(settings or {})
    for q in queries[:warm]:
        index.search(q, top_k, **settings)
    seconds, positions = [], np.full((len(queries), top_k), -1, dtype=np.int64)
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        res = index.search(q, top_k, **settings)
        seconds.append(time.perf_counter() - t0)
        positions[i] = res.positions[0]
    out = {"settings": settings, "latency": summarize(seconds), "seconds": seconds}
    if exact_positions is not None:
        out["recall"] = overlap_recall(positions, exact_positions, top_k)
    out["positions"] = positions
    return out


def sweep(index, queries: Sequence[np.ndarray], exact_positions: np.ndarray, top_k: int = 10,
          grid: Mapping[str, Sequence] | None = None) -> list[dict]:
    """:func:`measure` at every grid point; each row is settings, recall and p50/p95/p99 latency (ms)."""
    rows = []
    for point in grid_points(grid, top_k):
        m = measure(index, queries, exact_positions, top_k, point)
        rows.append({"settings": point, "recall": m["recall"], **m["latency"]})
        log.info("sweep %s recall %.4f p50 %.2f ms", point, m["recall"], m["latency"]["p50_ms"])
    return rows


def pareto(rows: Sequence[Mapping], x: str = "p50_ms", y: str = "recall") -> list[Mapping]:
    """Rows not dominated by a faster-and-at-least-as-accurate row, by increasing ``x``."""
    front, best = [], -np.inf
    for row in sorted(rows, key=lambda r: (r[x], -r[y])):
        if row[y] > best:
            front.append(row)
            best = row[y]
    return front


def tune(index, queries: Sequence[np.ndarray], *, target_recall: float = 0.95, top_k: int = 10,
         exact_positions: np.ndarray | None = None, grid: Mapping[str, Sequence] | None = None,
         sample: int | None = 64, seed: int = 0) -> dict:
    """The fastest search settings whose recall@top_k against exact MaxSim reaches ``target_recall`` on a sample.

    ``exact_positions`` are exact MaxSim results over the uncompressed vectors for ``queries``; without them
    the reference is the index's own exhaustive search over decompressed vectors (``reference`` says which).
    Returns {"settings", "recall", "p50_ms", "met", "reference", "n_sample", "rows"}; ``settings`` is the dict
    to store as the index's ``search_defaults``. When no point meets the target, the most accurate is returned
    with ``met`` False.
    """
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    queries = list(queries)
    idx = np.arange(len(queries))
    if sample is not None and sample < len(queries):
        idx = np.sort(np.random.default_rng(seed).choice(len(queries), sample, replace=False))
    sample_q = [queries[i] for i in idx]
    if exact_positions is None:
        reference = "exhaustive search over the index's decompressed vectors"
        truth = index.exact_search(sample_q, top_k).positions
    else:
        reference = "exact MaxSim over the uncompressed vectors"
        truth = np.asarray(exact_positions)[idx]
    rows = sweep(index, sample_q, truth, top_k, grid)
    return {**select(rows, target_recall), "top_k": top_k, "reference": reference, "n_sample": len(sample_q),
            "rows": rows}


def select(rows: Sequence[Mapping], target_recall: float) -> dict:
    """The fastest (p50) sweep row with recall >= target_recall, else the most accurate one (``met`` False)."""
    if not rows:
        raise ValueError("no sweep rows to choose from")
    ok = [r for r in rows if r["recall"] >= target_recall]
    best = (min(ok, key=lambda r: (r["p50_ms"], -r["recall"])) if ok
            else max(rows, key=lambda r: (r["recall"], -r["p50_ms"])))
    return {"settings": dict(best["settings"]), "recall": best["recall"], "p50_ms": best["p50_ms"],
            "met": bool(ok), "target_recall": target_recall}

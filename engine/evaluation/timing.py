"""Latency, throughput, memory and the environment a measurement was taken in."""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from typing import Callable, Sequence

import numpy as np

from .drivers.peer_protocol import peak_rss_mb  # noqa: F401 - one definition for Gingham and its peers


def summarize(seconds: Sequence[float]) -> dict:
    """p50 / p95 / p99 / mean / max in milliseconds, and the count."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": int(ms.size), "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}


def time_each(fn: Callable[[object], object], items: Sequence, warm: int = 3) -> list[float]:
    """Seconds of ``fn(item)`` for each item, one at a time, after ``warm`` untimed calls on the first items."""
    for item in list(items)[:warm]:
        fn(item)
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t0)
    return out


def time_call(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Best wall-clock seconds of ``repeat`` calls of ``fn()``, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def rss_mb() -> float | None:
    """The current resident set size (MiB), through psutil when installed."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / (1024 * 1024)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """CPU model and counts, thread settings, and versions of the packages that shape the numbers."""
    import numba

    import gingham

    env = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numba_threads": numba.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {"gingham": gingham.__version__, "numpy": np.__version__, "numba": numba.__version__,
                     **{d: _version(d) for d in ("torch", "ir-measures", "pytrec-eval-terrier", "matplotlib")}},
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS")
                if k in os.environ},
    }
    if "torch" in sys.modules:
        env["torch_threads"] = sys.modules["torch"].get_num_threads()
    return env

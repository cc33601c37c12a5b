"""One query over several threads: its candidates split into runs that the kernels score at once.

A batch of queries is spread over threads one query per thread (:meth:`gingham.Index.search`); a query searched
alone would leave every core but one idle while it scores its candidates, which is most of its time. Its
candidate documents are therefore cut into contiguous runs of about equal token counts, one per thread; the
calling thread scores the first run and a shared pool the others. The kernels are serial and release the GIL,
and every document is scored by the same code whichever run it falls in, so the scores are the same bit for bit
as with one thread (tested).

When the pool's threads are all busy (several queries at once, as a server answers them), a query does not queue
runs behind the others': it scores every run itself, as it would on one thread. Splitting then buys no latency
(every core is already working) and would only add hand-offs. So a query alone gets every core and concurrent
queries one each, without any setting.

The pool is made on first use, grows to the largest number of threads asked for, and is forgotten in a child
process after ``fork`` (its threads do not survive the fork).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable

import numpy as np

#: Fewest tokens worth a run of their own: below this, handing work to another thread costs about what it saves
#: (a pool hand-off is tens of microseconds; 2,048 decoded tokens at dim 128 take about 0.2 ms).
MIN_RUN_TOKENS = 2048

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_in_flight = 0  # runs handed to the pool and not finished


def _forget_pool() -> None:
    global _pool, _pool_size, _in_flight
    _pool, _pool_size, _in_flight = None, 0, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _reserve(n_runs: int) -> ThreadPoolExecutor | None:
    """The pool, with ``n_runs`` of its threads counted as taken, or None when it has no idle thread (then the
    caller runs everything itself)."""
    global _pool, _pool_size, _in_flight
    with _lock:
        if _pool is None or _pool_size < n_runs:
            old = _pool
            _pool, _pool_size = ThreadPoolExecutor(n_runs, thread_name_prefix="gingham-query"), n_runs
            if old is not None:
                old.shutdown(wait=False)  # its queued runs still finish
        if _in_flight + n_runs > _pool_size:
            return None
        _in_flight += n_runs
        return _pool


def _release(n_runs: int) -> None:
    global _in_flight
    with _lock:
        _in_flight = max(0, _in_flight - n_runs)


def runs(docs: np.ndarray, doc_offsets: np.ndarray, n_threads: int, min_tokens: int = MIN_RUN_TOKENS) -> list[int]:
    """Cut points of ``docs`` (positions into it, first 0, last ``len(docs)``) into at most ``n_threads``
    contiguous runs of about equal token counts, each of at least ``min_tokens`` tokens (one run when there are
    too few)."""
    n = len(docs)
    if n_threads <= 1 or n < 2:
        return [0, n]
    ends = np.cumsum(doc_offsets[docs + 1] - doc_offsets[docs])
    total = int(ends[-1])
    parts = int(min(n_threads, n, max(1, total // max(1, min_tokens))))
    if parts <= 1:
        return [0, n]
    cuts = np.searchsorted(ends, total * np.arange(1, parts) / parts, side="left") + 1
    return [0, *sorted(set(int(c) for c in cuts if 0 < c < n)), n]


def map_parts(fn: Callable[[int, int], object], cuts: list[int]) -> list:
    """``fn(cuts[i], cuts[i + 1])`` for every part (the first in this thread, the others in the pool; all in this
    thread when the pool has no idle thread), in order."""
    if len(cuts) <= 2:
        return [fn(cuts[0], cuts[-1])]
    pool = _reserve(len(cuts) - 2)
    if pool is None:  # every pool thread is busy with other queries' runs
        return [fn(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
    futures = []
    try:
        for a, b in zip(cuts[1:-1], cuts[2:]):
            futures.append(pool.submit(fn, a, b))
        first = fn(cuts[0], cuts[1])
    finally:
        wait(futures)  # even when this thread's part failed: no run outlives the call
        _release(len(cuts) - 2)
    return [first, *(f.result() for f in futures)]


def map_runs(fn: Callable[[np.ndarray], np.ndarray], docs: np.ndarray, cuts: list[int]) -> np.ndarray:
    """``fn`` over each run ``docs[cuts[i]:cuts[i + 1]]`` (see :func:`map_parts`), concatenated in order. ``fn``
    returns one value (or row) per document."""
    if len(cuts) <= 2:
        return fn(docs)
    return np.concatenate(map_parts(lambda a, b: fn(docs[a:b]), cuts))

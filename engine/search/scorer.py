"""Which kernel scores the exact stage: decompress-then-score, or scoring straight from the packed residuals.

Two float32 scorers give the same scores up to rounding (tested):

- ``"decompress"``: :func:`gingham.kernels.maxsim_decompress` decodes each candidate token into a block that stays
  in L1 and multiplies it with the query (``dim x n_q`` multiply-adds a token);
- ``"packed"``: :func:`gingham.kernels.maxsim_packed` builds one table per query (each byte value's residual values
  dotted with every query token) and adds ``n_bytes`` of its rows per token, plus the centroid term that candidate
  generation already computed.

Which one is faster depends on the CPU (cache sizes and vector width decide whether the table's rows stay close)
as much as on nbits and the query's length, so it is measured, not assumed: the first exact stage of a given
(nbits, dim, query width, code type) in a process times both scorers on a few thousand synthetic tokens of that
shape (about 5 ms, :func:`measure`) and keeps the per-token and per-query costs (:func:`costs`). Each call then
takes the scorer with the lower estimate for its own number of candidate tokens (:func:`choose`): the table's
fixed cost is only repaid over enough tokens, and the packed scorer must be estimated at :data:`MARGIN` of
decompress-then-score's time or less, so that processes on one machine do not flip between them on a close call.

``"packed-int8"`` (:func:`gingham.kernels.maxsim_packed_int8`, an int8 table) is within a bounded quantisation
error of the others, not equal to them, so it is never chosen automatically; ``GINGHAM_EXACT_SCORER`` (or
:func:`forced`, for tests and benches) names a scorer for every search of the process.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, NamedTuple

import numpy as np

from gingham.kernels.packed import (
    maxsim_packed,
    maxsim_packed_int8,
    packed_query_table,
    quantize_table,
    table_width,
)
from gingham.kernels.scoring import maxsim_decompress
from gingham.search.centroids import NO_SLOT, score_rows, token_centroids

SCORERS = ("decompress", "packed", "packed-int8")
#: Scorers the automatic choice picks from: those that give decompress-then-score's scores up to rounding.
AUTO_SCORERS = ("decompress", "packed")
#: How much faster than decompress-then-score the packed scorer must be estimated to be chosen. The two give the
#: same scores only up to float rounding, so a choice that flips with the machine's load would let two processes
#: (Ray shards, a restarted server) return scores that differ in the last bits; a clear margin keeps the choice
#: where the timing is not close, and where it is close, little is lost by keeping the default.
MARGIN = 0.8
#: Environment variable naming a scorer for every exact stage of the process ("auto": measured per shape).
ENV = "GINGHAM_EXACT_SCORER"
#: Synthetic candidate tokens each scorer is timed on (32-token documents), and the timing rounds (the fastest
#: round counts: the least disturbed by other work on the machine).
CALIBRATION_TOKENS = 2048
#: No per-token inverse norms: indexes do not store them, so the packed scorers decode each token of a unit-length
#: index for its norm (see :func:`gingham.kernels.maxsim_packed`).
NO_NORMS = np.zeros(0, dtype=np.float32)
CALIBRATION_ROUNDS = 5


class Costs(NamedTuple):
    per_token: dict  # scorer -> seconds per candidate token
    per_query: dict  # scorer -> seconds per query before its first token (the packed scorers' table)


_lock = threading.Lock()
_costs: dict[tuple, Costs] = {}
_forced: str | None = None


def _check(name: str, where: str) -> str:
    if name not in SCORERS and name != "auto":
        raise ValueError(f"{where}={name!r} is not an exact-stage scorer; use one of "
                         f"{', '.join(repr(s) for s in ('auto',) + SCORERS)}")
    return name


@contextmanager
def forced(name: str) -> Iterator[None]:
    """Every exact stage in this process uses scorer ``name`` (one of :data:`SCORERS`, or "auto") inside the
    block; the previous setting comes back after it."""
    global _forced
    _check(name, "scorer")
    before, _forced = _forced, name
    try:
        yield
    finally:
        _forced = before


def requested() -> str:
    """The scorer asked for: :func:`forced`'s, else ``GINGHAM_EXACT_SCORER``'s, else "auto"."""
    if _forced is not None:
        return _forced
    return _check(os.environ.get(ENV, "auto").strip() or "auto", ENV)


def choose(costs: Costs, n_tokens: int, allowed=AUTO_SCORERS, margin: float = MARGIN) -> str:
    """The scorer of ``allowed`` with the least estimated time for ``n_tokens`` candidate tokens (per-query cost
    plus per-token cost times tokens), where every scorer but the first (the default) must also beat the first's
    estimate times ``margin``; ties go to the earlier one in ``allowed``."""
    best, best_time = None, np.inf
    for i, name in enumerate(allowed):
        est = costs.per_query.get(name, 0.0) + n_tokens * costs.per_token[name]
        if i > 0:
            est /= margin
        if est < best_time:
            best, best_time = name, est
    return best


def _synthetic(nbits: int, dim: int, n_q: int, code_dtype, n_tokens: int):
    rng = np.random.default_rng(0)
    n_codes, per_doc = 256, 32
    n_docs = max(1, n_tokens // per_doc)
    fine = rng.standard_normal((n_codes, dim)).astype(np.float32)
    fine /= np.linalg.norm(fine, axis=1, keepdims=True)
    return dict(
        docs=np.arange(n_docs, dtype=np.int64),
        doc_offsets=np.arange(n_docs + 1, dtype=np.int64) * per_doc,
        codes=rng.integers(0, n_codes, n_docs * per_doc).astype(code_dtype),
        packed=rng.integers(0, 256, (n_docs * per_doc, dim * nbits // 8)).astype(np.uint8),
        fine=fine,
        scales=np.ones(n_codes, dtype=np.float32),
        lut=(rng.standard_normal((dim * nbits // 8, 256, 8 // nbits)) * 0.05).astype(np.float32),
        q=rng.standard_normal((n_q, dim)).astype(np.float32),
    )


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def measure(nbits: int, dim: int, n_q: int, code_dtype, timer: Callable[[], float] = time.perf_counter,
            n_tokens: int = CALIBRATION_TOKENS, rounds: int = CALIBRATION_ROUNDS, read_only: bool = False) -> Costs:
    """Per-token and per-query seconds of every scorer on ``n_tokens`` synthetic tokens of this shape (unit-length
    tokens, random bytes: every row of the table equally likely, as product codes make them). Each scorer runs
    once untimed (numba's cache loads it), then ``rounds`` times interleaved with the others; the fastest round
    counts. ``read_only``: codes and residuals as an opened index's memory maps are (numba compiles them apart:
    timing the other kind would compile what the search's warm-up left out)."""
    s = _synthetic(nbits, dim, n_q, code_dtype, n_tokens)
    docs, offsets, codes, packed, fine, scales, lut, q = (s[k] for k in ("docs", "doc_offsets", "codes", "packed",
                                                                           "fine", "scales", "lut", "q"))
    if read_only:
        codes, packed = _read_only(codes), _read_only(packed)
    cscores = np.ascontiguousarray(fine @ q.T)
    n_bytes = packed.shape[1]
    table = packed_query_table(lut, q)
    table8, table_scales = quantize_table(table, n_bytes)
    steps = {
        "decompress": lambda: maxsim_decompress(docs, offsets, codes, packed, fine, scales, lut, True, q),
        "packed": lambda: maxsim_packed(docs, offsets, codes, packed, cscores, NO_SLOT, fine, scales, lut, True,
                                        NO_NORMS, table, n_q),
        "packed-int8": lambda: maxsim_packed_int8(docs, offsets, codes, packed, cscores, NO_SLOT, fine, scales, lut,
                                                  True, NO_NORMS, table8, table_scales, n_q),
        "table": lambda: packed_query_table(lut, q),
        "table-int8": lambda: quantize_table(packed_query_table(lut, q), n_bytes),
    }
    best = {name: np.inf for name in steps}
    for fn in steps.values():
        fn()
    for _ in range(rounds):
        for name, fn in steps.items():
            t0 = timer()
            fn()
            best[name] = min(best[name], max(0.0, timer() - t0))
    tokens = int(offsets[-1])
    return Costs(per_token={k: best[k] / tokens for k in SCORERS},
                 per_query={"decompress": 0.0, "packed": best["table"], "packed-int8": best["table-int8"]})


def costs(nbits: int, dim: int, n_q: int, code_dtype, timer: Callable[[], float] = time.perf_counter,
          read_only: bool = False) -> Costs:
    """:func:`measure`'s costs for this shape, measured once per process (query lengths that share a table width
    share them; ``read_only`` only says which arrays to time them on)."""
    key = (int(nbits), int(dim), table_width(n_q), np.dtype(code_dtype).str)
    found = _costs.get(key)
    if found is None:
        with _lock:  # one measurement at a time: concurrent ones would time each other
            found = _costs.get(key)
            if found is None:
                found = _costs[key] = measure(nbits, dim, n_q, code_dtype, timer, read_only=read_only)
    return found


def forget() -> None:
    """Drop the measured costs (the next exact stage of each shape measures again)."""
    with _lock:
        _costs.clear()


def _rows_given(ix, n_q: int, cs) -> bool:
    """Whether centroid scores ``cs`` (which the caller vouches hold an exact row for every candidate centroid)
    serve as the codes' rows: codes without sub-centroid bits are centroids."""
    return cs is not None and ix.shift == 0 and cs.scores.shape[1] == n_q


def pick(ix, n_q: int, n_tokens: int, cs=None) -> str:
    """The scorer of one exact stage over ``n_tokens`` candidate tokens of index arrays ``ix``, given the query's
    centroid scores ``cs`` (as :func:`centroid_rows` takes them). Without usable ones the packed scorers first
    score the distinct codes (at most ``min(n_tokens, n_codes)`` rows, each costing about what
    decompress-then-score spends on a token), which is counted against them."""
    name = requested()
    if name != "auto":
        return name
    nbits = ix.residuals.shape[1] * 8 // ix.fine.shape[1]
    c = costs(nbits, ix.fine.shape[1], n_q, ix.codes.dtype, read_only=not ix.codes.flags.writeable)
    if not _rows_given(ix, n_q, cs):
        rows = min(n_tokens, len(ix.fine)) * c.per_token["decompress"]
        c = Costs(c.per_token, {k: v + (rows if k != "decompress" else 0.0) for k, v in c.per_query.items()})
    return choose(c, n_tokens)


def centroid_rows(ix, q: np.ndarray, docs: np.ndarray, cs=None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, slot) of the codes of ``docs``' tokens against ``q``, as :func:`gingham.kernels.maxsim_packed` reads
    them: the query's centroid scores ``cs`` when they hold an exact row for every one of those codes (the caller
    says so by passing them; codes without sub-centroids are centroids), else the distinct codes scored here (every
    code when they are most of them)."""
    if _rows_given(ix, len(q), cs):
        return cs.scores, cs.slot
    ids = token_centroids(docs, ix.doc_offsets, ix.codes, 0)
    n_codes = len(ix.fine)
    if 2 * len(ids) >= n_codes:
        return score_rows(ix.fine, q), NO_SLOT
    slot = np.zeros(n_codes, dtype=np.int32)  # codes of no candidate token are never read
    slot[ids] = np.arange(len(ids), dtype=np.int32)
    return score_rows(np.ascontiguousarray(ix.fine[ids]), q), slot


def scorer_for(ix, q: np.ndarray, docs: np.ndarray, name: str, cs=None) -> Callable[[np.ndarray], np.ndarray]:
    """The exact-stage function of one query (a run of sorted candidate documents -> their float32 MaxSim) for
    scorer ``name``; the packed scorers' table and centroid rows are made here, once for every run."""
    if name == "decompress":
        return lambda part: maxsim_decompress(part, ix.doc_offsets, ix.codes, ix.residuals, ix.fine, ix.scales,
                                              ix.lut, ix.normalize, q)
    cscores, slot = centroid_rows(ix, q, docs, cs)
    table = packed_query_table(ix.lut, q)
    n_q = len(q)
    if name == "packed":
        return lambda part: maxsim_packed(part, ix.doc_offsets, ix.codes, ix.residuals, cscores, slot, ix.fine,
                                          ix.scales, ix.lut, ix.normalize, NO_NORMS, table, n_q)
    table8, table_scales = quantize_table(table, ix.residuals.shape[1])
    return lambda part: maxsim_packed_int8(part, ix.doc_offsets, ix.codes, ix.residuals, cscores, slot, ix.fine,
                                           ix.scales, ix.lut, ix.normalize, NO_NORMS, table8, table_scales, n_q)

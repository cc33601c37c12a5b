"""Centroid scores of a query: every centroid, or through the codebook's coarse level at PLAID's larger sizes.

PLAID scores every query token against every centroid. At 65,536 centroids that is a (65,536 x 128) by
(128 x 32) product and a scan of its 2M scores per query; at 262,144 (MS MARCO's size) it was 29-36 ms of a
query on 2 cores (docs/scale.md). Codebooks of that size are trained in two levels (:mod:`gingham.codec.kmeans`) and
keep their coarse centroids (about sqrt(k) of them), which group the centroids as a tree of depth two:

- every query token is scored against the coarse centroids (cheap), and its ``n_coarse_probe`` best groups are
  chosen;
- the centroids of the union of chosen groups are scored exactly against every query token: one product over a
  share of the rows;
- a centroid outside that union is represented by its group: its scores are those of the mean of the group's
  centroids, which is the group's average score, exactly. Candidate generation ranks only the exactly scored
  centroids, and the pruned centroid interaction reads the group scores for the rest;
- before the unpruned centroid interaction, the centroids of the surviving candidates' tokens that were not
  scored are scored exactly (:func:`with_exact_rows`: a few thousand rows), so that stage and the exact MaxSim
  after it see what scoring every centroid would give them. Measured (bench/bench_coarse_scoring.py), group
  scores in that stage lost 3% of the full scoring's top-10 at 4 groups per token; exact rows lose none.

The scores cross into the kernels as :class:`CentroidScores`: a matrix of rows and ``slot``, the row of every
centroid (empty when every centroid has its own row, row = centroid id). Scores are computed once per query and
shared by every segment of a snapshot, which all hold the same codebook.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from gingham.kernels.scoring import dot_rows, rank_centroids
from gingham.search.parallel import map_parts, map_runs

#: Codebooks below this size are scored in full whatever the setting: the product is already a few milliseconds.
COARSE_SCORING_MIN_CENTROIDS = 32_768
#: Coarse groups scored exactly per query token when the setting is left to the index (``n_coarse_probe=None``).
DEFAULT_COARSE_PROBE = 2
NO_SLOT = np.zeros(0, dtype=np.int32)
#: Fewest rows worth a thread of their own when one query's centroid scores are split (1,024 rows at dim 384
#: take about 0.2 ms).
MIN_ROWS_PER_THREAD = 1024


def _row_cuts(n: int, n_threads: int, min_rows: int) -> list[int]:
    parts = max(1, min(n_threads, n // max(1, min_rows)))
    return [n * i // parts for i in range(parts + 1)]


def score_rows(rows: np.ndarray, q: np.ndarray, n_threads: int = 1) -> np.ndarray:
    """``rows @ q.T`` as float32 (n_rows, n_q), row-major, its rows split over up to ``n_threads`` threads
    (:func:`gingham.kernels.dot_rows`; not BLAS, whose threads would compete with the query's own)."""
    q = np.ascontiguousarray(q, dtype=np.float32)
    return map_runs(lambda part: dot_rows(part, q), rows, _row_cuts(len(rows), n_threads, MIN_ROWS_PER_THREAD))


def score_and_rank(rows: np.ndarray, q: np.ndarray, rounds: int, n_threads: int = 1):
    """:func:`score_rows` and :func:`gingham.kernels.rank_centroids` over them, in one pass per thread: each
    thread scores and ranks its block of rows; the blocks' rankings are merged per query token (a stable sort,
    so that equal scores keep the lower id first, as one ranking over every row would). Returns
    (scores, ranked, best)."""
    q = np.ascontiguousarray(q, dtype=np.float32)
    r = min(rounds, len(rows))
    cuts = _row_cuts(len(rows), n_threads, max(MIN_ROWS_PER_THREAD, r))

    def part(a: int, b: int):
        s = dot_rows(rows[a:b], q)
        ranked, best = rank_centroids(s, r)
        return s, ranked + a, best

    parts = map_parts(part, cuts)
    if len(parts) == 1:
        return parts[0]
    scores = np.concatenate([p[0] for p in parts])
    ids = np.concatenate([p[1] for p in parts], axis=1)  # (n_q, parts * r): each block's best first
    top = np.take_along_axis(scores.T, ids, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")[:, :r]
    return scores, np.take_along_axis(ids, order, axis=1), np.concatenate([p[2] for p in parts])


class CentroidScores(NamedTuple):
    scores: np.ndarray  # (n_rows, n_q) float32, row-major
    slot: np.ndarray  # (n_centroids,) int32 row of each centroid, or empty: row = centroid id
    ranked: np.ndarray  # (n_q, rounds) int64 centroid ids, each query token's best first (exactly scored only)
    best: np.ndarray  # (n_rows,) float32: each row's best score over the query tokens (pruning)
    n_exact: int  # centroids scored exactly


class CentroidGroups(NamedTuple):
    coarse: np.ndarray  # (n_groups, dim) float32: chooses the groups
    means: np.ndarray  # (n_groups, dim) float32: the mean of each group's centroids (zero for an empty group)
    group_of: np.ndarray  # (n_centroids,) int32: each centroid's nearest coarse centroid


def group_centroids(centroids: np.ndarray, coarse: np.ndarray, block: int = 16_384) -> CentroidGroups:
    """Each centroid's nearest coarse centroid (inner product; both sets are unit length), in blocks, and the
    mean of each group's centroids."""
    from scipy import sparse

    coarse = np.ascontiguousarray(coarse, dtype=np.float32)
    k = len(centroids)
    group_of = np.empty(k, dtype=np.int32)
    for lo in range(0, k, block):
        hi = min(k, lo + block)
        group_of[lo:hi] = np.argmax(np.asarray(centroids[lo:hi], dtype=np.float32) @ coarse.T, axis=1)
    # group sums as one sparse product (np.add.at took 1.2 s at 262,144 centroids, this 0.04 s)
    members = sparse.csr_matrix((np.ones(k), (group_of, np.arange(k))), shape=(len(coarse), k))
    sums = np.asarray(members @ np.asarray(centroids, dtype=np.float32))
    counts = np.bincount(group_of, minlength=len(coarse))
    means = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    return CentroidGroups(coarse, means, group_of)


class CentroidScorer:
    """Scores a query against one codebook (see the module docstring). Thread-safe; groups are built on first need.

    ``coarse``: the codebook's coarse centroids, or None (then every centroid is always scored).
    """

    def __init__(self, centroids: np.ndarray, coarse: np.ndarray | None = None, cache_key=None):
        self.centroids = centroids
        self.coarse = coarse
        self._key = cache_key
        self._groups: CentroidGroups | None = None
        self._lock = threading.Lock()

    @property
    def n_centroids(self) -> int:
        return len(self.centroids)

    def coarse_probe(self, requested: int | None) -> int:
        """Coarse groups scored exactly per query token under setting ``requested``; 0 means every centroid."""
        if self.coarse is None or self.n_centroids < COARSE_SCORING_MIN_CENTROIDS:
            return 0
        probe = DEFAULT_COARSE_PROBE if requested is None else int(requested)
        return 0 if probe >= len(self.coarse) else probe

    def groups(self) -> CentroidGroups:
        if self._groups is None:
            with self._lock:
                if self._groups is None:
                    self._groups = _cached_groups(self._key, self.centroids, self.coarse)
        return self._groups

    def __call__(self, q: np.ndarray, rounds: int, n_coarse_probe: int | None = None,
                 n_threads: int = 1) -> CentroidScores:
        """Scores of query ``q`` (n_q, dim); ``rounds``: centroids ranked per query token; the products over up to
        ``n_threads`` threads."""
        probe = self.coarse_probe(n_coarse_probe)
        if probe == 0:
            scores, ranked, best = score_and_rank(self.centroids, q, rounds, n_threads)  # scores (n_centroids, n_q)
            return CentroidScores(scores, NO_SLOT, ranked, best, self.n_centroids)
        g = self.groups()
        gscores = score_rows(g.coarse, q, n_threads)  # (n_groups, n_q)
        chosen = np.zeros(len(g.coarse), dtype=bool)
        chosen[np.argpartition(-gscores, probe - 1, axis=0)[:probe].ravel()] = True
        fill = score_rows(g.means, q, n_threads)  # (n_groups, n_q): the scores of centroids in groups not chosen
        exact = np.flatnonzero(chosen[g.group_of])  # sorted ids: the gather reads the centroids in order
        n_exact = len(exact)
        if n_exact == 0:  # every chosen group is empty (no centroid is nearest to its coarse centroid)
            return self(q, rounds, 0, n_threads)
        scores = np.concatenate([score_rows(self.centroids[exact], q, n_threads), fill])
        slot = g.group_of + np.int32(n_exact)
        slot[exact] = np.arange(n_exact, dtype=np.int32)
        ranked, best_exact = rank_centroids(scores[:n_exact], rounds)
        best = np.concatenate([best_exact, fill.max(axis=1)])
        return CentroidScores(scores, slot, exact[ranked], best, n_exact)


_GROUPS: "OrderedDict[object, CentroidGroups]" = OrderedDict()
_GROUPS_LOCK = threading.Lock()
_GROUPS_KEPT = 4  # codebooks whose groups are kept between snapshots (a live index commits new ones often)


def _cached_groups(key, centroids: np.ndarray, coarse: np.ndarray) -> CentroidGroups:
    if key is None:
        return group_centroids(centroids, coarse)
    with _GROUPS_LOCK:
        found = _GROUPS.get(key)
        if found is not None:
            _GROUPS.move_to_end(key)
            return found
    groups = group_centroids(centroids, coarse)
    with _GROUPS_LOCK:
        _GROUPS[key] = groups
        while len(_GROUPS) > _GROUPS_KEPT:
            _GROUPS.popitem(last=False)
    return groups


def with_exact_rows(cs: CentroidScores, centroids: np.ndarray, q: np.ndarray, ids: np.ndarray) -> CentroidScores:
    """``cs`` with exact rows for those of the centroids ``ids`` (unique) that had only their group's scores.

    ``cs`` is left as it was (the segments of an index share it): the result has its own rows and slot."""
    if cs.slot.size == 0 or len(ids) == 0:
        return cs
    missing = ids[cs.slot[ids] >= cs.n_exact]
    if len(missing) == 0:
        return cs
    rows = score_rows(centroids[missing], q)
    slot = cs.slot.copy()
    slot[missing] = np.arange(len(cs.scores), len(cs.scores) + len(missing), dtype=np.int32)
    return cs._replace(scores=np.concatenate([cs.scores, rows]), slot=slot,
                       best=np.concatenate([cs.best, rows.max(axis=1)]))


def token_centroids(docs: np.ndarray, doc_offsets: np.ndarray, codes: np.ndarray, shift: int) -> np.ndarray:
    """The distinct centroid ids of the tokens of ``docs`` (int64)."""
    starts, ends = doc_offsets[docs], doc_offsets[docs + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # positions of every token of every doc: each doc's start, then consecutive
    firsts = np.cumsum(lengths) - lengths
    pos = np.arange(total, dtype=np.int64) + np.repeat(starts - firsts, lengths)
    return np.unique(np.asarray(codes[pos]).astype(np.int64) >> shift)


#: The centroid scorer of each open snapshot (one codebook each): built on a snapshot's first search, dropped with it.
_SCORERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_SCORERS_LOCK = threading.Lock()


def scorer_for(snap) -> CentroidScorer:
    """The :class:`CentroidScorer` of a :class:`gingham.storage.segment.Snapshot`'s codebook, one per snapshot;
    its groups are shared with every snapshot of the same committed codebook (keyed by the files' checksums)."""
    with _SCORERS_LOCK:
        found = _SCORERS.get(snap)
        if found is None:
            files = snap.manifest.get("files", {})
            key = tuple(files.get(k, {}).get("sha256")
                        for k in ("centroids", "centroid_scales", "coarse_centroids", "coarse_scales")) \
                if "centroids" in files else None
            found = _SCORERS[snap] = CentroidScorer(snap.codec.centroids, snap.codec.coarse, cache_key=key)
    return found

"""Fusing ranked lists (MaxSim and BM25) into one: reciprocal-rank fusion and relative-score fusion.

Pure functions over arrays: each ranker gives one row of positions (best first, -1 padding) and one row of scores.

- Reciprocal-rank fusion (Cormack et al., 2009): ``score(d) = sum_r w_r / (k + rank_r(d))``, ranks from 1, ``k``
  = 60; a list a document is missing from adds nothing. With equal weights it is plain RRF (scaled).
- Relative-score fusion (Weaviate's ``relativeScoreFusion``): each list's scores min-max normalised to [0, 1]
  (all equal: 1), then ``score(d) = sum_r w_r * norm_r(d)``; missing from a list adds 0.

Ties are broken by the lower position, as everywhere in search.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

RRF_K = 60


def _top(pos: np.ndarray, scores: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum the scores of equal positions, then the ``top_k`` best (score descending, position ascending)."""
    if len(pos) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    uniq, inverse = np.unique(pos, return_inverse=True)
    total = np.zeros(len(uniq), dtype=np.float64)
    np.add.at(total, inverse, scores)
    order = np.lexsort((uniq, -total))[:top_k]
    return uniq[order], total[order]


def rrf(positions: Sequence[np.ndarray], weights: Sequence[float], top_k: int,
        k: int = RRF_K) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal-rank fusion of ranked position lists (each best first, -1 = no result)."""
    pos_parts, score_parts = [], []
    for pos, w in zip(positions, weights):
        pos = np.asarray(pos, dtype=np.int64)
        ranks = np.arange(1, len(pos) + 1, dtype=np.float64)
        keep = pos >= 0
        pos_parts.append(pos[keep])
        score_parts.append(w / (k + ranks[keep]))
    return _top(np.concatenate(pos_parts), np.concatenate(score_parts), top_k)


def relative(positions: Sequence[np.ndarray], scores: Sequence[np.ndarray], weights: Sequence[float],
             top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative-score fusion: each list's scores min-max normalised, weighted and summed."""
    pos_parts, score_parts = [], []
    for pos, sc, w in zip(positions, scores, weights):
        pos, sc = np.asarray(pos, dtype=np.int64), np.asarray(sc, dtype=np.float64)
        keep = (pos >= 0) & np.isfinite(sc)
        pos, sc = pos[keep], sc[keep]
        if len(sc) == 0:
            continue
        lo, hi = sc.min(), sc.max()
        norm = (sc - lo) / (hi - lo) if hi > lo else np.ones_like(sc)
        pos_parts.append(pos)
        score_parts.append(w * norm)
    if not pos_parts:
        return _top(np.zeros(0, np.int64), np.zeros(0), top_k)
    return _top(np.concatenate(pos_parts), np.concatenate(score_parts), top_k)

"""Relevance in [0, 1] from MaxSim, on a scale where a threshold means the same for every query and index.

A MaxSim score is a sum over query tokens of each token's best cosine in the document, so it grows with the
query's length, and its per-token mean ``m = MaxSim / n_query_tokens`` still sits high for any document: with
multilingual-e5-small's token states the old ``(m + 1) / 2`` mapping gave 0.834-0.970 to relevant and unrelated
top hits alike, and where that band lies depends on the query (a generic query scores high against everything),
the corpus and the model (``docs/relevance.md``).

So ``m`` is compared with what the same query scores against the index's own documents: the query's
**background** is its ``m`` against a fixed, seeded sample of :data:`BACKGROUND_DOCS` live documents of the index
(exact MaxSim over their decompressed tokens), and ``z = (m - mean) / std`` of that background says how many
standard deviations a hit stands above an unrelated document for this query. A logistic curve maps ``z`` to
[0, 1]: ``relevance = 1 / (1 + exp(-SLOPE * (z - CENTRE)))``, fitted on real judged queries (XQuAD questions in
three languages against English paragraphs, MS MARCO TREC-DL 2019 and DBpedia-Entity subsets, e5 token states;
``bench/bench_relevance_calibration.py``, the figures in ``docs/relevance.md``), each set weighted equally and relevant
and non-relevant hits balanced: 0.5 is where a top hit is as likely relevant as not, at equal priors.
For a given query the relevance is increasing in MaxSim, so ranking by it is ranking by MaxSim.

The background needs the index to have a few documents (:data:`MIN_BACKGROUND`); on a smaller index there is
nothing to compare with and the relevance falls back to the per-token cosine clipped to [0, 1].
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Documents in a query's background sample (the query is scored exactly against each).
BACKGROUND_DOCS = 64
#: Below this many live documents there is no background: relevance is the per-token cosine, clipped to [0, 1].
MIN_BACKGROUND = 8
#: Floor of the background's standard deviation (a query that scores every sampled document alike).
MIN_STD = 1e-3
#: The logistic curve over z, fitted by bench/bench_relevance_calibration.py on XQuAD (en, de, zh -> en), MS MARCO and
#: DBpedia with multilingual-e5-small (docs/relevance.md).
SLOPE = 0.90
CENTRE = 3.71


def background_ids(ids: Sequence, n: int = BACKGROUND_DOCS, seed: int = 0) -> list:
    """A seeded sample of ``n`` of ``ids`` (the index's live ids, in position order), in the same order."""
    ids = list(ids)
    if len(ids) <= n:
        return ids
    keep = np.sort(np.random.default_rng(seed).choice(len(ids), n, replace=False))
    return [ids[i] for i in keep.tolist()]


def background_moments(per_token: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (at least :data:`MIN_STD`) of a query's background per-token scores."""
    per_token = np.asarray(per_token, dtype=np.float64)
    per_token = per_token[np.isfinite(per_token)]
    return float(per_token.mean()), max(float(per_token.std()), MIN_STD)


def logistic(z, slope: float = SLOPE, centre: float = CENTRE) -> np.ndarray:
    """``1 / (1 + exp(-slope * (z - centre)))``, without overflow."""
    t = np.clip(slope * (np.asarray(z, dtype=np.float64) - centre), -500.0, 500.0)
    return 1.0 / (1.0 + np.exp(-t))


def relevance(scores, n_query_tokens: int, background: np.ndarray | None, slope: float = SLOPE,
              centre: float = CENTRE) -> np.ndarray:
    """Relevance in [0, 1] of MaxSim ``scores`` of one query of ``n_query_tokens`` tokens, given the query's MaxSim
    ``background`` against the background sample (None or fewer than :data:`MIN_BACKGROUND`: no background)."""
    if n_query_tokens < 1:
        raise ValueError(f"n_query_tokens must be at least 1, got {n_query_tokens}")
    m = np.asarray(scores, dtype=np.float64) / n_query_tokens
    if background is None or np.isfinite(background).sum() < MIN_BACKGROUND:
        return np.clip(m, 0.0, 1.0)
    mu, sd = background_moments(np.asarray(background, dtype=np.float64) / n_query_tokens)
    return logistic((m - mu) / sd, slope, centre)


def fit_logistic(z: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, iters: int = 50) -> tuple[float, float]:
    """Weighted logistic regression of labels ``y`` on ``z`` (Newton's method): (slope, centre) with
    P(y | z) = logistic(z, slope, centre)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(z) if w is None else np.asarray(w, dtype=np.float64)
    x = np.stack([np.ones_like(z), z], axis=1)
    beta = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        grad = x.T @ (w * (y - p))
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    slope = float(beta[1])
    return slope, float(-beta[0] / slope)

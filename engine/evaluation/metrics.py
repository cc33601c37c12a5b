"""Retrieval metrics through ``ir-measures`` (trec_eval semantics: linear gains for nDCG, grade > 0 relevant),
plus the overlap recall of an approximate search against exact MaxSim.

Runs are passed as ranked id lists; scores handed to trec_eval are derived from the rank, so ties in the
engine's scores never reorder a ranking."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from gingham.common.errors import require

DEFAULT_METRICS = ("nDCG@10", "RR@10", "R@10", "R@100", "AP@100")


def ranked_lists(results, query_ids: Sequence[str]) -> dict[str, list[str]]:
    """{query id: [doc id, ...] best first} from :class:`gingham.SearchResults` (gaps dropped)."""
    out = {}
    for i, qid in enumerate(query_ids):
        keep = results.positions[i] >= 0
        out[str(qid)] = [str(d) for d in results.ids[i][keep].tolist()]
    return out


def evaluate(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Sequence[str]],
             metrics: Sequence[str] = DEFAULT_METRICS, *, per_query: bool = False) -> dict:
    """Mean of each metric over every query of ``qrels`` (a query missing from ``run`` scores 0).

    ``metrics`` are ir-measures names (``nDCG@10``, ``RR@10``, ``R@100``, ``AP``, ``AP@100``, ``P@5`` ...).
    Returns {metric: mean}, and with ``per_query`` also {"per_query": {metric: {qid: value}}}.
    """
    irm = require("ir_measures", "bench")
    try:
        measures = [irm.parse_measure(m) for m in metrics]
    except (ValueError, NameError, SyntaxError, TypeError) as exc:
        raise ValueError(f"unknown metric in {list(metrics)} ({exc}); use ir-measures names such as "
                         f"{list(DEFAULT_METRICS)}") from None
    qrels_rows = [irm.Qrel(str(q), str(d), int(g)) for q, docs in qrels.items() for d, g in docs.items()]
    run_rows = [irm.ScoredDoc(str(q), str(d), float(len(docs) - r))
                for q, docs in run.items() if str(q) in qrels for r, d in enumerate(docs)]
    values: dict[str, dict[str, float]] = {str(m): {} for m in measures}
    if run_rows:
        for m in irm.iter_calc(measures, qrels_rows, run_rows):
            values[str(m.measure)][m.query_id] = float(m.value)
    qids = [str(q) for q in qrels]
    out: dict = {}
    for name, m in zip(metrics, measures):
        per = values[str(m)]
        out[name] = float(np.mean([per.get(q, 0.0) for q in qids])) if qids else float("nan")
    if per_query:
        out["per_query"] = {name: {q: values[str(m)].get(q, 0.0) for q in qids} for name, m in zip(metrics, measures)}
    return out


def overlap_recall(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / (exact's k), positions as (n_queries, >=k) arrays.

    The recall of a compressed / pruned search against exhaustive exact MaxSim ("cost of compression")."""
    approx, exact = np.asarray(approx), np.asarray(exact)
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(f"approx has {approx.shape[0]} queries, exact has {exact.shape[0]}; they must match")
    if k < 1 or k > exact.shape[1]:
        raise ValueError(f"k must be within 1..{exact.shape[1]} (the exact run's depth), got {k}")
    vals = []
    for a, e in zip(approx[:, :k], exact[:, :k]):
        truth = set(e[e >= 0].tolist())
        if truth:
            vals.append(len(truth & set(a[a >= 0].tolist())) / len(truth))
    return float(np.mean(vals)) if vals else float("nan")

"""Where a query's time goes: PLAID's stages timed one by one on the hard corpus, at a few settings.

Runs the same steps as ``gingham.search.plaid_search`` (centroid scores, centroid ranking, candidates, pruned and
full centroid interaction, exact MaxSim over decompressed candidates), on ``--threads`` threads per query as
``Index.search`` runs a query searched alone, and prints the median milliseconds of each stage, the candidate
counts, and the whole call through ``Index.search`` (Python overhead included).

    python bench/bench_profile_search.py --n-docs 10000 --n-queries 100 --threads 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import gingham
from gingham.kernels.scoring import ivf_candidates, topk
from gingham.search.centroids import NO_SLOT, score_and_rank
from gingham.search.plaid import exact_scores_for, interaction_scores, probe_rounds
from gingham.evaluation.synthetic import make_hard_corpus, make_hard_queries

SETTINGS = [
    {"n_ivf_probe": 1, "n_full_scores": 256, "centroid_score_threshold": 0.5},
    {"n_ivf_probe": 2, "n_full_scores": 1024, "centroid_score_threshold": 0.45},
    {"n_ivf_probe": 4, "n_full_scores": 4096, "centroid_score_threshold": 0.4},
]


def stages(ix, q, cfg, n_threads: int = 1) -> dict:
    """The steps of ``plaid_search`` (one segment, every centroid scored), each timed; ``n_threads`` as
    ``Index.search`` gives a query searched alone."""
    t = {}
    t0 = time.perf_counter()
    cscores, ranked, best = score_and_rank(ix.centroids, q, probe_rounds(cfg), n_threads)
    t["centroid scores + ranking"] = time.perf_counter() - t0
    n_docs = len(ix.doc_offsets) - 1
    t0 = time.perf_counter()
    cands = ivf_candidates(ranked, ix.ivf_docs, ix.ivf_offsets, np.zeros(0, np.uint8), n_docs, cfg.n_ivf_probe,
                           min(cfg.min_candidates, n_docs))
    t["candidates"] = time.perf_counter() - t0
    t["n_candidates"] = len(cands)
    t0 = time.perf_counter()
    if len(cands) > cfg.n_full_scores:
        keep = best >= cfg.centroid_score_threshold
        approx = interaction_scores(ix, cands, NO_SLOT, cscores, keep, True, n_threads)
        cands = np.sort(cands[topk(approx, cfg.n_full_scores)])
    t["pruned interaction"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if len(cands) > cfg.n_exact:
        approx = interaction_scores(ix, cands, NO_SLOT, cscores, np.zeros(0, np.bool_), False, n_threads)
        cands = np.sort(cands[topk(approx, cfg.n_exact)])
    t["full interaction"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact_scores_for(ix, q, cands, n_threads)
    t["exact maxsim"] = time.perf_counter() - t0
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-docs", type=int, default=10_000)
    ap.add_argument("--n-queries", type=int, default=100)
    ap.add_argument("--index", type=Path, default=None, help="reuse (or create) the index here")
    ap.add_argument("--threads", type=int, default=2, help="threads per query (Index.search's n_threads)")
    args = ap.parse_args()
    corpus = make_hard_corpus(args.n_docs, seed=0)
    queries, _ = make_hard_queries(corpus, args.n_queries, seed=1)
    tmp = tempfile.TemporaryDirectory()
    path = args.index or Path(tmp.name) / "ix"
    if (path / "manifest.json").exists():
        index = gingham.Index.open(path)
    else:
        index = gingham.Index.create(path, corpus.tokens, lengths=corpus.lengths, calibrate=False,
                                     kmeans="two-level")
    ix = index._snap.segments[0].arrays
    print(f"hard corpus {corpus.n_docs} docs, {len(corpus.tokens)} tokens, {index.codec.n_centroids} centroids; "
          f"load {os.getloadavg()[0]:.2f}")
    for s in SETTINGS:
        cfg = index._config(10, s, index.n_docs)
        for q in queries[:3]:
            stages(ix, q, cfg, args.threads)  # warm
        rows = [stages(ix, q, cfg, args.threads) for q in queries]
        t0 = time.perf_counter()
        for q in queries:
            index.search(q, top_k=10, n_threads=args.threads, **s)
        whole = (time.perf_counter() - t0) / len(queries) * 1000
        names = [k for k in rows[0] if k != "n_candidates"]
        med = {k: float(np.median([r[k] for r in rows])) * 1000 for k in names}
        print(f"\nsettings {s}: Index.search {whole:.2f} ms/query (mean); candidates median "
              f"{int(np.median([r['n_candidates'] for r in rows]))}")
        for k in names:
            print(f"  {k:20s} {med[k]:8.3f} ms  ({med[k] / sum(med.values()):.0%})")


if __name__ == "__main__":
    main()

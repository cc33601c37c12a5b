"""Centroid scoring through the coarse level vs every centroid: recall@10 vs exact MaxSim, search p50, scoring p50.

    python bench/bench_coarse_scoring.py --tokens 4000000 --n-centroids 65536 --index /tmp/coarse-4M --build-only
    python bench/bench_coarse_scoring.py --tokens 4000000 --n-centroids 65536 --index /tmp/coarse-4M \\
        --probes 0,1,2,4,8,16 --out bench/out/coarse-scoring          # alone on the machine

The corpus is bench_streaming's seeded synthetic stream; the index is a streaming build (two-level k-means, so it
has a coarse level) kept at ``--index`` and reused. For each ``n_coarse_probe`` (0 = every centroid, PLAID's way)
it reports, over the same queries with the index's calibrated defaults otherwise: recall@10 against exact MaxSim
over the float vectors, search p50/p95, and the p50 of the centroid scoring step alone (``CentroidScorer``), with
the centroids it scored exactly. Writes ``coarse-scoring.json`` and ``coarse-scoring.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gingham  # noqa: E402
from bench_streaming import SyntheticStream, exact_topk, make_queries  # noqa: E402
from gingham.search import probe_rounds  # noqa: E402
from gingham.search.centroids import scorer_for  # noqa: E402
from gingham.build.streaming import build  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=4_000_000)
    ap.add_argument("--n-centroids", type=int, default=65_536)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--queries", type=int, default=128)
    ap.add_argument("--probes", default="0,1,2,4,8,16")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--scoring-at", type=int, default=262_144,
                    help="also time the scoring step alone on a codebook of this many centroids (corpus tokens as "
                         "centroids, sqrt(k) coarse ones by k-means); 0 skips it")
    ap.add_argument("--out", type=Path, default=Path("bench/out/coarse-scoring"))
    args = ap.parse_args()
    from gingham.kernels import warmup

    warmup()
    src = SyntheticStream(args.tokens // 100)
    if not (args.index / "manifest.json").exists():
        t0 = time.perf_counter()
        build(args.index, src, memory_budget_mb=2048, n_centroids=args.n_centroids, show_progress=True)
        print(f"built {src.n_tokens:,} tokens in {time.perf_counter() - t0:.0f}s", flush=True)
    if args.build_only:
        return
    index = gingham.Index.open(args.index)
    snap = index._snap
    assert snap.codec.coarse is not None, "the index has no coarse level (train it two-level)"
    queries, _ = make_queries(src, args.queries)
    truth = exact_topk(src, queries)
    load_start = os.getloadavg()
    rows = []
    for probe in [int(p) for p in args.probes.split(",")]:
        cfg = index.search_config(10, n_coarse_probe=probe)
        rounds = probe_rounds(cfg)
        for q in queries[:8]:  # warm: caches, groups, kernels
            index.search(q, 10, n_coarse_probe=probe)
        lat, score_lat, got, n_exact = [], [], [], []
        for q in queries:
            t = time.perf_counter()
            cs = scorer_for(snap)(q, rounds, probe)
            score_lat.append(time.perf_counter() - t)
            n_exact.append(cs.n_exact)
            t = time.perf_counter()
            got.append(index.search(q, 10, n_coarse_probe=probe).positions[0])
            lat.append(time.perf_counter() - t)
        recall = float(np.mean([len(np.intersect1d(g, t)) / 10 for g, t in zip(got, truth)]))
        rows.append({"n_coarse_probe": probe, "recall_at_10": round(recall, 4),
                     "search_p50_ms": round(1000 * float(np.median(lat)), 2),
                     "search_p95_ms": round(1000 * float(np.percentile(lat, 95)), 2),
                     "scoring_p50_ms": round(1000 * float(np.median(score_lat)), 2),
                     "centroids_scored_exactly": round(float(np.mean(n_exact)))})
        print(json.dumps(rows[-1]), flush=True)
    scoring_at = scoring_only(src, queries, args.scoring_at, [int(p) for p in args.probes.split(",")]) \
        if args.scoring_at else []
    report = {"scoring_only": scoring_at, "tokens": src.n_tokens, "docs": src.n_docs,
              "n_centroids": snap.codec.n_centroids,
              "n_coarse": len(snap.codec.coarse), "queries": len(queries),
              "defaults": index.search_config(10).to_dict(), "load_average_start": load_start,
              "load_average_end": os.getloadavg(), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "coarse-scoring.json").write_text(json.dumps(report, indent=2))
    lines = [f"{src.n_tokens:,} tokens, {src.n_docs:,} docs, {report['n_centroids']:,} centroids in "
             f"{report['n_coarse']} coarse groups, {len(queries)} queries of 32 tokens, top 10; load "
             f"{load_start[0]:.2f} -> {report['load_average_end'][0]:.2f}", "",
             "| n_coarse_probe | centroids scored exactly | scoring p50 ms | search p50 ms | p95 ms | recall@10 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n_coarse_probe'] or 'all (0)'} | {r['centroids_scored_exactly']:,} | "
                     f"{r['scoring_p50_ms']} | {r['search_p50_ms']} | {r['search_p95_ms']} | {r['recall_at_10']} |")
    if scoring_at:
        lines += ["", f"Scoring step alone at {args.scoring_at:,} centroids ({scoring_at[0]['n_coarse']} coarse):", "",
                  "| n_coarse_probe | centroids scored exactly | scoring p50 ms |", "|---|---|---|"]
        lines += [f"| {r['n_coarse_probe'] or 'all (0)'} | {r['centroids_scored_exactly']:,} | {r['scoring_p50_ms']} |"
                  for r in scoring_at]
    (args.out / "coarse-scoring.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def scoring_only(src, queries, k: int, probes) -> list[dict]:
    """p50 of the scoring step on a codebook of ``k`` centroids drawn from the corpus's own tokens."""
    import faiss

    from gingham.search import centroids as sc

    flat, _ = src.block(0)
    b = 1
    while len(flat) < k:
        more, _ = src.block(b)
        flat, b = np.concatenate([flat, more]), b + 1
    cents = np.ascontiguousarray(flat[:k])
    n_coarse = int(round(np.sqrt(k)))
    km = faiss.Kmeans(cents.shape[1], n_coarse, niter=10, seed=0, spherical=True)
    km.train(cents)
    scorer = sc.CentroidScorer(cents, km.centroids)
    rows = []
    for probe in probes:
        for q in queries[:4]:
            scorer(q, 64, probe)
        lat, n_exact = [], []
        for q in queries:
            t = time.perf_counter()
            cs = scorer(q, 64, probe)
            lat.append(time.perf_counter() - t)
            n_exact.append(cs.n_exact)
        rows.append({"n_centroids": k, "n_coarse": n_coarse, "n_coarse_probe": probe,
                     "centroids_scored_exactly": round(float(np.mean(n_exact))),
                     "scoring_p50_ms": round(1000 * float(np.median(lat)), 2)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()

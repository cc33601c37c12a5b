"""Codebook training and assignment variants: build time against what they cost in recall, on the hard corpus.

For each variant (flat faiss k-means with exact assignment — the old default —, two-level k-means with 0 or 1
global refinement steps, and coarse approximate assignment at a few nprobe), builds the same corpus and reports
build seconds, the held-out reconstruction error, and recall@10 against exact MaxSim over the uncompressed vectors
for exhaustive search over the compressed index (the codec's ceiling) and for default search.

    python bench/bench_kmeans.py --n-docs 10000 --n-queries 200
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


import gingham
from gingham.search.calibration import recall_at_k
from gingham.evaluation.synthetic import make_hard_corpus, make_hard_queries

VARIANTS = {
    "flat k-means, exact assign": {"kmeans": "flat"},
    "two-level, no refinement, exact assign": {"kmeans": "two-level", "kmeans_refine": 0},
    "two-level + 1 refinement, exact assign": {"kmeans": "two-level", "kmeans_refine": 1},
    "two-level + 1 refinement, assign nprobe 8": {"kmeans": "two-level", "kmeans_refine": 1, "assign_nprobe": 8},
    "two-level + 1 refinement, assign nprobe 4": {"kmeans": "two-level", "kmeans_refine": 1, "assign_nprobe": 4},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-docs", type=int, default=10_000)
    ap.add_argument("--n-queries", type=int, default=200)
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--variants", default=None, help="comma-separated subset of the variant names' indexes (0..)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    corpus = make_hard_corpus(args.n_docs, seed=0)
    queries, _ = make_hard_queries(corpus, args.n_queries, seed=1)
    t0 = time.perf_counter()
    exact = gingham.exact_search(queries, corpus.tokens, 10, lengths=corpus.lengths).positions
    print(f"hard corpus: {corpus.n_docs} docs, {len(corpus.tokens)} tokens; exact MaxSim {time.perf_counter() - t0:.0f}s;"
          f" load {os.getloadavg()[0]:.2f}", flush=True)
    names = list(VARIANTS)
    if args.variants:
        names = [names[int(i)] for i in args.variants.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            ix = gingham.Index.create(Path(tmp) / "ix", corpus.tokens, lengths=corpus.lengths, nbits=args.nbits,
                                      calibrate=False, overwrite=True, **VARIANTS[name])
            build = time.perf_counter() - t0
            exh = ix.search(queries, top_k=10, exhaustive=True).positions
            dflt = ix.search(queries, top_k=10).positions
            row = {"variant": name, "build_s": round(build, 1), "codec_mse": ix.manifest["codec_mse"],
                   "n_centroids": ix.codec.n_centroids,
                   "exhaustive_recall@10": round(float(recall_at_k(exh, exact, 10).mean()), 4),
                   "default_recall@10": round(float(recall_at_k(dflt, exact, 10).mean()), 4),
                   "load_before": round(load, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| variant | build s | held-out MSE | exhaustive recall@10 vs exact | default search recall@10 | load |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['build_s']} | {r['codec_mse']:.5f} | {r['exhaustive_recall@10']:.4f} | "
              f"{r['default_recall@10']:.4f} | {r['load_before']} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""Core-engine benchmark: build + search a seeded synthetic corpus, side by side with exact brute-force MaxSim.

    python bench/bench_core.py                      # 20,000 documents (~2.4M tokens), nbits 2 and 4
    python bench/bench_core.py --n-docs 2000 --queries 50   # a quick look

Prints build time, bytes per token, single-query latency p50/p95/p99 (on every thread, and p50 on one), batch
throughput and recall@10 against
exact MaxSim over the original float vectors, with ratios against the brute-force baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import gingham
from gingham.kernels import warmup
from gingham.evaluation.synthetic import make_corpus, make_queries


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.array(samples_s) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def recall_at(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b)]))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-docs", type=int, default=20_000)
    ap.add_argument("--mean-length", type=int, default=120)
    ap.add_argument("--queries", type=int, default=200, help="queries for recall, latency and throughput")
    ap.add_argument("--exact-latency-queries", type=int, default=30, help="single queries timed for brute force")
    ap.add_argument("--nbits", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write results JSON here")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build indexes (default: a temp dir)")
    args = ap.parse_args()

    import numba

    warmup()
    t = time.perf_counter()
    corpus = make_corpus(args.n_docs, mean_length=args.mean_length, seed=args.seed)
    queries, targets = make_queries(corpus, args.queries, seed=args.seed + 1)
    n_tokens = len(corpus.tokens)
    print(f"corpus: {args.n_docs} docs, {n_tokens} tokens, dim {corpus.tokens.shape[1]} "
          f"(generated in {time.perf_counter() - t:.1f}s); {args.queries} queries; "
          f"{numba.get_num_threads()} threads; {platform.processor() or platform.machine()}")

    # exact brute-force MaxSim over the original vectors: ground truth and the baseline
    t = time.perf_counter()
    exact = gingham.exact_search(queries, corpus.tokens, top_k=10, lengths=corpus.lengths)
    exact_batch_s = time.perf_counter() - t
    exact_single = []
    for q in queries[: args.exact_latency_queries]:
        t = time.perf_counter()
        gingham.exact_search(q, corpus.tokens, top_k=10, lengths=corpus.lengths)
        exact_single.append(time.perf_counter() - t)
    results = {
        "corpus": {"n_docs": args.n_docs, "n_tokens": n_tokens, "dim": int(corpus.tokens.shape[1]),
                   "queries": args.queries, "seed": args.seed},
        "machine": {"threads": numba.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
                    "gingham": gingham.__version__},
        "exact": {**percentiles(exact_single), "batch_qps": args.queries / exact_batch_s,
                  "bytes_per_token": 4 * corpus.tokens.shape[1], "recall@10": 1.0},
        "gingham": {},
    }

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gingham-bench-"))
    try:
        for nbits in args.nbits:
            path = workdir / f"ix-nbits{nbits}"
            t = time.perf_counter()
            ix = gingham.Index.create(path, corpus.tokens, lengths=corpus.lengths, nbits=nbits, overwrite=True,
                                      seed=args.seed)
            build_s = time.perf_counter() - t
            info = ix.info()
            ix.search(queries[:5], top_k=10)  # warm
            # one query at a time, as an application asks: on every thread (the query's candidates split over
            # them), then on one (``n_threads=1``)
            single, one_thread = [], []
            positions = []
            for q in queries:
                t = time.perf_counter()
                r = ix.search(q, top_k=10)
                single.append(time.perf_counter() - t)
                positions.append(r.positions[0])
            for q in queries:
                t = time.perf_counter()
                ix.search(q, top_k=10, n_threads=1)
                one_thread.append(time.perf_counter() - t)
            t = time.perf_counter()
            batch = ix.search(queries, top_k=10)
            batch_s = time.perf_counter() - t
            assert np.array_equal(np.stack(positions), batch.positions)
            # exhaustive MaxSim over every stored (decompressed) document: the codec's own ceiling, so the
            # loss splits into compression (exact vs exhaustive) and pruning (exhaustive vs default search)
            full = ix.search(queries, top_k=10, exhaustive=True)
            results["gingham"][f"nbits={nbits}"] = {
                "build_s": build_s, "build_tokens_per_s": n_tokens / build_s,
                "n_centroids": info["n_centroids"],
                "bytes_per_token_codes_residuals": info["bytes_per_token_compressed"],
                "bytes_per_token_on_disk": dir_bytes(path) / n_tokens,
                **percentiles(single), "p50_ms_one_thread": percentiles(one_thread)["p50_ms"],
                "batch_qps": args.queries / batch_s,
                "recall@10": recall_at(exact.positions, batch.positions),
                "recall@10_exhaustive": recall_at(exact.positions, full.positions),
                "recall@10_default_vs_exhaustive": recall_at(full.positions, batch.positions),
                "target@1": float(np.mean(batch.positions[:, 0] == targets)),
            }
            shutil.rmtree(path, ignore_errors=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    ex = results["exact"]
    print()
    print("| engine | build s | B/token (codes+res) | B/token on disk | p50 ms | p95 ms | p99 ms | p50 ms, 1 thread | "
          "batch q/s | recall@10 vs exact | exhaustive recall@10 vs exact | p50 vs exact |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| exact MaxSim (brute force, fp32) | – | {ex['bytes_per_token']} | {ex['bytes_per_token']} | "
          f"{ex['p50_ms']:.1f} | {ex['p95_ms']:.1f} | {ex['p99_ms']:.1f} | – | {ex['batch_qps']:.1f} | 1.000 | 1.000 | "
          "1× |")
    for name, g in results["gingham"].items():
        print(f"| gingham {name} ({g['n_centroids']} centroids) | {g['build_s']:.1f} | "
              f"{g['bytes_per_token_codes_residuals']:.2f} | {g['bytes_per_token_on_disk']:.2f} | {g['p50_ms']:.2f} | "
              f"{g['p95_ms']:.2f} | {g['p99_ms']:.2f} | {g['p50_ms_one_thread']:.2f} | {g['batch_qps']:.1f} | "
              f"{g['recall@10']:.3f} | "
              f"{g['recall@10_exhaustive']:.3f} | 1/{ex['p50_ms'] / g['p50_ms']:.0f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(f"\nresults written to {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

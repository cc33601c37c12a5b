"""The exact stage per candidate: scoring from packed residuals against decompress-then-score, at nbits 1, 2 and 4
in one run (issue 30, item 2).

For each nbits a codec is trained on the hard synthetic corpus (close neighbours, Zipf topics, stop words; unit
tokens of dim 128 by default, ~120 tokens a document) and the corpus compressed with it. Then, for each candidate
count, every query (32 tokens) scores the same random candidates with

- ``decompress``: gingham.kernels.maxsim_decompress (the engine's exact stage until now),
- ``packed``: gingham.kernels.maxsim_packed (float32 table, centroid term from the query's centroid scores),
- ``packed-int8``: gingham.kernels.maxsim_packed_int8 (int8 table),
- ``packed+norms`` / ``int8+norms``: the same with each token's inverse norm given (bench/unshipped_kernels.py's
  token_inv_norms, computed before timing), as if the index stored one per token (it does not: without them each
  token is decoded for its norm, the larger share of decompress-then-score's own time),
- ``lut_maxsim``: the first table kernel (no unit-length rescale: not an exact stage for these indexes; timed for
  the record of why it lost),

one thread each, in rounds that alternate the scorers; the median over queries of the fastest round is kept.
The per-query table (and its int8 quantisation) is timed apart and also reported amortised over the candidates.
Printed: microseconds per candidate document, each scorer's ratio to decompress-then-score at the same nbits and
at nbits 2 (the issue's criterion: nbits-1 packed >= 3x faster than nbits-2 decompress), what the engine's
calibration (gingham.search.scorer) picks on this CPU, and agreement: the largest score difference from
decompress-then-score, and recall@10 within the candidates against exact MaxSim over the original float tokens.
lscpu's model name and the load average (before and after) are recorded with the figures.

Quiet run (alone on the machine; a few minutes on 2 cores, ~3 GB of memory):

    python bench/bench_packed_scoring.py --out docs/benchmarks/packed-scoring/results.json

Check that it runs (seconds; the figures mean nothing):

    python bench/bench_packed_scoring.py --tiny
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import loadavg, lscpu  # noqa: E402
from unshipped_kernels import lut_maxsim, query_lut, token_inv_norms  # noqa: E402

from gingham.codec.kmeans import train_centroids  # noqa: E402
from gingham.codec.residual import ResidualCodec  # noqa: E402
from gingham.kernels import (  # noqa: E402
    dot_rows,
    maxsim_decompress,
    maxsim_packed,
    maxsim_packed_int8,
    packed_query_table,
    quantize_table,
    topk,
    warmup,
)
from gingham.search import scorer as scorer_mod  # noqa: E402
from gingham.evaluation.synthetic import make_hard_corpus, make_hard_queries  # noqa: E402

SCORERS = ("decompress", "packed", "packed-int8", "packed+norms", "int8+norms", "lut_maxsim")


def centroids_for(corpus, n_centroids: int, seed: int, sample: int) -> np.ndarray:
    """Spherical k-means over a sample of the corpus's tokens (shared by every nbits)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(corpus.tokens), min(sample, len(corpus.tokens)), replace=False)
    return train_centroids(corpus.tokens[np.sort(pick)], n_centroids, 4, seed)


def build(corpus, centroids, nbits: int, seed: int):
    """A codec fitted on held-out tokens (as a build does), and every token compressed with it."""
    rng = np.random.default_rng(seed + 1)
    tokens = corpus.tokens
    held = tokens[np.sort(rng.choice(len(tokens), min(65_536, len(tokens)), replace=False))]
    codec = ResidualCodec.fit(centroids, held, nbits, normalize=True, seed=seed)
    codes, packed = [], []
    for lo in range(0, len(tokens), 262_144):
        c, p = codec.compress(tokens[lo:lo + 262_144])
        codes.append(c)
        packed.append(p)
    return codec, np.concatenate(codes), np.concatenate(packed)


def time_once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_nbits(corpus, centroids, queries, nbits, counts, rounds, args) -> dict:
    t0 = time.perf_counter()
    codec, codes, packed = build(corpus, centroids, nbits, args.seed)
    build_s = time.perf_counter() - t0
    offsets = corpus.offsets
    fine, scales, lut = codec.fine, codec.scales, codec.lut()
    rng = np.random.default_rng(args.seed)  # the same candidates at every nbits
    n_docs = len(offsets) - 1
    out = {"nbits": nbits, "residual_quantizer": "product" if codec.codewords is not None else "buckets",
           "bytes_per_token_residual": codec.bytes_per_token, "build_s": round(build_s, 1), "counts": {}}
    n_q = len(queries[0])
    norms = token_inv_norms(codes, packed, fine, scales, lut)
    nn = scorer_mod.NO_NORMS
    out["engine_choice"] = {}
    costs = scorer_mod.measure(nbits, codec.dim, n_q, codes.dtype)
    for n in counts:
        n_cand_tokens = None
        per_query = {name: [] for name in SCORERS}
        table_s, table8_s = [], []
        max_diff = {name: 0.0 for name in ("packed", "packed-int8", "packed+norms")}
        recall = {name: [] for name in ("decompress", "packed", "packed-int8")}
        for q in queries:
            q = np.ascontiguousarray(q, dtype=np.float32)
            docs = np.sort(rng.choice(n_docs, min(n, n_docs), replace=False)).astype(np.int64)
            n_cand_tokens = int((offsets[docs + 1] - offsets[docs]).sum())
            cscores = dot_rows(fine, q)  # the search already holds these (candidate generation)
            table = packed_query_table(lut, q)
            table8, tscales = quantize_table(table, packed.shape[1])
            qlut = query_lut(lut, q)
            fns = {
                "decompress": lambda: maxsim_decompress(docs, offsets, codes, packed, fine, scales, lut, True, q),
                "packed": lambda: maxsim_packed(docs, offsets, codes, packed, cscores, scorer_mod.NO_SLOT, fine,
                                                scales, lut, True, nn, table, n_q),
                "packed-int8": lambda: maxsim_packed_int8(docs, offsets, codes, packed, cscores, scorer_mod.NO_SLOT,
                                                          fine, scales, lut, True, nn, table8, tscales, n_q),
                "packed+norms": lambda: maxsim_packed(docs, offsets, codes, packed, cscores, scorer_mod.NO_SLOT,
                                                      fine, scales, lut, True, norms, table, n_q),
                "int8+norms": lambda: maxsim_packed_int8(docs, offsets, codes, packed, cscores, scorer_mod.NO_SLOT,
                                                         fine, scales, lut, True, norms, table8, tscales, n_q),
                "lut_maxsim": lambda: lut_maxsim(docs, offsets, codes, packed, cscores, scales, qlut),
            }
            best = {name: np.inf for name in fns}
            for _ in range(rounds):
                for name, fn in fns.items():
                    best[name] = min(best[name], time_once(fn))
            for name in fns:
                per_query[name].append(best[name])
            table_s.append(min(time_once(lambda: packed_query_table(lut, q)) for _ in range(rounds)))
            table8_s.append(min(time_once(lambda: quantize_table(table, packed.shape[1])) for _ in range(rounds)))
            got = {name: fns[name]() for name in ("decompress", "packed", "packed-int8", "packed+norms")}
            exact = np.array([float((q @ corpus.tokens[offsets[d]:offsets[d + 1]].T).max(axis=1).sum())
                              for d in docs], dtype=np.float32)
            want = set(topk(exact, 10).tolist())
            for name in recall:
                scores = got[name]
                recall[name].append(len(want & set(topk(scores, 10).tolist())) / min(10, len(docs)))
            for name in max_diff:
                max_diff[name] = max(max_diff[name], float(np.abs(got[name] - got["decompress"]).max()))
        med = {name: float(np.median(v)) for name, v in per_query.items()}
        us_per_doc = {name: 1e6 * v / n for name, v in med.items()}
        table_us = 1e6 * float(np.median(table_s))
        table8_us = 1e6 * float(np.median(table8_s))
        out["counts"][str(n)] = {
            "candidate_tokens_last_query": n_cand_tokens,
            "us_per_candidate": {k: round(v, 3) for k, v in us_per_doc.items()},
            "us_per_candidate_with_table": {
                **{k: round(us_per_doc[k] + table_us / n, 3) for k in ("packed", "packed+norms")},
                **{k: round(us_per_doc[k] + (table_us + table8_us) / n, 3) for k in ("packed-int8", "int8+norms")}},
            "table_us": round(table_us, 1), "table_int8_extra_us": round(table8_us, 1),
            "speedup_vs_decompress": {k: round(med["decompress"] / v, 2) for k, v in med.items()},
            "max_abs_diff_vs_decompress": max_diff,
            "recall10_vs_exact_in_candidates": {k: float(np.mean(v)) for k, v in recall.items()},
        }
        out["engine_choice"][str(n)] = scorer_mod.choose(costs, n_cand_tokens)
    out["calibration_costs_ns_per_token"] = {k: round(1e9 * v, 2) for k, v in costs.per_token.items()}
    out["calibration_table_us"] = {k: round(1e6 * v, 1) for k, v in costs.per_query.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-docs", type=int, default=12_000, help="corpus documents (hard corpus, ~120 tokens each)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--nbits", default="1,2,4")
    ap.add_argument("--counts", default="1000,10000", help="candidate documents per query")
    ap.add_argument("--n-queries", type=int, default=20)
    ap.add_argument("--query-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-centroids", type=int, default=8192)
    ap.add_argument("--kmeans-sample", type=int, default=262_144)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="a few seconds at toy sizes: checks that it runs")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.tiny:
        args.n_docs, args.counts, args.n_queries, args.rounds = 300, "50,200", 2, 1
        args.n_centroids, args.kmeans_sample = 64, 20_000
    nbits_list = [int(x) for x in args.nbits.split(",")]
    counts = [int(x) for x in args.counts.split(",")]
    record = {"command": " ".join(sys.argv), "lscpu": lscpu(), "loadavg_before": loadavg(),
              "n_docs": args.n_docs, "dim": args.dim, "query_tokens": args.query_tokens, "threads": 1}
    warmup()
    corpus = make_hard_corpus(args.n_docs, args.dim, seed=args.seed)
    queries, _ = make_hard_queries(corpus, args.n_queries, query_length=args.query_tokens, seed=args.seed + 1)
    record["n_tokens"] = int(corpus.offsets[-1])
    centroids = centroids_for(corpus, args.n_centroids, args.seed, args.kmeans_sample)
    record["results"] = [bench_nbits(corpus, centroids, queries, nb, counts, args.rounds, args) for nb in nbits_list]
    record["loadavg_after"] = loadavg()
    dec2 = {c: r["counts"][c]["us_per_candidate"]["decompress"] for r in record["results"] if r["nbits"] == 2
            for c in r["counts"]}
    print(f"CPU: {record['lscpu'].get('model_name')}  load before {record['loadavg_before']} after "
          f"{record['loadavg_after']}  corpus {args.n_docs} docs / {record['n_tokens']} tokens, dim {args.dim}, "
          f"{args.query_tokens} query tokens, 1 thread")
    print(f"{'nbits':>5} {'cands':>6} " + " ".join(f"{s:>12}" for s in SCORERS)
          + f" {'table us':>9} {'x dec':>22} {'x dec@2 (+norms)':>27} {'recall@10':>20} {'choice':>11}")
    for r in record["results"]:
        for c, row in r["counts"].items():
            us = row["us_per_candidate"]
            ratio = row["speedup_vs_decompress"]
            vs2 = {k: dec2[c] / us[k] for k in ("packed", "packed-int8", "packed+norms")} if c in dec2 else {}
            rec = row["recall10_vs_exact_in_candidates"]
            print(f"{r['nbits']:>5} {c:>6} " + " ".join(f"{us[s]:>12.3f}" for s in SCORERS)
                  + f" {row['table_us']:>9.1f} {ratio['packed']:>10.2f}/{ratio['packed-int8']:<10.2f}"
                  + (f" {vs2['packed']:>8.2f}/{vs2['packed-int8']:<8.2f}({vs2['packed+norms']:.2f})" if vs2
                     else f" {'-':>27}")
                  + f" {rec['decompress']:.3f}/{rec['packed']:.3f}/{rec['packed-int8']:.3f}"
                  + f" {r['engine_choice'][c]:>11}")
    print("columns: microseconds per candidate document (the per-query table apart); x dec: packed/packed-int8 "
          "speed-up over decompress at the same nbits; x dec@2: over decompress at nbits 2 (packed+norms in "
          "brackets); recall@10: "
          "decompress/packed/packed-int8 within the candidates against exact MaxSim on the float tokens")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

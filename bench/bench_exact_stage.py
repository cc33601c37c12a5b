"""The exact stage alone: decompress-then-score in one block against the blocked kernel, on cached real embeddings.

PLAID's last stage decompresses every surviving candidate and scores it exactly. The engine used to decompress all
of them into one array, multiply it by the query and reduce (``gather_decompress`` + a matrix product +
``segment_maxsim``); it now decodes and scores each token while it is in cache, in one kernel
(``gingham.search.plaid.exact_scores_for``, still named "blocked" below).
For each candidate count this times both over the same random candidates, checks they agree, and prints median
milliseconds per query; then the index's own search p50 at top_k 10 and 100 (its calibrated defaults) with each
exact stage in place.

    python bench/bench_exact_stage.py --corpus CACHE/msmarco-<hash> --queries CACHE/msmarco-queries-<hash> \
        --index /tmp/msmarco-ix [--nbits 2] [--counts 256,1024,4096] [--out results.json]

(stems as for bench/bench_calibrated_defaults.py). Run it alone on the machine: it measures time.
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
from bench_calibrated_defaults import load, load_query_sets  # noqa: E402
import gingham.search.plaid as plaid  # noqa: E402
from unshipped_kernels import gather_decompress, segment_maxsim  # noqa: E402


def one_block(ix, q, docs, n_threads=1):  # n_threads: plaid_search's signature; one block is one thread
    vecs, seg = gather_decompress(docs, ix.doc_offsets, ix.codes, ix.residuals, ix.fine, ix.scales, ix.lut,
                                  ix.normalize)
    return segment_maxsim(np.ascontiguousarray(vecs @ q.T), seg, np.array([0, len(q)], dtype=np.int64))[0]


blocked = plaid.exact_scores_for


def median_ms(fn, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--index", type=Path, required=True, help="built here unless it exists")
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--counts", default="256,1024,4096")
    ap.add_argument("--n-queries", type=int, default=30)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    flat, offsets = load(args.corpus)
    qs = next(iter(load_query_sets([args.queries]).values()))[:args.n_queries]
    if args.index.exists():
        ix = gingham.Index.open(args.index)
    else:
        ix = gingham.Index.create(args.index, flat, lengths=np.diff(offsets), nbits=args.nbits, show_progress=False)
    info = ix.info()
    seg = ix._snap.segments[0]
    arrays = seg.stored
    n_docs = len(arrays.doc_offsets) - 1
    rng = np.random.default_rng(0)
    print(f"{Path(args.corpus).name}: {n_docs} docs, {info['n_tokens']} tokens, dim {info['dim']}, nbits "
          f"{info['nbits']}, residuals {info['residual_quantizer']['kind']}; load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for count in [int(c) for c in args.counts.split(",")]:
        count = min(count, n_docs)
        t_one, t_blk = [], []
        for q in qs:
            q = np.ascontiguousarray(q, dtype=np.float32)
            docs = np.sort(rng.choice(n_docs, count, replace=False)).astype(np.int64)
            a, b = one_block(arrays, q, docs), blocked(arrays, q, docs)
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
            t_one.append(median_ms(lambda: one_block(arrays, q, docs), 3))
            t_blk.append(median_ms(lambda: blocked(arrays, q, docs), 3))
        row = {"candidates": count, "one_block_ms": round(float(np.median(t_one)), 2),
               "blocked_ms": round(float(np.median(t_blk)), 2), "load": round(os.getloadavg()[0], 2)}
        row["speedup"] = round(row["one_block_ms"] / row["blocked_ms"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    for top_k in (10, 100):
        for stage, fn in (("one block", one_block), ("blocked", blocked)):
            plaid.exact_scores_for = fn  # what plaid_search calls
            ix.search(qs[:3], top_k=top_k, show_progress=False)  # warm
            times = []
            for q in qs:
                t = time.perf_counter()
                ix.search([q], top_k=top_k, show_progress=False)
                times.append(time.perf_counter() - t)
            row = {"search_top_k": top_k, "exact_stage": stage, "p50_ms": round(1e3 * float(np.median(times)), 2),
                   "p95_ms": round(1e3 * float(np.percentile(times, 95)), 2), "load": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        plaid.exact_scores_for = blocked
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

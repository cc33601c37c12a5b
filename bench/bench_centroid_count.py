"""The codec's recall ceiling against the codebook size, on cached real embeddings.

PLAID sizes the codebook as 2^floor(log2(16 sqrt(tokens))): 2,048 centroids for XQuAD's 44k tokens. Residuals
shrink as centroids multiply, and so does what a 2-bit residual loses. For each codebook size and nbits this
builds an index and reports exhaustive recall@10 (every document scored exactly over its decompressed tokens, no
pruning) against exact MaxSim over the uncompressed vectors, and bytes per token on disk.

    python bench/bench_centroid_count.py --corpus CACHE/xquad-...-<hash> --queries CACHE/queries-en-...-<hash> \
        [--queries ...] --n-centroids 2048,4096,8192 --nbits 2,4 [--residuals product,buckets] [--out results.json]

``--n-centroids auto`` takes the build's default size; ``--residuals`` compares the product quantiser of residuals
with PLAID's per-dimension bucket grid on the same codebook.

(stems as for bench/bench_calibrated_defaults.py: ``NAME.npy`` flat float32 tokens plus ``NAME.offsets.npy``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gingham  # noqa: E402
from bench_calibrated_defaults import load, load_query_sets  # noqa: E402
from gingham.search.calibration import recall_at_k  # noqa: E402


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--queries", action="append", required=True)
    ap.add_argument("--n-centroids", default="2048,4096,8192")
    ap.add_argument("--nbits", default="2,4")
    ap.add_argument("--residuals", default="product",
                    help="comma-separated residual quantisers to compare: product, buckets (PLAID's grid)")
    ap.add_argument("--limit-queries", type=int, default=None, help="first N queries of each set")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    flat, offsets = load(args.corpus)
    lengths = np.diff(offsets)
    qsets = {name: qs[:args.limit_queries] for name, qs in load_query_sets(args.queries).items()}
    k = min(args.top_k, len(lengths))
    print(f"corpus {Path(args.corpus).name}: {len(lengths)} docs, {len(flat)} tokens, dim {flat.shape[1]}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    exact = {name: gingham.exact_search(qs, flat, k, lengths=lengths).positions for name, qs in qsets.items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nb in [int(x) for x in args.nbits.split(",")]:
            for n_c, kind in itertools.product([None if x == "auto" else int(x) for x in args.n_centroids.split(",")],
                                               args.residuals.split(",")):
                path = Path(tmp) / f"ix-{nb}-{n_c}-{kind}"
                t0 = time.perf_counter()
                ix = gingham.Index.create(path, flat, lengths=lengths, nbits=nb, n_centroids=n_c, calibrate=False,
                                          product_residuals=kind == "product", overwrite=True, show_progress=False)
                build_s = time.perf_counter() - t0
                row = {"nbits": nb, "n_centroids": ix.info()["n_centroids"], "residuals": kind,
                       "build_s": round(build_s, 1), "bytes_per_token": round(dir_bytes(path) / len(flat), 2),
                       "load": round(os.getloadavg()[0], 2)}
                for name, qs in qsets.items():
                    got = ix.search(qs, top_k=k, exhaustive=True, show_progress=False).positions
                    row[name] = round(float(recall_at_k(got, exact[name], k).mean()), 4)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""Codec ablation: what each part of the codec buys in recall@10 against exact MaxSim, search pruning left out.

    python bench/bench_codec.py                    # 20k docs, PLAID's default centroid count, 400 queries (~25 min)
    python bench/bench_codec.py --n-docs 5000 --queries 100

Every variant reconstructs every token (centroid or sub-centroid + scaled, bucketed residual, rescaled to unit
length as the engine does for unit tokens) and ranks all documents by exact MaxSim over the reconstructions,
against exact MaxSim over the original vectors. Variants: PLAID's codec (centroid + per-dimension buckets), with
per-centroid residual scales, with 4 sub-centroids per centroid (the spare bits of uint16 codes), and both (the
engine's default). Prints recall@10 with its standard error over queries, and the mean reconstruction error.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import gingham
from gingham.codec.assign import assign
from gingham.codec.kmeans import train_centroids
from gingham.codec.quantizers import fit_buckets, residual_scales, spare_code_bits, train_sub_centroids
from gingham.common.config import BuildConfig
from gingham.codec.training import SUB_KMEANS_NITERS, sample_positions
from gingham.kernels.codec import refine_codes
from gingham.evaluation.synthetic import make_corpus, make_queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-docs", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--nbits", type=int, nargs="+", default=[2, 4])
    args = ap.parse_args()

    corpus = make_corpus(args.n_docs, seed=0)
    queries, _ = make_queries(corpus, args.queries, seed=1)
    x = corpus.tokens
    n = len(x)
    exact = gingham.exact_search(queries, x, top_k=10, lengths=corpus.lengths).positions
    cfg = BuildConfig()
    k = cfg.resolve_n_centroids(n)
    n_kmeans = min(n, cfg.kmeans_sample or k * cfg.kmeans_points_per_centroid)
    km_pos, held_pos = sample_positions(n, n_kmeans, cfg.codec_sample, cfg.seed)  # the build's own split
    km = x[km_pos]
    t = time.perf_counter()
    centroids = train_centroids(km, k, cfg.kmeans_niters, cfg.seed)
    coarse = assign(x, centroids)
    bits = spare_code_bits(k)
    # as the build does: every token but the codec's held-out ones
    sub = train_sub_centroids(x, coarse, centroids, 1 << bits, SUB_KMEANS_NITERS, cfg.seed, exclude=held_pos)
    fine_codes = refine_codes(x, coarse, sub, 1 << bits)
    print(f"{args.n_docs} docs, {n} tokens, {k} centroids x {1 << bits} sub-centroids, {args.queries} queries; "
          f"codebooks in {time.perf_counter() - t:.0f}s", flush=True)

    def run(label: str, base: np.ndarray, codes: np.ndarray, nbits: int, scaled: bool) -> None:
        scales = residual_scales(x, codes, base) if scaled else np.ones(len(base), np.float32)
        held = x[held_pos]
        cut, w = fit_buckets((held - base[codes[held_pos]]) / scales[codes[held_pos], None], nbits, 12)
        recon = np.empty_like(x)
        dims = np.arange(x.shape[1])[None, :]
        for lo in range(0, n, 1 << 18):
            c = codes[lo:lo + (1 << 18)]
            r = (x[lo:lo + (1 << 18)] - base[c]) / scales[c, None]
            b = np.stack([np.searchsorted(cut[d], r[:, d], side="right") for d in range(x.shape[1])], 1)
            v = base[c] + w[dims, b] * scales[c, None]
            recon[lo:lo + (1 << 18)] = v / np.linalg.norm(v, axis=1, keepdims=True)
        got = gingham.exact_search(queries, recon, top_k=10, lengths=corpus.lengths).positions
        per = np.array([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(exact, got)])
        err = np.linalg.norm(recon - x, axis=1).mean()
        print(f"nbits {nbits} {label:<28} recall@10 {per.mean():.4f} (se {per.std() / np.sqrt(len(per)):.4f})  "
              f"mean error {err:.4f}", flush=True)

    for nbits in args.nbits:
        run("PLAID (centroids)", centroids, coarse, nbits, False)
        run("+ residual scales", centroids, coarse, nbits, True)
        run("+ sub-centroids", sub, fine_codes, nbits, False)
        run("+ both (engine default)", sub, fine_codes, nbits, True)


if __name__ == "__main__":
    main()

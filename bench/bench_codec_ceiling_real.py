"""The codec's ceiling on real token states: exhaustive recall@10 against exact MaxSim for codec variants.

Search settings are left out: every token is compressed and decompressed as an index would store it, every
document is scored by exact MaxSim over the reconstructions, and the top 10 are compared with exact MaxSim over
the original vectors. This is the most any search setting can keep. The variants change only the codebook
(centroid count, sub-centroids) or how the residual codewords are fitted.

Reads the embedding cache a ``gingham eval`` run leaves in ``OUT/embeddings`` (``<corpus>-<hash>.npy`` with its
``.offsets.npy``, and ``queries-<lang>-...`` files), e.g. after
``gingham eval ../shared/data/xquad-retrieval --mode x-en --top-k 10 --out OUT``:

    python bench/bench_codec_ceiling_real.py OUT/embeddings --corpus xquad-retrieval-corpus --languages en,de --nbits 2
    python bench/bench_codec_ceiling_real.py OUT/embeddings --corpus xquad-retrieval-corpus --variants default,k4,sub

Prints per variant: reconstruction error (mean squared error per token, over all tokens), and per language the
recall@10 with its standard error over the questions. The corpus must fit in memory as float32 (exact MaxSim is
one matrix product per question block).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from dataclasses import replace

import numpy as np

from gingham.common.config import BuildConfig
from gingham.codec.training import compress_all, train_codec

VARIANTS = {
    "default": lambda cfg, k: cfg,
    "sub": lambda cfg, k: replace(cfg, sub_centroids=True),
    "k2": lambda cfg, k: replace(cfg, n_centroids=2 * k),
    "k4": lambda cfg, k: replace(cfg, n_centroids=4 * k),
    "it10": lambda cfg, k: replace(cfg, kmeans_niters=10),
    "it20": lambda cfg, k: replace(cfg, kmeans_niters=20),
    "flat": lambda cfg, k: replace(cfg, kmeans="flat"),
    "flat-it20": lambda cfg, k: replace(cfg, kmeans="flat", kmeans_niters=20),
}


def load(folder: str, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    files = [f for f in sorted(glob.glob(os.path.join(folder, f"{prefix}*.npy"))) if not f.endswith(".offsets.npy")]
    if not files:
        raise SystemExit(f"no embeddings named {prefix}* in {folder}: run `gingham eval ... --out OUT` first")
    return np.load(files[0]), np.load(files[0].replace(".npy", ".offsets.npy"))


def maxsim_all(q_flat: np.ndarray, q_off: np.ndarray, docs: np.ndarray, d_off: np.ndarray, block: int = 256):
    """(n_queries, n_docs) exact MaxSim, a block of questions at a time."""
    n_q = len(q_off) - 1
    out = np.empty((n_q, len(d_off) - 1), dtype=np.float32)
    for lo in range(0, n_q, block):
        hi = min(n_q, lo + block)
        s = q_flat[q_off[lo]:q_off[hi]] @ docs.T
        m = np.maximum.reduceat(s, d_off[:-1], axis=1)  # (question tokens, docs): best token of each document
        out[lo:hi] = np.add.reduceat(m, q_off[lo:hi] - q_off[lo], axis=0)
    return out


def top10(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("embeddings", help="the embeddings folder of a `gingham eval` output")
    ap.add_argument("--corpus", required=True, help="file name prefix of the corpus, e.g. xquad-retrieval-corpus")
    ap.add_argument("--languages", default="en", help="comma-separated question sets (queries-<lang>-...)")
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--variants", default="default,sub,k2,k4", help=f"comma-separated: {', '.join(VARIANTS)}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    flat, d_off = load(args.embeddings, args.corpus)
    flat = np.ascontiguousarray(flat, dtype=np.float32)
    questions = {lang: load(args.embeddings, f"queries-{lang}-") for lang in args.languages.split(",")}
    print(f"{len(d_off) - 1} documents, {len(flat)} tokens, dim {flat.shape[1]}; "
          + ", ".join(f"{lang}: {len(o) - 1} questions" for lang, (_, o) in questions.items()), flush=True)
    truth = {lang: top10(maxsim_all(q, o, flat, d_off)) for lang, (q, o) in questions.items()}
    base = BuildConfig(nbits=args.nbits, seed=args.seed)
    k = base.resolve_n_centroids(len(flat))
    for name in args.variants.split(","):
        t0 = time.perf_counter()
        cfg = VARIANTS[name](base, k)
        codec, _, _ = train_codec(flat, cfg, False)
        codes, packed = compress_all(codec, flat, cfg.batch_size, False)
        recon = codec.decompress(codes, packed)
        row = {"variant": name, "nbits": args.nbits, "n_centroids": codec.n_centroids, "n_codes": codec.n_codes,
               "residuals": codec.fit_report.get("kind"),
               "mse": round(float(np.mean(np.sum((recon - flat) ** 2, axis=1))), 5)}
        for lang, (q, o) in questions.items():
            got = top10(maxsim_all(q, o, recon, d_off))
            hits = np.array([len(set(a) & set(b)) / 10 for a, b in zip(got, truth[lang])])
            row[lang] = f"{hits.mean():.4f} ± {hits.std(ddof=1) / np.sqrt(len(hits)):.4f}"
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()

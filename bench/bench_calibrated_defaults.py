"""Calibrated search defaults vs PLAID's fixed table, on cached real embeddings.

For a corpus and query sets encoded by ``gingham eval`` (its ``embeddings/`` cache: ``NAME.npy`` flat float32 tokens
plus ``NAME.offsets.npy``), builds one index per nbits and reports recall@k against exact MaxSim over the
uncompressed vectors, at default settings with and without build-time calibration, plus what calibration chose.

    python bench/bench_calibrated_defaults.py --corpus /tmp/ev/embeddings/xquad-retrieval-corpus-<hash> \
        --queries /tmp/ev/embeddings/queries-en-_en-<hash> [--queries ...] --top-k 10 --nbits 2,4
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import gingham
from gingham.search.calibration import recall_at_k


def load(stem: str) -> tuple[np.ndarray, np.ndarray]:
    flat = np.load(stem + ".npy", mmap_mode="r")
    offsets = np.load(stem + ".offsets.npy")
    return np.asarray(flat, dtype=np.float32), offsets.astype(np.int64)


def load_query_sets(stems: list[str]) -> dict[str, list[np.ndarray]]:
    """Each cached query set's queries (one (n_tokens, dim) array each), by the stem's file name."""
    out = {}
    for stem in stems:
        q, qo = load(stem)
        out[Path(stem).name] = [q[qo[i]:qo[i + 1]] for i in range(len(qo) - 1)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="cache stem of the corpus (without .npy)")
    ap.add_argument("--queries", action="append", required=True, help="cache stem of a query set (repeatable)")
    ap.add_argument("--top-k", type=int, action="append", help="top_k values (default 10 and 100)")
    ap.add_argument("--nbits", default="2,4")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = ap.parse_args()
    top_ks = args.top_k or [10, 100]
    flat, offsets = load(args.corpus)
    lengths = np.diff(offsets)
    qsets = load_query_sets(args.queries)
    print(f"corpus {Path(args.corpus).name}: {len(lengths)} docs, {len(flat)} tokens, dim {flat.shape[1]}; "
          f"load {os.getloadavg()[0]:.2f}")
    exact = {}
    for name, qs in qsets.items():
        exact[name] = gingham.exact_search(qs, flat, max(top_ks), lengths=lengths).positions
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nb in [int(x) for x in args.nbits.split(",")]:
            for calibrate in (False, True):
                t0 = time.perf_counter()
                ix = gingham.Index.create(Path(tmp) / f"ix{nb}{calibrate}", flat, lengths=lengths, nbits=nb,
                                          calibrate=calibrate, overwrite=True)
                build_s = time.perf_counter() - t0
                for k in top_ks:
                    for name, qs in qsets.items():
                        k_eff = min(k, ix.n_docs)
                        t0 = time.perf_counter()
                        res = ix.search(qs, top_k=k_eff)
                        ms = (time.perf_counter() - t0) * 1000 / len(qs)
                        r = float(recall_at_k(res.positions, exact[name], min(10, k_eff)).mean())
                        rk = float(recall_at_k(res.positions, exact[name], k_eff).mean())
                        cfg = ix._config(k_eff, {}, ix.n_docs)
                        rows.append({"nbits": nb, "calibrated": calibrate, "top_k": k, "queries": name,
                                     "recall@10_vs_exact": r, "recall@k_vs_exact": rk, "ms_per_query": ms,
                                     "build_s": build_s, "n_ivf_probe": cfg.n_ivf_probe,
                                     "n_full_scores": cfg.n_full_scores,
                                     "threshold": cfg.centroid_score_threshold})
                        print(f"nbits {nb} {'calibrated' if calibrate else 'PLAID table'} top_k {k} {name}: "
                              f"recall@10 vs exact {r:.4f}, recall@{k_eff} {rk:.4f}, {ms:.1f} ms/query (batch), "
                              f"probe {cfg.n_ivf_probe} ndocs {cfg.n_full_scores} "
                              f"threshold {cfg.centroid_score_threshold}; build {build_s:.1f}s", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

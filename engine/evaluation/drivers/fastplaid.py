"""Standalone driver run by ``gingham.evaluation.peers`` inside fast-plaid's own virtual environment.

Reads embeddings from .npy files (never imports gingham), builds a fast-plaid index, times its searches and
writes JSON. Usage: python fastplaid.py INPUT_DIR OUTPUT_JSON --config '{"nbits": 2, "top_k": 10, ...}'
INPUT_DIR holds docs.npy (flat float32 tokens), doc_lengths.npy, queries.npy, query_lengths.npy.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import time
from importlib import metadata

import numpy as np


def split(flat, lengths):
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(lengths))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--config", default="{}")
    args = ap.parse_args()
    cfg = json.loads(args.config)
    import torch
    from fast_plaid import search

    threads = cfg.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    top_k, nbits, warm = int(cfg.get("top_k", 10)), int(cfg.get("nbits", 4)), int(cfg.get("warm", 3))
    n_single = int(cfg.get("n_single", 50))
    docs = split(np.load(os.path.join(args.input, "docs.npy")), np.load(os.path.join(args.input, "doc_lengths.npy")))
    queries = split(np.load(os.path.join(args.input, "queries.npy")),
                    np.load(os.path.join(args.input, "query_lengths.npy")))
    docs = [torch.from_numpy(np.ascontiguousarray(d)) for d in docs]
    queries = [torch.from_numpy(np.ascontiguousarray(q)) for q in queries]
    index_dir = os.path.join(args.input, "fastplaid-index")
    shutil.rmtree(index_dir, ignore_errors=True)
    index = search.FastPlaid(index=index_dir, device="cpu")
    t0 = time.perf_counter()
    index.create(documents_embeddings=docs, nbits=nbits, **cfg.get("build", {}))
    build_s = time.perf_counter() - t0
    index_bytes = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(index_dir) for f in fs)
    n_tokens = int(sum(len(d) for d in docs))
    runs = []
    for settings in cfg.get("settings", [{}]):
        kw = dict(top_k=top_k, show_progress=False, **settings)
        for q in queries[:warm]:
            index.search(queries_embeddings=[q], **kw)
        single = []
        for q in queries[:n_single]:
            t = time.perf_counter()
            index.search(queries_embeddings=[q], **kw)
            single.append(time.perf_counter() - t)
        t = time.perf_counter()
        res = index.search(queries_embeddings=queries, **kw)
        batch_s = time.perf_counter() - t
        positions = []
        for hits in res:
            row = [int(d) for d, _ in hits][:top_k]
            positions.append(row + [-1] * (top_k - len(row)))
        runs.append({"settings": settings, "single_s": single, "batch_s": batch_s, "positions": positions})
    out = {"engine": "fast-plaid", "versions": {"fast-plaid": metadata.version("fast-plaid"), "torch": torch.__version__,
                                                "python": sys.version.split()[0]},
           "torch_threads": torch.get_num_threads(), "nbits": nbits, "build_s": build_s, "n_tokens": n_tokens,
           "index_bytes": index_bytes, "bytes_per_token_on_disk": index_bytes / max(1, n_tokens),
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "runs": runs}
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()

"""Standalone driver run by ``gingham.evaluation.peers`` inside fast-plaid's own virtual environment.

Reads embeddings from .npy files (never imports gingham), builds a fast-plaid index, times its searches and
writes JSON. Usage: python fastplaid.py INPUT_DIR OUTPUT_JSON --config '{"nbits": 2, "top_k": 10, ...}'
INPUT_DIR holds docs.npy (flat float32 tokens), doc_lengths.npy, queries.npy, query_lengths.npy.
"""

import os
import shutil
import sys
import time

from peer_protocol import dir_bytes, load_inputs, parse_args, report, timed_run, version


def main() -> None:
    inputs, output, cfg = parse_args()
    import torch
    from fast_plaid import search

    threads = cfg.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    top_k, nbits, warm = int(cfg.get("top_k", 10)), int(cfg.get("nbits", 4)), int(cfg.get("warm", 3))
    n_single = int(cfg.get("n_single", 50))
    docs, queries = load_inputs(inputs)
    docs = [torch.from_numpy(d) for d in docs]
    queries = [torch.from_numpy(q) for q in queries]
    index_dir = os.path.join(inputs, "fastplaid-index")
    shutil.rmtree(index_dir, ignore_errors=True)
    index = search.FastPlaid(index=index_dir, device="cpu")
    t0 = time.perf_counter()
    index.create(documents_embeddings=docs, nbits=nbits, **cfg.get("build", {}))
    build_s = time.perf_counter() - t0
    runs = []
    for settings in cfg.get("settings", [{}]):
        kw = dict(top_k=top_k, show_progress=False, **settings)

        def run(qs):
            return [[d for d, _ in hits] for hits in index.search(queries_embeddings=qs, **kw)]

        runs.append(timed_run(run, queries, settings, top_k, warm, n_single))
    report(output, engine="fast-plaid", versions={"fast-plaid": version("fast-plaid"), "torch": torch.__version__,
                                                 "python": sys.version.split()[0]},
           torch_threads=torch.get_num_threads(), nbits=nbits, build_s=build_s,
           n_tokens=int(sum(len(d) for d in docs)), index_bytes=dir_bytes(index_dir), runs=runs)


if __name__ == "__main__":
    main()

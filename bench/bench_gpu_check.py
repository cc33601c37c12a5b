"""The GPU path at production size: LFM2-ColBERT-350M's architecture (random weights) encoding on CUDA in float32
and bfloat16, queries at batch sizes 1-256, documents by length, bf16's distance to fp32, and an index built from
texts with the encoder on the GPU. Writes OUT/gpu_check.json and OUT/gpu_check.png. Run through bench_gpu_check.sh.

    python bench/bench_gpu_check.py --out OUT [--dry-run]

``--dry-run`` shrinks everything (the few-MB ``lfm2-colbert-tiny``, small batches and lengths, the CPU) so the
script's every step runs in CI in well under a minute; the figures it writes then mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colbert_architectures  # noqa: E402
import machine_info  # noqa: E402

FULL = {"model": "lfm2-colbert-350m", "device": "cuda", "dtypes": ["float32", "bfloat16"],
        "query_batches": [1, 2, 4, 8, 16, 32, 64, 128, 256], "doc_lengths": [128, 256, 512], "doc_batch": 64,
        "reps": 5, "index_docs": 2000}
DRY = {"model": "lfm2-colbert-tiny", "device": "cpu", "dtypes": ["float32", "bfloat16"],
       "query_batches": [1, 4], "doc_lengths": [32, 64], "doc_batch": 4, "reps": 1, "index_docs": 40}


def texts_of(n: int, words: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = ("late interaction keeps one vector per token and scores each query token against every document "
             "token with maxsim compressed centroids residuals search engine index gpu encoder throughput batch "
             "river city country year first largest population language model").split()
    return [" ".join(rng.choice(vocab, words)) for _ in range(n)]


def timed(fn, reps: int) -> float:
    fn()  # warm-up: kernels chosen, memory allocated
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()  # encode_* returns numpy arrays: the GPU work is finished when it returns
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--models-cache", type=Path, default=None)
    args = ap.parse_args()
    import logging
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    plan = DRY if args.dry_run else FULL
    if plan["device"] == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible to torch (torch.cuda.is_available() is False); "
                         "run with --dry-run for the CPU check")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.models_cache or (args.out / "models")
    t0 = time.perf_counter()
    folder = colbert_architectures.build(plan["model"], cache)
    result = {"plan": plan, "dry_run": args.dry_run, "machine": machine_info.machine(), "model": plan["model"],
              "build_model_s": time.perf_counter() - t0, "runs": {}}
    print(machine_info.header(result["machine"]), flush=True)
    from gingham.encoder import load_encoder

    queries = texts_of(max(plan["query_batches"]), 9, 0)
    reference = None
    for dtype in plan["dtypes"]:
        enc = load_encoder(folder, device=plan["device"], dtype=dtype, batch_size=max(plan["query_batches"]))
        run = {"queries_per_s": {}, "documents_tokens_per_s": {}}
        for b in plan["query_batches"]:
            s = timed(lambda: enc.encode_queries(queries[:b], batch_size=b), plan["reps"])
            run["queries_per_s"][str(b)] = b / s
        for length in plan["doc_lengths"]:
            docs = texts_of(plan["doc_batch"], length, length)
            n_tokens = sum(len(x) for x in enc.tokenize(docs, is_query=False))
            s = timed(lambda: enc.encode_documents(docs, batch_size=plan["doc_batch"]), plan["reps"])
            run["documents_tokens_per_s"][str(length)] = n_tokens / s
        probe = enc.encode_documents(texts_of(8, 64, 7)) + enc.encode_queries(queries[:8])
        if reference is None:
            reference = probe
        else:
            run["max_abs_diff_vs_" + plan["dtypes"][0]] = float(max(np.abs(a - b).max()
                                                                    for a, b in zip(probe, reference)))
        if plan["device"] == "cuda":
            run["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        result["runs"][dtype] = run
        print(dtype, json.dumps(run), flush=True)
        del enc
        if plan["device"] == "cuda":
            torch.cuda.empty_cache()

    # an index built from texts, the encoder on the device
    from gingham import Index

    texts = texts_of(plan["index_docs"], 120, 11)
    t = time.perf_counter()
    ix = Index.from_texts(args.out / "index", texts, model=str(folder), overwrite=True, show_progress=False,
                          encoder_options={"device": plan["device"], "dtype": plan["dtypes"][-1]})
    build_s = time.perf_counter() - t
    res = ix.search_text(queries[:4], 5)
    result["index_from_texts"] = {"n_docs": len(ix), "seconds": build_s, "docs_per_s": len(ix) / build_s,
                                  "dtype": plan["dtypes"][-1], "search_rows": len(res)}
    result["seconds"] = time.perf_counter() - t0
    result["loadavg_end"] = machine_info.loadavg()
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    plot(result, args.out / "gpu_check.png")
    print(json.dumps(result["index_from_texts"]), f"total {result['seconds']:.0f} s", flush=True)


def plot(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the bench extra is absent: the JSON holds every figure
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for dtype, run in result["runs"].items():
        xs = [int(k) for k in run["queries_per_s"]]
        a.plot(xs, list(run["queries_per_s"].values()), marker="o", label=dtype)
        ls = [int(k) for k in run["documents_tokens_per_s"]]
        b.plot(ls, list(run["documents_tokens_per_s"].values()), marker="o", label=dtype)
    a.set(xscale="log", yscale="log", xlabel="queries per batch", ylabel="queries/s", title="queries")
    b.set(xlabel="document length (tokens)", ylabel="tokens/s", title="documents")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    gpu = result["machine"].get("gpu") or "CPU (dry run)"
    fig.suptitle(f"{result['model']} on {gpu}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

"""Where a user's time goes: tokenisation + encoding + search per query, and document encoding by length, for each
model and each encoding path (dtype / backend), every path against the float32 transformers forward in ONE run.

    python bench/bench_encode_paths.py --model lfm2-colbert-350m --paths float32,int8,bfloat16 \
        --what queries --out bench/out/paths-lfm2-q
    python bench/bench_encode_paths.py --model lfm2-colbert-350m --what documents --doc-lengths 128,512

``--model``: a name of ``bench/colbert_architectures.py`` (built on demand with random weights: speed does not
depend on the weights' values), ``multilingual-e5-small``, or a model folder. ``--paths``: ``float32``,
``bfloat16``, ``float16``, ``int8`` (Gingham's dtypes) and ``onnx-float32`` / ``onnx-int8`` (ONNX Runtime,
``backend="onnxruntime"``; needs the ``onnx`` extra; the first load exports the graph, cached).

What is timed (``--what``, comma-separated):

- ``queries``: per query, one at a time (a user's search): tokenisation alone, ``encode_queries([q])`` (tokenisation
  included), then ``Index.search`` on a synthetic index (``--index-docs`` documents, dim of the model): p50 / p95 of
  each and of the sum; a batch of ``--batch-size`` queries per call: p50 / p95 of the call, queries/s.
- ``documents``: ``encode_documents`` of ``--n-docs`` texts of exactly L tokens for each L of ``--doc-lengths``:
  tokens/s; and a mixed-length set encoded in the encoder's length-sorted batches against arrival-order batches
  (``bucketing``).
- ``threads``: the fastest path's single-query p50 at each thread count of ``--thread-counts``.
- ``sweep``: queries/s and documents/s against batch size (``--sweep-batches``), for the seeds-claim plot.

Paths are measured round-robin (``--rounds``; each round times every path once per item) so that the load of other
work on the machine falls on all of them alike. Every result records ``lscpu``'s model name, the flags of interest
and the load average (``bench/machine_info.py``). Writes OUT/results.json and OUT/summary.md. Never in the tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colbert_architectures  # noqa: E402
import machine_info  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# ------------------------------------------------------------------------------------------------ inputs
def query_texts(n: int) -> list[str]:
    path = DATA / "xquad-retrieval" / "queries.en.jsonl"
    texts = []
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            texts = [json.loads(line)["text"] for line in fh]
    if not texts:
        rng = np.random.default_rng(0)
        words = "what where when who how many is the of a largest river city country first year".split()
        texts = [" ".join(rng.choice(words, 9)) for _ in range(200)]
    return [texts[i % len(texts)] for i in range(n)]


def long_texts() -> list[str]:
    path = DATA / "xquad-retrieval" / "corpus.en.jsonl"
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            rows = [json.loads(line)["text"] for line in fh]
        # concatenate paragraphs: documents long enough for 512 tokens
        return [" ".join(rows[i:i + 4]) for i in range(0, len(rows) - 4, 4)]
    rng = np.random.default_rng(1)
    words = "late interaction keeps one vector per token and scores every query token against documents".split()
    return [" ".join(rng.choice(words, 600)) for _ in range(64)]


def documents_of_length(enc, length: int, n: int) -> tuple[list[str], int]:
    """``n`` texts of about ``length`` tokens under ``enc``'s tokenizer (prefix included), and their token count."""
    tok = enc.tokenizer
    out = []
    for text in long_texts():
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) < length:
            continue
        budget = length - (len(enc.tokenize([""], is_query=False)[0]))
        out.append(tok.decode(ids[:max(1, budget)]))
        if len(out) == n:
            break
    n_tokens = sum(len(x) for x in enc.tokenize(out, is_query=False))
    return out, n_tokens


def resolve_model(name: str) -> str:
    if name in colbert_architectures.ARCHITECTURES:
        return str(colbert_architectures.build(name))
    return name


def synthetic_index(folder: Path, dim: int, n_docs: int):
    from gingham import Index
    from gingham.evaluation.synthetic import make_corpus

    path = folder / f"index-{dim}-{n_docs}"
    if path.exists():
        return Index.open(path)
    corpus = make_corpus(n_docs, dim=dim, mean_length=120, seed=0)
    return Index.create(path, corpus.docs(), show_progress=False)


# ------------------------------------------------------------------------------------------------ paths
def load_path(model: str, path: str, threads: int | None):
    from gingham.encoder import load_encoder

    if path.startswith("onnx-"):
        return load_encoder(model, dtype=path.removeprefix("onnx-"), backend="onnxruntime", threads=threads)
    return load_encoder(model, dtype=path, threads=threads)


def _stats(xs: list[float]) -> dict:
    a = np.asarray(xs) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "mean_ms": float(a.mean()), "n": len(xs)}


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def bench_queries(encoders: dict, index, args) -> dict:
    texts = query_texts(args.n_single * args.rounds + args.batch_size * args.rounds + 8)
    res = {p: {"tokenize": [], "encode": [], "search": [], "total": [], "batch": []} for p in encoders}
    for enc in encoders.values():  # warm-up: first calls allocate
        enc.encode_queries(texts[:2])
        enc.encode_queries(texts[:args.batch_size])
    index.search(encoders[next(iter(encoders))].encode_queries(texts[:1]), 10)
    i = 8
    for _ in range(args.rounds):
        for _ in range(args.n_single):
            q = texts[i]
            i += 1
            for p, enc in encoders.items():
                t_tok, _ = _timed(lambda: enc.tokenize([q], is_query=True))
                t_enc, emb = _timed(lambda: enc.encode_queries([q]))
                t_search, _ = _timed(lambda: index.search(emb, 10))
                r = res[p]
                r["tokenize"].append(t_tok)
                r["encode"].append(t_enc)
                r["search"].append(t_search)
                r["total"].append(t_enc + t_search)
        batch = texts[i:i + args.batch_size]
        i += args.batch_size
        for p, enc in encoders.items():
            t, _ = _timed(lambda: enc.encode_queries(batch, batch_size=args.batch_size))
            res[p]["batch"].append(t)
    out = {}
    for p, r in res.items():
        out[p] = {k: _stats(v) for k, v in r.items()}
        out[p]["batch"]["queries_per_s"] = args.batch_size / float(np.median(r["batch"]))
        out[p]["batch"]["batch_size"] = args.batch_size
    return out


def bench_documents(encoders: dict, args) -> dict:
    first = next(iter(encoders.values()))
    sets = {}
    for length in args.doc_lengths:
        if length > first.config.document_length:
            continue
        sets[length] = documents_of_length(first, length, args.n_docs)
    for enc in encoders.values():
        enc.encode_documents(sets[min(sets)][0][:2])
    res = {p: {L: [] for L in sets} for p in encoders}
    for _ in range(args.rounds):
        for L, (texts, _) in sets.items():
            for p, enc in encoders.items():
                t, _ = _timed(lambda: enc.encode_documents(texts, batch_size=args.n_docs))
                res[p][L].append(t)
    out = {}
    for p in encoders:
        out[p] = {str(L): {"n_docs": len(sets[L][0]), "n_tokens": sets[L][1], "seconds_median": float(np.median(ts)),
                           "tokens_per_s": sets[L][1] / float(np.median(ts))} for L, ts in res[p].items()}
    return out


def bench_bucketing(encoders: dict, args) -> dict:
    """Mixed lengths: the encoder's length-sorted batches vs batches in arrival order (no bucketing)."""
    first = next(iter(encoders.values()))
    rng = np.random.default_rng(3)
    lengths = rng.choice([32, 64, 128, 256, min(512, first.config.document_length)], args.n_docs * 2)
    texts = [documents_of_length(first, int(L), 1)[0][0] for L in lengths]
    n_tokens = sum(len(x) for x in first.tokenize(texts, is_query=False))
    bs = max(2, args.n_docs // 2)
    out = {}
    for p, enc in encoders.items():
        t_sorted, _ = _timed(lambda: enc.encode_documents(texts, batch_size=bs))
        t_arrival, _ = _timed(lambda: [enc.encode_documents(texts[i:i + bs], batch_size=bs)
                                       for i in range(0, len(texts), bs)])
        out[p] = {"n_docs": len(texts), "n_tokens": n_tokens, "batch_size": bs,
                  "sorted_tokens_per_s": n_tokens / t_sorted, "arrival_tokens_per_s": n_tokens / t_arrival}
    return out


def bench_threads(model: str, path: str, args) -> dict:
    import torch

    texts = query_texts(64)
    out = {}
    encs = {t: load_path(model, path, t) for t in args.thread_counts}
    for enc in encs.values():
        enc.encode_queries(texts[:2])
    times = {t: [] for t in encs}
    for r in range(args.n_single):
        for t, enc in encs.items():
            dt, _ = _timed(lambda: enc.encode_queries([texts[r]]))
            times[t].append(dt)
    for t, ts in times.items():
        out[str(t)] = _stats(ts)
    out["path"] = path
    out["max_threads"] = torch.get_num_threads()
    return out


def bench_sweep(encoders: dict, args) -> dict:
    """Queries/s and documents/s (documents of ``--sweep-doc-length`` tokens) against batch size."""
    first = next(iter(encoders.values()))
    L = min(args.sweep_doc_length, first.config.document_length)
    n_max = max(args.sweep_batches)
    qs = query_texts(n_max)
    docs, _ = documents_of_length(first, L, n_max)
    docs = (docs * (-(-n_max // max(1, len(docs)))))[:n_max]
    out = {}
    for p, enc in encoders.items():
        enc.encode_queries(qs[:2])
        row = {"queries_per_s": {}, "documents_per_s": {}, "doc_length": L}
        for b in args.sweep_batches:
            t, _ = _timed(lambda: enc.encode_queries(qs[:b], batch_size=b))
            row["queries_per_s"][str(b)] = b / t
            if b <= args.sweep_max_docs:
                t, _ = _timed(lambda: enc.encode_documents(docs[:b], batch_size=b))
                row["documents_per_s"][str(b)] = b / t
        out[p] = row
    return out


# ------------------------------------------------------------------------------------------------ report
def summary(results: dict) -> str:
    lines = [f"# {results['model']}", "", machine_info.header(results["machine"]), ""]
    ref = "float32"
    if "queries" in results:
        lines += ["| path | tokenize p50 | encode 1 query p50 / p95 | search p50 | total p50 / p95 | batch-"
                  f"{results['args']['batch_size']} p50 / p95 | queries/s (batch) | encode p50 vs fp32 |",
                  "|---|---|---|---|---|---|---|---|"]
        q = results["queries"]
        for p, r in q.items():
            vs = r["encode"]["p50_ms"] / q[ref]["encode"]["p50_ms"] if ref in q else float("nan")
            lines.append(f"| {p} | {r['tokenize']['p50_ms']:.2f} ms | {r['encode']['p50_ms']:.1f} / "
                         f"{r['encode']['p95_ms']:.1f} ms | {r['search']['p50_ms']:.2f} ms | {r['total']['p50_ms']:.1f} / "
                         f"{r['total']['p95_ms']:.1f} ms | {r['batch']['p50_ms']:.0f} / {r['batch']['p95_ms']:.0f} ms | "
                         f"{r['batch']['queries_per_s']:.1f} | {vs:.2f}x |")
        lines.append("")
    if "documents" in results:
        d = results["documents"]
        lengths = list(next(iter(d.values())).keys())
        lines += ["| path | " + " | ".join(f"{L} tokens: tokens/s" for L in lengths) + " | vs fp32 |",
                  "|---|" + "---|" * (len(lengths) + 1)]
        for p, r in d.items():
            vs = [r[L]["tokens_per_s"] / d[ref][L]["tokens_per_s"] for L in lengths] if ref in d else []
            lines.append(f"| {p} | " + " | ".join(f"{r[L]['tokens_per_s']:.0f}" for L in lengths) + " | "
                         + " / ".join(f"{v:.2f}x" for v in vs) + " |")
        lines.append("")
    if "bucketing" in results:
        lines += ["| path | mixed lengths, length-sorted batches tokens/s | arrival-order batches tokens/s |",
                  "|---|---|---|"]
        for p, r in results["bucketing"].items():
            lines.append(f"| {p} | {r['sorted_tokens_per_s']:.0f} | {r['arrival_tokens_per_s']:.0f} |")
        lines.append("")
    if "threads" in results:
        t = results["threads"]
        lines += [f"Single-query encode p50 by thread count ({t['path']}): "
                  + ", ".join(f"{k} threads {v['p50_ms']:.1f} ms" for k, v in t.items() if isinstance(v, dict)), ""]
    if "sweep" in results:
        for p, r in results["sweep"].items():
            lines.append(f"- sweep {p}: queries/s " + ", ".join(f"b{b}={v:.1f}" for b, v in r["queries_per_s"].items())
                         + f"; documents/s ({r['doc_length']} tokens) "
                         + ", ".join(f"b{b}={v:.2f}" for b, v in r["documents_per_s"].items()))
        lines.append("")
    lines.append(f"Load average at the end: {results['loadavg_end']}; {results['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--paths", default="float32,int8,bfloat16")
    ap.add_argument("--what", default="queries,documents")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n-single", type=int, default=5, help="single queries per round")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--doc-lengths", default="128,256,512")
    ap.add_argument("--n-docs", type=int, default=8)
    ap.add_argument("--index-docs", type=int, default=2000)
    ap.add_argument("--thread-counts", default="1,2")
    ap.add_argument("--sweep-batches", default="1,2,4,8,16,32,64")
    ap.add_argument("--sweep-doc-length", type=int, default=256)
    ap.add_argument("--sweep-max-docs", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("bench/out/encode-paths"))
    args = ap.parse_args()
    args.doc_lengths = [int(x) for x in args.doc_lengths.split(",")]
    args.thread_counts = [int(x) for x in args.thread_counts.split(",")]
    args.sweep_batches = [int(x) for x in args.sweep_batches.split(",")]
    what = args.what.split(",")
    paths = args.paths.split(",")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    model = resolve_model(args.model)
    t0 = time.perf_counter()
    info = machine_info.machine()
    if args.threads:
        info["torch_threads"] = args.threads  # what the encoders run with (load_encoder(threads=...))
    results = {"model": args.model, "folder": model, "paths": paths, "machine": info,
               "args": {k: v if not isinstance(v, Path) else str(v) for k, v in vars(args).items()}}
    encoders = {p: load_path(model, p, args.threads) for p in paths}
    results["resolved_dtypes"] = {p: getattr(e.config, "dtype", p) for p, e in encoders.items()}
    if "queries" in what:
        from gingham.kernels.warmup import warmup

        warmup()
        index = synthetic_index(args.out, next(iter(encoders.values())).dim, args.index_docs)
        results["queries"] = bench_queries(encoders, index, args)
    if "documents" in what:
        results["documents"] = bench_documents(encoders, args)
    if "bucketing" in what:
        results["bucketing"] = bench_bucketing(encoders, args)
    if "sweep" in what:
        results["sweep"] = bench_sweep(encoders, args)
    if "threads" in what:
        fastest = paths[-1]
        del encoders
        gc.collect()
        results["threads"] = bench_threads(model, fastest, args)
    results["loadavg_end"] = machine_info.loadavg()
    results["seconds"] = time.perf_counter() - t0
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    md = summary(results)
    (args.out / "summary.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

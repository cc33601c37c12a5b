"""Token pooling at index time: vectors kept, bytes/token on disk, search p50 and nDCG@10 per pool factor.

    python bench/bench_pooling.py --out bench/out/pooling [--model multilingual-e5-small] \
        [--datasets xquad-x-en,xquad-r,msmarco,dbpedia] [--pool-factors 1,2,3,4] [--nbits 2] [--limit-queries N]

Each data set's documents and queries are encoded once (cached in ``OUT/embeddings`` by content, like
``gingham eval``); for every pool factor the documents are pooled (``gingham.encoder.pooling``: Ward clustering, first
token kept), with and without renormalising the means, then indexed and searched with the index's defaults.
XQuAD tasks (one per query language) share one index per pool factor; their nDCG@10 and p50 are averaged.

Columns: vectors kept (share of the unpooled tokens), bytes/token on disk (the index's bytes on disk divided by
the UNPOOLED token count, so it falls with pooling), p50 ms, nDCG@10, and its change against pool factor 1.
Writes ``OUT/pooling.json`` and ``OUT/pooling.md``. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _tasks(name: str, data: Path, limit_queries: int | None, limit_docs: int | None):
    from gingham.evaluation import load_beir, load_xquad

    if name == "xquad-x-en":
        return load_xquad(data / "xquad-retrieval", "x-en", limit_queries=limit_queries)
    if name == "xquad-r":
        return load_xquad(data / "xquad-r", "xquad-r", limit_queries=limit_queries)
    folder = Path(name) if Path(name).is_dir() else data / "agentset-subsets" / name
    return [load_beir(folder, limit_queries=limit_queries, limit_docs=limit_docs)]


def run(datasets, out: Path, *, model: str, pool_factors, nbits: int, top_k: int, limit_queries, limit_docs,
        data: Path, encoder_options=None) -> list[dict]:
    import gingham
    from gingham.evaluation.embeddings import EmbeddingCache, flatten
    from gingham.evaluation.metrics import evaluate, ranked_lists
    from gingham.evaluation.timing import summarize, time_each
    from gingham.kernels import warmup
    from gingham.encoder.pooling import pool_documents

    def factory():
        from gingham.encoder import load_encoder

        return load_encoder(model, **dict(encoder_options or {}))

    cache = EmbeddingCache(out / "embeddings", model, factory)
    warmup()
    rows = []
    for name in datasets:
        tasks = _tasks(name, data, limit_queries, limit_docs)
        corpus = tasks[0].corpus
        docs = cache.get(corpus.name, corpus.texts, "documents")
        queries = {t.name: cache.get(f"queries-{t.name}", t.query_texts, "queries").items() for t in tasks}
        n_unpooled = int(docs.offsets[-1])
        base = None
        for pf in pool_factors:
            for renorm in ((False,) if pf == 1 else (False, True)):
                pooled = pool_documents(docs.items(), pf, renormalize=renorm)
                flat, offsets = flatten(pooled)
                path = out / "indexes" / f"{name}-pf{pf}{'-renorm' if renorm else ''}"
                t0 = time.perf_counter()
                ix = gingham.Index.create(path, flat, corpus.ids, lengths=np.diff(offsets), nbits=nbits,
                                          overwrite=True, show_progress=False)
                build_s = time.perf_counter() - t0
                info = ix.info()
                ndcg, p50 = [], []
                k = min(top_k, len(corpus.ids))
                for t in tasks:
                    qs = queries[t.name]
                    p50.append(summarize(time_each(lambda q: ix.search(q, k), qs[:50]))["p50_ms"])
                    res = ix.search(qs, k)
                    ndcg.append(evaluate(t.qrels, ranked_lists(res, t.query_ids), ["nDCG@10"])["nDCG@10"])
                row = {"dataset": name, "pool_factor": pf, "renormalize": renorm, "n_docs": len(corpus.ids),
                       "n_tokens_unpooled": n_unpooled, "n_vectors": int(offsets[-1]),
                       "vectors_kept": int(offsets[-1]) / n_unpooled,
                       "bytes_per_token_on_disk": info["bytes_on_disk"] / n_unpooled,
                       "p50_ms": float(np.mean(p50)), "nDCG@10": float(np.mean(ndcg)), "build_s": build_s,
                       "n_tasks": len(tasks)}
                if pf == 1:
                    base = row["nDCG@10"]
                row["delta_nDCG@10"] = row["nDCG@10"] - base if base is not None else None
                rows.append(row)
                logging.getLogger("gingham").info("%s", row)
                del ix
                shutil.rmtree(path, ignore_errors=True)
    return rows


def markdown(rows) -> str:
    lines = ["| dataset | pool factor | renorm | vectors kept | bytes/token on disk | p50 ms | nDCG@10 | Δ vs pool 1 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["delta_nDCG@10"]
        lines.append(f"| {r['dataset']} | {r['pool_factor']} | {'yes' if r['renormalize'] else 'no'} | "
                     f"{r['vectors_kept']:.3f} | {r['bytes_per_token_on_disk']:.1f} | {r['p50_ms']:.2f} | "
                     f"{r['nDCG@10']:.4f} | {'' if d is None else f'{d:+.4f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench/out/pooling"))
    ap.add_argument("--datasets", default="xquad-x-en,xquad-r,msmarco,dbpedia",
                    help="xquad-x-en, xquad-r, a folder name under shared/data/agentset-subsets, or a BEIR folder")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--pool-factors", default="1,2,3,4")
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--limit-queries", type=int, default=None)
    ap.add_argument("--limit-docs", type=int, default=None, help="BEIR folders only")
    ap.add_argument("--document-length", type=int, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("gingham").setLevel(logging.INFO)
    args.out.mkdir(parents=True, exist_ok=True)
    opts = {"document_length": args.document_length} if args.document_length else {}
    rows = run(args.datasets.split(","), args.out, model=args.model,
               pool_factors=[int(x) for x in args.pool_factors.split(",")], nbits=args.nbits, top_k=args.top_k,
               limit_queries=args.limit_queries, limit_docs=args.limit_docs, data=args.data, encoder_options=opts)
    (args.out / "pooling.json").write_text(json.dumps(rows, indent=1))
    md = markdown(rows)
    (args.out / "pooling.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

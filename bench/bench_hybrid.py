"""Retrieval quality of MaxSim, BM25 (SQLite FTS5) and their fusions, nDCG@10 per data set.

    python bench/bench_hybrid.py --data ../shared/data --out out/hybrid                 # the issue's table
    python bench/bench_hybrid.py --data ../shared/data --datasets msmarco --limit-docs 300 --limit-queries 10 \\
        --out out/hybrid-tiny                                                            # a quick look

Data sets (under ``--data``): ``agentset-subsets/msmarco`` and ``agentset-subsets/dbpedia`` (BEIR layout, 5,000
documents, 50 queries each) and ``xquad-retrieval`` in mode x-en (questions in 12 languages against the English
paragraphs; lexical match across languages should not help, so fusion should not gain there). Each corpus is
encoded once (``--model``, default the offline multilingual-e5-small) into the embedding cache of
``gingham.evaluation`` under ``--out/embeddings`` (a second run reuses it), indexed with its texts, and searched:

- MaxSim: ``Index.search`` over the query embeddings;
- BM25: ``Index.search_bm25`` over the query texts;
- RRF and relative-score fusion: ``Index.hybrid_search`` with each ``--alphas`` weight on MaxSim.

Every ranking is read ``--n-candidates`` deep before fusion; metrics by ``gingham.evaluation.metrics`` (ir-measures).
Writes ``results.json`` and ``summary.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gingham
from gingham.evaluation.data import load_beir, load_xquad
from gingham.evaluation.embeddings import EmbeddingCache
from gingham.evaluation.metrics import evaluate, ranked_lists
from gingham.kernels import warmup

DATASETS = {
    "msmarco": ("agentset-subsets/msmarco", "beir"),
    "dbpedia": ("agentset-subsets/dbpedia", "beir"),
    "xquad-x-en": ("xquad-retrieval", "xquad"),
}


def tasks_for(name: str, data: Path, limit_queries, limit_docs, languages) -> list:
    folder, kind = DATASETS[name]
    if kind == "beir":
        return [load_beir(data / folder, limit_queries=limit_queries, limit_docs=limit_docs, name=name)]
    return load_xquad(data / folder, "x-en", languages, limit_queries=limit_queries)


def run_task(index, task, cache: EmbeddingCache, args) -> dict:
    q = cache.get(f"{task.name}-queries", task.query_texts, "queries")
    queries = [q.item(i) for i in range(len(q))]
    k = min(args.n_candidates, index.n_docs)
    runs = {"MaxSim": index.search(queries, k),
            "BM25": index.search_bm25(task.query_texts, k)}
    for alpha in args.alphas:
        for mode, label in (("rrf", "RRF"), ("relative", "relative")):
            runs[f"{label} a={alpha:g}"] = index.hybrid_search(task.query_texts, queries, k, hybrid=mode,
                                                               alpha=alpha, n_candidates=args.n_candidates)
    return {name: evaluate(task.qrels, ranked_lists(res, task.query_ids), args.metrics)
            for name, res in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {list(DATASETS)}")
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--nbits", type=int, default=4)
    ap.add_argument("--alphas", default="0.5", help="weights of MaxSim in the fusions, comma-separated")
    ap.add_argument("--n-candidates", type=int, default=100)
    ap.add_argument("--metrics", default="nDCG@10,R@100")
    ap.add_argument("--limit-queries", type=int, default=None)
    ap.add_argument("--limit-docs", type=int, default=None, help="first documents of the BEIR corpora only")
    ap.add_argument("--languages", default=None, help="XQuAD query languages (default: all 12)")
    ap.add_argument("--out", type=Path, default=Path("out/hybrid"))
    args = ap.parse_args()
    args.alphas = [float(a) for a in args.alphas.split(",")]
    args.metrics = args.metrics.split(",")
    names = args.datasets.split(",")
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        ap.error(f"unknown data sets {unknown}; choose from {list(DATASETS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    warmup()

    def factory():
        from gingham.encoder import load_encoder

        return load_encoder(args.model)

    cache = EmbeddingCache(args.out / "embeddings", args.model, factory)
    results: dict = {"model": args.model, "nbits": args.nbits, "alphas": args.alphas,
                     "n_candidates": args.n_candidates, "metrics": args.metrics, "datasets": {}}
    for name in names:
        languages = args.languages.split(",") if args.languages else None
        tasks = tasks_for(name, args.data, args.limit_queries, args.limit_docs, languages)
        corpus = tasks[0].corpus
        docs = cache.get(corpus.name, corpus.texts, "documents")
        t0 = time.perf_counter()
        index = gingham.Index.create(args.out / "indexes" / corpus.name, docs.flat, corpus.ids,
                                     lengths=docs.lengths, texts=corpus.texts, nbits=args.nbits, overwrite=True)
        print(f"{name}: indexed {len(corpus.ids)} documents in {time.perf_counter() - t0:.0f}s", flush=True)
        per_task = {task.name: run_task(index, task, cache, args) for task in tasks}
        engines = list(next(iter(per_task.values())))
        mean = {e: {m: sum(per_task[t][e][m] for t in per_task) / len(per_task) for m in args.metrics}
                for e in engines}
        results["datasets"][name] = {"n_docs": len(corpus.ids), "n_queries": sum(len(t.query_ids) for t in tasks),
                                     "mean": mean, "tasks": per_task}
        print(f"{name}: " + ", ".join(f"{e} {mean[e]['nDCG@10']:.3f}" for e in engines), flush=True)

    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    engines = list(next(iter(results["datasets"].values()))["mean"])
    metric = args.metrics[0]
    lines = [f"# {metric}: MaxSim, BM25 and their fusions ({args.model}, nbits {args.nbits}, "
             f"{args.n_candidates} candidates per ranking)", "",
             "| data set | docs | queries | " + " | ".join(engines) + " |",
             "|---|---|---|" + "---|" * len(engines)]
    for name, r in results["datasets"].items():
        lines.append(f"| {name} | {r['n_docs']:,} | {r['n_queries']} | "
                     + " | ".join(f"{r['mean'][e][metric]:.3f}" for e in engines) + " |")
    for name, r in results["datasets"].items():
        if len(r["tasks"]) > 1:  # XQuAD: one row per query language
            lines += ["", f"## {name} per query language ({metric})", "",
                      "| task | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
            for task, t in r["tasks"].items():
                lines.append(f"| {task} | " + " | ".join(f"{t[e][metric]:.3f}" for e in engines) + " |")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

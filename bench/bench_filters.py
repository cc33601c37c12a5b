"""Metadata filters at scale: a SQL expression (the segments' SQLite databases) vs a Python predicate.

    python bench/bench_filters.py --n-docs 100000 --out out/filters          # the issue's table (quiet machine)
    python bench/bench_filters.py --n-docs 2000 --queries 20 --out out/filters-tiny   # a quick look

Builds a seeded synthetic index (``gingham.evaluation.synthetic.make_corpus``) whose documents carry metadata
``{"category": one of 1,000 (Zipf), "year": 1950..2024, "lang": one of 8, "score": float}``, then for a
selective filter (one category: ~0.1-1% of documents) and a broad one (year >= 1987 and lang != 'xx': ~50%) it
measures, each as SQL and as the equivalent Python predicate:

- filter time: resolving the filter to the allowed documents (``Index._masks``, what every filtered search does
  first), the first call (cold: the predicate parses every document's JSON once, SQLite reads its pages) and the
  median of later calls;
- search p50 / p95 of single queries with the filter, and without any filter for reference;
- that SQL and predicate allow the same documents and return the same results (asserted).

Writes ``results.json`` and ``summary.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np

import gingham
from gingham.kernels import warmup
from gingham.evaluation.synthetic import make_corpus, make_queries

LANGS = ["en", "de", "fr", "es", "zh", "ar", "hi", "ru"]


def make_metadata(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, 1001) ** 0.8
    cats = rng.choice(1000, n, p=zipf / zipf.sum())
    years = rng.integers(1950, 2025, n)
    langs = rng.integers(0, len(LANGS), n)
    scores = rng.random(n)
    return [{"category": f"c{int(c):04d}", "year": int(y), "lang": LANGS[int(g)], "score": round(float(s), 4)}
            for c, y, g, s in zip(cats, years, langs, scores)]


def filters_for(metas: list[dict]) -> dict:
    """(SQL, params, predicate) for the selective and the broad filter."""
    counts: dict = {}
    for m in metas:
        counts[m["category"]] = counts.get(m["category"], 0) + 1
    # a category holding about 0.3% of the documents
    target = max(1, len(metas) // 300)
    cat = min(counts, key=lambda c: (abs(counts[c] - target), c))
    return {
        "selective": ("category = ?", [cat], lambda m, c=cat: m.get("category") == c),
        "broad": ("year >= ? AND lang != ?", [1987, "xx"],
                  lambda m: m.get("year") is not None and m["year"] >= 1987 and m.get("lang") != "xx"),
    }


def ms(seconds) -> float:
    return float(np.asarray(seconds).mean() * 1e3) if np.ndim(seconds) == 0 else float(np.median(seconds) * 1e3)


def resolve_times(index, where, params, repeat: int) -> dict:
    snap = index._snap
    t0 = time.perf_counter()
    masks = index._masks(snap, None, where, params)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        index._masks(snap, None, where, params)
        warm.append(time.perf_counter() - t0)
    return {"cold_ms": cold * 1e3, "warm_ms": ms(warm), "allowed": int(sum(int(m.sum()) for m in masks)),
            "masks": masks}


def search_times(index, queries, top_k, **kw) -> tuple[dict, list]:
    lat, results = [], []
    for q in queries[:3]:  # warm-up
        index.search(q, top_k, **kw)
    for q in queries:
        t0 = time.perf_counter()
        res = index.search(q, top_k, **kw)
        lat.append(time.perf_counter() - t0)
        results.append(res)
    a = np.array(lat) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95))}, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-docs", type=int, default=100_000)
    ap.add_argument("--mean-length", type=int, default=32, help="mean tokens per document")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=10, help="warm filter resolutions timed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out/filters"))
    ap.add_argument("--keep-index", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    warmup()

    corpus = make_corpus(args.n_docs, dim=args.dim, mean_length=args.mean_length, seed=args.seed)
    queries, _ = make_queries(corpus, args.queries, seed=args.seed + 1)
    metas = make_metadata(args.n_docs, args.seed)
    root = args.out / "index"
    t0 = time.perf_counter()
    index = gingham.Index.create(root, corpus.tokens, lengths=corpus.lengths, metadata=metas, overwrite=True,
                                 seed=args.seed)
    build_s = time.perf_counter() - t0
    db_bytes = sum(f["bytes"] for f in index.manifest["files"].values() if f.get("kind") == "sqlite")
    print(f"built {args.n_docs} documents ({index.n_tokens} tokens) in {build_s:.0f}s; databases {db_bytes / 2**20:.1f} "
          "MiB", flush=True)

    rows = {}
    base, _ = search_times(index, queries, args.top_k)
    for name, (sql, params, pred) in filters_for(metas).items():
        # the predicate first: its cold call parses every document's JSON (then cached in the snapshot)
        r_py = resolve_times(index, pred, None, args.repeat)
        r_sql = resolve_times(index, sql, params, args.repeat)
        for a, b in zip(r_sql.pop("masks"), r_py.pop("masks")):
            assert np.array_equal(a, b), f"{name}: SQL and predicate allow different documents"
        s_sql, res_sql = search_times(index, queries, args.top_k, where=sql, params=params)
        s_py, res_py = search_times(index, queries, args.top_k, where=pred)
        for a, b in zip(res_sql, res_py):
            assert np.array_equal(a.positions, b.positions), f"{name}: SQL and predicate returned other results"
        rows[name] = {"sql": sql, "params": params, "allowed": r_sql["allowed"],
                      "share": r_sql["allowed"] / args.n_docs,
                      "filter_ms": {"sql_cold": r_sql["cold_ms"], "sql_warm": r_sql["warm_ms"],
                                    "predicate_cold": r_py["cold_ms"], "predicate_warm": r_py["warm_ms"]},
                      "search": {"sql": s_sql, "predicate": s_py}}
        print(f"{name}: {rows[name]}", flush=True)

    results = {"n_docs": args.n_docs, "n_tokens": index.n_tokens, "dim": args.dim, "top_k": args.top_k,
               "n_queries": args.queries, "build_s": build_s, "database_bytes": db_bytes,
               "unfiltered_search": base, "filters": rows,
               "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    lines = [f"# Metadata filters: SQL vs Python predicate ({args.n_docs:,} documents, top_k {args.top_k}, "
             f"{args.queries} queries)", "",
             f"Unfiltered search: p50 {base['p50_ms']:.2f} ms, p95 {base['p95_ms']:.2f} ms.", "",
             "| filter | allowed | filter time SQL (cold / warm) | predicate (cold / warm) | search p50 SQL | "
             "search p50 predicate | p95 SQL | p95 predicate |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        f, s = r["filter_ms"], r["search"]
        lines.append(f"| {name} (`{r['sql']}`) | {r['allowed']:,} ({r['share']:.1%}) | {f['sql_cold']:.1f} / "
                     f"{f['sql_warm']:.1f} ms | {f['predicate_cold']:.1f} / {f['predicate_warm']:.1f} ms | "
                     f"{s['sql']['p50_ms']:.2f} ms | {s['predicate']['p50_ms']:.2f} ms | {s['sql']['p95_ms']:.2f} ms | "
                     f"{s['predicate']['p95_ms']:.2f} ms |")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.keep_index:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

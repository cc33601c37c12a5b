"""Fidelity of the encoder's fast paths on real weights (multilingual-e5-small): each path's index against the
float32 one, nDCG@10 and recall@10 on XQuAD X->en, MS MARCO 5k and DBpedia-Entity 5k, plus the vectors' distance
to float32's.

    python bench/bench_fidelity_fast_paths.py --paths float32,int8,bfloat16 --xquad-limit 300 --out bench/out/fidelity

Paths: Gingham's dtypes (``float32``, ``int8``, ``bfloat16``) and ``onnx-float32`` / ``onnx-int8`` (ONNX Runtime).

For each path: the documents and the queries are encoded with that path, an index is built from the documents
(the same build settings and seed for every path) and searched with its default settings and exhaustively
(exact MaxSim over every document: the encoder's effect alone, without the index's approximation). The bar
(issue 29): a path that loses more than 0.5 nDCG@10 point against float32 is not a default. Also reported per
path: the max and mean absolute difference per vector against float32, and the mean cosine, over every token.
Writes OUT/results.json and OUT/summary.md. Takes minutes (every path encodes every text): never in the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine_info  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tasks(xquad_limit: int | None, languages: list[str] | None):
    from gingham.evaluation.data import load_beir, load_xquad

    out = {}
    xq = DATA / "xquad-retrieval"
    if xq.exists():
        out["xquad-x-en"] = load_xquad(xq, "x-en", languages, limit_queries=xquad_limit)
    for name in ("msmarco", "dbpedia"):
        folder = DATA / "agentset-subsets" / name
        if folder.exists():
            out[f"{name}-5k"] = [load_beir(folder)]
    return out


def vector_distance(a: list[np.ndarray], b: list[np.ndarray]) -> dict:
    fa, fb = np.concatenate(a), np.concatenate(b)
    diff = np.abs(fa - fb).max(axis=1)
    return {"max_abs_diff": float(diff.max()), "mean_max_abs_diff_per_vector": float(diff.mean()),
            "mean_cosine": float((fa * fb).sum(axis=1).mean()), "n_vectors": int(len(fa))}


def run(paths: list[str], model: str, task_sets: dict, out: Path, threads: int | None) -> dict:
    from gingham import Index
    from gingham.encoder import load_encoder
    from gingham.evaluation.metrics import evaluate, ranked_lists

    results: dict = {}
    ref_vectors: dict = {}
    for set_name, task_list in task_sets.items():
        corpus = task_list[0].corpus
        results[set_name] = {}
        for path in paths:
            t0 = time.perf_counter()
            backend = "onnxruntime" if path.startswith("onnx-") else "torch"
            enc = load_encoder(model, dtype=path.removeprefix("onnx-"), backend=backend, threads=threads)
            docs = enc.encode_documents(corpus.texts, batch_size=32, show_progress=False)
            t_docs = time.perf_counter() - t0
            index = Index.create(out / f"{set_name}-{path}", docs, corpus.ids, overwrite=True, show_progress=False,
                                 seed=0)
            row = {"encode_documents_s": t_docs, "tasks": {}}
            all_q = []
            for task in task_list:
                qs = enc.encode_queries(task.query_texts, batch_size=32, show_progress=False)
                all_q.extend(qs)
                m = {}
                for mode, kw in (("index", {}), ("exhaustive", {"exhaustive": True})):
                    res = index.search(qs, 10, **kw)
                    m[mode] = evaluate(task.qrels, ranked_lists(res, task.query_ids), ["nDCG@10", "R@10"])
                row["tasks"][task.name] = m
            for mode in ("index", "exhaustive"):
                row[mode] = {k: float(np.mean([row["tasks"][t][mode][k] for t in row["tasks"]]))
                             for k in ("nDCG@10", "R@10")}
            key = (set_name, "docs")
            if path == paths[0]:
                ref_vectors[key], ref_vectors[(set_name, "queries")] = docs, all_q
            else:
                row["documents_vs_" + paths[0]] = vector_distance(docs, ref_vectors[key])
                row["queries_vs_" + paths[0]] = vector_distance(all_q, ref_vectors[(set_name, "queries")])
            row["seconds"] = time.perf_counter() - t0
            row["loadavg"] = machine_info.loadavg()
            row["resolved_dtype"] = enc.config.dtype
            results[set_name][path] = row
            print(set_name, path, {m: row[m] for m in ("index", "exhaustive")}, f"{row['seconds']:.0f} s",
                  row["loadavg"], flush=True)
    return results


def summary(r: dict) -> str:
    lines = [f"# Fidelity of the encoder's fast paths ({r['model']})", "", machine_info.header(r["machine"]), "",
             "nDCG@10 / recall@10 (mean over the set's tasks); delta in nDCG points against float32; vectors: max abs "
             "difference per vector against float32 (max over all vectors / mean) and mean cosine.", "",
             "| set | path | nDCG@10 index | R@10 index | nDCG@10 exhaustive | R@10 exhaustive | delta nDCG (index / "
             "exhaustive) | doc vectors max / mean diff, cosine | query vectors max / mean diff, cosine |",
             "|---|---|---|---|---|---|---|---|---|"]
    for set_name, rows in r["results"].items():
        ref = rows[r["paths"][0]]
        for path, row in rows.items():
            d_i = 100 * (row["index"]["nDCG@10"] - ref["index"]["nDCG@10"])
            d_e = 100 * (row["exhaustive"]["nDCG@10"] - ref["exhaustive"]["nDCG@10"])
            dv = row.get("documents_vs_" + r["paths"][0])
            qv = row.get("queries_vs_" + r["paths"][0])
            fmt = (lambda v: f"{v['max_abs_diff']:.3f} / {v['mean_max_abs_diff_per_vector']:.4f}, "
                   f"{v['mean_cosine']:.5f}" if v else "reference")
            lines.append(f"| {set_name} | {path} | {row['index']['nDCG@10']:.4f} | {row['index']['R@10']:.4f} | "
                         f"{row['exhaustive']['nDCG@10']:.4f} | {row['exhaustive']['R@10']:.4f} | {d_i:+.2f} / "
                         f"{d_e:+.2f} | {fmt(dv)} | {fmt(qv)} |")
    lines += ["", f"Load average at the end: {r['loadavg_end']}; {r['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--paths", default="float32,int8,bfloat16", help="the first is the reference")
    ap.add_argument("--xquad-limit", type=int, default=300, help="queries per XQuAD language (None: all 1,190)")
    ap.add_argument("--languages", default=None, help="XQuAD query languages (default: all)")
    ap.add_argument("--sets", default="xquad-x-en,msmarco-5k")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("bench/out/fidelity"))
    args = ap.parse_args()
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    langs = args.languages.split(",") if args.languages else None
    sets = {k: v for k, v in tasks(args.xquad_limit or None, langs).items() if k in args.sets.split(",")}
    r = {"model": args.model, "paths": args.paths.split(","), "machine": machine_info.machine(),
         "args": {k: str(v) for k, v in vars(args).items()}}
    r["results"] = run(r["paths"], args.model, sets, args.out, args.threads)
    r["loadavg_end"] = machine_info.loadavg()
    r["seconds"] = time.perf_counter() - t0
    (args.out / "results.json").write_text(json.dumps(r, indent=1))
    md = summary(r)
    (args.out / "summary.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

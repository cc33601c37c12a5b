"""Calibration on real queries: what build-time calibration predicted against what real queries get.

For every real set in ``../shared/data`` (XQuAD x->en, XQuAD-R, MS MARCO 5k with TREC-DL-2019 queries, DBpedia-
Entity 5k), nbits 2 and 4, top_k 10 and 100: the setting calibration chose, the recall@k against exhaustive search
over the same compressed index that calibration *predicted* (on its pseudo-queries), what the real queries got at
that setting against exhaustive search (mean over all queries and the worst language's mean) and against exact
MaxSim over the uncompressed vectors (for context), and the single-query p50 at that setting.

Token states are multilingual-e5-small's (``--dtype``, default auto as ``gingham eval``: bfloat16 on a CPU with
AMX or AVX-512 BF16, as this one), encoded once into ``gingham eval``'s embeddings cache (``--cache``, by content:
a ``gingham eval --out OUT`` run's ``OUT/embeddings`` is the same store), longest texts first. Queries: the
seeded sample ``gingham eval --limit-queries N`` takes, per language (``--per-language``), of which
``--measure-per-language`` (seeded) are measured; MS MARCO and DBpedia keep every judged query (43 and 40).

    python bench/bench_calibration_real.py --data ../shared/data --cache /work/calib-cache --encode-only
    python bench/bench_calibration_real.py --data ../shared/data --cache /work/calib-cache \
        --out docs/benchmarks/calibration-real --label after [--curves]

``--curves`` also records recall at every rung of the ladder, for the pseudo-queries (and ``--variants`` of their
(own share, perturbation cosine)) and for the real queries, up to the rung where each reaches ``--curve-stop``:
what a calibration rule would choose can then be read off without building again. Results go to
``OUT/results.json`` under ``--label`` (other labels in the file are kept); ``bench/plot_calibration_real.py``
writes the README's table and plot from it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

import gingham
from gingham.build.corpus import read_texts
from gingham.evaluation.data import Corpus, load_beir, load_xquad
from gingham.evaluation.embeddings import EmbeddingCache
from gingham.evaluation.timing import summarize, time_each
from gingham.search import calibration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import loadavg  # noqa: E402

MODEL = "multilingual-e5-small"
SETS = ("xquad", "xquad-r", "msmarco", "dbpedia", "xquad-r-en")


class _Progress:
    """The encoder, with its progress bar on (the cache calls encode_* without show_progress)."""

    def __init__(self, encoder):
        self.encoder = encoder

    def encode_queries(self, texts):
        return self.encoder.encode_queries(texts, show_progress=True)

    def encode_documents(self, texts):
        return self.encoder.encode_documents(texts, show_progress=True)


def tasks_of(name: str, data: Path, per_language: int):
    """The set's tasks (one per query language): same loaders, names and query sample as ``gingham eval``."""
    if name == "xquad":
        return load_xquad(data / "xquad-retrieval", "x-en", limit_queries=per_language)
    if name == "xquad-r":
        return load_xquad(data / "xquad-r", "xquad-r", limit_queries=per_language)
    if name == "xquad-r-en":  # X->en answer sentences: the 1,180 English sentences, questions in 11 languages
        ids, texts = read_texts(data / "xquad-r" / "corpus.en.jsonl", "corpus")
        en = Corpus("xquad-r-corpus.en", ids, texts)
        return [replace(t, corpus=en) for t in load_xquad(data / "xquad-r", "xquad-r", limit_queries=per_language)]
    folder = data / "agentset-subsets" / name
    return [load_beir(folder, name=name)]


def encode(name: str, data: Path, cache: EmbeddingCache, per_language: int, measure: int | None = None):
    """(corpus flat, lengths, [query arrays], [language per query]) of one set, from the cache or encoded;
    ``measure``: a seeded subset of that many of each language's encoded queries."""
    tasks = tasks_of(name, data, per_language)
    corpus = tasks[0].corpus
    print(f"{name}: {len(corpus.ids)} documents, {sum(len(t.query_ids) for t in tasks)} queries "
          f"({len(tasks)} language(s)); load {loadavg()}", flush=True)
    docs = cache.get(corpus.name, corpus.texts, "documents")
    queries, langs = [], []
    rng = np.random.default_rng(0)
    for t in tasks:
        enc = cache.get(f"queries-{t.name}", t.query_texts, "queries")
        keep = range(len(enc)) if measure is None or measure >= len(enc) else \
            sorted(rng.choice(len(enc), measure, replace=False))
        queries += [np.ascontiguousarray(enc.item(i), dtype=np.float32) for i in keep]
        langs += [t.language or name] * len(keep)
    print(f"  measuring {len(queries)} queries; {int(docs.offsets[-1])} document tokens ({docs.seconds:.0f} s"
          f"{', cached' if docs.cached else ''}), {sum(len(q) for q in queries)} query tokens", flush=True)
    return np.ascontiguousarray(docs.flat, dtype=np.float32), docs.lengths, queries, langs


@contextmanager
def pseudo_params(share: float, cosine: float):
    old = calibration.OWN_SHARE, calibration.PERTURB_COSINE
    calibration.OWN_SHARE, calibration.PERTURB_COSINE = share, cosine
    try:
        yield
    finally:
        calibration.OWN_SHARE, calibration.PERTURB_COSINE = old


def curve(ix, queries, truth, k: int, stop: float) -> list[dict]:
    """Recall@k against ``truth`` at each rung of the ladder, until a rung reaches ``stop``."""
    out = []
    for step in calibration.ladder(k):
        res = ix.search(list(queries), top_k=k, **step)
        r = float(calibration.recall_at_k(res.positions, truth, k).mean())
        out.append({**step, "recall": round(r, 4)})
        if r >= stop:
            break
    return out


def by_language(values: np.ndarray, langs: list[str]) -> dict[str, float]:
    la = np.array(langs)
    return {x: round(float(values[la == x].mean()), 4) for x in dict.fromkeys(langs)}


def measure_set(name, flat, lengths, queries, langs, args) -> list[dict]:
    kmax = max(args.top_k)
    t0 = time.perf_counter()
    exact = gingham.exact_search(queries, flat, min(kmax, len(lengths)), lengths=lengths).positions
    print(f"  exact MaxSim for {len(queries)} queries: {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for nb in args.nbits:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            ix = gingham.Index.create(Path(tmp) / "ix", flat, lengths=lengths, nbits=nb, show_progress=False)
            build_s = time.perf_counter() - t0
            record = ix.manifest["calibration"]
            k_all = min(kmax, ix.n_docs)
            truth = ix.search(queries, top_k=k_all, exhaustive=True).positions
            pseudo = calibration.pseudo_queries(ix, record.get("n_queries", calibration.N_QUERIES), record["seed"])
            pseudo_truth = ix.search(pseudo, top_k=k_all, exhaustive=True).positions
            for k in args.top_k:
                k_eff = min(k, ix.n_docs)
                chosen = dict(record["settings"].get(str(k), {}))
                measured = record["measured"].get(str(k), [])
                # the last rung measured is the chosen one (also where the cost cap or no rung reaching the
                # target stopped the walk)
                predicted = measured[-1]["recall"] if measured else None
                res = ix.search(queries, top_k=k_eff, **chosen)
                real = calibration.recall_at_k(res.positions, truth, k_eff)
                vs_exact = calibration.recall_at_k(res.positions, exact, k_eff)
                ceiling = calibration.recall_at_k(truth, exact, k_eff)
                lat = summarize(time_each(lambda q: ix.search(q, top_k=k_eff, **chosen), queries[:args.timed]))
                row = {"set": name, "nbits": nb, "top_k": k, "n_docs": ix.n_docs, "n_tokens": ix.n_tokens,
                       "n_queries": len(queries), "target": record["target"], "chosen": chosen,
                       "capped": str(k) in record.get("capped", []), "predicted": predicted,
                       "real": round(float(real.mean()), 4),
                       "real_by_language": by_language(real, langs),
                       "real_vs_exact": round(float(vs_exact.mean()), 4),
                       "ceiling_vs_exact": round(float(ceiling.mean()), 4),
                       "p50_ms": round(lat["p50_ms"], 2), "timed_queries": lat["n"],
                       "build_s": round(build_s, 1), "calibration": record}
                row["real_worst_language"] = min(row["real_by_language"].values())
                if args.curves:
                    stop = args.curve_stop
                    row["curves"] = {"real": curve(ix, queries, truth, k_eff, stop)}
                    for share, cosine in args.variants:
                        with pseudo_params(share, cosine):
                            pq = calibration.pseudo_queries(ix, calibration.N_QUERIES, record["seed"])
                        pt = ix.search(pq, top_k=k_all, exhaustive=True).positions
                        row["curves"][f"pseudo {share}/{cosine}"] = curve(ix, pq, pt, k_eff, stop)
                    row["curves"]["pseudo"] = curve(ix, pseudo, pseudo_truth, k_eff, stop)
                rows.append(row)
                print(f"  nbits {nb} top_k {k}: chose {chosen} (target {record['target']}), predicted "
                      f"{predicted}, real {row['real']:.4f} (worst language {row['real_worst_language']:.4f}), vs "
                      f"exact {row['real_vs_exact']:.4f} (ceiling {row['ceiling_vs_exact']:.4f}), p50 "
                      f"{row['p50_ms']:.1f} ms; build {build_s:.0f} s; load {loadavg()}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--cache", type=Path, required=True, help="embeddings cache folder (outside the repository)")
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    ap.add_argument("--per-language", type=int, default=100, help="seeded query sample per XQuAD language")
    ap.add_argument("--nbits", default="2,4")
    ap.add_argument("--top-k", default="10,100")
    ap.add_argument("--measure-per-language", type=int, default=None,
                    help="measure a seeded subset of this many of each language's encoded queries (default all)")
    ap.add_argument("--timed", type=int, default=50, help="queries timed one at a time for p50")
    ap.add_argument("--dtype", default="auto", help="the encoder's dtype (auto, as gingham eval: bfloat16 on a CPU "
                    "with AMX / AVX-512 BF16, else float32); the cache does not tell dtypes apart, so one per folder")
    ap.add_argument("--encode-only", action="store_true")
    ap.add_argument("--curves", action="store_true", help="recall at every rung (pseudo and real)")
    ap.add_argument("--curve-stop", type=float, default=0.995)
    ap.add_argument("--variants", default="", help="pseudo-query (share/cosine) pairs for --curves, e.g. 0.3/0.7")
    ap.add_argument("--out", type=Path, default=None, help="folder of results.json")
    ap.add_argument("--label", default="run", help="key of this run in results.json (e.g. before, after)")
    args = ap.parse_args()
    args.nbits = [int(x) for x in args.nbits.split(",")]
    args.top_k = [int(x) for x in args.top_k.split(",")]
    args.variants = [tuple(float(v) for v in p.split("/")) for p in args.variants.split(",") if p]

    def factory():
        from gingham.encoder import load_encoder

        return _Progress(load_encoder(MODEL, dtype=args.dtype))

    cache = EmbeddingCache(args.cache, MODEL, factory)
    rows, started = [], loadavg()
    for name in args.sets.split(","):
        flat, lengths, queries, langs = encode(name, args.data, cache, args.per_language,
                                            args.measure_per_language)
        if not args.encode_only:
            rows += measure_set(name, flat, lengths, queries, langs, args)
    if args.encode_only or args.out is None:
        return
    from machine_info import lscpu

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[args.label] = {"command": " ".join(sys.argv), "cpu": lscpu().get("model_name"), "cpus": os.cpu_count(),
                        "load_start": started, "load_end": loadavg(), "model": MODEL,
                        "per_language": args.per_language, "rows": rows}
    path.write_text(json.dumps(runs, indent=1, ensure_ascii=False))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

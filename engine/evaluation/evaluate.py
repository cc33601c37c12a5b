"""``gingham eval``: retrieval quality of Gingham indexes against exact MaxSim over the same encoder, per task
(one per query language in cross-lingual mode), with encodings cached in the output folder."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

import gingham
from gingham.kernels import warmup
from gingham.search.warm import compile_kernels

from .data import Task
from .embeddings import EmbeddingCache
from .metrics import DEFAULT_METRICS, evaluate, overlap_recall, ranked_lists
from .timing import environment, peak_rss_mb, summarize, time_each

log = logging.getLogger(__name__)


def measurable(metrics: Sequence[str], top_k: int, n_docs: int | None = None) -> list[str]:
    """The metrics a run of depth ``top_k`` measures: those without a cutoff, or with one of at most ``top_k``
    (an ``R@100`` or ``AP@100`` of a top-10 run would be computed over 10 results and mislabelled), or all of
    them when ``top_k`` reaches ``n_docs`` (every document is ranked)."""
    if n_docs is not None and top_k >= n_docs:
        return list(metrics)
    keep = []
    for m in metrics:
        cutoff = m.rsplit("@", 1)[1] if "@" in m else None
        if cutoff is None or not cutoff.isdigit() or int(cutoff) <= top_k:
            keep.append(m)
    return keep


def run_eval(tasks: Sequence[Task], out: str | Path, *, model: str = "multilingual-e5-small",
             nbits: Sequence[int] = (2, 4), top_k: int = 100, metrics: Sequence[str] = DEFAULT_METRICS,
             name: str | None = None, encoder_options: Mapping | None = None, encoder=None,
             search_settings: Mapping | None = None, plots: bool = True, keep_indexes: bool = False) -> dict:
    """Evaluate ``tasks`` with Gingham (one index per corpus and nbits) and exact MaxSim; write reports to ``out``.

    Engines: ``exact`` (brute-force MaxSim over the uncompressed vectors), ``gingham-nbitsN`` (the index's search at
    its default or ``search_settings``) and ``ceiling-nbitsN`` (exhaustive MaxSim over the index's decompressed
    vectors: what the codec alone keeps), so the search's loss (gingham − ceiling) and the codec's (ceiling −
    exact) are told apart. Metrics whose cutoff exceeds ``top_k`` (R@100 of a top-10 run) are not measured by the
    run, so they are left out, with a warning.

    ``encoder`` (an object with encode_queries / encode_documents) replaces loading ``model``; embeddings are
    cached in ``out/embeddings`` by content, so a second run (another nbits) reuses them.
    Returns {"tasks": {task: {"engines": {engine: {metric: value, "recall@10_vs_exact": ...}}}}, ...}.
    """
    if not tasks:
        raise ValueError("no tasks to evaluate")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def factory():
        if encoder is not None:
            return encoder
        from gingham.encoder import load_encoder

        return load_encoder(model, **dict(encoder_options or {}))

    measured = measurable(metrics, top_k, max(len(t.corpus.ids) for t in tasks))
    if not measured:
        raise ValueError(f"none of the metrics {list(metrics)} can be measured at top_k {top_k} (each needs a "
                         f"cutoff <= top_k); raise --top-k or choose metrics such as nDCG@{min(top_k, 10)}")
    skipped = [m for m in metrics if m not in measured]
    if skipped:
        log.warning("not reporting %s: their cutoff is beyond top_k %d, so the run does not measure them",
                    skipped, top_k)
    metrics = measured
    cache = EmbeddingCache(out / "embeddings", model, factory)
    compile_kernels()  # with a progress bar when numba's cache lacks them
    warmup()
    search_settings = dict(search_settings or {})
    engine_names = ["exact"] + [name for nb in nbits for name in (f"gingham-nbits{nb}", f"ceiling-nbits{nb}")]
    results: dict = {"kind": "eval", "name": name or tasks[0].corpus.name, "model": model, "top_k": top_k,
                     "metrics": list(metrics), "metrics_not_measured": skipped, "engine_names": engine_names,
                     "nbits": list(nbits),
                     "search_settings": search_settings, "tasks": {}, "timings": {}, "builds": {}}
    indexes: dict = {}
    corpora: dict = {}
    for task in tasks:
        c = task.corpus
        if c.name not in corpora:
            docs = cache.get(c.name, c.texts, "documents")
            corpora[c.name] = docs
            results["timings"][f"encode documents {c.name} (texts/s)"] = docs.stats()["texts_per_s"]
            results["timings"][f"encode documents {c.name} (s{', cached' if docs.cached else ''})"] = docs.seconds
            for nb in nbits:
                path = out / "indexes" / f"{c.name}-nbits{nb}"
                t0 = time.perf_counter()
                ix = gingham.Index.create(path, np.asarray(docs.flat), c.ids, lengths=docs.lengths, nbits=nb,
                                          overwrite=True, show_progress=False)
                build_s = time.perf_counter() - t0
                info = ix.info()
                results["builds"][f"{c.name}-nbits{nb}"] = {
                    "build_s": build_s, "n_docs": info["n_docs"], "n_tokens": info["n_tokens"],
                    "bytes_per_token": info["bytes_per_token_compressed"], "n_centroids": info["n_centroids"]}
                indexes[(c.name, nb)] = ix
        docs = corpora[c.name]
        k = min(top_k, len(c.ids))
        enc = cache.get(f"queries-{task.name}", task.query_texts, "queries")
        queries = enc.items()
        exact = gingham.exact_search(queries, np.asarray(docs.flat), k, lengths=docs.lengths, doc_ids=c.ids)
        row = {"n_queries": len(queries), "language": task.language, "corpus": c.name,
               "encode_queries": enc.stats(), "engines": {}}
        row["engines"]["exact"] = evaluate(task.qrels, ranked_lists(exact, task.query_ids), metrics)
        for nb in nbits:
            ix = indexes[(c.name, nb)]
            seconds = time_each(lambda q: ix.search(q, k, **search_settings), queries[:50])
            res = ix.search(queries, k, **search_settings)
            m = evaluate(task.qrels, ranked_lists(res, task.query_ids), metrics)
            m["recall@10_vs_exact"] = overlap_recall(res.positions, exact.positions, min(10, k))
            m["latency"] = summarize(seconds)
            row["engines"][f"gingham-nbits{nb}"] = m
            # the codec's ceiling: every document decompressed and scored exactly, no search loss
            ceiling = ix.search(queries, k, exhaustive=True)
            ceil = evaluate(task.qrels, ranked_lists(ceiling, task.query_ids), metrics)
            ceil["recall@10_vs_exact"] = overlap_recall(ceiling.positions, exact.positions, min(10, k))
            row["engines"][f"ceiling-nbits{nb}"] = ceil
        results["tasks"][task.name] = row
        log.info("%s: %s", task.name, {e: round(v[metrics[0]], 4) for e, v in row["engines"].items()})
    for nb in nbits:
        lat = [t["engines"][f"gingham-nbits{nb}"]["latency"]["p50_ms"] for t in results["tasks"].values()]
        results["timings"][f"gingham-nbits{nb} search p50 ms (median over tasks)"] = float(np.median(lat))
    qrate = [t["encode_queries"]["texts_per_s"] for t in results["tasks"].values() if t["encode_queries"]["texts_per_s"]]
    if qrate:
        results["timings"]["encode queries (texts/s, median over tasks)"] = float(np.median(qrate))
    results["timings"]["peak RSS MiB"] = peak_rss_mb()
    results["environment"] = environment()
    indexes.clear()
    if not keep_indexes:
        shutil.rmtree(out / "indexes", ignore_errors=True)
    from .report import write_eval_report

    write_eval_report(out, results, plots=plots)
    return results

"""``gingham bench``: build time, latency, throughput, memory and recall vs exact MaxSim, side by side with
exact brute force and optional peers (fast-plaid, PyLate's Voyager and PLAID, colbert-ai) over the same
embeddings, in one run.

``peer_settings``: the peers' search settings, one list for every peer taking its keys or a mapping peer → list
(default: each peer's own, e.g. four from n_ivf_probe 8 / n_full_scores 4096 down with ``do_sweep``, else the
first; see :mod:`.peers`)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence

import numba
import numpy as np

import gingham
from gingham.common.config import NBITS_ALLOWED
from gingham.kernels import warmup
from gingham.search.warm import compile_kernels

from . import peers as peers_mod
from .embeddings import EmbeddingCache, flatten
from .metrics import evaluate, overlap_recall
from .sweep import measure, pareto, select, sweep
from .timing import environment, peak_rss_mb, rss_mb, summarize, time_call, time_each

log = logging.getLogger(__name__)

CORPORA = ("easy", "hard")


def synthetic_data(n_docs: int, n_queries: int, seed: int = 0, corpus: str = "easy") -> dict:
    """The seeded synthetic data: ``corpus="easy"`` (:func:`~gingham.evaluation.synthetic.make_corpus`, well separated
    topics) or ``"hard"`` (:func:`~gingham.evaluation.synthetic.make_hard_corpus`, close neighbours, small score gaps)."""
    from gingham.evaluation import synthetic

    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")
    if corpus == "hard":
        c = synthetic.make_hard_corpus(n_docs, seed=seed)
        queries, targets = synthetic.make_hard_queries(c, n_queries, seed=seed + 1)
        name = f"synthetic-hard-{n_docs}"
    else:
        c = synthetic.make_corpus(n_docs, seed=seed)
        queries, targets = synthetic.make_queries(c, n_queries, seed=seed + 1)
        name = f"synthetic-{n_docs}"
    return {"name": name, "docs": c.docs(), "doc_ids": None, "queries": queries,
            "targets": targets, "qrels": None, "query_ids": None, "encoding": None}


def score_gap(scores: np.ndarray, k: int) -> dict | None:
    """How hard the data is at depth ``k``: the exact MaxSim gap between ranks ``k`` and ``k + 1``, per query,
    absolute (s_k - s_k+1) and relative to s_k; p10 / median / p90 over the queries. ``scores`` are exact
    scores best first with at least ``k + 1`` columns; None when there are not (fewer than k + 1 documents)."""
    if scores.shape[1] < k + 1:
        return None
    s = scores.astype(np.float64)
    ok = np.isfinite(s[:, k])
    gap, s_k = s[ok, k - 1] - s[ok, k], s[ok, k - 1]
    rel = gap / np.abs(s_k)

    def dist(x):
        p10, p50, p90 = np.percentile(x, [10, 50, 90]) if len(x) else (np.nan,) * 3
        return {"p10": float(p10), "median": float(p50), "p90": float(p90)}

    return {"k": k, "n_queries": int(ok.sum()), "gap": dist(gap), "relative_gap": dist(rel),
            "median_score_k": float(np.median(s_k)) if len(s_k) else None}


def beir_data(folder: Path, out: Path, model: str, limit_queries: int | None, limit_docs: int | None,
              encoder_options: Mapping | None = None, queries: str | None = None) -> dict:
    from .data import load_beir

    task = load_beir(folder, limit_queries=limit_queries, limit_docs=limit_docs, queries=queries)
    cache = EmbeddingCache(out / "embeddings", model, lambda: _load_encoder(model, encoder_options))
    docs = cache.get(task.corpus.name, task.corpus.texts, "documents")
    queries = cache.get(f"{task.name}-queries", task.query_texts, "queries")
    sample = task.query_texts[:20]
    single = time_each(lambda t: cache.encoder.encode_queries([t], show_progress=False), sample, warm=2)
    encoding = {"documents": docs.stats(), "queries": queries.stats(), "query_single": summarize(single)}
    return {"name": task.name, "docs": docs.items(), "doc_ids": task.corpus.ids, "queries": queries.items(),
            "targets": None, "qrels": task.qrels, "query_ids": task.query_ids, "encoding": encoding}


def _load_encoder(model: str, options: Mapping | None = None):
    from gingham.encoder import load_encoder

    return load_encoder(model, **dict(options or {}))


def _quality(data: dict, positions: np.ndarray, ids, exact_pos: np.ndarray, top_k: int) -> dict:
    q = {f"recall@{top_k}_vs_exact": overlap_recall(positions, exact_pos, top_k)}
    if data["targets"] is not None:
        q[f"target@{top_k}"] = float(np.mean([t in row for t, row in zip(data["targets"], positions)]))
        q["target@1"] = float(np.mean(positions[:, 0] == data["targets"]))
    if data["qrels"] is not None:
        run = {str(qid): [str(d) for d in row if d is not None] for qid, row in zip(data["query_ids"], ids)}
        q.update(evaluate(data["qrels"], run, ("nDCG@10", "RR@10", f"R@{top_k}")))
    return q


def _check_options(n_docs, n_queries, nbits, top_k, target_recall, beir, corpus) -> None:
    """Refuse bad options before the data is made and the ground truth computed (minutes on a large corpus)."""
    def positive(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")

    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {CORPORA}, got {corpus!r}")
    if beir is None:
        positive("n_docs (the synthetic corpus's documents)", n_docs)
        positive("n_queries (the synthetic queries)", n_queries)
    positive("top_k", top_k)
    nbits = list(nbits)
    if not nbits or any(nb not in NBITS_ALLOWED for nb in nbits):
        raise ValueError(f"nbits must be one or more of {NBITS_ALLOWED}, such as 2,4; got {nbits}")
    if target_recall is not None and (isinstance(target_recall, bool) or not 0 < target_recall <= 1):
        raise ValueError(f"target_recall must be in (0, 1], such as 0.95; got {target_recall!r}")


def run_bench(out: str | Path, *, n_docs: int = 5000, n_queries: int = 200, beir: str | Path | None = None,
              model: str = "multilingual-e5-small", encoder_options: Mapping | None = None,
              nbits: Sequence[int] = (2, 4), top_k: int = 10, do_sweep: bool = False,
              grid: Mapping | None = None, target_recall: float | None = 0.95, peers: Sequence[str] = (),
              peers_python: str | Path | Mapping[str, str | Path] | None = None, limit_queries: int | None = None,
              limit_docs: int | None = None, seed: int = 0, plots: bool = True, keep_indexes: bool = False,
              peer_settings: Sequence[Mapping] | Mapping[str, Sequence[Mapping]] | None = None,
              queries: str | None = None, corpus: str = "easy") -> dict:
    """Run the benchmark and write ``results.json``, ``summary.md`` and plots into ``out``; returns the results.

    Data: a seeded synthetic corpus (``corpus``: ``"easy"`` or ``"hard"``, see :func:`synthetic_data`) of
    ``n_docs`` documents and ``n_queries`` queries, or a BEIR folder
    (``beir``; ``queries`` names another query file of it, e.g. ``queries.de.jsonl``) encoded with ``model``
    (cached in ``out/embeddings``). Per nbits: build (seconds, tokens/s, peak
    RSS, bytes per token), single-query latency p50/p95/p99 and batch throughput at default settings, recall
    vs exact MaxSim over the uncompressed vectors; with ``do_sweep`` a settings sweep (latency–recall frontier)
    and, with ``target_recall``, the tuned settings. Peers run in their own Python (see :mod:`.peers`).
    """
    _check_options(n_docs, n_queries, nbits, top_k, target_recall, beir, corpus)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    compile_kernels()  # up front, with a progress bar, when numba's cache lacks them (not silently mid-run)
    t_start = time.perf_counter()
    data = (beir_data(Path(beir), out, model, limit_queries, limit_docs, encoder_options, queries) if beir is not None
            else synthetic_data(n_docs, n_queries, seed, corpus))
    docs, queries = data["docs"], data["queries"]
    flat, offsets = flatten(docs)
    lengths = np.diff(offsets)
    n_tokens = int(offsets[-1])
    k = min(top_k, len(docs))
    t0 = time.perf_counter()
    warmup()
    warmup_s = time.perf_counter() - t0
    results: dict = {"kind": "bench", "data": {"name": data["name"], "n_docs": len(docs), "n_tokens": n_tokens,
                                               "dim": int(flat.shape[1]), "n_queries": len(queries),
                                               "mean_query_tokens": float(np.mean([len(q) for q in queries]))},
                     "top_k": k, "environment": environment(), "warmup_s": warmup_s, "encoding": data["encoding"],
                     "engines": {}, "sweeps": {}, "tuning": {}, "peers_skipped": {}}
    engines = results["engines"]
    # exact brute force over the uncompressed vectors: the reference of every recall. The batch asks for one
    # more than k, for the rank k / k + 1 score gap (how hard the data is); every reference uses the first k.
    k_gap = k + 1 if k < len(docs) else k
    batch_s, exact_gap = time_call(lambda: gingham.exact_search(queries, flat, k_gap, lengths=lengths))
    results["data"]["score_gap"] = score_gap(exact_gap.scores, k)
    exact = replace(exact_gap, positions=exact_gap.positions[:, :k], scores=exact_gap.scores[:, :k],
                    ids=exact_gap.ids[:, :k])
    exact_single = time_each(lambda q: gingham.exact_search(q, flat, k, lengths=lengths), queries[:min(50, len(queries))])
    engines["exact"] = {"engine": "exact MaxSim (uncompressed)", "latency": summarize(exact_single),
                        "single_s": exact_single, "batch_s": batch_s, "qps": len(queries) / batch_s,
                        "bytes_per_token": 4.0 * flat.shape[1],
                        "quality": _quality(data, exact.positions, _ids(data, exact.positions), exact.positions, k),
                        "peak_rss_mb": peak_rss_mb()}
    build_inputs = _write_build_inputs(out / "indexes" / "inputs", flat, lengths, data["doc_ids"])
    for nb in nbits:
        path = out / "indexes" / f"gingham-nbits{nb}"
        built = build_in_child(build_inputs, path, nb, seed)
        build_s = built["build_s"]
        ix = gingham.Index.open(path)
        info = ix.info()
        m = measure(ix, queries, exact.positions, k)
        batch_s, res = time_call(lambda: ix.search(queries, k))
        name = f"gingham-nbits{nb}"
        engines[name] = {"engine": "gingham", "nbits": nb, "settings": ix.search_config(k).to_dict(),
                         "build_s": build_s, "build_tokens_per_s": n_tokens / build_s,
                         "build_peak_rss_mb": built["peak_rss_mb"],
                         "n_centroids": info["n_centroids"],
                         "bytes_per_token": info["bytes_per_token_compressed"],
                         "bytes_per_token_on_disk": info["bytes_per_token_on_disk"],
                         "latency": m["latency"], "single_s": m["seconds"], "batch_s": batch_s,
                         "qps": len(queries) / batch_s, "quality": _quality(data, res.positions, res.ids, exact.positions, k),
                         "peak_rss_mb": peak_rss_mb(), "rss_mb": rss_mb()}
        if do_sweep:
            rows = sweep(ix, queries, exact.positions, k, grid)
            results["sweeps"][name] = {"rows": rows, "pareto": pareto(rows)}
        if target_recall is not None and do_sweep:  # the sweep ran on every query: choose from its rows
            results["tuning"][name] = {**select(rows, target_recall), "top_k": k, "n_sample": len(queries),
                                       "reference": "exact MaxSim over the uncompressed vectors"}
        del ix
        if not keep_indexes:
            shutil.rmtree(path, ignore_errors=True)
    inputs = None  # the embeddings as .npy files, written once for every peer that can run
    for peer in peers:
        python = peers_mod.python_for(peer, peers_python)
        why = peers_mod.available(peer, python)
        if why:
            results["peers_skipped"][peer] = why
            log.warning("skipping peer %s: %s", peer, why)
            continue
        if inputs is None:
            inputs = peers_mod.write_inputs(out / "peers" / "inputs", docs, queries)
        settings = peers_mod.settings_for(peer, peer_settings, do_sweep)
        for nb in (nbits if peers_mod.USES_NBITS[peer] else (None,)):  # None: no nbits (float vectors), built once
            name = f"{peer}-nbits{nb}" if nb is not None else peer
            config = {"top_k": k, "settings": settings, "n_single": min(50, len(queries)),
                      "threads": numba.get_num_threads(),  # the peer's torch threads: Gingham's own count
                      **({"nbits": nb} if nb is not None else {})}
            try:
                rep = peers_mod.run(peer, python, inputs, config)
            except (RuntimeError, OSError, ValueError) as exc:
                results["peers_skipped"][name] = str(exc)
                continue
            rows = []
            for r in rep.pop("runs"):
                pos = np.asarray(r["positions"], dtype=np.int64)
                rows.append({"settings": r["settings"], "recall": overlap_recall(pos, exact.positions, k),
                             **summarize(r["single_s"]), "qps": len(queries) / r["batch_s"], "_pos": pos,
                             "_single": r["single_s"], "batch_s": r["batch_s"]})
            first = rows[0]
            engines[name] = {
                "engine": peer, **({"nbits": nb} if nb is not None else {}), "settings": first["settings"], **rep,
                "build_tokens_per_s": n_tokens / rep["build_s"],
                "latency": summarize(first["_single"]), "single_s": first["_single"], "batch_s": first["batch_s"],
                "qps": first["qps"], "quality": _quality(data, first["_pos"], _ids(data, first["_pos"]), exact.positions, k)}
            for r in rows:
                r.pop("_pos"), r.pop("_single")
            if do_sweep:
                results["sweeps"][name] = {"rows": rows, "pareto": pareto(rows)}
        for built in (d for d in inputs.iterdir() if d.is_dir()):  # this peer's indexes: free the disk
            shutil.rmtree(built, ignore_errors=True)
    if inputs is not None:
        shutil.rmtree(inputs, ignore_errors=True)
    shutil.rmtree(build_inputs, ignore_errors=True)
    results["ratios"] = ratios(engines)
    if do_sweep and target_recall is not None:
        results["at_target"] = at_target(results["sweeps"], target_recall)
    results["peak_rss_mb"] = peak_rss_mb()
    results["total_s"] = time.perf_counter() - t_start
    from .report import write_bench_report

    write_bench_report(out, results, plots=plots)
    return results


def _write_build_inputs(folder: Path, flat: np.ndarray, lengths: np.ndarray, doc_ids) -> Path:
    """The corpus as the files a build reads (tokens.npy, lengths.npy, ids.json), as peers get theirs."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "tokens.npy", np.ascontiguousarray(flat, dtype=np.float32))
    np.save(folder / "lengths.npy", np.asarray(lengths, dtype=np.int64))
    (folder / "ids.json").write_text(json.dumps(None if doc_ids is None else list(doc_ids)))
    return folder


def build_in_child(inputs: Path, path: Path, nbits: int, seed: int) -> dict:
    """Build Gingham's index in a fresh Python process from the files of :func:`_write_build_inputs`, as the peers
    build theirs: its peak RSS is the build's own (this process holds the exact engine's data), and its time
    excludes the interpreter's start. Returns ``build_s`` and ``peak_rss_mb``."""
    code = ("import json, sys, time, numpy as np, gingham\n"
            "from gingham.evaluation.timing import peak_rss_mb\n"
            "inputs, path, nbits, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])\n"
            "tokens = np.load(inputs + '/tokens.npy', mmap_mode='r')\n"
            "lengths = np.load(inputs + '/lengths.npy')\n"
            "ids = json.load(open(inputs + '/ids.json'))\n"
            "t0 = time.perf_counter()\n"
            "gingham.Index.create(path, tokens, ids, lengths=lengths, nbits=nbits, seed=seed, overwrite=True,\n"
            "                     show_progress=False)\n"
            "print(json.dumps({'build_s': time.perf_counter() - t0, 'peak_rss_mb': peak_rss_mb()}))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(inputs), str(path), str(nbits), str(seed)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the Gingham build failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ids(data: dict, positions: np.ndarray):
    if data["doc_ids"] is None:
        return positions
    ids = np.asarray(data["doc_ids"], dtype=object)
    return [[ids[p] if p >= 0 else None for p in row] for row in positions]


def at_target(sweeps: Mapping[str, Mapping], target_recall: float) -> dict:
    """Every engine at equal recall: the fastest swept setting (by single-query p50) whose recall vs exact reaches
    ``target_recall``, and Gingham's p50 against each peer's at that point (same nbits, and best of any nbits).
    """
    best = {name: select(s["rows"], target_recall) for name, s in sweeps.items()}
    engine = {name: name.rsplit("-nbits", 1)[0] for name in best}
    pairs = {}
    mine = {n: b for n, b in best.items() if engine[n] == "gingham" and b["met"]}
    fastest = min(mine, key=lambda n: mine[n]["p50_ms"], default=None)
    for peer_name, p in best.items():
        if engine[peer_name] == "gingham" or not p["met"]:
            continue
        same = peer_name.replace(engine[peer_name], "gingham", 1)
        for g in dict.fromkeys(x for x in (same, fastest) if x in mine):
            pairs[f"{g} vs {peer_name}"] = {"p50_ratio": mine[g]["p50_ms"] / p["p50_ms"],
                                           "gingham_p50_ms": mine[g]["p50_ms"], "peer_p50_ms": p["p50_ms"],
                                           "gingham_recall": mine[g]["recall"], "peer_recall": p["recall"]}
    return {"target_recall": target_recall, "engines": best, "pairs": pairs}


def ratios(engines: Mapping[str, Mapping]) -> dict:
    """Gingham against each other engine at the same nbits (and against exact): latency, throughput, build."""
    out = {}
    for name, g in engines.items():
        if g.get("engine") != "gingham":
            continue
        for other_name, o in engines.items():
            if other_name == name or o.get("nbits") not in (None, g["nbits"]):  # no nbits (exact, float): all
                continue
            if o.get("engine") == "gingham":
                continue
            r = {"p50_speedup": o["latency"]["p50_ms"] / g["latency"]["p50_ms"],
                 "p99_speedup": o["latency"]["p99_ms"] / g["latency"]["p99_ms"],
                 "qps_ratio": g["qps"] / o["qps"]}
            if "build_s" in o:
                r["build_speedup"] = o["build_s"] / g["build_s"]
            key = next(x for x in g["quality"] if x.startswith("recall@"))
            r["recall_diff"] = g["quality"][key] - o["quality"][key]
            out[f"{name} vs {other_name}"] = r
    return out

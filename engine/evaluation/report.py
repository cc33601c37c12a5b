"""Reports of a bench or eval run: ``results.json``, ``summary.md`` and PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, results: Mapping) -> None:
    path.write_text(json.dumps(_jsonable(results), indent=1))


def _f(x, nd=3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _env_lines(env: Mapping) -> list[str]:
    v = env.get("versions", {})
    return [f"- CPU: {env.get('cpu_model')} ({env.get('cpu_affinity') or env.get('cpu_count')} usable cores); "
            f"numba threads {env.get('numba_threads')}"
            + (f", torch threads {env['torch_threads']}" if "torch_threads" in env else ""),
            "- versions: " + ", ".join(f"{k} {x}" for k, x in v.items() if x)]


# ------------------------------------------------------------------------------------------------ bench
def bench_markdown(r: Mapping) -> str:
    d, k = r["data"], r["top_k"]
    md = [f"# Gingham bench — {d['name']}", "",
          f"{d['n_docs']} documents, {d['n_tokens']} tokens (dim {d['dim']}), {d['n_queries']} queries "
          f"(mean {d['mean_query_tokens']:.1f} tokens), top_k={k}. Kernels warmed up ({r['warmup_s']:.1f} s, "
          "excluded) and 3 warm queries run before timing. Latency: one query at a time; throughput: one batch "
          "call over all queries. Peak RSS is the process high-water mark after that engine's phase (peers: "
          "their own process); build peak RSS is the building process's own (Gingham and peers alike build in a "
          "fresh process from the embeddings on disk). Bytes/token: the compressed tokens; on disk: the whole "
          "index directory.", ""]
    md += _env_lines(r["environment"]) + [""]
    gap = d.get("score_gap")
    if gap:
        g, rel = gap["gap"], gap["relative_gap"]
        md += [f"How hard: exact MaxSim gap between ranks {gap['k']} and {gap['k'] + 1} over {gap['n_queries']} "
               f"queries, s{gap['k']} - s{gap['k'] + 1}: median {g['median']:.4g} (p10 {g['p10']:.4g}, "
               f"p90 {g['p90']:.4g}); relative to s{gap['k']} (median {gap['median_score_k']:.4g}): median "
               f"{rel['median']:.3%} (p10 {rel['p10']:.3%}, p90 {rel['p90']:.3%}). The smaller, the more a "
               "compressed score's error reorders the top k.", ""]
    rows = []
    for name, e in r["engines"].items():
        q = e["quality"]
        lat = e["latency"]
        rows.append([name, e.get("nbits", "–"), lat["p50_ms"], lat["p95_ms"], lat["p99_ms"], e["qps"],
                     q.get(f"recall@{k}_vs_exact"), q.get(f"target@{k}", q.get("nDCG@10")),
                     e.get("build_s"), e.get("build_tokens_per_s"), e.get("bytes_per_token"),
                     e.get("bytes_per_token_on_disk"), e.get("build_peak_rss_mb"), e.get("peak_rss_mb")])
    qual = "target@k" if any("target@" in x for e in r["engines"].values() for x in e["quality"]) else "nDCG@10"
    md += ["## Engines at default settings", "",
           table(["engine", "nbits", "p50 ms", "p95 ms", "p99 ms", "queries/s (batch)", f"recall@{k} vs exact",
                  qual, "build s", "build tokens/s", "bytes/token", "bytes/token on disk", "build peak RSS MiB",
                  "peak RSS MiB"], rows), ""]
    if r.get("encoding"):
        enc = r["encoding"]
        md += ["## Encoding (timed separately from search)", "",
               table(["what", "texts", "tokens", "seconds", "texts/s", "tokens/s", "cached"],
                     [[w, enc[w]["n_texts"], enc[w]["n_tokens"], enc[w]["seconds"], enc[w]["texts_per_s"],
                       enc[w]["tokens_per_s"], enc[w]["cached"]] for w in ("documents", "queries")]),
               "", f"Single-query encoding: p50 {enc['query_single']['p50_ms']:.1f} ms, "
                   f"p95 {enc['query_single']['p95_ms']:.1f} ms (n={enc['query_single']['n']}).", ""]
    if r.get("ratios"):
        md += ["## Ratios (speed-up > 1: Gingham faster)", "",
               table(["pair", "p50 speed-up", "p99 speed-up", "qps ratio", "build speed-up", "recall diff"],
                     [[p, x["p50_speedup"], x["p99_speedup"], x["qps_ratio"], x.get("build_speedup"), x["recall_diff"]]
                      for p, x in r["ratios"].items()]), ""]
    if r.get("at_target"):
        at = r["at_target"]
        md += [f"## At equal recall: fastest setting with recall@{k} vs exact ≥ {at['target_recall']}", "",
               table(["engine", "met", "settings", f"recall@{k}", "p50 ms"],
                     [[n, "yes" if b["met"] else "NO (most accurate shown)", json.dumps(b["settings"]), b["recall"],
                       b["p50_ms"]] for n, b in at["engines"].items()]), ""]
        if at["pairs"]:
            md += [table(["pair", "Gingham p50 / peer p50", "Gingham p50 ms", "peer p50 ms", "Gingham recall",
                          "peer recall"],
                         [[p, x["p50_ratio"], x["gingham_p50_ms"], x["peer_p50_ms"], x["gingham_recall"],
                           x["peer_recall"]] for p, x in at["pairs"].items()]), ""]
    for name, s in r.get("sweeps", {}).items():
        md += [f"## Latency–recall frontier: {name}", "",
               table(["settings", f"recall@{k}", "p50 ms", "p95 ms"],
                     [[json.dumps(p["settings"]), p["recall"], p["p50_ms"], p["p95_ms"]] for p in s["pareto"]]), ""]
    for name, t in r.get("tuning", {}).items():
        md += [f"## Tuned settings: {name}", "",
               f"Target recall@{t['top_k']} ≥ {t['target_recall']} vs {t['reference']} on {t['n_sample']} "
               f"queries: {'met' if t['met'] else 'NOT met'}, recall {t['recall']:.4f}, p50 {t['p50_ms']:.2f} ms.",
               "", f"`search_defaults = {json.dumps(t['settings'])}`", ""]
    for p, why in r.get("peers_skipped", {}).items():
        md += [f"- peer {p} skipped: {why}"]
    return "\n".join(md) + "\n"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(path: Path, r: Mapping) -> None:
    plt = _plt()
    k = r["top_k"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    # one colour per engine: its swept points, its Pareto line and its default-settings star
    colors = {name: f"C{i % 10}" for i, name in enumerate(list(r["engines"]) + [n for n in r.get("sweeps", {})
                                                                                 if n not in r["engines"]])}
    for name, s in r.get("sweeps", {}).items():
        color = colors[name]
        xs = [p["p50_ms"] for p in s["rows"]]
        ys = [p["recall"] for p in s["rows"]]
        ax.scatter(xs, ys, s=12, alpha=0.35, color=color)
        front = s["pareto"]
        ax.plot([p["p50_ms"] for p in front], [p["recall"] for p in front], "-o", ms=4, color=color,
                label=f"{name} (Pareto)")
    for name, e in r["engines"].items():
        ax.scatter([e["latency"]["p50_ms"]], [e["quality"][f"recall@{k}_vs_exact"]], marker="*", s=140,
                   color=colors[name], edgecolor="k", zorder=5, label=f"{name} default")
    ax.set_xscale("log")
    from matplotlib.ticker import LogLocator, ScalarFormatter

    # labels at 1, 2 and 5 of each decade: latencies often lie within one decade, where decade ticks give one label
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("single-query latency p50 (ms, log)")
    ax.set_ylabel(f"recall@{k} vs exact MaxSim")
    ax.set_title(f"Latency–recall frontier — {r['data']['name']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(path: Path, r: Mapping) -> None:
    plt = _plt()
    names = [n for n, e in r["engines"].items() if e.get("single_s")]
    data = [np.asarray(r["engines"][n]["single_s"]) * 1e3 for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 2))
    ax.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xscale("log")
    from matplotlib.ticker import LogLocator, ScalarFormatter

    # labels at 1, 2 and 5 of each decade: latencies often lie within one decade, where decade ticks give one label
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("single-query latency (ms, log); whiskers p1–p99")
    ax.set_title(f"Latency distribution at default settings — {r['data']['name']}")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_bench_report(out: Path, results: Mapping, plots: bool = True) -> None:
    out = Path(out)
    write_json(out / "results.json", results)
    (out / "summary.md").write_text(bench_markdown(results), encoding="utf-8")
    if plots:
        plot_latency(out / "latency.png", results)
        if results.get("sweeps"):
            plot_frontier(out / "frontier.png", results)


# ------------------------------------------------------------------------------------------------ eval
def eval_markdown(r: Mapping) -> str:
    metrics, engines = r["metrics"], r["engine_names"]
    md = [f"# Gingham eval — {r['name']}", "",
          f"Encoder {r['model']}; top_k {r['top_k']}; metrics through ir-measures (trec_eval semantics). "
          f"`exact` is brute-force MaxSim over the uncompressed vectors of the same encoder; `gingham-nbitsN` the "
          f"index's search; `ceiling-nbitsN` exhaustive MaxSim over the index's decompressed vectors (the codec's "
          f"loss alone: gingham − ceiling is the search's). "
          f"`recall@10 vs exact` is the overlap of a top 10 with exact's top 10.", ""]
    if r.get("metrics_not_measured"):
        md += [f"Not reported: {', '.join(r['metrics_not_measured'])} (cutoff beyond top_k {r['top_k']}: this run "
               "does not measure them).", ""]
    md += _env_lines(r["environment"]) + [""]
    for m in metrics:
        header = ["task", "queries"] + engines + [f"Δ {e} − exact" for e in engines if e != "exact"]
        rows = []
        for task, t in r["tasks"].items():
            vals = [t["engines"][e][m] for e in engines]
            rows.append([task, t["n_queries"], *vals, *[t["engines"][e][m] - t["engines"]["exact"][m]
                                                        for e in engines if e != "exact"]])
        mean = [np.mean([t["engines"][e][m] for t in r["tasks"].values()]) for e in engines]
        rows.append(["**mean**", "", *mean, *[mv - mean[0] for e, mv in zip(engines, mean) if e != "exact"]])
        md += [f"## {m}", "", table(header, rows), ""]
    g = [e for e in engines if e != "exact"]
    md += ["## recall@10 vs exact MaxSim (cost of compression)", "",
           table(["task", *g], [[task, *[t["engines"][e]["recall@10_vs_exact"] for e in g]]
                                for task, t in r["tasks"].items()]), ""]
    md += ["## Timings", "", table(["what", "value"], [[k, v] for k, v in r["timings"].items()]), ""]
    return "\n".join(md) + "\n"


def plot_heatmap(path: Path, r: Mapping) -> None:
    """Task × engine per metric, coloured by the difference from exact MaxSim (a diverging scale centred on 0, the
    same for every panel, so the engine-vs-exact differences that are the point show, not language difficulty).
    The exact column shows exact's values uncoloured; each cell prints its value and its difference."""
    plt = _plt()
    metrics, engines = r["metrics"], r["engine_names"]
    others = [e for e in engines if e != "exact"]
    tasks = list(r["tasks"])
    deltas = {m: np.array([[r["tasks"][t]["engines"][e][m] - r["tasks"][t]["engines"]["exact"][m] for e in others]
                           for t in tasks], dtype=float) for m in metrics}
    span = max([float(np.nanmax(np.abs(d))) for d in deltas.values() if d.size] + [0.005])
    cmap = plt.get_cmap("RdBu").copy()
    cmap.set_bad("#eeeeee")
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.8 + 1.25 * len(engines) * len(metrics),
                                                       1.6 + 0.34 * len(tasks)), squeeze=False, sharey=True,
                             layout="constrained")
    im = None
    for col, (ax, m) in enumerate(zip(axes[0], metrics)):
        exact = np.array([[r["tasks"][t]["engines"]["exact"][m]] for t in tasks], dtype=float)
        grid = np.hstack([np.full_like(exact, np.nan), deltas[m]])
        im = ax.imshow(np.ma.masked_invalid(grid), vmin=-span, vmax=span, cmap=cmap, aspect="auto")
        ax.set_xticks(range(len(engines)), ["exact"] + others, rotation=35, ha="right", fontsize=8)
        if col == 0:
            ax.set_yticks(range(len(tasks)), tasks, fontsize=8)
        for i in range(len(tasks)):
            ax.text(0, i, f"{exact[i, 0]:.3f}", ha="center", va="center", fontsize=7, color="k")
            for j, e in enumerate(others, start=1):
                d = grid[i, j]
                strong = abs(d) > 0.6 * span
                ax.text(j, i, f"{r['tasks'][tasks[i]]['engines'][e][m]:.3f}\n{d:+.3f}", ha="center", va="center",
                        fontsize=6, color="w" if strong else "k")
        ax.set_title(m, fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, pad=0.01, label="engine − exact").ax.tick_params(
            labelsize=7)
    fig.suptitle(f"{r['name']}: each engine against exact MaxSim (colour: difference; text: value and difference)",
                 fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_recall(path: Path, r: Mapping) -> None:
    """recall@10 against exact MaxSim's top 10, per task: the search at its settings and the codec's ceiling
    (exhaustive over the decompressed index), one bar each."""
    plt = _plt()
    engines = [e for e in r["engine_names"] if e != "exact"]
    tasks = list(r["tasks"])
    fig, ax = plt.subplots(figsize=(7.5, 1.4 + 0.28 * len(tasks) * len(engines) / 2), layout="constrained")
    height = 0.8 / len(engines)
    for j, e in enumerate(engines):
        vals = [r["tasks"][t]["engines"][e]["recall@10_vs_exact"] for t in tasks]
        ax.barh(np.arange(len(tasks)) + (j - (len(engines) - 1) / 2) * height, vals, height=height, label=e)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=8)
    ax.invert_yaxis()
    lo = min(r["tasks"][t]["engines"][e]["recall@10_vs_exact"] for t in tasks for e in engines)
    ax.set_xlim(max(0.0, min(0.9, lo - 0.02)), 1.0)
    ax.set_xlabel("recall@10 vs exact MaxSim's top 10")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{r['name']}: what the search and the codec keep of exact MaxSim's top 10", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_eval_report(out: Path, results: Mapping, plots: bool = True) -> None:
    out = Path(out)
    write_json(out / "results.json", results)
    (out / "summary.md").write_text(eval_markdown(results), encoding="utf-8")
    if plots:
        plot_heatmap(out / "heatmap.png", results)
        plot_recall(out / "recall.png", results)

"""Tables and plot of ``bench/bench_calibration_real.py``'s results.json: predicted vs real recall per set.

    python bench/plot_calibration_real.py docs/benchmarks/calibration-real

Prints one markdown table per label in results.json and writes ``predicted-vs-real.png`` beside it: per set, the
recall@k against exhaustive search that calibration predicted (x) and what real queries got (y) at the chosen
setting, for nbits 2 / 4 and top_k 10 / 100, one marker per label (before / after a change).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def setting(chosen: dict) -> str:
    if not chosen:
        return "PLAID's table"
    prune = "" if "centroid_score_threshold" in chosen else ", pruned"
    return f"probe {chosen['n_ivf_probe']}, {chosen['n_full_scores']:,}{prune}"


def table(run: dict) -> str:
    lines = ["| set | nbits | top_k | target | chosen | predicted | real | real, worst language | real vs exact "
             "| ceiling vs exact | p50 ms |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in run["rows"]:
        worst = min(r["real_by_language"], key=r["real_by_language"].get)
        vals = r["real_by_language"].values()
        worst_s = "—" if len(vals) < 2 else f"{min(vals):.3f} ({'all' if min(vals) == max(vals) else worst})"
        mark = "" if r["real"] >= 0.95 else " **<0.95**"
        lines.append(f"| {r['set']} | {r['nbits']} | {r['top_k']} | {r['target']} | {setting(r['chosen'])}"
                     f"{' (capped)' if r['capped'] else ''} | {r['predicted']:.3f} | {r['real']:.3f}{mark} | "
                     f"{worst_s} | {r['real_vs_exact']:.3f} | {r['ceiling_vs_exact']:.3f} | {r['p50_ms']:.1f} |")
    return "\n".join(lines)


def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(r["set"] for run in runs.values() for r in run["rows"]))
    fig, axes = plt.subplots(1, len(sets), figsize=(max(9.0, 4.2 * len(sets)), 5.2), squeeze=False)
    colours = {(2, 10): "tab:blue", (2, 100): "tab:orange", (4, 10): "tab:green", (4, 100): "tab:red"}
    markers = dict(zip(runs, "o^sD"))
    for ax, name in zip(axes[0], sets):
        lo = 1.0
        for label, run in runs.items():
            for r in run["rows"]:
                if r["set"] != name:
                    continue
                lo = min(lo, r["predicted"], r["real_worst_language"])
                colour = colours.get((r["nbits"], r["top_k"]), "grey")
                ax.scatter(r["predicted"], r["real"], marker=markers[label], color=colour, s=46, alpha=0.8,
                           label=f"{label}: nbits {r['nbits']}, top {r['top_k']}")
                if len(r["real_by_language"]) > 1:  # the languages' spread: worst to best
                    vals = list(r["real_by_language"].values())
                    ax.vlines(r["predicted"], min(vals), max(vals), color=colour, alpha=0.35, lw=1.5)
        lo = max(0.0, min(lo, 0.94) - 0.01)
        ax.plot([lo, 1.0], [lo, 1.0], color="grey", lw=0.8, ls=":", label="real = predicted")
        ax.axhline(0.95, color="black", lw=0.8, ls="--", label="0.95")
        ax.set_xlim(lo, 1.002)
        ax.set_ylim(lo, 1.002)
        ax.set_title(name)
        ax.set_xlabel("predicted recall@k vs exhaustive (pseudo-queries)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("real queries' recall@k vs exhaustive\n(bar: worst to best language)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    for ax in axes[0][1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(seen.values(), seen.keys(), loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle("Calibration's predicted recall vs real queries' at the chosen setting (e5 token states)", y=0.99)
    fig.tight_layout(rect=(0, 0.16, 1, 0.95))
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    args = ap.parse_args()
    runs = json.loads((args.folder / "results.json").read_text())
    for label, run in runs.items():
        commands = "\n    ".join(run.get("commands", [run.get("command", "")]))
        print(f"### {label}\n\n    {commands}\n\nload {run['load_start']} -> {run['load_end']}, "
              f"{run['cpu']}\n\n{table(run)}\n")
    plot(runs, args.folder / "predicted-vs-real.png")


if __name__ == "__main__":
    main()

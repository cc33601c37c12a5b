"""Plot bench_first_result.py's records side by side: seconds until a new process answers, per way in (a/b/c),
warm and cold numba cache, one bar per record.

    python bench/plot_first_result.py docs/benchmarks/first-result/first-result.png RECORD.json [RECORD.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

WAYS = [("(a) Python: import, open,\nfirst search (process)", lambda m: [m["python_process_s"]]),
        ("(b) `gingham search`\n(2 text queries)", lambda m: [m["cli_process_s"]]),
        ("(c) `gingham serve`: ready +\nfirst HTTP text search", lambda m: [m["http_ready_s"], m["http_first_search_s"]])]
TARGETS = {0: 1.0, 1: 5.0, 2: None}


def main() -> None:
    out, paths = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    records = [json.loads(p.read_text()) for p in paths]
    modes = ["warm", "cold"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    width = 0.8 / len(records)
    for ax, mode in zip(axes, modes):
        for r, rec in enumerate(records):
            m = rec["modes"][mode]
            med = [sum(s["median"] for s in fn(m)) for _, fn in WAYS]
            lo = [sum(s["min"] for s in fn(m)) for _, fn in WAYS]
            hi = [sum(s["max"] for s in fn(m)) for _, fn in WAYS]
            x = np.arange(len(WAYS)) + (r - (len(records) - 1) / 2) * width
            bars = ax.bar(x, med, width, yerr=[np.subtract(med, lo), np.subtract(hi, med)], capsize=3,
                          label=rec["label"])
            ax.bar_label(bars, labels=[f"{v:.1f}" for v in med], fontsize=8, padding=2)
        for i, target in TARGETS.items():
            if target and mode == "warm":
                ax.hlines(target, i - 0.45, i + 0.45, colors="k", linestyles="--", linewidth=1)
                ax.annotate(f"target {target:g} s", (i - 0.45, target), fontsize=8, ha="left", va="top")
        ax.set_xticks(np.arange(len(WAYS)), [w for w, _ in WAYS], fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"{mode} numba cache")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("seconds until the first answer (median, min–max; log scale)")
    axes[0].legend(fontsize=8, loc="upper left")
    rec = records[-1]
    fig.suptitle(f"Time to first result, fresh processes ({rec['cpu']}, {rec['cores']} cores)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()

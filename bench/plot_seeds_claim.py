"""The seeds' claim as a plot: LFM2-ColBERT-350M "as fast as models 2.3x smaller" (GTE-ModernColBERT-v1).

    python bench/plot_seeds_claim.py OUT.png RESULTS.json [RESULTS.json ...]

Each RESULTS.json is a ``bench/bench_encode_paths.py --what sweep`` result; every path in it is drawn (queries/s
and documents/s against batch size), labelled with the model and the path, so the fastest path of each model can
be drawn side by side with its float32 reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    out, files = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    header = ""
    for f in files:
        r = json.loads(f.read_text())
        ls = r["machine"]["lscpu"]
        threads = r["args"].get("threads") or r["machine"].get("torch_threads")
        header = (f"{ls.get('model_name')} ({ls.get('cpus')} CPUs; {', '.join(ls['flags_of_interest'])}), "
                  f"{threads} thread(s), load {r['machine']['loadavg'][0]:.1f}")
        for path, row in r["sweep"].items():
            style = "-" if "float32" not in path else ":"
            label = f"{r['model']} {path}"
            xs = [int(k) for k in row["queries_per_s"]]
            a.plot(xs, list(row["queries_per_s"].values()), style, marker="o", label=label)
            xd = [int(k) for k in row["documents_per_s"]]
            b.plot(xd, list(row["documents_per_s"].values()), style, marker="o", label=label)
            doc_len = row["doc_length"]
    a.set(xscale="log", yscale="log", xlabel="batch size (queries)", ylabel="queries/s", title="queries (32 tokens)")
    b.set(xscale="log", yscale="log", xlabel="batch size (documents)", ylabel="documents/s",
          title=f"documents ({doc_len} tokens)")
    for ax in (a, b):
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    a.legend(fontsize=7)
    fig.suptitle(f"LFM2-ColBERT-350M size vs GTE-ModernColBERT-v1 size, CPU: {header}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()

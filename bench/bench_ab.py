"""Same-run A/B of two Gingham installs (a refactor's "within noise" check): each figure is taken by fresh processes
of A and B in turn (A B A B ...), on the same index files and the same queries, and reported as A's and B's
medians and the median of the pair-by-pair ratios A/B with its spread.

    python bench/bench_ab.py --a-python .venv/bin/python --b-python /tmp/beforev/bin/python --rounds 5 \
        [--xquadr-corpus STEM --xquadr-queries STEM] --out docs/benchmarks/house-ab

Workloads (issue 28's list):
  hard-default   the hard synthetic corpus (close neighbours, Zipf topics, stop words), nbits 2, its calibrated
                 default settings: single-query p50 / p95 over the queries, one thread of work per query as a user
                 sends them;
  hard-probe4    the same index at n_ivf_probe 4, n_full_scores 4,096;
  hard-batch     every query in one call: queries/s;
  xquadr-default XQuAD-R's e5 token states (when their cache stems are given: NAME.npy + NAME.offsets.npy, as
                 ``gingham eval`` writes them), nbits 2, calibrated defaults: single-query p50;
  build-1m       Index.create over 1M stored tokens (nbits 2, calibration on): seconds.

The corpora are generated (or read) once by B (the baseline) and saved as .npy; each index is built once by B and
searched by both, so an index written by the old code is read by the new. Only APIs both installs have are used.
Needs the machine to itself: the load average is printed with every round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

PREPARE = r"""
import json, sys, numpy as np
from pathlib import Path
import gingham
work = Path(sys.argv[1]); opts = json.loads(sys.argv[2])
try:
    from gingham.synthetic import make_hard_corpus, make_hard_queries
except ImportError:
    from gingham.evaluation.synthetic import make_hard_corpus, make_hard_queries
corpus = make_hard_corpus(opts["hard_docs"], seed=0)
queries, _ = make_hard_queries(corpus, opts["queries"])
docs = corpus.docs()
np.save(work / "hard-q.npy", np.stack(queries).astype(np.float32))
gingham.Index.create(work / "hard-ix", docs, list(range(len(docs))), nbits=2)
rng = np.random.default_rng(1)
n_docs = opts["build_tokens"] // 125
blens = rng.integers(60, 190, n_docs)
x = rng.standard_normal((int(blens.sum()), 128)).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
np.save(work / "build.npy", x); np.save(work / "build.lengths.npy", blens)
if opts.get("xq_corpus"):
    c = np.load(opts["xq_corpus"] + ".npy"); o = np.load(opts["xq_corpus"] + ".offsets.npy")
    gingham.Index.create(work / "xq-ix", [c[o[i]:o[i + 1]] for i in range(len(o) - 1)], list(range(len(o) - 1)), nbits=2)
print("prepared")
"""

MEASURE = r"""
import json, sys, time, os, numpy as np
from pathlib import Path
import gingham
work = Path(sys.argv[1]); what = sys.argv[2]; opts = json.loads(sys.argv[3])
def single(ix, qs, **kw):
    ix.search(qs[0], 10, **kw)  # first call: open and warm, not timed
    t = []
    for q in qs:
        s = time.perf_counter(); ix.search(q, 10, **kw); t.append(time.perf_counter() - s)
    t = np.array(t) * 1e3
    return {"p50_ms": float(np.percentile(t, 50)), "p95_ms": float(np.percentile(t, 95))}
out = {}
if what.startswith("hard"):
    ix = gingham.Index.open(work / "hard-ix"); qs = list(np.load(work / "hard-q.npy"))
    if what == "hard-default":
        out = single(ix, qs)
    elif what == "hard-probe4":
        out = single(ix, qs, n_ivf_probe=4, n_full_scores=4096)
    else:
        ix.search(qs[:8], 10)
        s = time.perf_counter(); ix.search(qs, 10); out = {"queries_per_s": len(qs) / (time.perf_counter() - s)}
elif what == "xquadr-default":
    ix = gingham.Index.open(work / "xq-ix")
    q = np.load(opts["xq_queries"] + ".npy"); o = np.load(opts["xq_queries"] + ".offsets.npy")
    n = min(len(o) - 1, opts["queries"])
    out = single(ix, [q[o[i]:o[i + 1]] for i in range(n)])
elif what == "build-1m":
    x = np.load(work / "build.npy"); lens = np.load(work / "build.lengths.npy")
    offs = np.concatenate([[0], np.cumsum(lens)])
    docs = [x[offs[i]:offs[i + 1]] for i in range(len(lens))]
    import shutil; shutil.rmtree(work / "build-ix", ignore_errors=True)
    s = time.perf_counter(); gingham.Index.create(work / "build-ix", docs, list(range(len(docs))), nbits=2)
    out = {"build_s": time.perf_counter() - s}
print(json.dumps(out))
"""

MAIN_METRIC = {"hard-default": "p50_ms", "hard-probe4": "p50_ms", "hard-batch": "queries_per_s",
               "xquadr-default": "p50_ms", "build-1m": "build_s"}


def run(python: str, code: str, *args: str) -> str:
    proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True,
                          cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise SystemExit(f"{python} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a-python", required=True, help="Python of the install under test (A)")
    ap.add_argument("--b-python", required=True, help="Python of the baseline install (B)")
    ap.add_argument("--a-label", default="A")
    ap.add_argument("--b-label", default="B")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hard-docs", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--build-tokens", type=int, default=1_000_000)
    ap.add_argument("--xquadr-corpus", help="cache stem of XQuAD-R's corpus token states (without .npy)")
    ap.add_argument("--xquadr-queries", help="cache stem of XQuAD-R's query token states")
    ap.add_argument("--only", help="comma-separated workloads (default: all)")
    ap.add_argument("--work", type=Path, help="where the corpora and indexes go (kept; default a temp dir)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    opts = {"hard_docs": args.hard_docs, "queries": args.queries, "build_tokens": args.build_tokens,
            "xq_corpus": args.xquadr_corpus, "xq_queries": args.xquadr_queries}
    work = args.work or Path(tempfile.mkdtemp(prefix="gingham-ab-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "hard-ix").exists():
        print(f"preparing corpora and indexes with B in {work} ...", flush=True)
        run(args.b_python, PREPARE, str(work), json.dumps(opts))
    names = [n for n in MAIN_METRIC if n != "xquadr-default" or args.xquadr_corpus]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    results = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_before": os.getloadavg(), "workloads": {},
               "a": args.a_label, "b": args.b_label, "rounds": args.rounds}
    for name in names:
        metric = MAIN_METRIC[name]
        rows = []
        for r in range(args.rounds):
            a = json.loads(run(args.a_python, MEASURE, str(work), name, json.dumps(opts)))
            b = json.loads(run(args.b_python, MEASURE, str(work), name, json.dumps(opts)))
            rows.append({"a": a, "b": b, "ratio": a[metric] / b[metric], "load": os.getloadavg()[0]})
            print(f"{name} round {r}: A {a} B {b} ratio {rows[-1]['ratio']:.3f} load {rows[-1]['load']:.2f}",
                  flush=True)
        ratios = [row["ratio"] for row in rows]
        results["workloads"][name] = {
            "metric": metric, "a_median": statistics.median(row["a"][metric] for row in rows),
            "b_median": statistics.median(row["b"][metric] for row in rows), "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios), "rounds": rows}
    results["load_after"] = os.getloadavg()
    lines = [f"A = {args.a_label}, B = {args.b_label}; CPU {results['cpu']} ({results['cores']} cores); load "
             f"{results['load_before'][0]:.2f} -> {results['load_after'][0]:.2f}; {args.rounds} alternating rounds",
             "", "| workload | metric | A median | B median | A/B median [min–max] |", "|---|---|---|---|---|"]
    for name, w in results["workloads"].items():
        lines.append(f"| {name} | {w['metric']} | {w['a_median']:.2f} | {w['b_median']:.2f} | "
                     f"{w['ratio_median']:.3f} [{w['ratio_min']:.3f}–{w['ratio_max']:.3f}] |")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        (args.out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

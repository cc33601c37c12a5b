"""A/B of Index.search on fixed indexes: 'before' (6fc836e, imported through a PYTHONPATH shim over a worktree)
against 'after' (this checkout), alternating, two rounds; writes results.json and ab.png.

    python bench/bench_intra_query_threads_ab.py OUT SHIM_DIR      # SHIM_DIR/gingham -> the 'before' worktree's engine/ (kernels linked in)

The indexes and queries are those of docs/benchmarks/exact-stage-decode (bench/bench_exact_stage_decode_indexes.py
builds the synthetic ones; the XQuAD-R ones are `gingham eval ... --mode xquad-r` indexes with its embeddings cache).
"""
import json, os, subprocess, sys

OUT, SHIM = sys.argv[1], sys.argv[2]
os.makedirs(OUT, exist_ok=True)
PY = sys.executable
HERE = os.path.dirname(os.path.abspath(__file__))
B = "/work/bo"
cases = [
    ("hard corpus nbits 2 (dim 128), default", f"{B}/synth/hard-ix2", f"{B}/synth/hard-q.npy", {}),
    ("hard corpus nbits 2, probe 4 / 4,096", f"{B}/synth/hard-ix2", f"{B}/synth/hard-q.npy", {"n_ivf_probe": 4, "n_full_scores": 4096}),
    ("easy corpus nbits 2 (dim 128), default", f"{B}/synth/easy-ix2", f"{B}/synth/easy-q.npy", {}),
    ("easy corpus nbits 4, default", f"{B}/synth/easy-ix4", f"{B}/synth/easy-q.npy", {}),
    ("XQuAD-R nbits 2 (e5, dim 384), default", f"{B}/xqr-ix2", f"{B}/ev-xqr/embeddings/queries-zh-", {}),
    ("XQuAD-R nbits 2, 4,096 scored", f"{B}/xqr-ix2", f"{B}/ev-xqr/embeddings/queries-zh-", {"n_full_scores": 4096}),
    ("XQuAD-R nbits 4, default", f"{B}/xqr-ix4", f"{B}/ev-xqr/embeddings/queries-zh-", {}),
]
res = []
for name, ix, q, s in cases:
    row = {"case": name, "index": ix, "settings": s}
    for rnd in range(2):
        for tag in ("before", "after"):
            env = dict(os.environ)
            if tag == "before":
                env["PYTHONPATH"] = SHIM
            got = subprocess.run([PY, f"{HERE}/bench_intra_query_threads_ab_time.py", ix, q, json.dumps(s)], env=env, capture_output=True,
                                 text=True, cwd="/tmp")
            r = json.loads(got.stdout.strip().splitlines()[-1])
            row.setdefault(tag, []).append(r)
            print(name, tag, json.dumps(r), flush=True)
    res.append(row)
json.dump(res, open(f"{OUT}/results.json", "w"), indent=1)

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

med = lambda row, tag, key: float(np.median([r[key]["p50_ms"] if key != "batch_qps" else r[key] for r in row[tag]]))
fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
y = np.arange(len(res))
b = [med(r, "before", "single") for r in res]
a1 = [med(r, "after", "single_one_thread") for r in res]
a = [med(r, "after", "single") for r in res]
ax.barh(y + 0.27, b, 0.27, label="before (6fc836e)", color="#bbbbbb")
ax.barh(y, a1, 0.27, label="after, n_threads=1 (fused exact stage)", color="#9ec1e6")
ax.barh(y - 0.27, a, 0.27, label="after, default (query split over 2 threads)", color="#3b6ea8")
for i in range(len(res)):
    ax.text(max(a[i], b[i], a1[i]) + 0.4, y[i], f"{b[i]:.1f} -> {a[i]:.1f} ms ({a[i] / b[i]:.2f}x)", va="center", fontsize=8)
ax.set_yticks(y)
ax.set_yticklabels([r["case"] for r in res], fontsize=8)
ax.invert_yaxis()
ax.set_xlim(0, max(b) * 1.5)
ax.set_xlabel("single-query p50, ms (one query at a time; 200 synthetic or 100 XQuAD-R zh queries)")
ax.legend(loc="lower right", fontsize=8)
bq = [med(r, "before", "batch_qps") for r in res]
aq = [med(r, "after", "batch_qps") for r in res]
bx.barh(y + 0.2, bq, 0.4, label="before", color="#bbbbbb")
bx.barh(y - 0.2, aq, 0.4, label="after", color="#3b6ea8")
for i in range(len(res)):
    bx.text(max(aq[i], bq[i]) + 2, y[i], f"{aq[i] / bq[i]:.2f}x", va="center", fontsize=8)
bx.set_yticks(y)
bx.set_yticklabels([])
bx.invert_yaxis()
bx.set_xlim(0, max(bq + aq) * 1.25)
bx.set_xlabel("batch queries/s (one call, queries spread over 2 threads)")
bx.legend(loc="lower right", fontsize=8)
fig.suptitle("One query over two threads, fused exact stage: same indexes and queries, alone on a 2-core machine")
fig.tight_layout()
fig.savefig(f"{OUT}/ab.png", dpi=110)

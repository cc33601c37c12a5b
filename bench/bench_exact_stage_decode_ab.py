"""A/B of Index.search p50 on fixed indexes: 'before' (811d568 via a PYTHONPATH shim) vs 'after' (main), alternating,
two rounds; writes results.json and ab.png."""
import json, os, re, subprocess, sys
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
PY = "/work/main/.venv/bin/python"
cases = [
    ("hard corpus nbits 2 (dim 128), default", "/work/bo/synth/hard-ix2", "/work/bo/synth/hard-q.npy", {}),
    ("hard corpus nbits 2, probe 4 / 4,096", "/work/bo/synth/hard-ix2", "/work/bo/synth/hard-q.npy", {"n_ivf_probe": 4, "n_full_scores": 4096}),
    ("easy corpus nbits 2 (dim 128), default", "/work/bo/synth/easy-ix2", "/work/bo/synth/easy-q.npy", {}),
    ("easy corpus nbits 4, default", "/work/bo/synth/easy-ix4", "/work/bo/synth/easy-q.npy", {}),
    ("XQuAD-R nbits 2 (e5, dim 384), default", "/work/bo/xqr-ix2", "/work/bo/ev-xqr/embeddings/queries-zh-", {}),
    ("XQuAD-R nbits 2, 4,096 scored", "/work/bo/xqr-ix2", "/work/bo/ev-xqr/embeddings/queries-zh-", {"n_full_scores": 4096}),
    ("XQuAD-R nbits 4, default", "/work/bo/xqr-ix4", "/work/bo/ev-xqr/embeddings/queries-zh-", {}),
]
res = []
for name, ix, q, s in cases:
    row = {"case": name, "index": ix, "settings": s}
    for rnd in range(2):
        for tag in ("before", "after"):
            env = dict(os.environ)
            if tag == "before":
                env["PYTHONPATH"] = "/work/shim"
            out = subprocess.run([PY, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_exact_stage_decode_ab_time.py"), ix, q, json.dumps([s]), tag], env=env, capture_output=True, text=True).stdout
            m = re.search(r"p50 ([\d.]+) p95 ([\d.]+) p99 ([\d.]+) ms; load ([\d.]+)->([\d.]+)", out)
            row.setdefault(tag, []).append({"p50_ms": float(m[1]), "p95_ms": float(m[2]), "p99_ms": float(m[3]), "load": [float(m[4]), float(m[5])]})
            print(name, tag, m[0], flush=True)
    res.append(row)
json.dump(res, open(f"{OUT}/results.json", "w"), indent=1)
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt, numpy as np
fig, ax = plt.subplots(figsize=(10, 4.8))
y = np.arange(len(res))
b = [np.median([r["p50_ms"] for r in row["before"]]) for row in res]
a = [np.median([r["p50_ms"] for r in row["after"]]) for row in res]
ax.barh(y + 0.2, b, 0.4, label="before (811d568)", color="#bbbbbb")
ax.barh(y - 0.2, a, 0.4, label="after (exact-stage decode)", color="#3b6ea8")
for i in range(len(res)):
    ax.text(max(a[i], b[i]) + 0.5, y[i], f"{b[i]:.1f} -> {a[i]:.1f} ms ({a[i] / b[i]:.2f}x)", va="center", fontsize=8)
ax.set_yticks(y); ax.set_yticklabels([r["case"] for r in res], fontsize=8); ax.invert_yaxis()
ax.set_xlabel("single-query p50, ms (Index.search one query at a time; 200 synthetic or 100 XQuAD-R zh queries)")
ax.set_xlim(0, max(b) * 1.45)
ax.set_title("Exact stage: reused decode buffer + vectorised row decoder, same indexes and queries")
ax.legend(loc="lower right", fontsize=8)
fig.tight_layout(); fig.savefig(f"{OUT}/ab.png", dpi=110)

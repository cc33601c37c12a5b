"""Time Index.search on a built index with whatever gingham is importable (A/B: PYTHONPATH shim for 'before')."""
import json, os, sys, time
import numpy as np
import gingham
from gingham.kernels import warmup
IX, QF = sys.argv[1], sys.argv[2]
SETTINGS = json.loads(sys.argv[3]) if len(sys.argv) > 3 else [{}]
tag = sys.argv[4] if len(sys.argv) > 4 else ""
warmup()
if QF.endswith(".npy") and "embeddings" not in QF:
    queries = list(np.load(QF))
else:
    import glob
    f = [x for x in sorted(glob.glob(f"{QF}*.npy")) if not x.endswith(".offsets.npy")][0]
    qf, qo = np.load(f), np.load(f.replace(".npy", ".offsets.npy"))
    queries = [qf[qo[i]:qo[i + 1]] for i in range(len(qo) - 1)]
queries = queries[:200]
index = gingham.Index.open(IX)
for s in SETTINGS:
    for q in queries[:5]:
        index.search(q, top_k=10, **s)
    l0 = os.getloadavg()[0]
    ts = []
    for q in queries:
        t0 = time.perf_counter(); index.search(q, top_k=10, **s); ts.append(time.perf_counter() - t0)
    ts = np.array(ts) * 1e3
    print(f"{tag:6s} {os.path.basename(IX)} {json.dumps(s)}: p50 {np.median(ts):.2f} p95 {np.percentile(ts, 95):.2f} p99 {np.percentile(ts, 99):.2f} ms; load {l0:.2f}->{os.getloadavg()[0]:.2f}", flush=True)

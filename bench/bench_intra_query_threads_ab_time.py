"""Time Index.search on a built index with whatever gingham is importable (the A/B puts 'before' first on
PYTHONPATH through a shim). One JSON line: single-query p50/p95/p99 with the default threads, the same with
n_threads=1 where this gingham splits a query over threads, and a batch call's queries per second."""
import glob, inspect, json, os, sys, time

import numpy as np

import gingham
from gingham.kernels import warmup

IX, QF, S = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if QF.endswith(".npy"):
    queries = list(np.load(QF))
else:  # an embeddings cache of `gingham eval`: queries-<lang>-....npy with its .offsets.npy
    f = [x for x in sorted(glob.glob(f"{QF}*.npy")) if not x.endswith(".offsets.npy")][0]
    qf, qo = np.load(f), np.load(f.replace(".npy", ".offsets.npy"))
    queries = [qf[qo[i]:qo[i + 1]] for i in range(len(qo) - 1)]
queries = queries[:200]
warmup()
index = gingham.Index.open(IX)
splits = "n_threads" in inspect.signature(gingham.search.plaid.plaid_search).parameters


def one_at_a_time(**kw):
    for q in queries[:5]:
        index.search(q, top_k=10, **S, **kw)
    ts = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q, top_k=10, **S, **kw)
        ts.append(time.perf_counter() - t0)
    ts = np.array(ts) * 1e3
    return {"p50_ms": float(np.median(ts)), "p95_ms": float(np.percentile(ts, 95)), "p99_ms": float(np.percentile(ts, 99))}


out = {"load_start": os.getloadavg()[0], "n_queries": len(queries)}
out["single"] = one_at_a_time()
if splits:
    out["single_one_thread"] = one_at_a_time(n_threads=1)
index.search(queries[:20], top_k=10, **S)
t0 = time.perf_counter()
index.search(queries, top_k=10, **S)
out["batch_qps"] = len(queries) / (time.perf_counter() - t0)
out["load_end"] = os.getloadavg()[0]
print(json.dumps(out))

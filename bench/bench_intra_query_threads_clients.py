"""Concurrent single-query clients (as a server): total queries/s and per-query p50 with C client threads."""
import glob, os, sys, time, json
from concurrent.futures import ThreadPoolExecutor
import numpy as np
import gingham
from gingham.kernels import warmup
IX, QP = sys.argv[1], sys.argv[2]
f = [x for x in sorted(glob.glob(f"{QP}*.npy")) if not x.endswith(".offsets.npy")][0]
qf, qo = np.load(f), np.load(f.replace(".npy", ".offsets.npy"))
queries = [qf[qo[i]:qo[i + 1]] for i in range(len(qo) - 1)][:100]
warmup()
index = gingham.Index.open(IX)
for q in queries[:5]: index.search(q, top_k=10)
for clients in (1, 2, 4):
    lat = []
    def client(qs):
        for q in qs:
            t0 = time.perf_counter(); index.search(q, top_k=10); lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, [queries] * clients))
    wall = time.perf_counter() - t0
    print(f"{sys.argv[3]} clients {clients}: {clients * len(queries) / wall:.1f} q/s, p50 {np.median(lat) * 1e3:.2f} ms, p95 {np.percentile(lat, 95) * 1e3:.2f}; load {os.getloadavg()[0]:.2f}", flush=True)

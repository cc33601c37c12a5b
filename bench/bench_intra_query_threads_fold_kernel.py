"""The exact-stage kernel before and after the unit length was folded into its scores, alternating three times on
1,024 candidates, one thread (docs/benchmarks/intra-query-threads; the indexes and the old kernel's file are the
record's own paths)."""
import glob, sys, time, importlib.util
import numpy as np
import gingham
from gingham.kernels import scoring as new
spec = importlib.util.spec_from_file_location("old_scoring", "/work/bo/s25/scoring_before_fold.py")
old = importlib.util.module_from_spec(spec); spec.loader.exec_module(old)
for IX, QP in [("/work/bo/synth/easy-ix2", "/work/bo/synth/easy-q.npy"), ("/work/bo/synth/hard-ix2", "/work/bo/synth/hard-q.npy"), ("/work/bo/xqr-ix4", "/work/bo/ev-xqr/embeddings/queries-zh-"), ("/work/bo/xqr-ix2", "/work/bo/ev-xqr/embeddings/queries-zh-")]:
    if QP.endswith(".npy"):
        q = np.load(QP)[0]
    else:
        f = [x for x in sorted(glob.glob(f"{QP}*.npy")) if not x.endswith(".offsets.npy")][0]
        qf, qo = np.load(f), np.load(f.replace(".npy", ".offsets.npy")); q = qf[qo[0]:qo[1]]
    ix = gingham.Index.open(IX)._snap.segments[0].arrays
    docs = np.sort(np.random.default_rng(0).choice(len(ix.doc_offsets) - 1, 1024, replace=False)).astype(np.int64)
    args = (docs, ix.doc_offsets, ix.codes, ix.residuals, ix.fine, ix.scales, ix.lut, ix.normalize, np.ascontiguousarray(q, np.float32))
    a = old.maxsim_decompress(*args); b = new.maxsim_decompress(*args)
    res = {}
    for rnd in range(3):
        for name, fn in (("old", old.maxsim_decompress), ("new", new.maxsim_decompress)):
            ts = []
            for _ in range(15):
                t0 = time.perf_counter(); fn(*args); ts.append(time.perf_counter() - t0)
            res.setdefault(name, []).append(np.median(ts) * 1e3)
    print(IX.split('/')[-1], "normalize", ix.normalize, "maxdiff", float(np.abs(a - b).max()), {k: [round(x, 2) for x in v] for k, v in res.items()})

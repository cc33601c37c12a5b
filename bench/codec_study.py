"""Codec study: where does recall@10 vs exact go at nbits 2 and 4, and what would a richer codebook buy?

    python bench/codec_study.py 20000        # 20k docs, PLAID's default centroid count, 100 queries (~25 min)

Compares, by exhaustive MaxSim over reconstructed (decompressed) tokens against exact MaxSim over the originals:
the engine's codec as built (centroid + per-dimension buckets), a per-centroid residual scale, and 4 sub-centroids
per centroid (what the spare code bits of uint16 codes could hold), alone and combined. Numbers in issue 2's notes.
"""
import time, numpy as np, sys
import gingham
from gingham.synthetic import make_corpus, make_queries
from gingham.codec import ResidualCodec, train_centroids, assign, fit_buckets
from gingham.config import BuildConfig
n_docs = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
c = make_corpus(n_docs, seed=0)
qs, tg = make_queries(c, 100, seed=1)
X = c.tokens; N = len(X)
ex = gingham.exact_search(qs, X, top_k=10, lengths=c.lengths)
rng = np.random.default_rng(0)
def recon_eval(Xh, label):
    r = gingham.exact_search(qs, Xh, top_k=10, lengths=c.lengths)
    rec = np.mean([len(set(a[:10]) & set(b[:10]))/10 for a,b in zip(ex.positions, r.positions)])
    print(f"{label}: recall@10 {rec:.4f} mean err {np.linalg.norm(Xh - X, axis=1).mean():.4f}", flush=True)
K = BuildConfig().resolve_n_centroids(N)
samp = X[rng.choice(N, min(N, 40*K), replace=False)]
C = train_centroids(samp, K, 4, 0)
held = X[rng.choice(N, min(N, 65536), replace=False)]
def sub_kmeans(C, S, m, iters=8, seed=0):
    a = assign(S, C)
    r = np.random.default_rng(seed)
    K, d = C.shape
    # init: m random members per cluster (fallback: centroid + small jitter)
    order = np.argsort(a, kind="stable"); counts = np.bincount(a, minlength=K); starts = np.concatenate([[0], np.cumsum(counts)])
    F = np.repeat(C, m, axis=0).copy()
    for j in range(m):
        pick = starts[:-1] + (r.random(K) * np.maximum(counts,1)).astype(int)
        ok = counts > j
        F[np.arange(K)[ok]*m + j] = S[order[np.minimum(pick, starts[1:]-1)[ok]]]
    for _ in range(iters):
        cand = F.reshape(K, m, d)[a]  # (n, m, d)
        sub = np.einsum("nmd,nd->nm", cand, S).argmax(1)
        fid = a*m + sub
        sums = np.zeros_like(F, dtype=np.float64); np.add.at(sums, fid, S)
        cnt = np.bincount(fid, minlength=K*m)
        nz = cnt > 0
        F[nz] = sums[nz] / cnt[nz, None]
        F[nz] /= np.linalg.norm(F[nz], axis=1, keepdims=True)
    return F.astype(np.float32)
def hier_assign(X, C, F, m):
    a = assign(X, C)
    sub = np.einsum("nmd,nd->nm", F.reshape(len(C), m, -1)[a], X).argmax(1)
    return a*m + sub
def codec_eval(Cf, codes_fn, nb, label, scale=False):
    hc = codes_fn(held); R = held - Cf[hc]
    if scale:
        cnt = np.bincount(hc, minlength=len(Cf)); ss = np.bincount(hc, weights=(R**2).sum(1), minlength=len(Cf))
        glob = np.sqrt(ss.sum()/cnt.sum())
        s = np.where(cnt >= 8, np.sqrt(ss/np.maximum(cnt,1)), glob) / glob
        R = R / s[hc, None]
    cut, w = fit_buckets(R.astype(np.float64), nb, 12)
    codes = codes_fn(X); RX = X - Cf[codes]
    if scale: RX = RX / s[codes, None]
    b = np.stack([np.searchsorted(cut[d], RX[:, d], side="right") for d in range(X.shape[1])], 1)
    Rh = w[np.arange(X.shape[1])[None, :], b]
    if scale: Rh = Rh * s[codes, None]
    Xh = Cf[codes] + Rh
    Xh = (Xh / np.linalg.norm(Xh, axis=1, keepdims=True)).astype(np.float32)
    recon_eval(Xh, label)
for nb in [2]:
    codec_eval(C, lambda Z: assign(Z, C), nb, f"base K={K} nb={nb}")
    codec_eval(C, lambda Z: assign(Z, C), nb, f"base+scale K={K} nb={nb}", scale=True)
t = time.time(); F = sub_kmeans(C, samp, 4); print("sub-kmeans", time.time()-t)
for nb in [2]:
    codec_eval(F, lambda Z: hier_assign(Z, C, F, 4), nb, f"hier4 nb={nb}")
    codec_eval(F, lambda Z: hier_assign(Z, C, F, 4), nb, f"hier4+scale nb={nb}", scale=True)
codec_eval(C, lambda Z: assign(Z, C), 4, f"base K={K} nb=4")
codec_eval(C, lambda Z: assign(Z, C), 4, f"base+scale K={K} nb=4", scale=True)
codec_eval(F, lambda Z: hier_assign(Z, C, F, 4), 4, f"hier4+scale nb=4", scale=True)

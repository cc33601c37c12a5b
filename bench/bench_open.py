"""Cost of the structural checks every open runs (gingham.storage.consistency.check_structure).

Writes an index of ``--tokens`` tokens straight from synthetic arrays (random codes and residuals, real inverted
lists, a codebook with the sub-centroid table: structurally what a build writes, without training, so that 20M
tokens take a minute instead of hours on a small machine), then times ``Index.open`` with the checks and with
them replaced by a no-op, alternating, page cache warm. Reports medians, the checks' own time and the ratio.

    python bench/bench_open.py --tokens 2000000
    python bench/bench_open.py --tokens 20000000 --keep /tmp/open-20M   # reuse with --reuse

Timings on a shared machine are noisy: report ``/proc/loadavg`` with them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import gingham
from gingham.storage import commits, disk as storage
from gingham._version import __version__
from gingham.codec.stored import codes_dtype
from gingham.common.ids import DocIds
from gingham.kernels.ivf import build_ivf

BLOCK = 1 << 20


def write_index(root: Path, n_tokens: int, dim: int, nbits: int, n_centroids: int, doc_len: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_sub = 4
    n_codes = n_centroids * n_sub
    n_docs = max(1, n_tokens // doc_len)
    doc_offsets = np.linspace(0, n_tokens, n_docs + 1).astype(np.int64)
    codes = rng.integers(0, n_codes, n_tokens, dtype=np.int64).astype(codes_dtype(n_codes))
    ivf_docs, ivf_offsets = build_ivf(codes, 2, doc_offsets, n_centroids)
    centroids = rng.standard_normal((n_centroids, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    sub = np.repeat(centroids, n_sub, axis=0).astype(np.float16)
    cutoffs = np.sort(rng.standard_normal((dim, 2**nbits - 1)), axis=1).astype(np.float32) * 0.05
    weights = np.sort(rng.standard_normal((dim, 2**nbits)), axis=1).astype(np.float32) * 0.05
    ids = DocIds.from_user(None, n_docs)
    root.mkdir(parents=True)
    writer = storage.GenerationWriter(root, 1)
    for name, arr in {"centroids": centroids, "sub_centroids": sub, "bucket_cutoffs": cutoffs,
                      "bucket_weights": weights, "residual_scales": np.ones(n_codes, np.float32),
                      "s000001/codes": codes, "s000001/doc_offsets": doc_offsets, "s000001/ivf_docs": ivf_docs,
                      "s000001/ivf_offsets": ivf_offsets, "s000001/doc_ids": ids.arrays()["doc_ids"]}.items():
        writer.save(name, arr)
    n_bytes = dim * nbits // 8
    with writer.stream("s000001/residuals", (n_tokens, n_bytes), np.uint8) as out:
        for lo in range(0, n_tokens, BLOCK):
            out.write(rng.integers(0, 256, (min(BLOCK, n_tokens - lo), n_bytes), dtype=np.uint8))
    cfg = gingham.BuildConfig(nbits=nbits, n_centroids=n_centroids)
    writer.commit({
        "engine_version": __version__, "created": commits.now(), "build_config": cfg.to_dict(), "search_defaults": {},
        "dim": dim, "dtype": "float32", "nbits": nbits, "n_centroids": n_centroids,
        "codes_dtype": codes.dtype.name, "doc_id_kind": "int", "codec_mse": None, "normalized": True,
        "encoder": None, "next_segment": 2,
        "segments": [{"name": "s000001", "n_docs": n_docs, "n_tokens": n_tokens, "mse": None}],
    })


def time_open(root: Path, repeats: int) -> dict:
    real = commits.check_structure
    with_checks, without, checks_only = [], [], []
    manifest = storage.read_manifest(root)
    arrays = storage.load_arrays(root, manifest)
    for _ in range(repeats):
        t = time.perf_counter()
        gingham.Index.open(root)
        with_checks.append(time.perf_counter() - t)
        commits.check_structure = lambda *a: None
        try:
            t = time.perf_counter()
            gingham.Index.open(root)
            without.append(time.perf_counter() - t)
        finally:
            commits.check_structure = real
        t = time.perf_counter()
        real(root, manifest, arrays)
        checks_only.append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in
           {"open_with_checks_s": with_checks, "open_without_checks_s": without, "checks_s": checks_only}.items()}
    med["ratio_with_over_without"] = med["open_with_checks_s"] / med["open_without_checks_s"]
    med["checks_share_of_open"] = med["checks_s"] / med["open_with_checks_s"]
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--n-centroids", type=int, default=16_384)
    ap.add_argument("--doc-len", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="write the index here and keep it")
    ap.add_argument("--reuse", action="store_true", help="time the index already at --keep")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-open-")) / "ix"
    try:
        if not args.reuse:
            t = time.perf_counter()
            write_index(root, args.tokens, args.dim, args.nbits, args.n_centroids, args.doc_len, seed=0)
            print(f"wrote {args.tokens} tokens in {time.perf_counter() - t:.1f}s", flush=True)
        gingham.Index.open(root)  # page cache warm, kernels of the open path compiled
        m = storage.read_manifest(root)  # what is on disk (with --reuse, not the arguments)
        out = {"tokens": sum(s["n_tokens"] for s in m["segments"]), "dim": m["dim"], "nbits": m["nbits"],
               "n_centroids": m["n_centroids"], "sub_centroids": 4, **time_open(root, args.repeats),
               "loadavg": Path("/proc/loadavg").read_text().split()[:3]}
        print(json.dumps(out, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()

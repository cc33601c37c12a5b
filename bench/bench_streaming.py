"""Streaming build of a large synthetic corpus in bounded memory, then search it against exact MaxSim.

The corpus is generated block by block from a seed (it never sits in memory): the build reads it once, the exact
ground truth regenerates it block by block. Reports peak memory (sampled RSS, anonymous RSS and the kernel's
high-water mark), tokens/s, size on disk, search p50 latency and recall@10 against exact MaxSim over the original
float vectors.

    python bench/bench_streaming.py --tokens 2000000                      # ~20k docs
    nohup python bench/bench_streaming.py --tokens 20000000 > bench/out/streaming-20M.log 2>&1 &

Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

import gingham
from gingham.build.streaming import Batch, Source, build, memory_mb

BLOCK_DOCS = 500


def _normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


class SyntheticStream(Source):
    """gingham.evaluation.synthetic-like clustered tokens, generated block by block; block b depends only on (seed, b)."""

    def __init__(self, n_docs: int, dim: int = 128, mean_length: int = 100, n_topics: int = 1024,
                 vocab_size: int = 65_536, topic_spread: float = 0.5, context_noise: float = 0.25, seed: int = 0):
        self.n_docs, self.dim, self.mean_length, self.seed = n_docs, dim, mean_length, seed
        self.context_noise = context_noise
        rng = np.random.default_rng(seed)
        topics = _normalise(rng.standard_normal((n_topics, dim)).astype(np.float32))
        word_topic = np.sort(rng.integers(0, n_topics, vocab_size))
        self.words = _normalise(topics[word_topic] + topic_spread * _normalise(
            rng.standard_normal((vocab_size, dim)).astype(np.float32)))
        self.topic_start = np.searchsorted(word_topic, np.arange(n_topics + 1))
        self.n_topics = n_topics
        self.lengths = np.concatenate([self._lengths(b) for b in range(self.n_blocks)])
        self.n_tokens = int(self.lengths.sum())

    @property
    def n_blocks(self) -> int:
        return -(-self.n_docs // BLOCK_DOCS)

    def _rng(self, block: int, part: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, block, part])

    def _lengths(self, block: int) -> np.ndarray:
        n = min(BLOCK_DOCS, self.n_docs - block * BLOCK_DOCS)
        rng = self._rng(block, 0)
        lengths = rng.lognormal(np.log(self.mean_length) - 0.125, 0.5, n)
        return np.clip(lengths, 4, 8 * self.mean_length).astype(np.int64)

    def block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(flat float32 tokens, lengths) of block ``b``."""
        lengths = self.lengths[b * BLOCK_DOCS:b * BLOCK_DOCS + BLOCK_DOCS]
        rng = self._rng(b, 1)
        n, t = len(lengths), int(lengths.sum())
        doc_of = np.repeat(np.arange(n), lengths)
        doc_topics = rng.integers(0, self.n_topics, (n, 3))
        n_doc_topics = rng.integers(1, 4, n)
        pick = (rng.random(t) * n_doc_topics[doc_of]).astype(np.int64)
        topic = doc_topics[doc_of, pick]
        lo, hi = self.topic_start[topic], self.topic_start[topic + 1]
        size = np.maximum(hi - lo, 1)
        word = np.minimum(lo + (size * rng.random(t) ** 3).astype(np.int64), len(self.words) - 1)  # Zipf-like reuse
        noise = _normalise(rng.standard_normal((t, self.dim), dtype=np.float32))
        flat = self.words[word]
        flat += self.context_noise * noise
        return _normalise(flat), lengths

    def fingerprint(self) -> dict:
        return {"kind": "synthetic-stream", "n_docs": self.n_docs, "dim": self.dim, "seed": self.seed}

    def batches(self, start: int = 0):
        for b in range(self.n_blocks):
            ids = list(range(b * BLOCK_DOCS, min(self.n_docs, (b + 1) * BLOCK_DOCS)))
            if ids[-1] < start:
                yield Batch(ids, None, None)
                continue
            flat, lengths = self.block(b)
            yield Batch(ids, flat, lengths)

    def doc(self, i: int) -> np.ndarray:
        flat, lengths = self.block(i // BLOCK_DOCS)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        j = i % BLOCK_DOCS
        return flat[offsets[j]:offsets[j + 1]]


def make_queries(src: SyntheticStream, n: int, length: int = 32, noise: float = 0.35, seed: int = 1):
    rng = np.random.default_rng(seed)
    targets = np.sort(rng.choice(src.n_docs, n, replace=False))
    queries = []
    for t in targets:
        doc = src.doc(int(t))
        k = max(1, min(len(doc), length // 2))
        picked = doc[rng.choice(len(doc), k, replace=False)]
        q = np.concatenate([picked, picked[rng.integers(0, k, length - k)]])
        queries.append(_normalise((q + noise * _normalise(rng.standard_normal(q.shape))).astype(np.float32)))
    return queries, targets


def exact_topk(src: SyntheticStream, queries: list[np.ndarray], k: int = 10) -> np.ndarray:
    """Exact MaxSim top-k doc ids over the regenerated float vectors, block by block."""
    qs = np.concatenate(queries)
    q_of = np.repeat(np.arange(len(queries)), [len(q) for q in queries])
    best_ids = np.full((len(queries), 0), -1, np.int64)
    best_sc = np.full((len(queries), 0), -np.inf, np.float32)
    for b in range(src.n_blocks):
        flat, lengths = src.block(b)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        sims = flat @ qs.T  # (tokens, all query tokens)
        per_doc = np.maximum.reduceat(sims, offsets, axis=0)  # (docs, all query tokens)
        scores = np.zeros((len(queries), len(lengths)), np.float32)
        np.add.at(scores, q_of, per_doc.T)
        ids = np.arange(b * BLOCK_DOCS, b * BLOCK_DOCS + len(lengths))
        all_sc = np.concatenate([best_sc, scores], axis=1)
        all_id = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        order = np.argsort(-all_sc, axis=1, kind="stable")[:, :k]
        best_sc = np.take_along_axis(all_sc, order, 1)
        best_ids = np.take_along_axis(all_id, order, 1)
    return best_ids


class MemorySampler(threading.Thread):
    def __init__(self, every: float = 0.2):
        super().__init__(daemon=True)
        self.every, self.peak_rss, self.peak_anon = every, 0.0, 0.0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            m = memory_mb()
            self.peak_rss, self.peak_anon = max(self.peak_rss, m["rss"]), max(self.peak_anon, m["anon"])
            self.stop.wait(self.every)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=2_000_000, help="corpus size in tokens (docs = tokens / 100)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--n-centroids", type=int, default=None,
                    help="codebook size (default: PLAID's, 2^floor(log2(16 sqrt(tokens))): 65,536 at 20M tokens, "
                         "trained two-level and assigned through its coarse level)")
    ap.add_argument("--memory-budget-mb", type=float, default=512)
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--keep", action="store_true", help="keep the index")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("gingham").setLevel(logging.INFO)
    from gingham.kernels.warmup import warmup

    warmup()
    tag = f"{args.tokens / 1e6:g}M"
    src = SyntheticStream(args.tokens // 100, dim=args.dim)
    path = args.out / f"streaming-{tag}-index"
    shutil.rmtree(path, ignore_errors=True)
    base = memory_mb()
    load_start = round(os.getloadavg()[0], 2)
    sampler = MemorySampler()
    sampler.start()
    t0 = time.perf_counter()
    # the build's default last step, calibration, is timed on its own (the same call: Index.calibrate with the
    # build's seed); peak memory covers both
    index = build(path, src, memory_budget_mb=args.memory_budget_mb, nbits=args.nbits,
                  n_centroids=args.n_centroids, show_progress=False, calibrate=False)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    calibration = index.calibrate()
    calibration_s = time.perf_counter() - t1
    sampler.stop.set()
    sampler.join()
    after = memory_mb()
    state = index.manifest["build"]
    report = {
        "tokens": src.n_tokens, "docs": src.n_docs, "dim": args.dim, "nbits": args.nbits,
        "n_centroids": index.codec.n_centroids, "kmeans": "flat" if index.codec.coarse is None else "two-level",
        "memory_budget_mb": args.memory_budget_mb, "load_average_at_start": load_start,
        "chunk_tokens": state["chunk_tokens"], "sample_tokens": state["sample_tokens"], "chunks": state["chunks_done"],
        "build_s": round(build_s, 1), "calibration_s": round(calibration_s, 1),
        "calibration_truth": calibration.get("truth"), "calibrated_settings": calibration.get("settings"),
        "tokens_per_s": round(src.n_tokens / build_s),
        "docs_per_s": round(src.n_docs / build_s),
        "rss_before_build_mb": round(base["rss"]), "peak_rss_sampled_mb": round(sampler.peak_rss),
        "peak_anon_sampled_mb": round(sampler.peak_anon), "vm_hwm_mb": round(after["peak"]),
        "bytes_on_disk": dir_bytes(path), "bytes_per_token_on_disk": round(dir_bytes(path) / src.n_tokens, 2),
        "codebook_drift": round(index.codebook_drift(), 3),
    }
    print(json.dumps(report), flush=True)

    queries, _ = make_queries(src, args.queries)
    index = gingham.Index.open(path)
    index.search(queries[0], 10)
    settings = {"default": {}, "wide": {"n_ivf_probe": 4, "n_full_scores": 2048}}
    runs = {}
    for name, over in settings.items():
        lat, got = [], []
        for q in queries:
            t = time.perf_counter()
            got.append(index.search(q, 10, **over).ids[0])
            lat.append(time.perf_counter() - t)
        runs[name] = (lat, got)
    t = time.perf_counter()
    truth = exact_topk(src, queries)
    report["exact_s"] = round(time.perf_counter() - t, 1)
    for name, (lat, got) in runs.items():
        suffix = "" if name == "default" else f"_{name}"
        report[f"search_p50_ms{suffix}"] = round(1000 * float(np.median(lat)), 2)
        recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)])
        report[f"recall_at_10{suffix}"] = round(float(recall), 4)
    report["wide_settings"] = settings["wide"]
    report["queries"] = len(queries)
    report["host_cpus"] = os.cpu_count()
    report["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"streaming-{tag}.json").write_text(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(path, ignore_errors=True)
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)

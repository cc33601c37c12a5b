"""A streaming build's memory: the sizes its memory budget allows (:func:`plan`: the chunk compressed at a time,
the codebook's training sample), and a meter of the build's progress and of this process's memory."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

from gingham.common import progress
from gingham.common.config import BuildConfig

log = logging.getLogger(__name__)

#: Scratch memory of the centroid assignment (faiss's blocks, a copy of the centroids) plus slack.
FIXED_OVERHEAD_MB = 96


@dataclass(frozen=True)
class Plan:
    """Sizes derived from the memory budget (and recorded in the manifest so that a resume cuts the same chunks)."""

    chunk_tokens: int
    sample_tokens: int


def plan(dim: int, memory_budget_mb: float, cfg: BuildConfig, *, chunk_tokens: int | None = None,
         sample_tokens: int | None = None) -> Plan:
    """Half the budget (after fixed scratch) for the chunk being compressed (its float tokens, twice with the
    prefetched next chunk, plus codes and residuals), half for the codebook's training sample (plus k-means'
    copy)."""
    usable = (memory_budget_mb - FIXED_OVERHEAD_MB) * 2**20
    if usable <= 0:
        raise ValueError(f"memory_budget_mb={memory_budget_mb} is too small; allow at least {FIXED_OVERHEAD_MB + 32}")
    per_token_chunk = 2 * dim * 4 + dim * cfg.nbits // 8 + 16
    chunk = chunk_tokens or max(1, int(usable / 2 // per_token_chunk))
    sample = sample_tokens or max(1, int(usable / 2 // (2 * dim * 4)))
    return Plan(int(chunk), int(sample))


def training_config(cfg: BuildConfig, n_centroids: int, sample_cap: int) -> tuple[BuildConfig, int]:
    """The config the codebook is trained with (n_centroids and k-means sample made explicit) and how many of
    the first tokens it needs."""
    n_kmeans = cfg.kmeans_sample or n_centroids * cfg.kmeans_points_per_centroid
    n_kmeans = max(n_centroids, min(n_kmeans, sample_cap - cfg.codec_sample))
    if n_centroids > sample_cap:
        raise ValueError(
            f"the memory budget allows a training sample of {sample_cap} tokens, fewer than n_centroids="
            f"{n_centroids}; raise memory_budget_mb or lower n_centroids")
    return dataclasses.replace(cfg, n_centroids=n_centroids, kmeans_sample=n_kmeans), n_kmeans + cfg.codec_sample


def memory_mb() -> dict[str, float]:
    """This process's memory in MiB: ``rss`` (resident now), ``peak`` (high-water mark), ``anon`` (resident
    anonymous memory, i.e. without memory-mapped index files)."""
    out = {"rss": 0.0, "peak": 0.0, "anon": 0.0}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                name = {"VmRSS": "rss", "VmHWM": "peak", "RssAnon": "anon"}.get(key)
                if name:
                    out[name] = int(value.split()[0]) / 1024
    except OSError:  # not Linux
        import resource

        out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


class BuildMeter:
    """Progress of a build: a tqdm bar over tokens (ETA when the corpus size is known) with documents/s,
    tokens/s and memory, plus one INFO log line per chunk."""

    def __init__(self, total_tokens: int | None, show_progress, done_tokens: int = 0):
        self.bar = progress.bar(total_tokens, "build", show_progress, unit="tok")
        self.bar.update(done_tokens)
        self.start = time.perf_counter()
        self.docs = self.tokens = 0
        self.total = total_tokens
        self.done0 = done_tokens
        self.peak_anon = 0.0

    def chunk(self, n_docs: int, n_tokens: int, chunk_no: int) -> None:
        self.docs += n_docs
        self.tokens += n_tokens
        dt = max(time.perf_counter() - self.start, 1e-9)
        mem = memory_mb()
        self.peak_anon = max(self.peak_anon, mem["anon"])
        self.bar.update(n_tokens)
        self.bar.set_postfix(docs_s=f"{self.docs / dt:.0f}", rss_mb=f"{mem['rss']:.0f}", refresh=False)
        eta = ""
        if self.total:
            left = self.total - self.done0 - self.tokens
            eta = f", ETA {max(0.0, left) / (self.tokens / dt):.0f}s"
        log.info("build chunk %d: %d docs/s, %d tokens/s%s, RSS %.0f MiB (peak %.0f)", chunk_no, self.docs / dt,
                 self.tokens / dt, eta, mem["rss"], mem["peak"])

    def close(self) -> None:
        self.bar.close()

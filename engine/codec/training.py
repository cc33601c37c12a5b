"""Training a codec on a flat corpus of token vectors and compressing it in blocks: the steps that
:meth:`gingham.Index.create`, streaming builds and Ray compression tasks share.

Everything here takes ``flat`` (n_tokens, dim) float32, possibly memory-mapped, and reads it in blocks of
``batch_size`` tokens, so memory stays bounded by the block, not the corpus.
"""

from __future__ import annotations

import logging

import numpy as np

from gingham.codec.kmeans import train_centroids, two_level_kmeans
from gingham.codec.quantizers import residual_scales, spare_code_bits, train_sub_centroids, validation_rows
from gingham.codec.residual import ResidualCodec
from gingham.codec.stored import codes_dtype, stored_centroids
from gingham.common import progress
from gingham.common.config import DEFAULT_ASSIGN_NPROBE, BuildConfig
from gingham.kernels.codec import refine_codes

log = logging.getLogger(__name__)

#: Sub-centroids need at least this many training tokens each.
SUB_TOKENS_PER_CENTROID = 8
#: Lloyd iterations of the k-means inside each centroid's cluster.
SUB_KMEANS_NITERS = 8


def sample_positions(n_tokens: int, n_kmeans: int, n_codec: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint random token positions for k-means and for fitting the codec.

    When the corpus is too small for both, a fifth of it is held out from k-means (so that the held-out error,
    the baseline of :meth:`Index.codebook_drift`, is measured on tokens the codebook was not fitted to); only
    corpora under 64 tokens share their tokens between the two.
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_tokens)
    if n_tokens - n_kmeans >= min(n_codec, 1024):
        return np.sort(perm[:n_kmeans]), np.sort(perm[n_kmeans:n_kmeans + n_codec])
    if n_tokens < 64:
        return np.sort(perm[:n_kmeans]), np.sort(perm[:n_codec])
    n_hold = min(n_codec, n_tokens // 5)
    return np.sort(perm[n_hold:n_hold + n_kmeans]), np.sort(perm[:n_hold])


def reconstruction_mse(codec: ResidualCodec, flat: np.ndarray, codes: np.ndarray, residuals: np.ndarray,
                       sample: int = 65_536) -> float:
    """Mean squared error of the decompressed tokens against ``flat``, over ``sample`` evenly spaced tokens."""
    idx = np.linspace(0, len(flat) - 1, min(sample, len(flat))).astype(np.int64)
    approx = codec.decompress(codes[idx], residuals[idx])
    return float(np.mean((approx - flat[idx]) ** 2))


def train_codec(flat: np.ndarray, cfg: BuildConfig, show_progress) -> tuple[ResidualCodec, float, np.ndarray]:
    """Train centroids on a sample of ``flat``, assign every token of ``flat`` to them, estimate per-centroid
    residual scales from all of them, and fit the residual buckets on held-out tokens.

    Returns (codec, held-out MSE, centroid id of every token of ``flat``): a build compresses with those ids
    instead of assigning again, so the scales cost no extra pass; a streaming build passes its training sample.
    """
    n_tokens = flat.shape[0]
    k = cfg.resolve_n_centroids(n_tokens)
    n_kmeans = min(n_tokens, cfg.kmeans_sample or k * cfg.kmeans_points_per_centroid)
    km_pos, codec_pos = sample_positions(n_tokens, n_kmeans, cfg.codec_sample, cfg.seed)
    log.info("training %d centroids on %d of %d tokens", k, len(km_pos), n_tokens)
    coarse, nprobe = None, 0
    with progress.bar(1, "kmeans", show_progress) as bar:
        if cfg.kmeans_for(k) == "two-level":
            nprobe = cfg.assign_nprobe or DEFAULT_ASSIGN_NPROBE
            centroids, coarse = two_level_kmeans(flat[km_pos], k, cfg.kmeans_niters, cfg.seed, cfg.kmeans_refine,
                                                 assign_nprobe=nprobe)
            if len(coarse) >= len(centroids):  # too few centroids for a coarse level: flat after all
                coarse, nprobe = None, 0
            else:
                coarse = stored_centroids(coarse)  # stored as int8, like the centroids
        else:
            centroids = train_centroids(flat[km_pos], k, cfg.kmeans_niters, cfg.seed)
        centroids = stored_centroids(centroids)  # stored as int8: assign against what readers will hold
        bar.update(1)
    # the codec assigns every later token (adds, streaming chunks, Ray tasks) the way the build assigns these
    shell = ResidualCodec(centroids=centroids, cutoffs=np.zeros((1, 1), np.float32),
                          weights=np.zeros((1, 1), np.float32), nbits=cfg.nbits, coarse=coarse, assign_nprobe=nprobe)
    codes = assign_all(shell, flat, cfg.batch_size, show_progress)
    sub = None
    sub_bits = spare_code_bits(k) if cfg.sub_centroids else 0
    # sub-centroids from every token but the held-out ones (their error is the baseline of codebook drift)
    held_apart = n_tokens >= 64
    n_train = n_tokens - (len(codec_pos) if held_apart else 0)
    while sub_bits and n_train < SUB_TOKENS_PER_CENTROID * (k << sub_bits):
        sub_bits -= 1  # too few tokens to split every centroid this finely
    if sub_bits:
        with progress.bar(1, "sub-centroids", show_progress) as bar:
            sub = train_sub_centroids(flat, codes, centroids, 1 << sub_bits, SUB_KMEANS_NITERS, cfg.seed,
                                      exclude=codec_pos if held_apart else None, block=cfg.batch_size)
            codes = refine(sub, sub_bits, flat, codes, cfg.batch_size)
            bar.update(1)
    fine = centroids if sub is None else sub
    scales = residual_scales(flat, codes, fine)
    heldout = np.ascontiguousarray(flat[codec_pos])
    codec = ResidualCodec.fit(centroids, heldout, cfg.nbits, normalize=unit_vectors(flat), scales=scales,
                              heldout_codes=codes[codec_pos], sub_centroids=sub, coarse=coarse, assign_nprobe=nprobe,
                              product=cfg.product_residuals, seed=cfg.seed)
    if codec.codewords is not None:  # fitted on the rest: the baseline of codebook drift must be unseen tokens
        rows = validation_rows(len(heldout), cfg.seed)
        heldout, codec_pos = heldout[rows], codec_pos[rows]
    held_codes, residuals = codec.compress(heldout, codes[codec_pos])
    return codec, reconstruction_mse(codec, heldout, held_codes, residuals), codes


def refine(sub: np.ndarray, sub_bits: int, flat: np.ndarray, coarse: np.ndarray, batch_size: int) -> np.ndarray:
    """Codes with sub-centroids from centroid ids ``coarse``, in blocks of ``batch_size`` tokens."""
    codes = np.empty(len(coarse), dtype=codes_dtype(len(sub)))
    for lo in range(0, len(coarse), batch_size):
        hi = min(len(coarse), lo + batch_size)
        block = np.ascontiguousarray(flat[lo:hi], dtype=np.float32)
        codes[lo:hi] = refine_codes(block, coarse[lo:hi], sub, 1 << sub_bits)
    return codes


def assign_all(codec: ResidualCodec, flat: np.ndarray, batch_size: int, show_progress) -> np.ndarray:
    """Centroid id of every token (``codec.assign``: exact, or through its coarse level), in blocks of
    ``batch_size`` tokens. Returns the narrowest code dtype."""
    n_tokens = flat.shape[0]
    codes = np.empty(n_tokens, dtype=codes_dtype(codec.n_centroids))
    with progress.bar(n_tokens, "assign", show_progress, unit="tok") as bar:
        for lo in range(0, n_tokens, batch_size):
            hi = min(n_tokens, lo + batch_size)
            codes[lo:hi] = codec.assign(flat[lo:hi])
            bar.update(hi - lo)
    return codes


def unit_vectors(flat: np.ndarray, tol: float = 1e-3) -> bool:
    """Whether every token is a unit vector (as ColBERT encoders emit), checked in blocks."""
    for lo in range(0, len(flat), 1 << 20):
        norms = np.linalg.norm(flat[lo:lo + (1 << 20)], axis=1)
        if np.abs(norms - 1).max() > tol:
            return False
    return True


def compress_all(codec: ResidualCodec, flat: np.ndarray, batch_size: int, show_progress,
                 codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Codes and packed residuals of every token of ``flat``, in blocks; ``codes``: token codes if known."""
    n_tokens = flat.shape[0]
    known = codes
    codes = np.empty(n_tokens, dtype=codes_dtype(codec.n_codes))
    residuals = np.empty((n_tokens, codec.bytes_per_token), dtype=np.uint8)
    with progress.bar(n_tokens, "compress", show_progress, unit="tok") as bar:
        for lo in range(0, n_tokens, batch_size):
            hi = min(n_tokens, lo + batch_size)
            codes[lo:hi], residuals[lo:hi] = codec.compress(flat[lo:hi], None if known is None else known[lo:hi])
            bar.update(hi - lo)
    return codes, residuals

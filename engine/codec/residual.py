"""The codebook and the residual codec.

A token is stored as the id of its nearest centroid plus its residual (token - centroid) quantised to ``nbits``
per dimension. Bucket cutoffs and bucket values are fitted per dimension on held-out residuals: PLAID's quantile
buckets, refined by Lloyd-Max iterations to minimise the squared error.

When the integer type of the codes has bits to spare (16,384 centroids use 14 of a uint16's 16 bits), each
centroid is split into sub-centroids (at most 4) by a small k-means over its own sample tokens, and a token's code
is ``centroid << sub_bits | sub-centroid``. Candidate generation, inverted lists and centroid interaction use the
centroid (``code >> sub_bits``); the residual is taken from the sub-centroid, which is closer: the same bytes per
token hold a smaller residual.

Clusters differ in how far their tokens lie from the centroid, so each sub-centroid also carries a residual scale:
residuals are divided by it before bucketing and multiplied by it on decompression. The buckets then fit every
cluster's spread instead of the average one, at no cost per token (one float per centroid). Scales are estimated
from a sample of tokens, shrunk towards 1 for centroids with few of them.

**Product-quantised residuals** (the default from format 5). A byte of packed residuals holds ``8 // nbits``
dimensions. Read as a whole, the byte is an index into 256 values of those dimensions, and the per-dimension
buckets fill those 256 entries with a grid: every combination of each dimension's ``2**nbits`` values. A product
quantiser keeps the byte and the decoding (a table of 256 entries per byte position, which the kernels already read)
but places the 256 entries where the residuals are: k-means in each byte's sub-space, started from the grid,
so it is never worse than the grid on the residuals it is fitted on. The codewords table costs ``256 x dim`` int8
values (32 KiB at dim 128) plus a float16 scale per byte position. Measured (exhaustive recall@10 against exact
MaxSim, docs/benchmarks/pq-residuals): multilingual-e5-small token states on MS MARCO 5k 0.937 -> 0.958 at nbits 2
and 0.977 -> 0.984 at nbits 4, XQuAD x->en +1.9 to +2.3 points at nbits 2; the synthetic hard corpus (isotropic
residuals) 0.943 -> 0.944 at nbits 2 and 0.975 -> 0.982 at nbits 4.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from gingham.codec.assign import CoarseAssigner, assign, centroid_index
from gingham.kernels.codec import compress_residuals, decompress, refine_codes, sum_rows

log = logging.getLogger(__name__)

def codes_dtype(n_centroids: int) -> np.dtype:
    """The narrowest integer type that holds every centroid id."""
    if n_centroids <= 2**8:
        return np.dtype(np.uint8)
    if n_centroids <= 2**16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


#: Most sub-centroids per centroid (2 spare code bits).
MAX_SUB_BITS = 2
#: On-disk type of the sub-centroid table (and of centroids this version cannot store as int8: those of indexes
#: built before centroids were): half the bytes of float32, and the rounding error (~5e-4 of a unit vector's
#: length) is far below the residual quantisation's (~0.1). Training rounds them, so the build, every add and
#: every reader use the same vectors.
SUB_CENTROID_DTYPE = np.float16


def stored_precision(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as float32 rounded to :data:`SUB_CENTROID_DTYPE`, the values a reader gets back."""
    rounded = np.asarray(vectors, dtype=np.float32).astype(SUB_CENTROID_DTYPE)
    return np.ascontiguousarray(rounded, dtype=np.float32)


def compact(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` in :data:`SUB_CENTROID_DTYPE` when that is lossless (sub-centroids, coarse centroids and
    residual scales trained by this version, which rounds them), else as they are (older indexes' float32)."""
    half = vectors.astype(SUB_CENTROID_DTYPE)
    return half if np.array_equal(half.astype(np.float32), vectors) else vectors


def quantize_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``vectors`` as int8 (-127..127) times a per-row float16 scale: ``(q int8 (n, dim), scales float16
    (n,))``, read back by :func:`dequantize_rows`.

    How centroids are stored: a token's residual is measured from the centroid as stored, so the centroid's own
    rounding (at most half a step, ~1/254 of its largest component) moves no token's reconstruction; only centroid
    scores in candidate generation see it, and they are approximate anyway. 1 byte per component: at 16,384
    centroids, dim 128, 1.75 bytes per token of a 1.2M-token corpus against 3.5 as float16.

    Each scale is rounded *down* to float16, so every row's largest component quantises to exactly +-127 (clipped):
    quantising a dequantised row gives back the same ints and scale (tested), so a codebook survives any number of
    store/load round trips bit for bit. A zero row gets scale 1. A row whose largest component is below ~0.008
    (its scale below float16's normal range; never a unit vector of dim < 250,000) loses precision and does not
    round-trip: :meth:`ResidualCodec.arrays` then stores the centroids as floats, losslessly.
    """
    v = np.asarray(vectors, dtype=np.float32)
    top = np.abs(v).max(axis=1) if v.size else np.zeros(len(v), np.float32)
    exact = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
    half = exact.astype(np.float16)
    over = half.astype(np.float32) > exact
    half[over] = np.nextafter(half[over], np.float16(0))
    half = np.maximum(half, np.float16(2**-24))  # never 0 (float16's smallest step)
    q = np.clip(np.rint(v / half.astype(np.float32)[:, None]), -127, 127).astype(np.int8)
    return q, half


def dequantize_rows(q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """float32 rows from :func:`quantize_rows`' ints and scales (exact in float32: 7 x 11 significant bits)."""
    return np.ascontiguousarray(np.asarray(q, dtype=np.float32) * np.asarray(scales, dtype=np.float32)[:, None])


def stored_centroids(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as float32 rounded the way centroids are stored (:func:`quantize_rows`): the values a reader
    gets back. Training rounds centroids with this, so the build, every add and every reader use the same ones."""
    return dequantize_rows(*quantize_rows(vectors))


def spare_code_bits(n_centroids: int) -> int:
    """Bits of the code type of ``n_centroids`` centroids that centroid ids leave unused (at most MAX_SUB_BITS)."""
    dtype = codes_dtype(n_centroids)
    width = dtype.itemsize * 8 - (1 if dtype.kind == "i" else 0)
    return max(0, min(MAX_SUB_BITS, width - max(1, int(n_centroids - 1).bit_length())))


def train_sub_centroids(x: np.ndarray, coarse: np.ndarray, centroids: np.ndarray, n_sub: int, niters: int,
                        seed: int, exclude: np.ndarray | None = None, block: int = 1 << 18) -> np.ndarray:
    """Spherical k-means with ``n_sub`` clusters inside every centroid's cluster, over tokens ``x`` (n, dim; may
    be memory-mapped: read in blocks of ``block`` rows) and their centroid ids ``coarse``, leaving out the rows
    ``exclude``. Returns L2-normalised float32 (n_centroids * n_sub, dim), rounded to float16 precision (their
    on-disk type): rows ``c * n_sub + j``.

    Sub-centroids start from members spread over the cluster (stratified by a seeded random order); a cluster
    with fewer members than ``n_sub`` keeps its centroid for the rest, and an emptied sub-centroid keeps its place.
    """
    k, dim = centroids.shape
    coarse = np.asarray(coarse, dtype=np.int64)
    keep = np.ones(len(coarse), dtype=bool)
    if exclude is not None:
        keep[exclude] = False
    rng = np.random.default_rng(seed)
    # members of each cluster together, shuffled, excluded rows last (never picked)
    order = np.lexsort((rng.random(len(coarse)), ~keep, coarse))
    counts = np.bincount(coarse[keep], minlength=k)
    starts = np.concatenate([[0], np.cumsum(np.bincount(coarse, minlength=k))[:-1]])
    fine = np.repeat(centroids, n_sub, axis=0).astype(np.float32)
    for j in range(n_sub):
        ok = counts > j
        pick = starts[ok] + (j * counts[ok]) // n_sub
        fine[np.flatnonzero(ok) * n_sub + j] = x[order[pick]]
    for _ in range(niters):
        sums = np.zeros((k * n_sub, dim), dtype=np.float64)
        n = np.zeros(k * n_sub, dtype=np.int64)
        for lo in range(0, len(coarse), block):
            rows = np.flatnonzero(keep[lo:lo + block]) + lo
            xb = np.ascontiguousarray(x[rows], dtype=np.float32)
            codes = refine_codes(xb, coarse[rows], fine, n_sub)
            s, c = sum_rows(xb, codes, k * n_sub)
            sums += s
            n += c
        norms = np.linalg.norm(sums, axis=1)
        ok = (n > 0) & (norms > 0)
        fine[ok] = (sums[ok] / norms[ok, None]).astype(np.float32)
    return stored_precision(fine)  # so that the build and every reader use the same vectors


def decode_lut(weights: np.ndarray, nbits: int) -> np.ndarray:
    """Per byte position and byte value, the residual values the byte encodes: float32 (n_bytes, 256, 8//nbits)."""
    dim = weights.shape[0]
    per_byte = 8 // nbits
    n_bytes = dim // per_byte
    values = np.arange(256)
    shifts = np.arange(per_byte) * nbits
    buckets = (values[:, None] >> shifts[None, :]) & ((1 << nbits) - 1)  # (256, per_byte)
    dims = np.arange(dim).reshape(n_bytes, per_byte)  # (n_bytes, per_byte)
    lut = weights[dims[:, None, :], buckets[None, :, :]]  # (n_bytes, 256, per_byte)
    return np.ascontiguousarray(lut, dtype=np.float32)


def fit_buckets(residuals: np.ndarray, nbits: int, lloyd_iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension scalar quantiser of ``residuals`` (n, dim): (cutoffs (dim, 2**nbits-1), values (dim, 2**nbits)).

    A residual r of dimension d falls in bucket b when ``cutoffs[d, b-1] <= r < cutoffs[d, b]``.
    """
    n_buckets = 2**nbits
    cols = np.sort(residuals, axis=0).T  # (dim, n), each row ascending
    dim, n = cols.shape
    prefix = np.zeros((dim, n + 1))
    np.cumsum(cols, axis=1, out=prefix[:, 1:])
    cutoffs = np.quantile(cols, np.arange(1, n_buckets) / n_buckets, axis=1).T
    weights = np.quantile(cols, (np.arange(n_buckets) + 0.5) / n_buckets, axis=1).T
    rows = np.arange(dim)[:, None]
    for _ in range(lloyd_iters):
        # bucket b of dimension d holds the sorted entries [edges[d, b], edges[d, b+1])
        inner = np.stack([np.searchsorted(cols[d], cutoffs[d], side="left") for d in range(dim)])
        edges = np.concatenate([np.zeros((dim, 1), np.int64), inner, np.full((dim, 1), n)], axis=1)
        counts = np.diff(edges, axis=1)
        sums = prefix[rows, edges[:, 1:]] - prefix[rows, edges[:, :-1]]
        weights = np.where(counts > 0, sums / np.maximum(counts, 1), weights)
        weights = np.sort(weights, axis=1)
        cutoffs = (weights[:, :-1] + weights[:, 1:]) / 2
    return cutoffs, weights


#: Pseudo-count of the shrinkage of per-centroid residual scales towards 1 (the global scale): a centroid with n
#: sample tokens keeps the fraction ``n / (n + SCALE_PRIOR)`` of its log-scale.
SCALE_PRIOR = 8.0

#: Smallest scale (relative to the global one), so that a cluster whose sample tokens sit on its centroid still
#: quantises the residuals of other tokens sensibly.
MIN_SCALE = 1e-3


def residual_scales(x: np.ndarray, codes: np.ndarray, centroids: np.ndarray,
                    prior: float = SCALE_PRIOR) -> np.ndarray:
    """Per-centroid residual scales (float32) from tokens ``x`` and their centroid ids.

    A centroid's scale is its root mean square residual norm over the global one, shrunk towards 1 in log space:
    ``exp(n / (n + prior) * log(rms_c / rms))`` for a centroid with n tokens (``prior`` > 0), at least
    :data:`MIN_SCALE`. Centroids without tokens get 1.
    """
    if not prior > 0:
        raise ValueError(f"prior must be > 0, got {prior!r}")
    n_c = centroids.shape[0]
    sq = np.zeros(n_c, dtype=np.float64)
    for lo in range(0, len(x), 1 << 16):
        block = np.asarray(x[lo:lo + (1 << 16)], dtype=np.float32)
        c = codes[lo:lo + (1 << 16)]
        r = block - centroids[c]
        sq += np.bincount(c, weights=np.einsum("ij,ij->i", r, r), minlength=n_c)
    counts = np.bincount(codes, minlength=n_c).astype(np.float64)
    total = counts.sum()
    if total == 0 or sq.sum() <= 0:
        return np.ones(n_c, dtype=np.float32)
    glob = sq.sum() / total
    ratio = np.maximum(sq / np.maximum(counts, 1) / glob, MIN_SCALE**2)
    log_scale = 0.5 * np.log(ratio) * counts / (counts + prior)
    return np.maximum(np.exp(log_scale), MIN_SCALE).astype(np.float32)


#: Smallest relative drop in squared error (on held-out residuals) for which a build keeps product codewords over
#: the bucket grid: a guard against codewords fitted on too few tokens, which generalise worse than the grid's
#: 2**nbits values per dimension. Measured drops at nbits 2: 15% on the synthetic hard corpus, 24% on MS MARCO 5k
#: with multilingual-e5-small.
PQ_MIN_GAIN = 0.05

#: Fewest held-out tokens a build fits product codewords on (4 per codeword, a quarter of them set aside).
PQ_MIN_TOKENS = 1_024

#: Lloyd iterations of the product codewords (:func:`train_codewords`).
PQ_NITERS = 12


def train_codewords(residuals: np.ndarray, weights: np.ndarray, nbits: int, niters: int = PQ_NITERS) -> np.ndarray:
    """Product-quantiser codewords for scaled ``residuals`` (n, dim): float32 (dim * nbits // 8, 256, 8 // nbits),
    rounded to their stored precision (:func:`stored_codewords`).

    Byte position p's 256 codewords quantise the residuals' sub-vectors over dimensions ``p * (8 // nbits)``
    onwards. They start as the grid of the per-dimension bucket values ``weights`` (:func:`decode_lut`) and take
    ``niters`` Lloyd steps, every position at once: faiss assigns each sub-vector its nearest codeword, then each
    codeword moves to the mean of its sub-vectors (one that none chose stays). A Lloyd step never raises the
    squared error on the residuals it is fitted on, so the codewords fit them at least as well as the grid.
    """
    cw = decode_lut(np.asarray(weights, dtype=np.float32), nbits).copy()  # (n_bytes, 256, per_byte)
    n_bytes, ksub, dsub = cw.shape
    x = np.ascontiguousarray(residuals, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != n_bytes * dsub:
        raise ValueError(f"residuals of shape {x.shape} for codewords of dim {n_bytes * dsub}")
    parts = x.reshape(len(x), n_bytes, dsub)
    base = np.arange(n_bytes, dtype=np.int64) * ksub
    for _ in range(niters if len(x) else 0):
        codes = product_quantizer(cw).compute_codes(x).reshape(len(x), n_bytes)
        idx = (codes.astype(np.int64) + base).ravel()  # (token, position) -> position * 256 + codeword
        counts = np.bincount(idx, minlength=n_bytes * ksub)
        sums = np.stack([np.bincount(idx, weights=parts[:, :, j].ravel(), minlength=n_bytes * ksub)
                         for j in range(dsub)], axis=1)
        flat = cw.reshape(n_bytes * ksub, dsub)
        used = counts > 0
        flat[used] = sums[used] / counts[used, None]
    return stored_codewords(cw)


def stored_codewords(codewords: np.ndarray) -> np.ndarray:
    """``codewords`` (n_bytes, 256, per_byte) as float32 rounded the way they are stored: int8 per byte position
    times a float16 scale (:func:`quantize_rows`: a step of 1/127 of the position's largest value). Training rounds
    them, so tokens are coded against what readers hold."""
    cw = np.asarray(codewords, dtype=np.float32)
    return dequantize_rows(*quantize_rows(cw.reshape(cw.shape[0], -1))).reshape(cw.shape)


def validation_rows(n: int, seed: int) -> np.ndarray:
    """The quarter of ``n`` held-out tokens (sorted positions, ``seed``-ed) that :meth:`ResidualCodec.fit` leaves
    out of the product codewords' fit, to judge them, and on which a build measures its reconstruction error."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:n // 4])


def _quantised_mse(residuals: np.ndarray, codewords: np.ndarray) -> float:
    """Mean squared error per token of ``residuals`` (n, dim) quantised to their nearest ``codewords`` (a grid from
    :func:`decode_lut` or product codewords; the nearest grid entry is the bucket a residual falls in)."""
    if len(residuals) == 0:
        return 0.0
    x = np.ascontiguousarray(residuals, dtype=np.float32)
    pq = product_quantizer(codewords)
    return float(np.mean(np.sum((pq.decode(pq.compute_codes(x)) - x) ** 2, axis=1)))


def product_quantizer(codewords: np.ndarray):
    """A faiss ProductQuantizer holding ``codewords`` (n_bytes, 256, per_byte): its ``compute_codes`` gives, per
    byte position, the id of the nearest codeword of that position's sub-vector."""
    import faiss

    n_bytes, ksub, dsub = codewords.shape
    pq = faiss.ProductQuantizer(n_bytes * dsub, n_bytes, 8)
    faiss.copy_array_to_vector(np.ascontiguousarray(codewords, dtype=np.float32).ravel(), pq.centroids)
    return pq


@dataclass(frozen=True)
class ResidualCodec:
    """Centroids, optional sub-centroids, per-(sub-)centroid residual scales, and per-dimension bucket cutoffs
    and values for ``nbits``-bit residuals (of residuals divided by their scale)."""

    centroids: np.ndarray  # (n_centroids, dim) float32, L2-normalised then rounded (stored_centroids)
    cutoffs: np.ndarray  # (dim, 2**nbits - 1) float32
    weights: np.ndarray  # (dim, 2**nbits) float32
    nbits: int
    normalize: bool = False  # tokens were unit vectors: rescale decompressed tokens to unit length
    scales: np.ndarray | None = None  # (n_codes,) float32 > 0; None: all 1 (indexes of format version 1)
    sub_centroids: np.ndarray | None = None  # (n_centroids << sub_bits, dim) float32 rounded to float16 precision;
    #                                           None: no sub-centroids
    coarse: np.ndarray | None = None  # (n_coarse, dim) float32 (stored int8 by this version, float16 by format 4):
    #                                   tokens are assigned to centroids through these
    #                                   (approximately, see gingham.codec.kmeans.CoarseAssigner); None: exactly
    assign_nprobe: int = 0  # coarse clusters searched per token when ``coarse`` is set
    codewords: np.ndarray | None = None  # (dim * nbits // 8, 256, 8 // nbits) float32 at int8 precision: the
    #                                      product quantiser of residuals (see the module); None: the bucket grid
    fit_report: dict | None = field(default=None, compare=False, repr=False)  # what fit() measured; not stored

    def __post_init__(self) -> None:
        if self.codewords is not None:
            cw = np.asarray(self.codewords, dtype=np.float32)
            want = (self.dim * self.nbits // 8, 256, 8 // self.nbits)
            if cw.shape != want:
                raise ValueError(f"residual codewords of shape {cw.shape}: need {want} for dim {self.dim}, "
                                 f"nbits {self.nbits}")
            object.__setattr__(self, "codewords", stored_codewords(cw))  # so that a reopened codec is this codec
        if self.sub_centroids is not None:  # so that a reopened codec is this codec
            object.__setattr__(self, "sub_centroids", stored_precision(self.sub_centroids))
        n_fine = self.n_centroids if self.sub_centroids is None else len(self.sub_centroids)
        ratio = n_fine // self.n_centroids
        if n_fine % self.n_centroids or ratio & (ratio - 1) or ratio > 2**MAX_SUB_BITS:
            raise ValueError(f"{n_fine} sub-centroids for {self.n_centroids} centroids: need 1, 2 or 4 per centroid")
        if self.scales is None:
            object.__setattr__(self, "scales", np.ones(n_fine, dtype=np.float32))
        if len(self.scales) != n_fine:
            raise ValueError(f"{len(self.scales)} residual scales for {n_fine} (sub-)centroids")
        if self.coarse is not None and (self.coarse.ndim != 2 or self.coarse.shape[1] != self.dim
                                        or int(self.assign_nprobe) < 1):
            raise ValueError(f"coarse centroids of shape {self.coarse.shape} with assign_nprobe "
                             f"{self.assign_nprobe!r}: need (n_coarse, {self.dim}) and assign_nprobe >= 1")

    def __getstate__(self):  # faiss objects are rebuilt on demand, never pickled (Ray ships codecs)
        return {k: v for k, v in self.__dict__.items() if k not in ("_assigner", "_pq")}

    def __setstate__(self, state):
        self.__dict__.update(state)

    @cached_property
    def _assigner(self):
        """Nearest centroid of a block of tokens: through the coarse level when there is one, else exact."""
        if self.coarse is None:
            index = centroid_index(self.centroids)
            return lambda x: assign(x, self.centroids, index)
        return CoarseAssigner(self.centroids, self.coarse, int(self.assign_nprobe))

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Centroid id of each token of ``x`` (int64): exact, or through the coarse level (see the class)."""
        return self._assigner(x)

    def arrays(self) -> dict[str, np.ndarray]:
        """The codebook as arrays keyed by their file names (see :meth:`from_arrays`)."""
        out = {"bucket_cutoffs": self.cutoffs, "bucket_weights": self.weights, "residual_scales": compact(self.scales)}
        q, scales = quantize_rows(self.centroids)
        if np.array_equal(dequantize_rows(q, scales), self.centroids):  # trained by this version: int8 is lossless
            out["centroids"], out["centroid_scales"] = q, scales
        else:  # an older index's float16 or float32 centroids, kept as they are
            out["centroids"] = compact(self.centroids)
        if self.sub_centroids is not None:
            out["sub_centroids"] = self.sub_centroids.astype(SUB_CENTROID_DTYPE)  # lossless: see __post_init__
        if self.coarse is not None:
            q, scales = quantize_rows(self.coarse)
            if np.array_equal(dequantize_rows(q, scales), self.coarse):  # trained by this version: int8, lossless
                out["coarse_centroids"], out["coarse_scales"] = q, scales
            else:  # an older index's float16 coarse centroids
                out["coarse_centroids"] = compact(self.coarse)
        if self.codewords is not None:  # int8 is lossless: see __post_init__
            q, scales = quantize_rows(self.codewords.reshape(len(self.codewords), -1))
            out["residual_codewords"], out["codeword_scales"] = q.reshape(self.codewords.shape), scales
        return out

    @classmethod
    def from_arrays(cls, arrays, nbits: int, normalize: bool = False, assign_nprobe: int = 0) -> "ResidualCodec":
        """The codec from :meth:`arrays`' output (``residual_scales`` absent: an index of format 1; int8
        ``centroids``, ``coarse_centroids`` and ``residual_codewords`` come with ``centroid_scales``, ``coarse_scales``
        and ``codeword_scales``); ``assign_nprobe``: the manifest's, for a codebook with ``coarse_centroids``."""

        def opt(name):
            a = arrays.get(name)
            return None if a is None else np.ascontiguousarray(a, dtype=np.float32)

        centroids = arrays["centroids"]
        if "centroid_scales" in arrays:
            centroids = dequantize_rows(centroids, arrays["centroid_scales"])
        coarse = arrays.get("coarse_centroids")
        if coarse is not None and "coarse_scales" in arrays:
            coarse = dequantize_rows(coarse, arrays["coarse_scales"])
        codewords = arrays.get("residual_codewords")
        if codewords is not None:
            codewords = dequantize_rows(np.asarray(codewords).reshape(len(codewords), -1),
                                        arrays["codeword_scales"]).reshape(codewords.shape)
        return cls(
            centroids=np.ascontiguousarray(centroids, dtype=np.float32),
            cutoffs=np.ascontiguousarray(arrays["bucket_cutoffs"], dtype=np.float32),
            weights=np.ascontiguousarray(arrays["bucket_weights"], dtype=np.float32),
            nbits=int(nbits),
            normalize=bool(normalize),
            scales=opt("residual_scales"),
            sub_centroids=opt("sub_centroids"),
            coarse=None if coarse is None else np.ascontiguousarray(coarse, dtype=np.float32),
            assign_nprobe=int(assign_nprobe) if "coarse_centroids" in arrays else 0,
            codewords=codewords,
        )

    @property
    def sub_bits(self) -> int:
        """Low bits of a code that name the sub-centroid (0: none)."""
        return (self.n_codes // self.n_centroids).bit_length() - 1

    @property
    def n_codes(self) -> int:
        """Distinct token codes: centroids times sub-centroids per centroid."""
        return self.n_centroids if self.sub_centroids is None else int(len(self.sub_centroids))

    @property
    def fine(self) -> np.ndarray:
        """The vector each code's residual is taken from: (n_codes, dim) float32."""
        return self.centroids if self.sub_centroids is None else self.sub_centroids

    def codes_for(self, x: np.ndarray, centroid_ids: np.ndarray | None = None) -> np.ndarray:
        """Token codes of ``x``: nearest centroid (``centroid_ids`` if known), then nearest of its sub-centroids.
        int64."""
        if centroid_ids is None:
            centroid_ids = self.assign(x)
        if self.sub_centroids is None:
            return np.asarray(centroid_ids, dtype=np.int64)
        return refine_codes(np.ascontiguousarray(x, dtype=np.float32), centroid_ids, self.sub_centroids,
                            1 << self.sub_bits)

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def n_centroids(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def bytes_per_token(self) -> int:
        """Residual bytes per token (codes excluded)."""
        return self.dim * self.nbits // 8

    @classmethod
    def fit(cls, centroids: np.ndarray, heldout: np.ndarray, nbits: int, lloyd_iters: int = 12,
            normalize: bool = False, scales: np.ndarray | None = None,
            heldout_codes: np.ndarray | None = None, sub_centroids: np.ndarray | None = None,
            coarse: np.ndarray | None = None, assign_nprobe: int = 0, product: bool = True,
            pq_niters: int = PQ_NITERS, seed: int = 0, min_gain: float | None = None) -> "ResidualCodec":
        """Fit per-dimension bucket cutoffs and values on the scaled residuals of ``heldout`` tokens.

        scales: per-centroid residual scales (:func:`residual_scales` over as many tokens as the caller has; the
            build uses every token); None estimates them from ``heldout``.
        heldout_codes: the held-out tokens' codes, if already known.
        sub_centroids: see the class; ``scales`` and codes then count sub-centroids.
        coarse, assign_nprobe: see the class.
        product: also fit product-quantiser codewords (:func:`train_codewords`, ``pq_niters`` iterations) and
            compress with them when they lower the squared error on held-out residuals by at least ``min_gain``
            (a fraction; None: PQ_MIN_GAIN) against the bucket grid; False keeps PLAID's per-dimension buckets.
            The codewords are fitted on three quarters of the held-out residuals (a ``seed``-ed split,
            :func:`validation_rows`) and both quantisers' errors measured on the other quarter (``fit_report``
            records them and the choice); with fewer than PQ_MIN_TOKENS held-out tokens the grid is kept.
        Buckets start from PLAID's quantiles and are refined with Lloyd-Max iterations (each value the mean of its
        bucket, each cutoff halfway between neighbouring values), which lowers the squared error.
        """
        centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        shell = cls(centroids=centroids, cutoffs=np.zeros((1, 1), np.float32), weights=np.zeros((1, 1), np.float32),
                    nbits=nbits, sub_centroids=sub_centroids, coarse=coarse, assign_nprobe=assign_nprobe)
        codes = shell.codes_for(heldout) if heldout_codes is None else np.asarray(heldout_codes, dtype=np.int64)
        fine = shell.fine
        if scales is None:
            scales = residual_scales(heldout, codes, fine)
        scales = stored_precision(scales)  # stored as float16: fit the buckets to the scales readers will hold
        residuals = (np.asarray(heldout, dtype=np.float64) - fine[codes]) / scales[codes, None]
        cutoffs, weights = fit_buckets(residuals, nbits, lloyd_iters)
        codewords = None
        min_gain = PQ_MIN_GAIN if min_gain is None else min_gain
        if not (product and len(residuals) >= PQ_MIN_TOKENS):
            report = {"kind": "buckets", "mse_buckets": _quantised_mse(residuals, decode_lut(weights.astype(np.float32),
                                                                                            nbits))}
        else:
            report = {"kind": "buckets"}
            # codewords fitted on 3/4 of the held-out residuals, both quantisers judged on the other quarter
            val = validation_rows(len(residuals), seed)
            fit_rows = np.setdiff1d(np.arange(len(residuals)), val)
            codewords = train_codewords(residuals[fit_rows], weights, nbits, pq_niters)
            grid_err = report["mse_buckets"] = _quantised_mse(residuals[val], decode_lut(weights.astype(np.float32),
                                                                                         nbits))
            pq_err = report["mse_product"] = _quantised_mse(residuals[val], codewords)
            if pq_err <= (1.0 - min_gain) * grid_err:
                report["kind"] = "product"
            else:
                codewords = None
            log.info("residuals: product codewords %.4g vs bucket grid %.4g squared error: %s", pq_err, grid_err,
                     report["kind"])
        return cls(
            centroids=centroids,
            cutoffs=np.ascontiguousarray(cutoffs, dtype=np.float32),
            weights=np.ascontiguousarray(weights, dtype=np.float32),
            nbits=nbits,
            normalize=normalize,
            scales=scales,
            sub_centroids=sub_centroids,
            coarse=coarse,
            assign_nprobe=assign_nprobe,
            codewords=codewords,
            fit_report=report,
        )

    @property
    def centroids_t(self) -> np.ndarray:
        return np.ascontiguousarray(self.centroids.T)

    def compress(self, x: np.ndarray, codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(codes, packed residuals) of float32 tokens ``x`` (n, dim); ``codes``: their codes if known."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if codes is None:
            codes = self.codes_for(x)
        codes = np.ascontiguousarray(codes, dtype=codes_dtype(self.n_codes))
        if self.codewords is None:
            packed = compress_residuals(x, self.fine, self.scales, codes, self.cutoffs, self.nbits)
        else:
            residuals = (x - self.fine[codes]) / self.scales[codes, None]
            packed = self._pq.compute_codes(np.ascontiguousarray(residuals, dtype=np.float32))
            packed = np.ascontiguousarray(packed, dtype=np.uint8).reshape(len(x), self.bytes_per_token)
        return codes, packed

    @cached_property
    def _pq(self):
        return product_quantizer(self.codewords)

    def lut(self) -> np.ndarray:
        """Per byte position and byte value, the residual values it decodes to: (n_bytes, 256, 8 // nbits)."""
        if self.codewords is not None:
            return self.codewords
        return decode_lut(self.weights, self.nbits)

    def decompress(self, codes: np.ndarray, packed: np.ndarray) -> np.ndarray:
        return decompress(codes, packed, self.fine, self.scales, self.lut(), self.normalize)

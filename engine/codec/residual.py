"""The codebook and the residual codec: :class:`ResidualCodec`, what it holds and how it compresses tokens.
How it is stored is in :mod:`gingham.codec.stored`; how its quantisers are fitted, in :mod:`gingham.codec.quantizers`.

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
from gingham.codec.quantizers import (
    MAX_SUB_BITS,
    PQ_NITERS,
    decode_lut,
    fit_buckets,
    product_quantizer,
    quantised_mse,
    residual_scales,
    train_codewords,
    validation_rows,
)
from gingham.codec.stored import (
    SUB_CENTROID_DTYPE,
    codes_dtype,
    compact,
    dequantize_rows,
    quantize_rows,
    stored_codewords,
    stored_precision,
)
from gingham.kernels.codec import compress_residuals, decompress, refine_codes

log = logging.getLogger(__name__)

#: Smallest relative drop in squared error (on held-out residuals) for which a build keeps product codewords over
#: the bucket grid: a guard against codewords fitted on too few tokens, which generalise worse than the grid's
#: 2**nbits values per dimension. Measured drops at nbits 2: 15% on the synthetic hard corpus, 24% on MS MARCO 5k
#: with multilingual-e5-small.
PQ_MIN_GAIN = 0.05

#: Fewest held-out tokens a build fits product codewords on (4 per codeword, a quarter of them set aside).
PQ_MIN_TOKENS = 1_024


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
            report = {"kind": "buckets", "mse_buckets": quantised_mse(residuals, decode_lut(weights.astype(np.float32),
                                                                                            nbits))}
        else:
            report = {"kind": "buckets"}
            # codewords fitted on 3/4 of the held-out residuals, both quantisers judged on the other quarter
            val = validation_rows(len(residuals), seed)
            fit_rows = np.setdiff1d(np.arange(len(residuals)), val)
            codewords = train_codewords(residuals[fit_rows], weights, nbits, pq_niters)
            grid_err = report["mse_buckets"] = quantised_mse(residuals[val], decode_lut(weights.astype(np.float32),
                                                                                         nbits))
            pq_err = report["mse_product"] = quantised_mse(residuals[val], codewords)
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

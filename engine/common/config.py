"""Typed, frozen configs, one per phase: :class:`BuildConfig` for building an index, :class:`SearchConfig` for
searching it. Both validate on construction; unknown keys are errors; defaults derived from ``top_k`` are
returned as a new config, never written back."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, fields
from typing import Any, Mapping, NamedTuple

NBITS_ALLOWED = (1, 2, 4)
KMEANS_KINDS = ("auto", "flat", "two-level")
#: kmeans="auto" trains codebooks of at least this many centroids two-level (see BuildConfig).
TWO_LEVEL_FROM = 16_384
#: Coarse clusters searched per token when assigning through a two-level codebook's coarse level.
DEFAULT_ASSIGN_NPROBE = 8


def _from_mapping(cls, values: Mapping[str, Any]):
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} option(s) {unknown}; allowed options are {sorted(names)}"
        )
    return cls(**values)


def field_help(cls, name: str) -> str:
    """The description of field ``name`` in ``cls``'s docstring (``    name: text`` and its indented lines), as
    one plain sentence: what the CLI shows for the flag, so the config is its one definition."""
    lines = (cls.__doc__ or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"    {name}: ")), None)
    if start is None:
        raise KeyError(f"{cls.__name__}'s docstring does not describe {name}")
    parts = [lines[start].split(": ", 1)[1]]
    for line in lines[start + 1:]:
        if not line.startswith("        "):
            break
        parts.append(line.strip())
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", " ".join(parts)).replace("``", "")
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


class Setting(NamedTuple):
    """One field of a config as every door offers it (the CLI's flags, the server's request fields)."""

    name: str
    kind: type  # int, float or bool
    default: Any  # the config's default; None: taken from top_k and the index
    minimum: int | None  # the least an int may be, checked by the config too
    help: str  # field_help, and what the field is when not given


#: What a search setting left unset takes (SearchConfig's ``None`` fields).
SEARCH_UNSET = "the index's stored or calibrated setting, else PLAID's for top_k"


def settings(cls, unset: str) -> list[Setting]:
    """``cls``'s fields as :class:`Setting`, in order: the one definition that the CLI's flags and the server's
    request fields are derived from. Each help text ends with the field's default (``unset`` for None) unless its
    description in ``cls``'s docstring gives it (``Default: ...`` or ``None: ...``)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        kinds = [t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None)]
        if len(kinds) != 1 or kinds[0] not in (int, float, bool):
            raise TypeError(f"{cls.__name__}.{f.name}: a door can offer int, float or bool fields, not {kinds}")
        text = field_help(cls, f.name)
        if "Default:" not in text and "None:" not in text:  # unless the field's description says it
            text += f" Default: {unset if f.default is None else f.default}."
        out.append(Setting(f.name, kinds[0], f.default, f.metadata.get("minimum"), text))
    return out


def search_settings() -> list[Setting]:
    """:class:`SearchConfig`'s fields as the CLI and the server offer them."""
    return settings(SearchConfig, SEARCH_UNSET)


def _at_least(minimum: int, default: int | None = None):
    """An int field of at least ``minimum`` (checked in ``__post_init__``; the doors derive their bounds from it)."""
    return dataclasses.field(default=default, metadata={"minimum": minimum})


def _check_int(name: str, value, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int,)) and not _is_np_int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _is_np_int(value) -> bool:
    import numpy as np

    return isinstance(value, np.integer)


@dataclass(frozen=True)
class BuildConfig:
    """How an index is built.

    nbits: bits per dimension of the quantised residual (1, 2 or 4).
    n_centroids: size of the codebook; ``None`` picks PLAID's default from the number of tokens
        (a power of two near 16 * sqrt(n_tokens)), capped for tiny corpora.
    kmeans_niters: k-means iterations.
    kmeans_sample: number of token vectors k-means trains on; ``None`` uses ``kmeans_points_per_centroid`` per
        centroid (all tokens if there are fewer).
    kmeans_points_per_centroid: see ``kmeans_sample``.
    codec_sample: number of held-out token vectors the residual buckets are fitted on.
    sub_centroids: split each centroid into sub-centroids (up to 4) held in the code bits that centroid ids leave
        unused (e.g. 16,384 centroids in uint16 codes): residuals shrink at no cost per token, but the table of
        sub-centroids costs ``n_centroids x 4 x dim x 2`` bytes. Off by default: measured, it bought no recall for
        its bytes (exhaustive recall@10 vs exact, nbits 2: hard corpus 10,000 docs 0.939 with against 0.946
        without, at 55.1 against 40.9 bytes per token; XQuAD x->en, e5, 2,048 centroids: 0.921/0.899/0.867
        with against 0.920/0.905/0.868 without for en/th/zh queries, the table costing 142 bytes per token).
    product_residuals: quantise residuals with a product quantiser (256 codewords per byte of packed residuals,
        Lloyd steps in each byte's sub-space started from the per-dimension buckets' grid; see :mod:`gingham.codec.residual`)
        instead of PLAID's per-dimension buckets, when they lower the held-out error by ``codec.PQ_MIN_GAIN`` or more
        (``Index.info()["residual_quantizer"]`` says which was kept). Same bytes per token plus a 256 x dim int8
        table. Measured (exhaustive recall@10 vs exact, multilingual-e5-small, MS MARCO 5k): nbits 2 0.937 -> 0.958,
        nbits 4 0.977 -> 0.984 (docs/benchmarks/pq-residuals). Indexes of this version have format version 5.
    batch_size: tokens compressed per block, which bounds the build's scratch memory.
    seed: seed of every random choice of the build; the same seed and data give the same index.
    kmeans: "auto" (the default: "two-level" from ``TWO_LEVEL_FROM`` centroids, "flat" below), "flat" (one faiss
        k-means over every centroid) or "two-level" (a coarse k-means into ~sqrt(n_centroids) clusters, then one
        inside each, then ``kmeans_refine`` global Lloyd steps; see :mod:`gingham.codec.kmeans`). Measured with
        bench/bench_kmeans.py: on the hard corpus (10,000 docs, 1.2M tokens, 16,384 centroids) two-level with
        approximate assignment built in 151 s against 419 s for flat, at the same recall (exhaustive recall@10
        0.943 vs 0.939); on MS MARCO 5k (e5, 8,192 centroids) it kept a little less of exact MaxSim's top-10 over
        three seeds (0.944 vs 0.954, 43 queries). Flat k-means over 65,536+ centroids takes hours on two cores.
    kmeans_refine: global Lloyd steps after a two-level k-means.
    assign_nprobe: with a two-level k-means, tokens are assigned to centroids (at build time, and by every later
        add, streaming chunk and Ray task: the codec stores the coarse level) through its coarse clusters,
        searching this many per token (approximate; ``None``: ``DEFAULT_ASSIGN_NPROBE``; a number at least the
        coarse clusters' is exact). Needs a two-level k-means ("auto" may choose flat: then it is unused).
    calibrate: measure the cheapest search settings that keep recall@k >= 0.95 on pseudo-queries drawn from the
        corpus, per top_k, and store them as the index's calibrated defaults (see :mod:`gingham.search.calibration`).
    """

    nbits: int = 2
    n_centroids: int | None = None
    kmeans_niters: int = 4
    kmeans_sample: int | None = None
    kmeans_points_per_centroid: int = 40
    codec_sample: int = 65_536
    sub_centroids: bool = False
    product_residuals: bool = True
    batch_size: int = 262_144
    seed: int = 0
    calibrate: bool = True
    kmeans: str = "auto"
    kmeans_refine: int = 1
    assign_nprobe: int | None = None

    def __post_init__(self) -> None:
        if self.nbits not in NBITS_ALLOWED:
            raise ValueError(f"nbits must be one of {NBITS_ALLOWED}, got {self.nbits!r}")
        _check_int("n_centroids", self.n_centroids, 1, allow_none=True)
        _check_int("kmeans_niters", self.kmeans_niters, 1)
        _check_int("kmeans_sample", self.kmeans_sample, 1, allow_none=True)
        _check_int("kmeans_points_per_centroid", self.kmeans_points_per_centroid, 1)
        _check_int("codec_sample", self.codec_sample, 16)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("seed", self.seed, 0)
        if not isinstance(self.sub_centroids, bool):
            raise ValueError(f"sub_centroids must be True or False, got {self.sub_centroids!r}")
        if not isinstance(self.product_residuals, bool):
            raise ValueError(f"product_residuals must be True or False, got {self.product_residuals!r}")
        if self.kmeans not in KMEANS_KINDS:
            raise ValueError(f"kmeans must be one of {KMEANS_KINDS}, got {self.kmeans!r}")
        _check_int("kmeans_refine", self.kmeans_refine, 0)
        _check_int("assign_nprobe", self.assign_nprobe, 1, allow_none=True)
        if self.assign_nprobe is not None and self.kmeans == "flat":
            raise ValueError("assign_nprobe needs kmeans='two-level' or 'auto' (the coarse clusters of a two-level "
                             "k-means are what is probed); drop it, or choose kmeans='two-level'")
        if not isinstance(self.calibrate, bool):
            raise ValueError(f"calibrate must be True or False, got {self.calibrate!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "BuildConfig":
        return _from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def kmeans_for(self, n_centroids: int) -> str:
        """The k-means a codebook of ``n_centroids`` is trained with: "flat" or "two-level"."""
        if self.kmeans != "auto":
            return self.kmeans
        return "two-level" if n_centroids >= TWO_LEVEL_FROM else "flat"

    def resolve_n_centroids(self, n_tokens: int) -> int:
        """The codebook size for ``n_tokens`` tokens: the configured one, or PLAID's power-of-two default."""
        if n_tokens < 1:
            raise ValueError("cannot build a codebook from 0 tokens")
        if self.n_centroids is not None:
            if self.n_centroids > n_tokens:
                raise ValueError(
                    f"n_centroids={self.n_centroids} exceeds the number of tokens ({n_tokens}); "
                    "use fewer centroids or leave n_centroids=None for the default"
                )
            return self.n_centroids
        k = 2 ** int(math.floor(math.log2(16 * math.sqrt(n_tokens))))
        # tiny corpora: keep at least ~4 tokens per centroid so that centroids summarise something
        cap = 2 ** int(math.floor(math.log2(max(1, n_tokens // 4))))
        return max(1, min(k, cap))


@dataclass(frozen=True)
class SearchConfig:
    """How a search runs. ``None`` fields take PLAID's defaults for ``top_k`` (see :meth:`resolved`).

    top_k: results per query.
    n_ivf_probe: centroids probed per query token for candidates.
    centroid_score_threshold: centroids whose best score against the query is below this are pruned in the
        first centroid-interaction pass.
    n_full_scores: documents kept by the pruned centroid-interaction pass; a quarter of them (at least top_k)
        are decompressed and scored exactly.
    min_candidates: after ``n_ivf_probe`` rounds, keep probing each query token's next-best centroid (up to
        ``max_ivf_probe``) until this many candidate documents are found; 0 disables (PLAID's fixed probe).
        Default: ``n_full_scores``. It also keeps recall under selective ``subset=`` filters.
    max_ivf_probe: bound on the centroids probed per query token by ``min_candidates``.
    exhaustive: score every document exactly over its decompressed tokens (ground truth; slow).
    n_coarse_probe: for codebooks of at least 32,768 centroids trained in two levels, each query token's best
        coarse groups whose centroids are scored exactly (the rest take their group's mean score until the
        unpruned pass; see :mod:`gingham.search.centroids`); ``None``: 2; 0: score every centroid, as PLAID does.
    """

    top_k: int = _at_least(1, 10)
    n_ivf_probe: int | None = _at_least(1)
    centroid_score_threshold: float | None = None
    n_full_scores: int | None = _at_least(1)
    min_candidates: int | None = _at_least(0)
    max_ivf_probe: int = _at_least(1, 64)
    exhaustive: bool = False
    n_coarse_probe: int | None = _at_least(0)

    def __post_init__(self) -> None:
        for f in fields(self):
            if "minimum" in f.metadata:
                _check_int(f.name, getattr(self, f.name), f.metadata["minimum"], allow_none=f.default is None)
        t = self.centroid_score_threshold
        if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t)):
            raise ValueError(f"centroid_score_threshold must be a finite number or None, got {t!r}")
        if not isinstance(self.exhaustive, bool):
            raise ValueError(f"exhaustive must be True or False, got {self.exhaustive!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SearchConfig":
        return _from_mapping(cls, values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "SearchConfig":
        """A new config with ``changes`` applied (unknown names are an error)."""
        return _from_mapping(type(self), {**self.to_dict(), **changes})

    def resolved(self, calibrated: Mapping[str, Any] | None = None) -> "SearchConfig":
        """A new config with every ``None`` replaced by the index's ``calibrated`` setting for this ``top_k``
        (see :mod:`gingham.search.calibration`), else by PLAID's default."""
        k = self.top_k
        if k <= 10:
            probe, thresh, ndocs = 1, 0.5, 256
        elif k <= 100:
            probe, thresh, ndocs = 2, 0.45, 1024
        else:
            probe, thresh, ndocs = 4, 0.4, max(k * 4, 4096)
        calibrated = calibrated or {}
        probe = calibrated.get("n_ivf_probe", probe)
        thresh = calibrated.get("centroid_score_threshold", thresh)
        ndocs = calibrated.get("n_full_scores", ndocs)
        n_full = max(self.n_full_scores if self.n_full_scores is not None else ndocs, k)
        return dataclasses.replace(
            self,
            n_ivf_probe=self.n_ivf_probe if self.n_ivf_probe is not None else probe,
            centroid_score_threshold=(
                self.centroid_score_threshold if self.centroid_score_threshold is not None else thresh
            ),
            n_full_scores=n_full,
            min_candidates=self.min_candidates if self.min_candidates is not None else n_full,
        )

    @property
    def n_exact(self) -> int:
        """Documents scored exactly after the unpruned centroid pass (a resolved config only)."""
        assert self.n_full_scores is not None, "call resolved() first"
        return max(self.n_full_scores // 4, self.top_k)


def resolve_build_config(config, options) -> BuildConfig:
    """A :class:`BuildConfig` from a BuildConfig, a dict or None, with ``options`` (its fields) on top."""
    if config is None:
        return BuildConfig.from_dict(options)
    if isinstance(config, BuildConfig):
        return BuildConfig.from_dict({**config.to_dict(), **options}) if options else config
    return BuildConfig.from_dict({**dict(config), **options})


def jsonable(config) -> dict[str, Any]:
    """A dataclass config as JSON-ready values (tuples as lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}

"""The Index: build from token embeddings, open, search.

An open Index is read-only and safe to search from many threads at once: its arrays are memory-mapped read-only
and every search allocates its own scratch.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from gingham import progress, validation
from gingham._version import __version__
from gingham.codec import ResidualCodec, codes_dtype, decode_lut, train_centroids
from gingham.config import BuildConfig, SearchConfig
from gingham.errors import IndexFormatError
from gingham.ids import DocIds, pack_strings, unpack_string
from gingham.kernels.codec import decompress
from gingham.kernels.ivf import build_ivf
from gingham.results import SearchResults
from gingham.search import NO_MASK, IndexArrays, blocked_exact, plaid_search, rerank
from gingham import storage

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


def _sample_positions(n_tokens: int, n_kmeans: int, n_codec: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint random token positions for k-means and for fitting the codec (overlapping only when too few)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_tokens)
    km = np.sort(perm[:n_kmeans])
    rest = perm[n_kmeans:]
    codec = np.sort(rest[:n_codec] if len(rest) >= min(n_codec, 1024) else perm[:n_codec])
    return km, codec


class Index:
    """A compressed late-interaction index on disk. Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]):
        self.path = path
        self.manifest = manifest
        self.codec = ResidualCodec(
            centroids=np.ascontiguousarray(arrays["centroids"]),
            cutoffs=np.ascontiguousarray(arrays["bucket_cutoffs"]),
            weights=np.ascontiguousarray(arrays["bucket_weights"]),
            nbits=int(manifest["nbits"]),
        )
        self.doc_ids = DocIds.from_arrays(manifest["doc_id_kind"], arrays)
        self._arrays = IndexArrays(
            centroids=self.codec.centroids,
            lut=decode_lut(self.codec.weights, self.codec.nbits),
            codes=arrays["codes"],
            residuals=arrays["residuals"],
            doc_offsets=np.ascontiguousarray(arrays["doc_offsets"]),
            ivf_docs=arrays["ivf_docs"],
            ivf_offsets=np.ascontiguousarray(arrays["ivf_offsets"]),
        )
        self._texts = (arrays["texts_utf8"], arrays["texts_offsets"]) if "texts_utf8" in arrays else None
        self._encoder = None
        self._encoder_lock = threading.Lock()
        self.build_config = BuildConfig.from_dict(manifest["build_config"])
        self.search_defaults = SearchConfig.from_dict(manifest.get("search_defaults", {}))

    # ---------------------------------------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        return self.codec.dim

    @property
    def nbits(self) -> int:
        return self.codec.nbits

    @property
    def n_docs(self) -> int:
        return len(self._arrays.doc_offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self._arrays.doc_offsets[-1])

    def __len__(self) -> int:
        return self.n_docs

    def __repr__(self) -> str:
        return (f"Index({str(self.path)!r}, n_docs={self.n_docs}, n_tokens={self.n_tokens}, dim={self.dim}, "
                f"nbits={self.nbits}, n_centroids={self.codec.n_centroids})")

    def info(self) -> dict[str, Any]:
        """Counts, sizes and configs, as recorded in the manifest plus sizes measured on disk."""
        files = self.manifest["files"]
        compressed = self._arrays.codes.nbytes + self._arrays.residuals.nbytes
        total = sum(f["bytes"] for f in files.values())
        return {
            "path": str(self.path),
            "format_version": self.manifest["format_version"],
            "engine_version": self.manifest["engine_version"],
            "generation": self.manifest["generation"],
            "n_docs": self.n_docs,
            "n_tokens": self.n_tokens,
            "dim": self.dim,
            "nbits": self.nbits,
            "n_centroids": self.codec.n_centroids,
            "codes_dtype": self.manifest["codes_dtype"],
            "bytes_per_token_compressed": compressed / max(1, self.n_tokens),
            "bytes_per_token_on_disk": total / max(1, self.n_tokens),
            "bytes_on_disk": total,
            "build_config": self.manifest["build_config"],
            "search_defaults": self.manifest.get("search_defaults", {}),
            "created": self.manifest.get("created"),
        }

    # ---------------------------------------------------------------------------------------------- build/open
    @classmethod
    def create(
        cls,
        path: PathLike,
        embeddings: Sequence[np.ndarray] | np.ndarray,
        doc_ids: Sequence | np.ndarray | None = None,
        *,
        lengths: Sequence[int] | np.ndarray | None = None,
        config: BuildConfig | Mapping[str, Any] | None = None,
        overwrite: bool = False,
        show_progress: bool | None = None,
        texts: Sequence[str] | None = None,
        encoder: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> "Index":
        """Build an index at ``path`` from per-document token embeddings and return it opened.

        embeddings: a list of (n_tokens_i, dim) float arrays, or one flat (n_tokens, dim) array with ``lengths``.
        doc_ids: the caller's ids (all str or all int, unique); default 0..n-1.
        config / options: a :class:`BuildConfig`, a dict, or its fields as keyword arguments.
        overwrite: replace an existing index at ``path`` (atomically: readers see the old or the new one).
        texts: the documents' texts, stored to show with results (optional).
        encoder: how the embeddings were made (``{"model": ..., "options": {...}}``), so that text queries can be
            encoded the same way; set by :meth:`from_texts`.
        """
        cfg = _build_config(config, options)
        flat, doc_offsets = validation.documents(embeddings, lengths)
        ids = DocIds.from_user(doc_ids, len(doc_offsets) - 1)
        if texts is not None and len(texts) != len(ids):
            raise ValueError(f"got {len(texts)} texts for {len(ids)} documents; pass one text per document")
        dim = flat.shape[1]
        if (dim * cfg.nbits) % 8:
            raise ValueError(f"dim {dim} times nbits {cfg.nbits} must be a multiple of 8 to pack residuals into bytes")
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise ValueError(f"{root} exists and is not a directory; choose another path for the index")
        existing = (root / storage.MANIFEST).exists()
        if existing and not overwrite:
            raise FileExistsError(f"an index already exists at {root}; pass overwrite=True to replace it")
        if root.exists() and not existing and any(
            not (p.name.startswith(storage.GEN_PREFIX) or p.name == storage.LOCK) for p in root.iterdir()
        ):
            raise FileExistsError(f"{root} exists, is not empty and holds no Gingham index; choose an empty path")
        codec, codes, residuals = _train_and_compress(flat, cfg, show_progress)
        with progress.bar(1, "index", show_progress) as bar:
            ivf_docs, ivf_offsets = build_ivf(codes, doc_offsets, codec.n_centroids)
            bar.update(1)
        arrays = {
            "centroids": codec.centroids,
            "bucket_cutoffs": codec.cutoffs,
            "bucket_weights": codec.weights,
            "codes": codes,
            "residuals": residuals,
            "doc_offsets": doc_offsets,
            "ivf_docs": ivf_docs,
            "ivf_offsets": ivf_offsets,
            **ids.arrays(),
        }
        if texts is not None:
            arrays["texts_utf8"], arrays["texts_offsets"] = pack_strings([str(t) for t in texts])
        manifest = {
            "engine_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "build_config": cfg.to_dict(),
            "search_defaults": {},
            "dim": dim,
            "dtype": "float32",
            "nbits": cfg.nbits,
            "n_docs": len(doc_offsets) - 1,
            "n_tokens": int(doc_offsets[-1]),
            "n_centroids": codec.n_centroids,
            "codes_dtype": codes.dtype.name,
            "doc_id_kind": ids.kind,
            "encoder": dict(encoder) if encoder else None,
        }
        write_generation(root, arrays, manifest)
        return cls.open(root)

    @classmethod
    def open(cls, path: PathLike, verify: bool = False) -> "Index":
        """Open the index at ``path`` (arrays memory-mapped read-only). ``verify`` also checks every sha256."""
        root = Path(path)
        manifest = storage.read_manifest(root)
        arrays = storage.load_arrays(root, manifest, verify=verify)
        missing = {"centroids", "bucket_cutoffs", "bucket_weights", "codes", "residuals", "doc_offsets",
                   "ivf_docs", "ivf_offsets"} - set(arrays)
        if missing:
            raise IndexFormatError(f"{root} lacks the arrays {sorted(missing)}; rebuild the index")
        return cls(root, manifest, arrays)

    @classmethod
    def from_texts(
        cls,
        path: PathLike,
        texts: Sequence[str],
        doc_ids: Sequence | None = None,
        *,
        model: str = "multilingual-e5-small",
        encoder_options: Mapping[str, Any] | None = None,
        store_texts: bool = True,
        batch_size: int | None = None,
        show_progress: bool | None = None,
        overwrite: bool = False,
        **options: Any,
    ) -> "Index":
        """Encode ``texts`` with a late-interaction ``model`` (a folder, a cached hub name, or the offline
        ``multilingual-e5-small``) and build an index; text queries are later encoded the same way."""
        from gingham.encoder import load_encoder

        texts = list(texts)
        if not texts:
            raise ValueError("no texts given")
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"text {i} is empty or not a string ({t!r}); every document needs text")
        enc_opts = dict(encoder_options or {})
        encoder = load_encoder(model, **enc_opts)
        embeddings = encoder.encode_documents(texts, batch_size=batch_size, show_progress=show_progress)
        index = cls.create(
            path, embeddings, doc_ids, overwrite=overwrite, show_progress=show_progress,
            texts=texts if store_texts else None,
            encoder={"model": str(model), "options": enc_opts, "config": _jsonable(encoder.config)},
            **options,
        )
        index._encoder = encoder
        return index

    @property
    def encoder(self):
        """The encoder the index was built with (loaded on first use; needs ``gingham[encoder]``)."""
        if self._encoder is None:
            info = self.manifest.get("encoder")
            if not info:
                raise ValueError(
                    f"the index at {self.path} was built from embeddings, not texts, so it has no encoder; "
                    "search it with query embeddings, or pass an encoder to search_text"
                )
            from gingham.encoder import load_encoder

            with self._encoder_lock:
                if self._encoder is None:
                    self._encoder = load_encoder(info["model"], **info.get("options", {}))
        return self._encoder

    def search_text(self, queries: str | Sequence[str], top_k: int | None = None, *, encoder=None,
                    **kwargs: Any) -> SearchResults:
        """Encode text queries with the index's encoder (or ``encoder``) and :meth:`search`."""
        single = isinstance(queries, str)
        texts = [queries] if single else list(queries)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"query {i} is empty or not a string ({t!r})")
        enc = encoder if encoder is not None else self.encoder
        if enc.dim != self.dim:
            raise ValueError(f"the encoder makes {enc.dim}-dim vectors but the index holds {self.dim}-dim ones")
        return self.search(enc.encode_queries(texts), top_k, **kwargs)

    def text(self, doc: Any) -> str | None:
        """The stored text of the document with caller id ``doc`` (None if texts were not stored)."""
        if self._texts is None:
            return None
        return unpack_string(*self._texts, int(self.doc_ids.positions([doc])[0]))

    def verify(self) -> None:
        """Check every file against its sha256 and the arrays' internal consistency; raise on any mismatch."""
        storage.load_arrays(self.path, self.manifest, verify=True)
        from gingham.consistency import check_arrays

        check_arrays(self._arrays, self.codec.n_centroids)

    # ---------------------------------------------------------------------------------------------- search
    def _config(self, top_k: int | None, overrides: Mapping[str, Any]) -> SearchConfig:
        base = self.search_defaults
        changes = dict(overrides)
        if top_k is not None:
            changes["top_k"] = top_k
        cfg = base.replace(**changes) if changes else base
        validation.top_k(cfg.top_k, self.n_docs)
        return cfg.resolved()

    def _mask(self, subset) -> np.ndarray:
        if subset is None:
            return NO_MASK
        positions = self.doc_ids.positions(subset)
        mask = np.zeros(self.n_docs, dtype=np.uint8)
        mask[positions] = 1
        return mask

    def _results(self, positions: np.ndarray, scores: np.ndarray) -> SearchResults:
        positions = np.where(np.isfinite(scores), positions, -1).astype(np.int64)
        scores = np.where(positions >= 0, scores, -np.inf).astype(np.float32)
        return SearchResults(positions=positions, scores=scores, ids=self.doc_ids.take(positions))

    def search(
        self,
        queries,
        top_k: int | None = None,
        *,
        subset: Iterable | None = None,
        n_threads: int | None = None,
        show_progress: bool | None = None,
        **overrides: Any,
    ) -> SearchResults:
        """Search with one query (a 2-D array) or a batch (a list of 2-D arrays or a 3-D array).

        top_k and overrides (``n_ivf_probe``, ``centroid_score_threshold``, ``n_full_scores``, ``exhaustive``)
        apply to this call only. ``subset`` restricts results to the given caller ids. Returns
        :class:`SearchResults` with one row per query.
        """
        cfg = self._config(top_k, overrides)
        q_flat, q_offsets, _ = validation.queries(queries, self.dim)
        mask = self._mask(subset)
        if cfg.exhaustive:
            return self._exhaustive(q_flat, q_offsets, cfg.top_k, mask, show_progress)
        n_allowed = self.n_docs if subset is None else int(mask.sum())
        qs = [q_flat[q_offsets[i]:q_offsets[i + 1]] for i in range(len(q_offsets) - 1)]
        if subset is not None and n_allowed <= cfg.n_full_scores:
            # a selective filter: score every allowed document exactly rather than hope candidates reach it
            allowed = np.flatnonzero(mask)
            run = lambda q: rerank(self._arrays, q, allowed, cfg.top_k)  # noqa: E731
        else:
            run = lambda q: plaid_search(self._arrays, q, cfg, mask)  # noqa: E731
        out_pos = np.full((len(qs), cfg.top_k), -1, dtype=np.int64)
        out_scores = np.full((len(qs), cfg.top_k), -np.inf, dtype=np.float32)
        workers = _threads(n_threads) if len(qs) > 1 else 1
        with progress.bar(len(qs), "search", show_progress if len(qs) > 1 else False, unit="query") as bar:
            if workers == 1:
                results = (run(q) for q in qs)
            else:
                pool = ThreadPoolExecutor(workers, thread_name_prefix="gingham-search")
                results = pool.map(run, qs)
            try:
                for i, (pos, sc) in enumerate(results):
                    out_pos[i, :len(pos)] = pos
                    out_scores[i, :len(sc)] = sc
                    bar.update(1)
            finally:
                if workers > 1:
                    pool.shutdown()
        return self._results(out_pos, out_scores)

    def _exhaustive(self, q_flat, q_offsets, k, mask, show_progress) -> SearchResults:
        ix = self._arrays

        def tokens(lo: int, hi: int) -> np.ndarray:
            a, b = ix.doc_offsets[lo], ix.doc_offsets[hi]
            return decompress(ix.codes[a:b], ix.residuals[a:b], ix.centroids, ix.lut)

        with progress.bar(self.n_docs, "search", show_progress, unit="doc") as bar:
            pos, scores = blocked_exact(tokens, ix.doc_offsets, q_flat, q_offsets, k, mask, bar)
        return self._results(pos, scores)

    def exact_search(self, queries, top_k: int | None = None, *, subset=None, show_progress=None) -> SearchResults:
        """Exhaustive exact MaxSim over every document's decompressed tokens (ground truth for the index)."""
        return self.search(queries, top_k, subset=subset, exhaustive=True, show_progress=show_progress)

    def rerank(self, queries, candidates: Sequence[Iterable], top_k: int | None = None) -> SearchResults:
        """Exact MaxSim over the decompressed tokens of each query's given candidate ids (caller ids)."""
        q_flat, q_offsets, _ = validation.queries(queries, self.dim)
        n_q = len(q_offsets) - 1
        candidates = list(candidates)
        if len(candidates) != n_q:
            raise ValueError(f"got {len(candidates)} candidate lists for {n_q} queries; pass one list per query")
        lists = [np.unique(self.doc_ids.positions(c)) for c in candidates]
        k = top_k if top_k is not None else max(1, max(len(c) for c in lists))
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        out_pos = np.full((n_q, k), -1, dtype=np.int64)
        out_scores = np.full((n_q, k), -np.inf, dtype=np.float32)
        for i, docs in enumerate(lists):
            if len(docs) == 0:
                continue
            pos, sc = rerank(self._arrays, q_flat[q_offsets[i]:q_offsets[i + 1]], docs, k)
            out_pos[i, :len(pos)] = pos
            out_scores[i, :len(sc)] = sc
        return self._results(out_pos, out_scores)

    def decompress(self, doc: Any) -> np.ndarray:
        """The decompressed token vectors (n_tokens, dim) of the document with caller id ``doc``."""
        pos = int(self.doc_ids.positions([doc])[0])
        ix = self._arrays
        a, b = ix.doc_offsets[pos], ix.doc_offsets[pos + 1]
        return decompress(ix.codes[a:b], ix.residuals[a:b], ix.centroids, ix.lut)


def exact_search(
    queries,
    embeddings,
    top_k: int = 10,
    *,
    lengths=None,
    doc_ids=None,
    show_progress: bool | None = None,
) -> SearchResults:
    """Brute-force exact MaxSim of queries against caller-given (uncompressed) document embeddings."""
    flat, doc_offsets = validation.documents(embeddings, lengths)
    ids = DocIds.from_user(doc_ids, len(doc_offsets) - 1)
    k = validation.top_k(top_k, len(doc_offsets) - 1)
    q_flat, q_offsets, _ = validation.queries(queries, flat.shape[1])

    def tokens(lo: int, hi: int) -> np.ndarray:
        return flat[doc_offsets[lo]:doc_offsets[hi]]

    with progress.bar(len(doc_offsets) - 1, "search", show_progress, unit="doc") as bar:
        pos, scores = blocked_exact(tokens, doc_offsets, q_flat, q_offsets, k, NO_MASK, bar)
    return SearchResults(positions=pos, scores=scores.astype(np.float32), ids=ids.take(pos))


# -------------------------------------------------------------------------------------------------- helpers
def _build_config(config, options) -> BuildConfig:
    if config is None:
        return BuildConfig.from_dict(options)
    if isinstance(config, BuildConfig):
        return BuildConfig.from_dict({**config.to_dict(), **options}) if options else config
    return BuildConfig.from_dict({**dict(config), **options})


def _jsonable(config) -> dict[str, Any]:
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


def _threads(n_threads: int | None) -> int:
    if n_threads is None:
        import numba

        return max(1, numba.get_num_threads())
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    return n_threads


def _train_and_compress(flat: np.ndarray, cfg: BuildConfig, show_progress) -> tuple[ResidualCodec, np.ndarray, np.ndarray]:
    n_tokens, dim = flat.shape
    k = cfg.resolve_n_centroids(n_tokens)
    n_kmeans = min(n_tokens, cfg.kmeans_sample or k * cfg.kmeans_points_per_centroid)
    km_pos, codec_pos = _sample_positions(n_tokens, n_kmeans, cfg.codec_sample, cfg.seed)
    log.info("training %d centroids on %d of %d tokens", k, len(km_pos), n_tokens)
    with progress.bar(1, "kmeans", show_progress) as bar:
        centroids = train_centroids(flat[km_pos], k, cfg.kmeans_niters, cfg.seed)
        bar.update(1)
    codec = ResidualCodec.fit(centroids, flat[codec_pos], cfg.nbits)
    codes = np.empty(n_tokens, dtype=codes_dtype(k))
    residuals = np.empty((n_tokens, codec.bytes_per_token), dtype=np.uint8)
    with progress.bar(n_tokens, "compress", show_progress, unit="tok") as bar:
        for lo in range(0, n_tokens, cfg.batch_size):
            hi = min(n_tokens, lo + cfg.batch_size)
            codes[lo:hi], residuals[lo:hi] = codec.compress(flat[lo:hi])
            bar.update(hi - lo)
    return codec, codes, residuals


def write_generation(root: Path, arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any]) -> dict:
    """Write ``arrays`` as a new generation of the index at ``root`` and publish it atomically."""
    root.mkdir(parents=True, exist_ok=True)
    with storage.write_lock(root):
        previous = None
        if (root / storage.MANIFEST).exists():
            try:
                previous = storage.read_manifest(root)
            except Exception:  # a corrupt previous manifest is replaced, not read
                previous = None
        generation = (previous["generation"] + 1) if previous else 1
        storage.remove_stale(root, keep=previous["data_dir"] if previous else None)
        writer = storage.GenerationWriter(root, generation)
        try:
            for name, arr in arrays.items():
                writer.save(name, arr)
            full = writer.commit(manifest)
        except BaseException:
            writer.abort()
            raise
        storage.remove_stale(root, keep=writer.name)
    return full

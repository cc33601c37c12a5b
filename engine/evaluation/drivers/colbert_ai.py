"""Standalone driver run by ``gingham.evaluation.peers`` inside colbert-ai's own virtual environment.

Reads embeddings from .npy files (never imports gingham), builds colbert-ai's PLAID index from them and times
searches through its ``IndexScorer.rank`` (what ``Searcher.dense_search`` calls), writing JSON in the same format
as ``fastplaid.py``. colbert-ai's ``Indexer`` / ``Searcher`` load a Hugging Face checkpoint to encode text; here the
layers below them are driven with the given embeddings instead:

- build: ``CollectionIndexer`` over a collection of document numbers, its checkpoint and encoder replaced by an
  encoder that returns the stored token embeddings (sampling, faiss k-means, residual codec, chunks, IVF are
  colbert-ai's own; so is its number of centroids, ``2 ** floor(log2(16 * sqrt(n_tokens_est)))``, unless
  ``build.num_partitions`` is given);
- search: ``IndexScorer(index, use_gpu=False).rank(config, Q)`` per query (colbert-ai searches one query at a
  time; the batch call loops like ``Searcher.search_all``), its CPU path: ``filter_pids`` (centroid-score pruning
  and the two ndocs cuts), ``decompress_residuals``, ``segmented_maxsim``.

colbert-ai JIT-compiles four C++ extensions with g++/ninja (``segmented_maxsim``, ``filter_pids``,
``decompress_residuals``, ``segmented_lookup``); they are loaded before anything is timed (the first time compiles
them, minutes, into ``$TORCH_EXTENSIONS_DIR``, by default ``<venv>/torch_extensions``). A missing one exits with an
error rather than timing another path, and the report lists each one's compiled file and how often one probe query
called it.

Reported beside the protocol's timings: ``build_s`` (embeddings given: sampling, k-means, compression, IVF),
``build_peak_rss_mb`` (the process high-water mark after the build), ``index_bytes`` on disk,
``bytes_per_token`` (codes + packed residuals held in memory), ``n_centroids`` and, per setting, the top-k
``scores``.

Usage: python colbert_ai.py INPUT_DIR OUTPUT_JSON --config '{"nbits": 2, "top_k": 10, ...}'
INPUT_DIR holds docs.npy (flat float32 tokens), doc_lengths.npy, queries.npy, query_lengths.npy.
Config keys: ``nbits``, ``top_k``, ``warm``, ``n_single``, ``threads`` (torch and faiss threads; colbert-ai's
extensions use torch's count), ``seed``, ``build`` (``num_partitions``, ``kmeans_niters``) and ``settings``, a list
of search settings timed in turn: ``ncells`` (centroids probed per query token), ``centroid_score_threshold``
(centroids scoring below it are pruned from the approximate scores), ``ndocs`` (documents kept after the
approximate pass; ``ndocs // 4`` are decompressed and scored). A setting left out gets ``Searcher``'s default
for ``top_k`` (k <= 10: 1 / 0.5 / 256; k <= 100: 2 / 0.45 / 1024; else 4 / 0.4 / max(4k, 4096)).
"""

import os
import random
import shutil
import sys
import time

# colbert-ai's extensions compile into torch's extension folder: keep them with this venv (set before torch loads)
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))
# torch compiles them with ninja from PATH: the venv's own (pip's ninja) when the venv is not activated
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

from peer_protocol import dir_bytes, load_inputs, parse_args, peak_rss_mb, report, timed_run, version  # noqa: E402

SETTING_KEYS = {"ncells", "centroid_score_threshold", "ndocs"}
BUILD_KEYS = {"num_partitions", "kmeans_niters"}


def searcher_defaults(k):
    """``Searcher.dense_search``'s settings for ``k`` (colbert-ai 0.2.22)."""
    if k <= 10:
        return {"ncells": 1, "centroid_score_threshold": 0.5, "ndocs": 256}
    if k <= 100:
        return {"ncells": 2, "centroid_score_threshold": 0.45, "ndocs": 1024}
    return {"ncells": 4, "centroid_score_threshold": 0.4, "ndocs": max(k * 4, 4096)}


def load_extensions():
    """Load (compiling the first time) colbert-ai's four CPU extensions -> {name: compiled file}; exits on failure."""
    from colbert.modeling.colbert import ColBERT
    from colbert.search.index_storage import IndexScorer
    from colbert.search.strided_tensor import StridedTensor

    loaders = (("segmented_maxsim", ColBERT), ("filter_pids", IndexScorer), ("decompress_residuals", IndexScorer),
               ("segmented_lookup", StridedTensor))
    for cls in dict.fromkeys(c for _, c in loaders):
        try:
            cls.try_load_torch_extensions(False)
        except Exception as exc:  # a compiler error: colbert-ai would not run its fast CPU path
            sys.exit(f"colbert-ai's C++ extensions for {cls.__name__} did not load ({type(exc).__name__}: {exc}); "
                     f"they need g++ and ninja in the venv (pip install ninja); rerun with "
                     f"COLBERT_LOAD_TORCH_EXTENSION_VERBOSE=True to see the compiler")
    found = {}
    for name, cls in loaders:
        fn = getattr(cls, name, None)
        if fn is None or type(fn).__name__ != "builtin_function_or_method":
            sys.exit(f"colbert-ai's C++ extension {name} is missing ({cls.__name__}.{name} = {fn!r}): refusing to "
                     f"time another path")
        so = os.path.join(os.environ["TORCH_EXTENSIONS_DIR"], f"{name}_cpp", f"{name}_cpp.so")
        found[name] = so if os.path.exists(so) else f"loaded from outside {os.environ['TORCH_EXTENSIONS_DIR']}"
    return found, loaders


def count_calls(loaders, probe):
    """Run ``probe()`` with each extension wrapped in a counter (then restored) -> {name: calls}."""
    calls = {name: 0 for name, _ in loaders}
    originals = {name: (cls, getattr(cls, name)) for name, cls in loaders}

    def wrap(name, fn):
        def counted(*args):
            calls[name] += 1
            return fn(*args)
        return staticmethod(counted)

    try:
        for name, (cls, fn) in originals.items():
            setattr(cls, name, wrap(name, fn))
        probe()
    finally:
        for name, (cls, fn) in originals.items():
            setattr(cls, name, fn)
    return calls


def build_index(docs, folder, nbits, build, seed):
    """colbert-ai's CollectionIndexer over the given embeddings -> number of centroids."""
    import numpy as np
    import torch
    from colbert.data.collection import Collection
    from colbert.indexing.collection_indexer import CollectionIndexer
    from colbert.indexing.index_saver import IndexSaver
    from colbert.infra.config import ColBERTConfig

    class StoredEncoder:  # stands in for CollectionEncoder: passages are document numbers
        def encode_passages(self, passages):
            if len(passages) == 0:
                return None, None
            return torch.cat([docs[p] for p in passages]), [int(docs[p].shape[0]) for p in passages]

    class StoredIndexer(CollectionIndexer):
        def __init__(self, config):  # no checkpoint, no encoder model
            self.verbose, self.config = 0, config
            self.rank, self.nranks = config.rank, config.nranks
            self.use_gpu = False
            self.collection = Collection.cast(list(range(len(docs))))
            self.encoder = StoredEncoder()
            self.saver = IndexSaver(config)

        def setup(self):
            super().setup()
            if build.get("num_partitions"):
                self.num_partitions = int(build["num_partitions"])
                self._save_plan()

    os.makedirs(folder)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    config = ColBERTConfig(nbits=nbits, dim=int(docs[0].shape[1]), index_path=folder, rank=0, nranks=1,
                           kmeans_niters=int(build.get("kmeans_niters", 4)), overwrite=True, gpus=0)
    indexer = StoredIndexer(config)
    indexer.run([])
    return indexer.num_partitions


def main() -> None:
    inputs, output, cfg = parse_args()
    for s in cfg.get("settings") or [{}]:
        if set(s) - SETTING_KEYS:
            sys.exit(f"unknown search settings {sorted(set(s) - SETTING_KEYS)} for colbert-ai; "
                     f"known: {sorted(SETTING_KEYS)}")
    build = dict(cfg.get("build", {}))
    if set(build) - BUILD_KEYS:
        sys.exit(f"unknown build options {sorted(set(build) - BUILD_KEYS)} for colbert-ai; known: {sorted(BUILD_KEYS)}")
    import faiss
    import torch

    if torch.cuda.is_available():
        sys.exit("this driver measures colbert-ai's CPU path: use a venv with the CPU build of torch")
    threads = cfg.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
        faiss.omp_set_num_threads(int(threads))
    top_k, nbits, warm = int(cfg.get("top_k", 10)), int(cfg.get("nbits", 2)), int(cfg.get("warm", 3))
    n_single, seed = int(cfg.get("n_single", 50)), int(cfg.get("seed", 0))

    t0 = time.perf_counter()
    extensions, loaders = load_extensions()
    extensions_load_s = time.perf_counter() - t0

    from colbert.infra.config import ColBERTConfig
    from colbert.search.index_storage import IndexScorer

    docs, queries = load_inputs(inputs)
    n_tokens = int(sum(len(d) for d in docs))
    docs_t = [torch.from_numpy(d) for d in docs]
    folder = os.path.join(inputs, "colbert-ai-index")
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    n_centroids = build_index(docs_t, folder, nbits, build, seed)
    build_s = time.perf_counter() - t0
    build_peak_rss_mb = peak_rss_mb()
    del docs_t, docs
    index_bytes = dir_bytes(folder)

    t0 = time.perf_counter()
    scorer = IndexScorer(folder, use_gpu=False, load_index_with_mmap=False)
    load_s = time.perf_counter() - t0
    codes, residuals = scorer.embeddings.codes, scorer.embeddings.residuals  # what a search holds per token
    bytes_per_token = (codes.numel() * codes.element_size() + residuals.numel() * residuals.element_size()) / n_tokens
    query_maxlen = max(int(q.shape[0]) for q in queries)  # rank() keeps only the first query_maxlen tokens
    queries_t = [torch.from_numpy(q).unsqueeze(0) for q in queries]

    runs, calls = [], None
    for settings in cfg.get("settings") or [{}]:
        config = ColBERTConfig(query_maxlen=query_maxlen, gpus=0, **{**searcher_defaults(top_k), **settings})
        scores_of_batch = []

        def run(qs):
            rows, scores = [], []
            for q in qs:
                pids, sc = scorer.rank(config, q)
                rows.append(pids[:top_k])
                scores.append([float(s) for s in sc[:top_k]])
            scores_of_batch[:] = scores
            return rows

        if calls is None:  # proof that the timed path is the compiled one
            calls = count_calls(loaders, lambda: run(queries_t[:1]))
            missing = [name for name in ("segmented_maxsim", "filter_pids", "decompress_residuals")
                       if not calls[name]]
            if missing:
                sys.exit(f"colbert-ai's search did not call its C++ extensions {missing}: refusing to time it")
        timed = timed_run(run, queries_t, settings, top_k, warm, n_single)
        timed["scores"] = [row + [None] * (top_k - len(row)) for row in scores_of_batch]
        timed["config"] = {k: getattr(config, k) for k in sorted(SETTING_KEYS)}
        runs.append(timed)

    report(output, engine="colbert-ai",
           versions={"colbert-ai": version("colbert-ai"), "torch": torch.__version__, "faiss-cpu": version("faiss-cpu"),
                     "python": sys.version.split()[0]},
           torch_threads=torch.get_num_threads(), nbits=nbits, build=build, seed=seed, n_centroids=n_centroids,
           extensions=extensions, extension_calls_one_query=calls, extensions_load_s=extensions_load_s,
           build_s=build_s, build_peak_rss_mb=build_peak_rss_mb, load_s=load_s, query_maxlen=query_maxlen,
           n_tokens=n_tokens, bytes_per_token=bytes_per_token, index_bytes=index_bytes, runs=runs)


if __name__ == "__main__":
    main()

"""Streaming builds: index a corpus larger than memory, chunk by chunk, resumably.

::

    from gingham.build.streaming import build, ShardSource
    index = build("big-index", ShardSource("shards/"), memory_budget_mb=1024, nbits=2)

How a build runs (:func:`build`):

1. **Codebook from a sample.** ``sample_tokens`` tokens (kmeans sample + codec sample, bounded by ``BuildConfig``
   and by the memory budget) are gathered and the codebook is trained on them as :meth:`Index.create` trains on a
   whole corpus. ``train_on="all"`` (the default for re-readable sources) reservoir-samples them from a first pass
   over the whole corpus; ``train_on="first"`` (one-shot iterators, text sources, which would be encoded twice)
   takes the first ``sample_tokens`` tokens, so the source is read once, but tokens of the same documents are
   correlated and the codebook fits the rest worse (``index.codebook_drift()`` measures it: ~1.4 against ~1.0 on
   the synthetic bench, recall@10 0.83 against 0.89).
2. **Chunks as segments.** The documents are cut into chunks of at most ``chunk_tokens`` tokens (whole documents,
   greedily; set by ``memory_budget_mb``), each compressed (numba kernels, all cores) and committed as one segment
   through the index's atomic commit. The manifest's ``build`` field records the cursor: chunks and documents done.
   A crash leaves the index as of the last committed chunk (searchable). A chunk repeating an id of its own or of
   a committed chunk is refused (ValueError) before it is committed, as :meth:`Index.add` refuses it.
3. **Resume.** Running the same build again (same source, same options) on an interrupted index checks that the
   committed documents' ids are the source's first ids, skips them and continues with the stored codebook. The
   result is identical to an uninterrupted build.
4. **Compaction.** The segments are merged into one out of core (codes and residuals streamed through memory-mapped
   files) in the same commit that marks the build ``finished``.
5. **Calibration.** The finished index's search defaults are calibrated as :meth:`Index.create` calibrates
   (:mod:`gingham.search.calibration`; against a wide search rather than an exhaustive one past a few million
   tokens), in one more commit (``calibrate=False`` skips it).

Peak memory is set by ``memory_budget_mb`` (the chunk and the training sample), not by the corpus size.
The sources (:mod:`gingham.build.sources`) are importable from here too; how their documents are checked and cut
into chunks is :mod:`gingham.build.chunks`, the memory budget's sizes and the progress meter
:mod:`gingham.build.memory`, and each chunk is committed through the index's write path (:mod:`gingham.storage.writes`).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from gingham.build.chunks import checked, prefetch_ahead, rechunk, skip_checked, take_tokens
from gingham.build.memory import BuildMeter, Plan, memory_mb, plan, training_config  # public here too
from gingham.build.sources import (  # the sources are part of this module's public API too
    ArraySource,
    Batch,
    IteratorSource,
    ParquetSource,
    ShardSource,
    Source,
    TextSource,
    as_source,
)
from gingham.codec.residual import ResidualCodec
from gingham.codec.training import compress_all, reconstruction_mse, train_codec
from gingham.common.config import BuildConfig, resolve_build_config
from gingham.common.ids import DocIds, SeenIds, UniqueIds
from gingham.index import Index
from gingham.storage import disk
from gingham.storage.commits import (
    check_target,
    commit_arrays,
    commit_change,
    load_snapshot,
    next_segment,
    now,
    read_if_any,
)
from gingham.storage.segment import segment_arrays
from gingham.storage.writes import check_packable, compact, new_manifest, save_segment

__all__ = ["ArraySource", "Batch", "IteratorSource", "ParquetSource", "Plan", "ShardSource", "Source", "TextSource",
           "as_source", "build", "local_compressor", "memory_mb", "plan"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike


# ================================================================================================== build
def write_locked(root: Path, change: Callable[[Any, disk.GenerationWriter, dict], None]) -> dict:
    """Index._write for a caller that already holds the write lock for the whole build."""
    return commit_change(root, change)


def _request(cfg: BuildConfig, source: Source, the_plan: Plan, n_centroids: int) -> dict[str, Any]:
    return {"config": cfg.to_dict(), "source": source.fingerprint(), "chunk_tokens": the_plan.chunk_tokens,
            "sample_tokens": the_plan.sample_tokens, "n_centroids": n_centroids}


def same_request(build_state: Mapping[str, Any], cfg: BuildConfig, source: Source) -> bool:
    return build_state.get("config") == cfg.to_dict() and build_state.get("source") == source.fingerprint()


def build(
    path: PathLike,
    source,
    *,
    config: BuildConfig | Mapping[str, Any] | None = None,
    memory_budget_mb: float = 1024,
    chunk_tokens: int | None = None,
    sample_tokens: int | None = None,
    expected_tokens: int | None = None,
    resume: bool = True,
    overwrite: bool = False,
    prefetch: int = 1,
    train_on: str | None = None,
    show_progress: bool | None = None,
    compressor: Callable | None = None,
    **options: Any,
) -> Index:
    """Build an index at ``path`` from ``source`` chunk by chunk, in bounded memory; resume an interrupted one.

    source: a :class:`Source` (:class:`ShardSource`, :class:`ParquetSource`, :class:`TextSource`,
        :class:`IteratorSource`, :class:`ArraySource`), or what :func:`as_source` turns into one.
    config / options: :class:`BuildConfig` fields (``nbits``, ``n_centroids``, ``seed``, ...).
    memory_budget_mb: working memory for the chunk being compressed and the codebook's training sample; sets
        ``chunk_tokens`` and ``sample_tokens`` unless given. Peak memory does not grow with the corpus.
    expected_tokens: the corpus size in tokens when the source cannot tell (for the default ``n_centroids``);
        otherwise estimated from the first chunks and the number of documents, or required.
    resume: continue an interrupted build of the same source and options found at ``path``.
    overwrite: replace an existing (finished or different) index at ``path``.
    prefetch: chunks read ahead in a thread while the current one is compressed (0: none; each costs a chunk).
    train_on: ``"all"`` reads the source twice, the first pass reservoir-sampling ``sample_tokens`` tokens from
        the whole corpus (as good a codebook as an in-memory build); ``"first"`` trains on the first
        ``sample_tokens`` tokens (one pass: works with a one-shot iterator and encodes texts once, but tokens of
        the same documents are correlated, so the codebook is worse: see ``index.codebook_drift()``). Default:
        ``"all"``, except ``"first"`` for one-shot iterators and :class:`TextSource`.
    compressor: ``f(codec, chunks, batch_size)`` yielding ``(chunk, codes, residuals)`` for each chunk, in order,
        in place of compressing here (:mod:`gingham.build.distributed` compresses on a Ray cluster).
    """
    cfg = resolve_build_config(config, options)
    src = as_source(source)
    if train_on is None:
        one_shot = isinstance(src, IteratorSource) and not isinstance(src.items, Sequence)
        train_on = "first" if one_shot or isinstance(src, TextSource) else "all"
    if train_on not in ("first", "all"):
        raise ValueError(f"train_on must be 'first' or 'all', got {train_on!r}")
    if train_on == "all" and isinstance(src, IteratorSource) and not isinstance(src.items, Sequence):
        raise ValueError("train_on='all' reads the source twice: pass a list or a re-readable Source, not a one-shot "
                         "iterator (or use train_on='first')")
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a directory; choose another path for the index")
    root.mkdir(parents=True, exist_ok=True)
    with disk.write_lock(root, blocking=False):
        existing = read_if_any(root)
        state = (existing or {}).get("build")
        same = (existing is not None and resume and state and same_request(state, cfg, src)
                and state.get("train_on", "first") == train_on)
        if same and state["state"] == "finished" and not overwrite:
            log.info("the build at %s is already finished", root)
        elif same and state["state"] == "running":
            _resume(root, existing, src, cfg, prefetch, show_progress, compressor)
        else:
            refuse_other_build(root, state, resume, overwrite)
            _fresh(root, existing, src, cfg, memory_budget_mb, chunk_tokens, sample_tokens, expected_tokens,
                   prefetch, show_progress, compressor, train_on)
    return open_built(root)


def refuse_other_build(root: Path, state: Mapping[str, Any] | None, resume: bool, overwrite: bool) -> None:
    """Before a fresh build at ``root``: refuse to discard an interrupted build of another request (unless
    ``overwrite``) and check that the target may be written (:func:`check_target`)."""
    if state and state.get("state") == "running" and resume and not overwrite:
        raise ValueError(
            f"{root} holds an interrupted build of another source or other options; rerun it with the "
            "same ones to resume, or pass overwrite=True, resume=False to start over")
    check_target(root, overwrite)


def open_built(root: Path) -> Index:
    """The finished build at ``root``, its search defaults calibrated unless the build config says not to.

    Called after the build's lock is released (calibration commits through the index's own writer); a build that
    stopped between its last commit and calibration calibrates when it is run again."""
    index = Index.open(root)
    if index.build_config.calibrate and "calibration" not in index.manifest:
        index.recalibrate()
    return index


def _fresh(root, previous, src: Source, cfg: BuildConfig, budget, chunk_tokens, sample_tokens, expected_tokens,
           prefetch, show_progress, compressor, train_on: str = "first") -> None:
    stream = checked(src.batches(0))
    first = next(stream, None)
    if first is None or len(first) == 0:
        raise ValueError("the source holds no documents")
    stream = itertools.chain([first], stream)
    dim = int(first.flat.shape[1])
    check_packable(dim, cfg.nbits)
    the_plan = plan(dim, budget, cfg, chunk_tokens=chunk_tokens, sample_tokens=sample_tokens)

    if train_on == "all":
        del first, stream
        codec, codec_mse, total, kind, n_train = _train_on_all(src, cfg, the_plan, expected_tokens, show_progress)
        train_cfg = dataclasses.replace(cfg, n_centroids=codec.n_centroids)
        chunks = rechunk(checked(src.batches(0)), the_plan.chunk_tokens)
        start_build(root, previous, src, cfg, train_cfg, the_plan, codec, codec_mse, dim, kind, "all")
        log.info("codebook of %d centroids trained on %d tokens sampled from all %d; compressing in chunks of %d "
                 "tokens", codec.n_centroids, n_train, total, the_plan.chunk_tokens)
        _run(root, codec, chunks, cfg, total, 0, 0, 0, prefetch, show_progress, compressor, SeenIds())
        return

    # 1. the first tokens, enough for the training sample
    k_hint = cfg.n_centroids
    if k_hint is None and (src.n_tokens or expected_tokens):
        k_hint = cfg.resolve_n_centroids(int(src.n_tokens or expected_tokens))
    cap = the_plan.sample_tokens
    need = training_config(cfg, k_hint, cap)[1] if k_hint else cap
    prefix, have, rest = take_tokens(stream, min(need, cap))
    exhausted = False
    if not k_hint:
        peek = next(rest, None)
        exhausted = peek is None
        rest = itertools.chain([peek], rest) if peek is not None else iter(())
        if exhausted:
            total = have
        elif src.n_docs:
            n_prefix = sum(len(p) for p in prefix)
            total = int(have / n_prefix * src.n_docs)
            log.info("estimated %d tokens from the first %d documents", total, n_prefix)
        else:
            raise ValueError("the source does not say how many tokens it holds: pass n_centroids= or "
                             "expected_tokens= to size the codebook")
        k_hint = cfg.resolve_n_centroids(total)
    train_cfg, need = training_config(cfg, k_hint, cap)
    head = Batch.concat(prefix)
    train_flat = head.flat[:min(have, need)] if have > need else head.flat
    codec, codec_mse, _ = train_codec(train_flat, train_cfg, show_progress)
    del train_flat

    # 2. commit the codebook (no segments yet) with the build state
    start_build(root, previous, src, cfg, train_cfg, the_plan, codec, codec_mse, dim,
           DocIds.from_user(head.ids[:1], 1).kind, "first")
    log.info("codebook of %d centroids trained on the first %d tokens (peak RSS so far %.0f MiB); compressing in "
             "chunks of %d tokens", codec.n_centroids, len(head.flat), memory_mb()["peak"], the_plan.chunk_tokens)
    chunks = rechunk(itertools.chain([head], rest), the_plan.chunk_tokens)
    del prefix, head, first, stream  # the chunker holds the first tokens only until they are compressed
    _run(root, codec, chunks, cfg, src.n_tokens, 0, 0, 0, prefetch, show_progress, compressor, SeenIds())


def start_build(root, previous, src: Source, cfg: BuildConfig, train_cfg: BuildConfig, the_plan: Plan,
           codec: ResidualCodec, codec_mse: float, dim: int, id_kind: str, train_on: str) -> None:
    """Commit the codebook (no segments yet) with the build's state: the point a resume starts from."""
    request = _request(cfg, src, the_plan, codec.n_centroids)
    manifest = new_manifest(train_cfg, codec, dim, id_kind, codec_mse, src.encoder)
    manifest["build"] = {**request, "train_on": train_on, "state": "running", "chunks_done": 0, "docs_done": 0,
                         "tokens_done": 0, "started": now()}
    commit_arrays(root, previous, manifest, codec.arrays(), keep={})


def _train_on_all(src: Source, cfg: BuildConfig, the_plan: Plan, expected_tokens, show_progress):
    """First pass: reservoir-sample (Algorithm R, seeded) tokens from the whole corpus, then train on them."""
    cap = the_plan.sample_tokens
    k = cfg.n_centroids or (cfg.resolve_n_centroids(int(src.n_tokens or expected_tokens))
                            if (src.n_tokens or expected_tokens) else None)
    size = training_config(cfg, k, cap)[1] if k else cap
    rng = np.random.default_rng([cfg.seed, 0x5A4D])
    reservoir = None
    seen = 0
    kind = None
    unique = UniqueIds()  # a repeated id is refused now, before any document is compressed
    for b in checked(src.batches(0)):
        again = unique.repeated(b.ids)
        if again is not None:
            raise ValueError(f"document id {again[0]!r} appears twice in the source (again as its document "
                             f"{again[1]}); ids must be unique. Nothing was committed: fix the source and run the "
                             "build again")
        x = b.flat
        if reservoir is None:
            reservoir = np.empty((size, x.shape[1]), dtype=np.float32)
            kind = DocIds.from_user(b.ids[:1], 1).kind
        m = len(x)
        fill = max(0, min(m, size - seen))
        reservoir[seen:seen + fill] = x[:fill]
        if fill < m:
            g = seen + np.arange(fill, m)  # global index of each remaining token
            j = rng.integers(0, g + 1)
            keep = j < size
            reservoir[j[keep]] = x[fill:][keep]
        seen += m
    if reservoir is None or seen == 0:
        raise ValueError("the source holds no documents")
    sample = reservoir[:min(seen, size)]
    k = k or cfg.resolve_n_centroids(seen)
    train_cfg, _ = training_config(cfg, k, cap)
    codec, mse, _ = train_codec(sample, train_cfg, show_progress)
    return codec, mse, seen, kind, len(sample)


def _resume(root, manifest, src: Source, cfg: BuildConfig, prefetch, show_progress, compressor) -> None:
    state = manifest["build"]
    done = int(state["docs_done"])
    snap = load_snapshot(root, manifest, lazy=True)  # its ids only
    log.info("resuming the build at %s after %d chunks (%d documents)", root, state["chunks_done"], done)
    seg_ids = iter([(seg.base, seg.ids) for seg in snap.segments])
    cur: dict[str, Any] = {"base": 0, "ids": None, "n": 0}

    def check(ids: list, at: int) -> None:
        # compare the source's ids at positions at..at+len-1 with the committed ones
        i = 0
        while i < len(ids):
            pos = at + i
            while cur["ids"] is None or pos >= cur["base"] + cur["n"]:
                base, seg_ids_now = next(seg_ids)
                cur.update(base=base, ids=seg_ids_now.to_list(), n=len(seg_ids_now))
            local = pos - cur["base"]
            m = min(len(ids) - i, cur["n"] - local)
            committed = cur["ids"][local:local + m]
            if list(ids[i:i + m]) != committed:
                bad = next(x for x in range(m) if ids[i + x] != committed[x])
                raise ValueError(
                    f"the source's document {pos + bad} has id {ids[i + bad]!r} but the interrupted build committed "
                    f"{committed[bad]!r} there; resume with the same source in the same order, or start over with "
                    "overwrite=True, resume=False")
            i += m

    with_texts = snap.segments[0].texts is not None if snap.segments else None
    rest = skip_checked(checked(src.batches(done), int(manifest["dim"]), manifest["doc_id_kind"], with_texts),
                         done, check)
    chunks = rechunk(rest, int(state["chunk_tokens"]))
    seen = SeenIds()
    for seg in snap.segments:  # the documents committed before the interruption count for uniqueness
        seen.add(seg.ids.to_list())
    _run(root, snap.codec, chunks, cfg, src.n_tokens, int(state["chunks_done"]), done, int(state["tokens_done"]),
         prefetch, show_progress, compressor, seen)


def _run(root, codec: ResidualCodec, chunks: Iterator[Batch], cfg: BuildConfig, total_tokens, chunks_done: int,
         docs_done: int, tokens_done: int, prefetch: int, show_progress, compressor, seen: SeenIds) -> None:
    """Compress and commit chunk after chunk, then compact and mark the build finished. ``seen`` holds the ids
    committed so far: a chunk repeating one of them (or one of its own) is refused before it is committed."""
    meter = BuildMeter(total_tokens, show_progress, tokens_done)
    compress = compressor or local_compressor
    try:
        for chunk, codes, residuals in compress(codec, prefetch_ahead(chunks, prefetch), cfg.batch_size):
            mse = reconstruction_mse(codec, chunk.flat, codes, residuals)
            _check_unique(root, chunk.ids, docs_done, seen)
            ids = DocIds.from_user(chunk.ids, len(chunk))
            doc_offsets = chunk.offsets()
            n_docs, n_tokens = len(chunk), int(doc_offsets[-1])
            arrays = segment_arrays(codec, codes, residuals, doc_offsets, ids, chunk.texts, chunk.metadata)
            chunks_done += 1
            docs_done += n_docs
            tokens_done += n_tokens
            cursor = {"chunks_done": chunks_done, "docs_done": docs_done, "tokens_done": tokens_done}

            def change(snap, writer, manifest, arrays=arrays, n_docs=n_docs, n_tokens=n_tokens, mse=mse,
                       cursor=cursor, kind=ids.kind):
                if kind != manifest["doc_id_kind"]:
                    raise ValueError(f"the source mixes {manifest['doc_id_kind']} and {kind} document ids")
                save_segment(writer, manifest, next_segment(manifest), arrays, n_docs, n_tokens, mse)
                manifest["build"] = {**manifest["build"], **cursor}

            write_locked(root, change)
            seen.add(chunk.ids)
            del chunk, codes, residuals, arrays
            meter.chunk(n_docs, n_tokens, chunks_done)
    finally:
        meter.close()
    finish_build(root, show_progress)


def _check_unique(root: Path, ids: list, at: int, seen: SeenIds) -> None:
    """Raise a ValueError naming the id if the source's documents ``at``.. (``ids``, one chunk) repeat an id of
    their own or of a committed document (a shared key in ``seen`` is confirmed against the committed ids)."""
    first: dict = {}
    for j, i in enumerate(ids):
        if first.setdefault(i, at + j) != at + j:
            _repeated(i, first[i], at + j, at)
    maybe = {ids[j]: at + int(j) for j in seen.maybe_seen(ids)}
    if maybe:
        snap = load_snapshot(root, disk.read_manifest(root), lazy=True)  # under the build's write lock
        for seg in snap.segments:
            for pos, i in enumerate(seg.ids.to_list()):
                if i in maybe:
                    _repeated(i, seg.base + pos, maybe[i], at)


def _repeated(doc_id, first: int, again: int, committed: int):
    raise ValueError(
        f"document id {doc_id!r} appears twice in the source, as its documents {first} and {again}; ids must be "
        f"unique. The build has committed the first {committed} documents: fix the source and run the build again "
        "to resume, or start over with overwrite=True, resume=False")


def local_compressor(codec: ResidualCodec, chunks: Iterable[Batch], batch_size: int):
    """Compress each chunk here (the numba kernels use every core)."""
    for chunk in chunks:
        codes, residuals = compress_all(codec, chunk.flat, batch_size, False)
        yield chunk, codes, residuals


def finish_build(root: Path, show_progress) -> None:
    """Merge every chunk's segment into one, out of core, in the commit that marks the build finished."""
    def change(snap, writer, manifest):
        compact(snap, writer, manifest, show_progress)
        manifest["build"] = {**manifest["build"], "state": "finished", "finished": now()}

    write_locked(root, change)
    log.info("build of %s finished", root)

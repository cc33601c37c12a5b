"""Text builds on Ray: JSONL documents encoded and compressed on Ray workers, committed by the driver.

:func:`gingham.build.distributed.build` calls :func:`build_texts` for a :class:`gingham.build.sources.TextSource`. The driver
reads only ids, texts (for storage) and byte offsets from the JSONL file; Ray Data runs ``map_batches`` over the
corpus' groups of ``encode_docs`` documents with a pool of actors (:class:`GroupWorker`), each loading the model
once (on a GPU when ``num_gpus`` is set), reading its group's lines from the file itself, encoding them and
compressing the tokens with the shared codebook. Only codes, packed residuals, token counts and the chunk's
reconstruction error come back, in order, and are committed as segments with the streaming build's cursor.

Steps, as in the local streaming build with ``train_on="first"`` (:mod:`gingham.build.streaming`):

1. the first groups are encoded on the workers until the training sample is full; the codebook is trained at the
   driver on the first ``sample_tokens`` tokens, exactly as locally, and committed with the build state;
2. every group is encoded again and compressed on the workers (the training groups are encoded twice: a bounded
   cost, ``sample_tokens`` tokens), and committed in order;
3. the segments are merged into one, as locally.

A crash resumes from the last committed group (same source, same options), on Ray or locally. The index equals
the local streaming build's arrays for arrays (codebook, codes, residuals, offsets, inverted lists, ids, texts)
when the workers' embeddings equal the local encoder's (same model, same groups; float results can depend on the
torch thread count). The stored reconstruction error is measured per group here and per chunk there.

The corpus file must be readable at the same path on every node (shared storage).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from gingham.build.sources import Batch, TextSource
from gingham.codec.residual import ResidualCodec, codes_dtype
from gingham.common import progress
from gingham.common.config import BuildConfig
from gingham.common.ids import DocIds
from gingham.storage import disk
from gingham.storage.commits import load_snapshot, next_segment, read_if_any
from gingham.storage.segment import segment_arrays
from gingham.storage.writes import save_segment

log = logging.getLogger(__name__)


# ================================================================================================== the file
def group_offsets(path: Path, encode_docs: int) -> list[int]:
    """Byte offset of the first line of each group of ``encode_docs`` non-blank lines (one pass, no parsing)."""
    offsets, n, at = [], 0, 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                if n % encode_docs == 0:
                    offsets.append(at)
                n += 1
            at += len(line)
    return offsets


def read_group(path: Path, offset: int, n_docs: int, first_lineno: int) -> tuple[list[str], list[str]]:
    """(ids, texts) of ``n_docs`` rows from byte ``offset``, read as :class:`TextSource` reads them."""
    from gingham.build.corpus import row_record

    ids, texts = [], []
    with open(path, "rb") as f:
        f.seek(offset)
        for raw in f:
            line = raw.decode("utf-8").strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path} row {first_lineno + len(ids)} is not valid JSON ({exc})") from exc
            rid, text = row_record(row, path, first_lineno + len(ids))
            ids.append(rid)
            texts.append(text)
            if len(ids) == n_docs:
                break
    return ids, texts


# ================================================================================================== the workers
class GroupWorker:
    """A Ray Data actor: loads the model once, then encodes (and, given a codebook, compresses) whole groups."""

    def __init__(self, path: str, encode_docs: int, model: str, options: dict, codebook=None, nbits: int = 0,
                 normalize: bool = False, batch_size: int = 262_144, gpu: bool = False, assign_nprobe: int = 0):
        from gingham.encoder import load_encoder

        try:  # torch's, numba's and faiss's threads: the CPUs Ray gave this actor, not the node's
            import ray

            cpus = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
            import faiss
            import numba
            import torch

            torch.set_num_threads(cpus)
            numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS, cpus)))
            faiss.omp_set_num_threads(cpus)
        except Exception:  # pragma: no cover
            pass
        self.path, self.encode_docs = Path(path), encode_docs
        if gpu and "device" not in options:  # Ray set CUDA_VISIBLE_DEVICES to this actor's GPU
            options = {**options, "device": "cuda"}
        self.encoder = load_encoder(model, **options)
        self.codec = None if codebook is None else ResidualCodec.from_arrays(codebook, nbits, normalize,
                                                                             assign_nprobe)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from gingham.codec.training import compress_all, reconstruction_mse

        out: dict[str, list] = {"group": [], "lengths": [], "payload": [], "payload2": [], "mse": [], "pid": [],
                                "host": []}
        for group, offset in zip(batch["group"], batch["offset"]):
            _, texts = read_group(self.path, int(offset), self.encode_docs, int(group) * self.encode_docs + 1)
            embs = self.encoder.encode_documents(texts, show_progress=False)
            lengths = np.array([e.shape[0] for e in embs], dtype=np.int64)
            flat = np.concatenate(embs).astype(np.float32)
            if self.codec is None:  # the training sample: the embeddings themselves
                payload, payload2, mse = flat.tobytes(), b"", 0.0
            else:
                codes, residuals = compress_all(self.codec, flat, self.batch_size, False)
                payload, payload2 = codes.tobytes(), residuals.tobytes()
                mse = reconstruction_mse(self.codec, flat, codes, residuals)
            out["group"].append(int(group))
            out["lengths"].append(lengths.tobytes())
            out["payload"].append(payload)
            out["payload2"].append(payload2)
            out["mse"].append(mse)
            out["pid"].append(os.getpid())
            out["host"].append(os.uname().nodename)
        return {k: np.array(v, dtype=object if k in ("lengths", "payload", "payload2", "host") else None)
                for k, v in out.items()}


def _groups_on_ray(ray, src: TextSource, offsets: list[int], start_group: int, pool: dict[str, Any],
                   codec: ResidualCodec | None, batch_size: int, show_progress) -> Iterator[dict[str, Any]]:
    """The workers' results for groups ``start_group``.. in order, one dict per group."""
    if start_group >= len(offsets):
        return
    ctx = ray.data.DataContext.get_current()
    saved = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    ctx.execution_options.preserve_order = True  # results in group order: they are committed in it
    ctx.enable_progress_bars = progress.enabled(show_progress)
    try:
        yield from _run_pipeline(ray, src, offsets, start_group, pool, codec, batch_size)
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved


def _run_pipeline(ray, src: TextSource, offsets: list[int], start_group: int, pool: dict[str, Any],
                  codec: ResidualCodec | None, batch_size: int) -> Iterator[dict[str, Any]]:
    items = [{"group": g, "offset": offsets[g]} for g in range(start_group, len(offsets))]
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), max(1, pool["concurrency"] * 4)))
    kwargs = dict(path=str(src.path.absolute()), encode_docs=src.encode_docs, model=src.model,
                  options=src.encoder_options, batch_size=batch_size,
                  gpu=bool(pool["num_gpus"]))
    if codec is not None:
        kwargs.update(codebook=codec.arrays(), nbits=codec.nbits, normalize=codec.normalize,
                      assign_nprobe=codec.assign_nprobe)
    ds = ds.map_batches(GroupWorker, fn_constructor_kwargs=kwargs, batch_size=1, batch_format="numpy",
                        concurrency=pool["concurrency"], num_cpus=pool["num_cpus"], num_gpus=pool["num_gpus"])
    for row in ds.iter_rows():
        yield row


# ================================================================================================== the build
def build_texts(path, src: TextSource, cfg: BuildConfig, *, memory_budget_mb: float, sample_tokens: int | None,
                expected_tokens: int | None, resume: bool, overwrite: bool, show_progress, concurrency: int | None,
                num_cpus: float, num_gpus: float | None):
    """:func:`gingham.build.distributed.build` for a text corpus (see the module docstring). Returns the Index."""
    import ray

    from gingham.build import streaming

    if num_gpus is None:
        num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    if concurrency is None:
        slots = ray.cluster_resources().get("GPU", 0) if num_gpus else ray.cluster_resources().get("CPU", 1) / num_cpus
        concurrency = max(1, int(slots))
    pool = {"concurrency": concurrency, "num_cpus": num_cpus, "num_gpus": num_gpus}
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} exists and is not a directory; choose another path for the index")
    root.mkdir(parents=True, exist_ok=True)
    offsets = group_offsets(src.path, src.encode_docs)
    if not offsets:
        raise ValueError(f"the source {src.path} holds no documents")
    with disk.write_lock(root, blocking=False):
        existing = read_if_any(root)
        state = (existing or {}).get("build")
        same = (existing is not None and resume and state and streaming.same_request(state, cfg, src)
                and state.get("train_on", "first") == "first")
        if same and state["state"] == "finished" and not overwrite:
            log.info("the build at %s is already finished", root)
            return streaming.open_built(root)
        if same and state["state"] == "running":
            snap = load_snapshot(root, existing)
            codec, done = snap.codec, int(state["docs_done"])
            _check_committed_ids(src, snap, done)
            cursor = {k: int(state[k]) for k in ("chunks_done", "docs_done", "tokens_done")}
            log.info("resuming the Ray build at %s after %d documents", root, done)
        else:
            streaming.refuse_other_build(root, state, resume, overwrite)
            codec = _train(root, existing, src, cfg, offsets, pool, memory_budget_mb, sample_tokens, expected_tokens,
                           show_progress)
            cursor = {"chunks_done": 0, "docs_done": 0, "tokens_done": 0}
        _compress_and_commit(root, src, cfg, codec, offsets, pool, cursor, show_progress)
        streaming.finish_build(root, show_progress)
    return streaming.open_built(root)


def _train(root, existing, src: TextSource, cfg: BuildConfig, offsets, pool, budget, sample_tokens,
           expected_tokens, show_progress) -> ResidualCodec:
    """Encode the first groups on the workers until the training sample is full; train as the local build does."""
    import ray

    from gingham.build import streaming
    from gingham.codec.training import train_codec

    dim = src.dim  # the driver loads the model once, for its config (recorded in the manifest)
    the_plan = streaming.plan(dim, budget, cfg, sample_tokens=sample_tokens)
    k_hint = cfg.n_centroids or (cfg.resolve_n_centroids(int(expected_tokens)) if expected_tokens else None)
    cap = the_plan.sample_tokens
    need = streaming.training_config(cfg, k_hint, cap)[1] if k_hint else cap
    want = min(need, cap)
    parts, have, pids = [], 0, set()
    groups = _groups_on_ray(ray, src, offsets, 0, pool, None, cfg.batch_size, show_progress)
    for row in groups:
        g = int(row["group"])
        lengths = np.frombuffer(row["lengths"], dtype=np.int64)
        flat = np.frombuffer(row["payload"], dtype=np.float32).reshape(-1, dim)
        ids, texts = read_group(src.path, offsets[g], src.encode_docs, g * src.encode_docs + 1)
        parts.append(Batch(ids, flat, lengths, texts))
        have += int(lengths.sum())
        pids.add((row["host"], int(row["pid"])))
        if have >= want:
            break
    del groups
    # the same prefix of whole documents and the same tokens as streaming._fresh takes
    prefix, have, _ = streaming.take_tokens(iter(parts), want)
    exhausted = sum(len(p) for p in prefix) >= src.n_docs
    if not k_hint:
        total = have if exhausted else int(have / sum(len(p) for p in prefix) * src.n_docs)
        k_hint = cfg.resolve_n_centroids(total)
    train_cfg, need = streaming.training_config(cfg, k_hint, cap)
    head = Batch.concat(prefix)
    train_flat = head.flat[:min(have, need)] if have > need else head.flat
    codec, codec_mse, _ = train_codec(np.ascontiguousarray(train_flat), train_cfg, show_progress)
    streaming.start_build(root, existing, src, cfg, train_cfg, the_plan, codec, codec_mse, dim,
                     DocIds.from_user(head.ids[:1], 1).kind, "first")
    log.info("codebook of %d centroids trained on the first %d tokens, encoded by %d Ray workers",
             codec.n_centroids, len(train_flat), len(pids))
    return codec


def _compress_and_commit(root, src: TextSource, cfg: BuildConfig, codec: ResidualCodec, offsets, pool, cursor,
                         show_progress) -> None:
    import ray

    from gingham.build import streaming

    e = src.encode_docs
    start = cursor["docs_done"] // e  # commits are whole groups
    workers = set()
    meter = streaming.BuildMeter(None, show_progress, cursor["tokens_done"])
    text_rows = _text_groups(src, start)
    dtype = codes_dtype(codec.n_codes)
    try:
        for row in _groups_on_ray(ray, src, offsets, start, pool, codec, cfg.batch_size, show_progress):
            ids, texts, metadata = next(text_rows)
            lengths = np.frombuffer(row["lengths"], dtype=np.int64)
            codes = np.frombuffer(row["payload"], dtype=dtype).copy()
            residuals = np.frombuffer(row["payload2"], dtype=np.uint8).reshape(len(codes), codec.bytes_per_token)
            doc_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            doc_ids = DocIds.from_user(ids, len(ids))
            arrays = segment_arrays(codec, codes, residuals.copy(), doc_offsets, doc_ids,
                                    texts if src.store_texts else None, metadata)
            workers.add(f"{row['host']}:{int(row['pid'])}")
            cursor = {"chunks_done": cursor["chunks_done"] + 1, "docs_done": cursor["docs_done"] + len(ids),
                      "tokens_done": cursor["tokens_done"] + int(doc_offsets[-1])}

            def change(snap, writer, manifest, arrays=arrays, n_docs=len(ids), n_tokens=int(doc_offsets[-1]),
                       mse=float(row["mse"]), cursor=cursor):
                save_segment(writer, manifest, next_segment(manifest), arrays, n_docs, n_tokens, mse)
                workers_so_far = sorted(set(manifest["build"].get("ray_workers", [])) | workers)
                manifest["build"] = {**manifest["build"], **cursor, "ray_workers": workers_so_far}

            streaming.write_locked(root, change)
            meter.chunk(len(ids), int(doc_offsets[-1]), cursor["chunks_done"])
    finally:
        meter.close()


def _text_groups(src: TextSource, start_group: int) -> Iterator[tuple[list, list[str], list[dict] | None]]:
    """(ids, texts, metadata) per group from ``start_group``, read at the driver in one pass, as the local build
    reads them (:meth:`TextSource.groups`)."""
    for ids, texts, metadata, todo in src.groups(start_group * src.encode_docs):
        if todo:
            yield ids, texts, metadata


def _check_committed_ids(src: TextSource, snap, done: int) -> None:
    """The committed documents' ids must be the source's first ids (the same corpus, in the same order)."""
    from gingham.build.corpus import jsonl_rows, row_record

    committed = [i for seg in snap.segments for i in seg.ids.to_list()]
    rows = (row_record(row, src.path, n)[0] for n, row in enumerate(jsonl_rows(src.path), start=1))
    for pos, (a, b) in enumerate(zip(itertools.islice(rows, done), committed)):
        if a != b:
            raise ValueError(f"the source's document {pos} has id {a!r} but the interrupted build committed {b!r} "
                             "there; resume with the same source in the same order, or start over with "
                             "overwrite=True, resume=False")

"""Sources of documents for streaming builds: each yields batches (:class:`Batch`) of consecutive documents (ids,
token vectors as one flat array plus lengths, optional texts and metadata) and can restart after the first
``start`` documents, which a resumed build skips.

Sources: :class:`IteratorSource` (any iterable of ``(id, embeddings)`` pairs, read once), :class:`ArraySource`
(one flat array plus lengths), :class:`ShardSource` (``.npy`` shards), :class:`ParquetSource` and
:class:`TextSource` (texts encoded chunk by chunk, optionally in a pool of worker processes).
:func:`as_source` picks one from a path or an object.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from gingham.common.ids import check_ids
from gingham.storage import npy

PathLike = str | os.PathLike

#: Documents per batch that sources yield (sources may use their own natural size, e.g. one shard).
SOURCE_BATCH_DOCS = 1024


@dataclass
class Batch:
    """Consecutive documents of a source. ``flat`` is None for documents before the resume point, which a source
    may give as ids only (they are skipped, their ids checked)."""

    ids: list
    flat: np.ndarray | None  # (n_tokens, dim) float32
    lengths: np.ndarray | None  # (n_docs,) int64
    texts: list | None = None
    metadata: list | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def offsets(self) -> np.ndarray:
        """Token offsets of the documents (n_docs + 1,) int64: document i is ``flat[offsets[i]:offsets[i + 1]]``."""
        return _offsets(self.lengths)

    def slice(self, lo: int, hi: int) -> "Batch":
        if self.flat is None:
            return Batch(self.ids[lo:hi], None, None if self.lengths is None else self.lengths[lo:hi])
        offsets = self.offsets()
        return Batch(
            self.ids[lo:hi], self.flat[offsets[lo]:offsets[hi]], self.lengths[lo:hi],
            None if self.texts is None else self.texts[lo:hi],
            None if self.metadata is None else self.metadata[lo:hi],
        )

    @staticmethod
    def concat(parts: Sequence["Batch"]) -> "Batch":
        if len(parts) == 1:
            b = parts[0]
            return Batch(list(b.ids), np.ascontiguousarray(b.flat, dtype=np.float32), np.asarray(b.lengths, np.int64),
                         b.texts, b.metadata)
        flat = np.concatenate([np.asarray(p.flat, dtype=np.float32) for p in parts])
        return Batch(
            [i for p in parts for i in p.ids], flat, np.concatenate([p.lengths for p in parts]).astype(np.int64),
            None if parts[0].texts is None else [t for p in parts for t in p.texts],
            # metadata is per document: a part without any gives None for each of its documents
            None if all(p.metadata is None for p in parts)
            else [m for p in parts for m in (p.metadata if p.metadata is not None else [None] * len(p))],
        )


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


class Source:
    """A corpus read in order. Subclass and implement :meth:`batches` (and set what is known up front).

    ``batches(start)`` yields every document from the first, in order, as :class:`Batch` es; documents before
    ``start`` (already committed by an interrupted build) may be given as ids only, without embeddings.
    ``fingerprint()`` is a JSON-able description recorded in the manifest: a resumed build must match it.
    """

    dim: int | None = None
    n_docs: int | None = None
    n_tokens: int | None = None
    encoder: Mapping[str, Any] | None = None  # how embeddings were made (text sources)

    def batches(self, start: int = 0) -> Iterator[Batch]:  # pragma: no cover - interface
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": type(self).__name__}


class IteratorSource(Source):
    """Documents from an iterable of ``(id, embeddings)`` pairs (embeddings: (n_tokens_i, dim) float arrays).

    A one-shot iterator is read once; to resume, build again with a fresh iterator over the same documents. A
    sequence (list) gives the corpus size up front, so the default ``n_centroids`` can be derived from it.
    """

    def __init__(self, items: Iterable, *, name: str | None = None, batch_docs: int = SOURCE_BATCH_DOCS):
        self.items = items
        self._name = name
        self._batch_docs = batch_docs
        if isinstance(items, Sequence):
            self.n_docs = len(items)
            self.n_tokens = int(sum(np.shape(e)[0] for _, e in items))
            self.dim = int(np.shape(items[0][1])[1]) if len(items) else None

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "iterator", "name": self._name, "n_docs": self.n_docs, "n_tokens": self.n_tokens}

    def batches(self, start: int = 0) -> Iterator[Batch]:
        it = iter(self.items)
        while True:
            group = list(itertools.islice(it, self._batch_docs))
            if not group:
                return
            ids = [i for i, _ in group]
            docs = [np.asarray(e, dtype=np.float32) for _, e in group]
            lengths = np.array([d.shape[0] for d in docs], dtype=np.int64)
            yield Batch(ids, np.concatenate(docs) if docs else None, lengths)


class ArraySource(Source):
    """An in-memory (or memory-mapped) flat ``(n_tokens, dim)`` array with per-document ``lengths``."""

    def __init__(self, flat: np.ndarray, lengths, ids=None, *, texts=None, metadata=None, name: str | None = None,
                 batch_docs: int = SOURCE_BATCH_DOCS):
        self._flat = flat
        self._lengths = np.asarray(lengths, dtype=np.int64)
        self._ids = list(range(len(self._lengths))) if ids is None else check_ids(ids)[0]
        if len(self._ids) != len(self._lengths):
            raise ValueError(f"got {len(self._ids)} ids for {len(self._lengths)} documents; pass one id per document")
        self._texts, self._meta, self._name, self._batch_docs = texts, metadata, name, batch_docs
        self.n_docs, self.n_tokens, self.dim = len(self._lengths), int(self._lengths.sum()), int(flat.shape[1])
        if self.n_tokens != flat.shape[0]:
            raise ValueError(f"lengths sum to {self.n_tokens} tokens but the array has {flat.shape[0]} rows")

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "array", "name": self._name, "n_docs": self.n_docs, "n_tokens": self.n_tokens}

    def batches(self, start: int = 0) -> Iterator[Batch]:
        offsets = _offsets(self._lengths)
        for lo in range(0, self.n_docs, self._batch_docs):
            hi = min(self.n_docs, lo + self._batch_docs)
            if hi <= start:
                yield Batch(self._ids[lo:hi], None, self._lengths[lo:hi])
                continue
            yield Batch(self._ids[lo:hi], self._flat[offsets[lo]:offsets[hi]], self._lengths[lo:hi],
                        None if self._texts is None else list(self._texts[lo:hi]),
                        None if self._meta is None else list(self._meta[lo:hi]))


class ShardSource(Source):
    """Embedding shards: ``NAME.npy`` (flat float (n_tokens, dim)) beside ``NAME.lengths.npy`` (int, one per
    document) and optionally ``NAME.ids.npy`` (int or str ids; default: documents numbered across shards).

    ``shards``: a folder (every ``*.npy`` that is not ``*.lengths.npy`` / ``*.ids.npy``, in name order) or a list
    of embedding files. Shards are memory-mapped; the lengths give the corpus size without reading embeddings.
    """

    def __init__(self, shards: PathLike | Sequence[PathLike]):
        if isinstance(shards, (str, os.PathLike)) and Path(shards).is_dir():
            files = sorted(p for p in Path(shards).glob("*.npy")
                           if not p.name.endswith((".lengths.npy", ".ids.npy")))
        else:
            files = [Path(p) for p in ([shards] if isinstance(shards, (str, os.PathLike)) else shards)]
        if not files:
            raise FileNotFoundError(f"no embedding shards (*.npy) found in {shards}")
        self.files = files
        self._lengths = []
        for f in files:
            lp = f.with_name(f.name[:-4] + ".lengths.npy")
            if not f.exists():
                raise FileNotFoundError(f"embedding shard {f} does not exist")
            if not lp.exists():
                raise FileNotFoundError(f"shard {f} has no lengths file {lp.name}; save one int per document there")
            lengths = npy.load(lp, mmap=False).astype(np.int64)  # gingham.storage.npy: safe in the prefetch thread
            emb = npy.load(f)
            if emb.ndim != 2 or int(lengths.sum()) != emb.shape[0]:
                raise ValueError(f"shard {f}: lengths sum to {int(lengths.sum())} but it holds {emb.shape[0]} rows")
            self._lengths.append(lengths)
            self.dim = int(emb.shape[1])
        self.n_docs = int(sum(len(x) for x in self._lengths))
        self.n_tokens = int(sum(int(x.sum()) for x in self._lengths))

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "shards", "files": [f.name for f in self.files], "n_docs": self.n_docs,
                "n_tokens": self.n_tokens}

    def _ids(self, f: Path, base: int, n: int) -> list:
        ip = f.with_name(f.name[:-4] + ".ids.npy")
        if not ip.exists():
            return list(range(base, base + n))
        ids = npy.load(ip, mmap=False)
        return [str(i) for i in ids] if ids.dtype.kind in "US" else [int(i) for i in ids]

    def batches(self, start: int = 0) -> Iterator[Batch]:
        base = 0
        for f, lengths in zip(self.files, self._lengths):
            ids = self._ids(f, base, len(lengths))
            if base + len(lengths) <= start:
                yield Batch(ids, None, lengths)
            else:
                yield Batch(ids, npy.load(f), lengths)
            base += len(lengths)


class ParquetSource(Source):
    """A Parquet file (needs pyarrow): an id column and an embeddings column holding each document's tokens as a
    list of lists of floats (optionally a text column). Read in record batches."""

    def __init__(self, path: PathLike, *, id_column: str = "id", embeddings_column: str = "embeddings",
                 text_column: str | None = None, batch_docs: int = SOURCE_BATCH_DOCS):
        from gingham.common.errors import require

        pq = require("pyarrow.parquet", "parquet")
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"Parquet file {self.path} does not exist")
        self._pq = pq
        self._cols = (id_column, embeddings_column, text_column)
        self._batch_docs = batch_docs
        meta = pq.ParquetFile(self.path).metadata
        self.n_docs = int(meta.num_rows)

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "parquet", "file": self.path.name, "n_docs": self.n_docs, "columns": list(self._cols)}

    def batches(self, start: int = 0) -> Iterator[Batch]:
        id_col, emb_col, text_col = self._cols
        pf = self._pq.ParquetFile(self.path)
        done = 0
        for rb in pf.iter_batches(batch_size=self._batch_docs, columns=[c for c in self._cols if c]):
            ids = rb.column(id_col).to_pylist()
            if done + len(ids) <= start:
                done += len(ids)
                yield Batch(ids, None, None)
                continue
            docs = rb.column(emb_col)  # list<list<float>>
            lengths = np.diff(np.asarray(docs.offsets)).astype(np.int64)
            rows = docs.flatten()
            values = np.asarray(rows.flatten(), dtype=np.float32)
            flat = values.reshape(len(rows), -1)
            texts = rb.column(text_col).to_pylist() if text_col else None
            done += len(ids)
            yield Batch(ids, flat, lengths, texts)


class TextSource(Source):
    """A JSONL / BEIR corpus (``{"_id"|"id", "text"[, "title"]}`` per line, the other fields metadata as for
    ``gingham index``, on Ray too) encoded in chunks of ``encode_docs``
    documents by a late-interaction ``model`` (``gingham.encoder.load_encoder``; needs ``gingham[encoder]``).

    Documents before the resume point are read (ids) but not encoded.

    workers: encoder processes (each loads the model once and encodes whole chunks; results come back in
        order). ``devices`` spreads them over devices (``["cuda:0", "cuda:1"]``); on CPU each worker gets
        ``os.cpu_count() // workers`` torch threads. At most ``2 * workers`` chunks are in flight, so memory
        stays bounded. 1 (default): encode in this process.
    """

    def __init__(self, path: PathLike, *, model: str = "multilingual-e5-small",
                 encoder_options: Mapping[str, Any] | None = None, store_texts: bool = True,
                 encode_docs: int = 256, encoder=None, workers: int = 1, devices: Sequence[str] | None = None,
                 pool_factor: int = 1, pool_renormalize: bool = False):
        self.path = Path(path)
        if self.path.is_dir():
            self.path = self.path / "corpus.jsonl"
        if not self.path.exists():
            raise FileNotFoundError(f"corpus file {self.path} does not exist")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if workers > 1 and encoder is not None:
            raise ValueError("workers > 1 loads the model in each worker process: pass model= (a name or folder) "
                             "instead of an encoder object")
        self.model, self.encoder_options = str(model), dict(encoder_options or {})
        self.store_texts, self.encode_docs = store_texts, encode_docs
        self._encoder = encoder
        self._workers, self._devices = workers, list(devices or [])
        from gingham.encoder.pooling import pooling_entry

        self._pooling = pooling_entry(pool_factor, pool_renormalize)  # documents pooled as they are read
        with open(self.path, "rb") as f:
            self.n_docs = sum(1 for line in f if line.strip())

    @property
    def encoder_model(self):
        if self._encoder is None:
            from gingham.encoder import load_encoder

            self._encoder = load_encoder(self.model, **self.encoder_options)
        return self._encoder

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.encoder_model.dim

    @property
    def encoder(self) -> dict[str, Any]:  # type: ignore[override]
        from gingham.common.config import jsonable

        info = {"model": self.model, "options": self.encoder_options, "config": jsonable(self.encoder_model.config)}
        if self._pooling:
            info["pooling"] = dict(self._pooling)
        return info

    def fingerprint(self) -> dict[str, Any]:
        out = {"kind": "jsonl", "file": self.path.name, "n_docs": self.n_docs, "model": self.model,
               "options": self.encoder_options, "store_texts": self.store_texts}
        if self._pooling:  # only then, so that earlier builds still resume
            out["pooling"] = dict(self._pooling)
        return out

    def groups(self, start: int = 0) -> Iterator[tuple[list, list[str], list[dict] | None, bool]]:
        """(ids, texts, metadata, encode?) per group of ``encode_docs`` documents; groups before ``start`` are not
        encoded (the local build's and the Ray build's one reading of the file). Metadata follows ``gingham index``'s
        rule (:func:`gingham.build.corpus.row_metadata`: a line's fields but the id and the text); None for a group
        none of whose lines has any."""
        from gingham.build.corpus import jsonl_rows, row_record, row_metadata

        rows = ((*row_record(row, self.path, n), row_metadata(row, self.path, n))
                for n, row in enumerate(jsonl_rows(self.path), start=1))
        done = 0
        while group := list(itertools.islice(rows, self.encode_docs)):
            done += len(group)
            metadata = [m for _, _, m in group]
            yield [r for r, _, _ in group], [t for _, t, _ in group], metadata if any(metadata) else None, \
                done > start

    def _batch(self, ids: list, texts: list[str], metadata: list[dict] | None, embs: Sequence[np.ndarray]) -> Batch:
        if self._pooling:
            from gingham.encoder.pooling import pool_as_recorded

            embs = pool_as_recorded({"pooling": self._pooling}, embs)
        lengths = np.array([e.shape[0] for e in embs], dtype=np.int64)
        return Batch(ids, np.concatenate(embs).astype(np.float32), lengths, texts if self.store_texts else None,
                     metadata)

    def batches(self, start: int = 0) -> Iterator[Batch]:
        if self._workers > 1:
            yield from self._batches_in_workers(start)
            return
        for ids, texts, metadata, encode in self.groups(start):
            if not encode:
                yield Batch(ids, None, None)
                continue
            yield self._batch(ids, texts, metadata, self.encoder_model.encode_documents(texts, show_progress=False))

    def _batches_in_workers(self, start: int) -> Iterator[Batch]:
        import multiprocessing as mp
        from collections import deque

        ctx = mp.get_context("spawn")  # torch and fork do not mix
        devices = ctx.Queue()
        for i in range(self._workers):
            devices.put(self._devices[i % len(self._devices)] if self._devices else None)
        threads = max(1, (os.cpu_count() or 1) // self._workers)
        pending: deque = deque()
        with ctx.Pool(self._workers, _encoder_worker_init, (self.model, self.encoder_options, devices, threads)) as pool:
            for ids, texts, metadata, encode in self.groups(start):
                pending.append((ids, texts, metadata,
                                pool.apply_async(_encoder_worker_encode, (texts,)) if encode else None))
                while len(pending) > 2 * self._workers or (pending and pending[0][3] is None):
                    yield self._collect(*pending.popleft())
            while pending:
                yield self._collect(*pending.popleft())

    def _collect(self, ids: list, texts: list[str], metadata: list[dict] | None, job) -> Batch:
        return Batch(ids, None, None) if job is None else self._batch(ids, texts, metadata, job.get())


_WORKER_ENCODER: list = []


def _encoder_worker_init(model: str, options: Mapping[str, Any], devices, threads: int) -> None:
    """Load the model once in a :class:`TextSource` worker process, on the next free device."""
    from gingham.encoder import load_encoder

    device = devices.get()
    opts = dict(options)
    if device is not None:
        opts["device"] = device
    opts.setdefault("threads", threads)
    _WORKER_ENCODER.append(load_encoder(model, **opts))


def _encoder_worker_encode(texts: list[str]) -> list[np.ndarray]:
    return [np.asarray(e, dtype=np.float32) for e in _WORKER_ENCODER[0].encode_documents(texts, show_progress=False)]


def as_source(source) -> Source:
    """A :class:`Source` from a Source, a folder / list of ``.npy`` shards, a ``.parquet`` or ``.jsonl`` path, or
    an iterable of ``(id, embeddings)`` pairs."""
    if isinstance(source, Source):
        return source
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.suffix == ".parquet":
            return ParquetSource(p)
        if p.suffix in (".jsonl", ".json") or (p / "corpus.jsonl").exists():
            return TextSource(p)
        return ShardSource(p)
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], (str, os.PathLike)):
        return ShardSource(source)
    return IteratorSource(source)

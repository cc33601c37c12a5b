"""A source's documents on their way into a streaming build: checked batch by batch, cut into chunks of whole
documents, skipped up to a resume point, and read ahead in a thread."""

from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
from typing import Callable, Iterable, Iterator

import numpy as np

from gingham.build.sources import Batch
from gingham.common import validation


def checked(batches: Iterable[Batch], dim: int | None = None, kind: str | None = None,
            with_texts: bool | None = None) -> Iterator[Batch]:
    """The source's batches, each checked as :meth:`Index.create` checks its input (:func:`validation.stream_batch`:
    ids by the id rule, one dim, finite float32 values, texts and metadata), before anything is trained or
    committed from them. Texts come with every batch or with none (as :meth:`Index.add` requires: an index stores
    every document's text or none); ``with_texts`` is what the documents already committed have (None: unknown)."""
    at = 0
    for b in batches:
        if len(b):
            ids, texts, metadata, dim, kind = validation.stream_batch(b.ids, b.flat, b.lengths, b.texts, b.metadata,
                                                                      dim, kind, at)
            if b.flat is not None:
                if with_texts is not None and (texts is not None) != with_texts:
                    raise ValueError(
                        f"the source's documents {at}..{at + len(b) - 1} come {'with' if texts else 'without'} "
                        f"texts but the documents before them {'have' if with_texts else 'have none'}; give a text "
                        "for every document (blank is allowed) or for none")
                with_texts = texts is not None
            b = dataclasses.replace(b, ids=ids, texts=texts, metadata=metadata)
        at += len(b)
        yield b


def skip_checked(batches: Iterator[Batch], n: int, check: Callable[[list, int], None]) -> Iterator[Batch]:
    """Pass on the documents after the first ``n``; hand the first ``n`` ids (and their position) to ``check``."""
    seen = 0
    for b in batches:
        if seen >= n:
            yield b
            continue
        take = min(len(b), n - seen)
        check(b.ids[:take], seen)
        seen += take
        if take < len(b):
            yield b.slice(take, len(b))
    if seen < n:
        raise ValueError(f"the source has only {seen} documents but the interrupted build committed {n}; "
                         "resume with the same source, or start over with overwrite=True, resume=False")


def take_tokens(batches: Iterator[Batch], n_tokens: int) -> tuple[list[Batch], int, Iterator[Batch]]:
    """The first whole documents holding at least ``n_tokens`` tokens (all if fewer), and the rest of the stream."""
    parts: list[Batch] = []
    have = 0
    for b in batches:
        offsets = b.offsets()
        need = n_tokens - have
        cut = int(np.searchsorted(offsets, need, side="left"))  # first prefix of docs with >= need tokens
        cut = min(max(cut, 1), len(b))
        parts.append(b.slice(0, cut))
        have += int(offsets[cut])
        if have >= n_tokens:
            rest = [b.slice(cut, len(b))] if cut < len(b) else []
            return parts, have, itertools.chain(rest, batches)
    return parts, have, iter(())


def rechunk(batches: Iterable[Batch], max_tokens: int) -> Iterator[Batch]:
    """Whole documents in chunks of at most ``max_tokens`` tokens (a longer document is a chunk of its own), cut
    greedily: the chunks depend only on the document sequence, not on how the source batches it."""
    pending: list[Batch] = []
    have = 0
    for b in batches:
        offsets = b.offsets()
        i, n = 0, len(b)
        while i < n:
            j = int(np.searchsorted(offsets, offsets[i] + (max_tokens - have), side="right")) - 1
            if j <= i:
                if pending:
                    yield Batch.concat(pending)
                    pending, have = [], 0
                    continue
                j = i + 1
            pending.append(b.slice(i, j))
            have += int(offsets[j] - offsets[i])
            i = j
    if pending:
        yield Batch.concat(pending)


def prefetch_ahead(it: Iterator, depth: int) -> Iterator:
    """Run ``it`` in a thread, at most ``depth`` items ahead of the consumer (reading / generating / encoding the
    next chunk overlaps compressing this one; each item ahead costs a chunk of memory)."""
    if depth <= 0:
        yield from it
        return
    q: queue.Queue = queue.Queue()
    slots = threading.Semaphore(depth)  # items made but not yet finished with by the consumer
    done = object()
    stop = threading.Event()

    def work():
        try:
            while True:
                while not slots.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                item = next(it, done)
                q.put(("ok", item))
                if item is done:
                    return
        except BaseException as exc:  # handed to the consumer
            q.put(("err", exc))

    t = threading.Thread(target=work, name="gingham-build-reader", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "err":
                raise item
            if item is done:
                return
            yield item
            del item
            slots.release()
    finally:
        stop.set()

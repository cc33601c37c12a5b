"""Micro-batching of concurrent query encodes, and a bounded cache of repeated queries' vectors.

A server answers many users at once; encoding each one's query in its own forward pays the model's fixed cost per
query (at LFM2-ColBERT-350M size, reading ~1 GB of fp32 weights), while one forward over a batch pays it once.
:class:`QueryBatcher` sits in front of an encoder: callers (any thread) call :meth:`QueryBatcher.encode_queries`
and block; one worker thread takes what is queued, waits at most ``max_wait_ms`` for more (or until ``max_batch``
texts), runs ONE ``encode_queries`` call and hands each caller its vectors. Requests that arrive while a batch is
encoding form the next batch, so under load batches fill without waiting, and a lone caller waits at most
``max_wait_ms``.

Repeated queries (the same exact text, for the same encoder) are answered from a bounded LRU of their vectors
without encoding. This is safe because a query's vectors depend only on its text and the encoder: queries are
always ``query_length`` long with expansion, and without expansion padding is masked (vectors equal within float
rounding whatever the batch, as for ``encode_queries`` itself). Callers get copies, never the cached arrays.

It has the encoder's ``dim`` and ``encode_queries``, so ``Index.search_text(..., encoder=batcher)`` uses it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchingConfig:
    """How concurrent query encodes are batched. ``max_batch``: texts per encode call (>= 1); ``max_wait_ms``:
    how long the first queued query waits for company (>= 0); ``cache_size``: repeated queries' vectors kept
    (0: no cache)."""

    max_batch: int = 32
    max_wait_ms: float = 2.0
    cache_size: int = 1024

    def __post_init__(self) -> None:
        if isinstance(self.max_batch, bool) or not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ValueError(f"BatchingConfig.max_batch must be an int >= 1, got {self.max_batch!r}")
        if isinstance(self.max_wait_ms, bool) or not isinstance(self.max_wait_ms, (int, float)) \
                or not 0 <= self.max_wait_ms <= 10_000:
            raise ValueError(f"BatchingConfig.max_wait_ms must be a number in [0, 10000], got {self.max_wait_ms!r}")
        if isinstance(self.cache_size, bool) or not isinstance(self.cache_size, int) or self.cache_size < 0:
            raise ValueError(f"BatchingConfig.cache_size must be an int >= 0, got {self.cache_size!r}")


class _Request:
    __slots__ = ("texts", "done", "result", "error")

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.done = threading.Event()
        self.result: list[np.ndarray] | None = None
        self.error: BaseException | None = None


def encoder_key(encoder) -> tuple:
    """What makes two encoders give the same query vectors: the object itself (its weights) and its settings."""
    config = getattr(encoder, "config", None)
    settings = dataclasses.astuple(config) if dataclasses.is_dataclass(config) else repr(config)
    return (id(encoder), settings)


class QueryBatcher:
    """Batches concurrent ``encode_queries`` calls to one ``encoder`` (see the module's docstring)."""

    def __init__(self, encoder, config: BatchingConfig | None = None):
        self.encoder = encoder
        self.config = config or BatchingConfig()
        self._cache: OrderedDict = OrderedDict()
        self._cache_lock = threading.Lock()
        self._queue: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self.stats = {"calls": 0, "queries": 0, "cache_hits": 0, "batches": 0, "batched_texts": 0, "max_batch": 0}
        self._worker = threading.Thread(target=self._run, name="gingham-query-batcher", daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------- the encoder's face
    @property
    def dim(self) -> int:
        return self.encoder.dim

    def __repr__(self) -> str:
        c = self.config
        return f"QueryBatcher({self.encoder!r}, max_batch={c.max_batch}, max_wait_ms={c.max_wait_ms})"

    def encode_queries(self, texts: Sequence[str], **_ignored) -> list[np.ndarray]:
        """The vectors of each text, as ``encoder.encode_queries(texts)`` gives them; blocks until encoded.
        Thread-safe. Keyword arguments (``batch_size``, ``show_progress``) are the batcher's to decide."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single string (wrap it: [text])")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
        out: list[np.ndarray | None] = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        key = encoder_key(self.encoder)
        with self._cache_lock:
            self.stats["calls"] += 1
            self.stats["queries"] += len(texts)
            for i, t in enumerate(texts):
                hit = self._cache.get((key, t)) if self.config.cache_size else None
                if hit is not None:
                    self._cache.move_to_end((key, t))
                    out[i] = hit.copy()
                    self.stats["cache_hits"] += 1
                else:
                    missing.setdefault(t, []).append(i)
        if missing:
            request = _Request(list(missing))
            with self._cond:
                if self._closed:
                    raise RuntimeError("the query batcher is closed")
                self._queue.append(request)
                self._cond.notify()
            request.done.wait()
            if request.error is not None:
                raise request.error
            for t, vectors in zip(request.texts, request.result):
                for i in missing[t]:
                    out[i] = vectors.copy()
        return out  # type: ignore[return-value]

    # ---------------------------------------------------------------- the worker
    def _take(self) -> list[_Request]:
        """Block for the first request, then gather more for at most ``max_wait_ms`` or ``max_batch`` texts."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed and not self._queue:
                return []
            deadline = time.monotonic() + self.config.max_wait_ms / 1000.0
            while sum(len(r.texts) for r in self._queue) < self.config.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            taken, n = [], 0
            while self._queue and (not taken or n + len(self._queue[0].texts) <= self.config.max_batch):
                request = self._queue.pop(0)  # a request larger than max_batch goes alone, whole
                taken.append(request)
                n += len(request.texts)
            return taken

    def _run(self) -> None:
        while True:
            requests = self._take()
            if not requests:
                return
            texts = list(dict.fromkeys(t for r in requests for t in r.texts))  # one forward per distinct text
            key = encoder_key(self.encoder)
            try:
                vectors = self.encoder.encode_queries(texts, batch_size=max(len(texts), 1), show_progress=False)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                for r in requests:
                    r.error = exc
                    r.done.set()
                continue
            by_text = dict(zip(texts, vectors))
            with self._cache_lock:
                self.stats["batches"] += 1
                self.stats["batched_texts"] += len(texts)
                self.stats["max_batch"] = max(self.stats["max_batch"], len(texts))
                if self.config.cache_size:
                    for t, v in by_text.items():
                        self._cache[(key, t)] = v
                        self._cache.move_to_end((key, t))
                    while len(self._cache) > self.config.cache_size:
                        self._cache.popitem(last=False)
            for r in requests:
                r.result = [by_text[t] for t in r.texts]
                r.done.set()

    def close(self) -> None:
        """Stop the worker once the queued requests are answered."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout=60)

    def __enter__(self) -> "QueryBatcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["BatchingConfig", "QueryBatcher", "encoder_key"]

"""QueryBatcher: concurrent callers share encode calls, each gets its own vectors, repeated queries come from a
bounded cache, errors reach every waiting caller. A fake encoder records the calls (no torch needed)."""

from __future__ import annotations

import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import pytest

from gingham.encoder.batcher import BatchingConfig, QueryBatcher


@dataclass(frozen=True)
class FakeConfig:
    query_length: int = 4


class FakeEncoder:
    dim = 3

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.config = FakeConfig()
        self.calls: list[list[str]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.lock = threading.Lock()

    @staticmethod
    def vectors(text: str) -> np.ndarray:
        seed = zlib.crc32(text.encode())
        return np.random.default_rng(seed).standard_normal((2, 3)).astype(np.float32)

    def encode_queries(self, texts, batch_size=None, show_progress=None):
        with self.lock:
            self.calls.append(list(texts))
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError(f"cannot encode {self.fail_on!r}")
        return [self.vectors(t) for t in texts]


def test_concurrent_callers_share_encode_calls():
    enc = FakeEncoder(delay=0.05)
    with QueryBatcher(enc, BatchingConfig(max_batch=8, max_wait_ms=200, cache_size=0)) as b:
        texts = [f"query {i}" for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(lambda t: b.encode_queries([t])[0], texts))
    for t, v in zip(texts, got):
        np.testing.assert_array_equal(v, FakeEncoder.vectors(t))
    assert sum(len(c) for c in enc.calls) == 16
    assert len(enc.calls) < 16 and max(len(c) for c in enc.calls) <= 8
    assert b.stats["batches"] == len(enc.calls) and b.stats["max_batch"] > 1


def test_lone_caller_and_order_within_a_request():
    enc = FakeEncoder()
    with QueryBatcher(enc, BatchingConfig(max_batch=4, max_wait_ms=0)) as b:
        texts = ["b", "a", "c", "a"]
        got = b.encode_queries(texts)
        assert [len(c) for c in enc.calls] == [3]  # "a" twice in one request: encoded once
        for t, v in zip(texts, got):
            np.testing.assert_array_equal(v, FakeEncoder.vectors(t))
        assert b.encode_queries([]) == []
        assert b.dim == 3


def test_a_request_larger_than_max_batch_goes_whole():
    enc = FakeEncoder()
    with QueryBatcher(enc, BatchingConfig(max_batch=2, max_wait_ms=0, cache_size=0)) as b:
        texts = [f"q{i}" for i in range(5)]
        got = b.encode_queries(texts)
    assert enc.calls == [texts]
    assert len(got) == 5


def test_repeated_queries_come_from_a_bounded_cache():
    enc = FakeEncoder()
    with QueryBatcher(enc, BatchingConfig(max_wait_ms=0, cache_size=2)) as b:
        first = b.encode_queries(["x"])[0]
        first[:] = 0  # callers get copies: this does not reach the cache
        again = b.encode_queries(["x"])[0]
        np.testing.assert_array_equal(again, FakeEncoder.vectors("x"))
        assert len(enc.calls) == 1 and b.stats["cache_hits"] == 1
        b.encode_queries(["y"])
        b.encode_queries(["z"])  # evicts "x", the least recently used
        b.encode_queries(["x"])
        assert len(enc.calls) == 4
        b.encode_queries(["z"])
        assert len(enc.calls) == 4


def test_cache_is_keyed_by_the_encoders_settings():
    enc = FakeEncoder()
    with QueryBatcher(enc, BatchingConfig(max_wait_ms=0)) as b:
        b.encode_queries(["x"])
        enc.config = replace(enc.config, query_length=8)  # other settings, other vectors: not a hit
        b.encode_queries(["x"])
        assert len(enc.calls) == 2


def test_no_cache_when_size_zero():
    enc = FakeEncoder()
    with QueryBatcher(enc, BatchingConfig(max_wait_ms=0, cache_size=0)) as b:
        b.encode_queries(["x"])
        b.encode_queries(["x"])
    assert len(enc.calls) == 2


def test_errors_reach_every_caller_and_the_worker_survives():
    enc = FakeEncoder(delay=0.05, fail_on="bad")
    with QueryBatcher(enc, BatchingConfig(max_batch=8, max_wait_ms=300, cache_size=0)) as b:
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(b.encode_queries, ["bad"]), pool.submit(b.encode_queries, ["good"])]
            errors = [f.exception() for f in futures]
        assert any(isinstance(e, RuntimeError) for e in errors)
        np.testing.assert_array_equal(b.encode_queries(["fine"])[0], FakeEncoder.vectors("fine"))


def test_input_validation_and_close():
    b = QueryBatcher(FakeEncoder(), BatchingConfig(max_wait_ms=0))
    with pytest.raises(TypeError, match="list of texts"):
        b.encode_queries("one string")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        b.encode_queries(["a", 3])
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.encode_queries(["a"])


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_batch": True}, {"max_wait_ms": -1},
                                    {"max_wait_ms": "2"}, {"cache_size": -1}, {"cache_size": 1.5}])
def test_config_validation(kwargs):
    with pytest.raises(ValueError, match="BatchingConfig"):
        BatchingConfig(**kwargs)

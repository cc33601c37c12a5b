"""Sharded search on Ray: one actor per shard on a local cluster the test starts, merged at the driver, gives the
threaded fan-out's results (tests/shards/test_sharded.py relates those to one index)."""

import os

import numpy as np
import pytest

from gingham.shards.sharded import ShardedIndex
from gingham.shards.sharding import build_shards
from gingham.evaluation.synthetic import make_corpus, make_queries


def test_ray_fan_out_equals_threaded_fan_out(ray_cluster, tmp_path):
    from gingham.shards.ray_shards import RayShardedIndex

    corpus = make_corpus(150, dim=32, mean_length=20, n_topics=16, seed=5)
    queries = make_queries(corpus, 6, query_length=8, seed=6)[0]
    local = build_shards(tmp_path / "set", corpus.tokens, [f"d{i}" for i in range(150)], n_shards=3,
                         lengths=corpus.lengths, calibrate=False)
    on_ray = RayShardedIndex.open(tmp_path / "set", num_cpus=0.5)  # 3 actors on a 2-CPU cluster
    try:
        assert on_ray.n_docs == 150 and on_ray.shared_codebook
        assert os.getpid() not in on_ray.pids()  # the shards are searched in the actors' processes
        for kw in ({}, {"exhaustive": True}):
            a, b = on_ray.search(queries, top_k=10, **kw), local.search(queries, top_k=10, **kw)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.positions, b.positions)
            np.testing.assert_array_equal(a.scores, b.scores)
        subset = [f"d{i}" for i in range(0, 150, 9)]
        a, b = on_ray.search(queries, top_k=4, subset=subset), local.search(queries, top_k=4, subset=subset)
        np.testing.assert_array_equal(a.ids, b.ids)
        with pytest.raises(KeyError, match="1 subset id"):
            on_ray.search(queries, top_k=4, subset=["d1", "nope"])
    finally:
        on_ray.close()


def test_ray_fan_out_refuses_duplicate_ids(ray_cluster, tmp_path):
    from gingham import Index
    from gingham.shards.ray_shards import RayShardedIndex

    corpus = make_corpus(8, dim=32, mean_length=10, n_topics=4, seed=7)
    a = Index.create(tmp_path / "a", corpus.tokens, lengths=corpus.lengths, calibrate=False)
    Index.create(tmp_path / "b", corpus.tokens, lengths=corpus.lengths, codec=a.codec, calibrate=False)
    with pytest.raises(ValueError, match="unique across shards"):
        RayShardedIndex([tmp_path / "a", tmp_path / "b"], num_cpus=0.5)
    ShardedIndex.open([tmp_path / "a", tmp_path / "b"], check_ids=False)  # the check can be skipped

"""Sharded search: shards built with one codebook answer as one index over the same documents.

What is guaranteed (see gingham.shards.sharded): exhaustive search, and PLAID search that prunes nothing, give the
same documents, positions and scores as one index (scores to float rounding). PLAID search that prunes (the
default settings, passed explicitly to both so that calibration differences do not matter) keeps each shard's own
best ``n_full_scores`` candidates, so the shards score up to n_shards times more documents exactly than one index:
results are not guaranteed equal. On this corpus they agree on >= 95% of the top-10 and the shards lose nothing
against exact search where the one index does; the test pins that, a property of this corpus.
"""

import numpy as np
import pytest

import gingham
from gingham.shards.sharded import ShardedIndex, codebook_digest, merge, shard_paths, write_shard_set
from gingham.shards.sharding import build_shards, split_points
from gingham.evaluation.synthetic import make_corpus, make_queries

N_DOCS = 450


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(N_DOCS, dim=64, mean_length=30, n_topics=64, seed=21)


@pytest.fixture(scope="module")
def queries(corpus):
    return make_queries(corpus, 24, query_length=16, seed=22)[0]


@pytest.fixture(scope="module")
def one(tmp_path_factory, corpus):
    """One index over every document (calibrated: its defaults differ from the shards', hence explicit settings)."""
    ids = [f"doc-{i}" for i in range(N_DOCS)]
    return gingham.Index.create(tmp_path_factory.mktemp("one") / "ix", corpus.tokens, ids, lengths=corpus.lengths,
                                seed=3)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, corpus, one):
    """Three shards compressed with the one index's codec, built separately, listed in a shard set."""
    root = tmp_path_factory.mktemp("shards")
    cuts = split_points(corpus.offsets, 3)
    paths = []
    for i in range(3):
        lo, hi = int(cuts[i]), int(cuts[i + 1])
        path = root / f"part-{i}"
        gingham.Index.create(path, corpus.tokens[corpus.offsets[lo]:corpus.offsets[hi]],
                             [f"doc-{d}" for d in range(lo, hi)], lengths=corpus.lengths[lo:hi], codec=one.codec,
                             calibrate=False)
        paths.append(path)
    write_shard_set(root, paths)
    return ShardedIndex.open(root)


def assert_same(a, b):
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.positions, b.positions)  # contiguous shards in order: merged = global positions
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)


def test_shards_share_the_codebook(shards, one):
    assert shards.shared_codebook
    assert codebook_digest(shards.shards[0].manifest) == codebook_digest(one.manifest)
    assert shards.n_docs == one.n_docs and shards.n_tokens == one.n_tokens
    assert [len(s) for s in shards.shards] == list(np.diff(split_points(np.asarray(one_offsets(shards)), 3)))


def one_offsets(shards):
    lengths = np.concatenate([np.diff(seg.arrays.doc_offsets) for s in shards.shards for seg in s._snap.segments])
    return np.concatenate([[0], np.cumsum(lengths)])


def test_exhaustive_search_equals_one_index(shards, one, queries):
    assert_same(shards.search(queries, top_k=10, exhaustive=True), one.search(queries, top_k=10, exhaustive=True))


def test_plaid_that_prunes_nothing_equals_one_index(shards, one, queries):
    settings = dict(n_ivf_probe=2, min_candidates=0, n_full_scores=4 * N_DOCS, centroid_score_threshold=0.5)
    assert_same(shards.search(queries, top_k=10, **settings), one.search(queries, top_k=10, **settings))


def test_pruning_settings_at_least_as_close_to_exact_as_one_index(shards, one, queries):
    # settings that prune (a 450-document index calibrates to nearly exhaustive ones), for every shard too
    settings = one.search_config(10, n_ivf_probe=2, n_full_scores=64).to_dict()
    del settings["top_k"]
    assert all(c.to_dict() == {**settings, "top_k": 10} for c in shards.search_config(10, **settings))
    assert settings["n_full_scores"] < N_DOCS // 3  # these settings prune, in each shard and in the one index
    got, single = shards.search(queries, top_k=10, **settings), one.search(queries, top_k=10, **settings)
    exact = one.search(queries, top_k=10, exhaustive=True)

    def overlap(a, b):
        return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a.ids, b.ids)]))

    # not equal by construction (each shard keeps its own n_full_scores candidates), so pin what holds here:
    # the shards agree with the one index on almost every result, and lose nothing against exact search
    assert overlap(got, single) >= 0.95
    assert overlap(got, exact) >= overlap(single, exact)
    assert (got.scores >= single.scores - 1e-6).all()  # rank by rank, the shards found documents at least as good


def test_threads_and_serial_fan_out_agree(shards, queries):
    a = shards.search(queries, top_k=5, n_threads=1)
    b = shards.search(queries, top_k=5, n_threads=2)
    assert_same(a, b)
    one_query = shards.search(queries[3], top_k=5)  # a single 2-D query
    np.testing.assert_array_equal(one_query.ids[0], a.ids[3])


def test_build_shards_trains_the_one_index_codebook(tmp_path, corpus, one, queries):
    ids = [f"doc-{i}" for i in range(N_DOCS)]
    built = build_shards(tmp_path / "set", corpus.tokens, ids, n_shards=3, lengths=corpus.lengths, seed=3,
                         calibrate=False)
    assert len(built.shards) == 3 and built.shared_codebook
    assert codebook_digest(built.shards[0].manifest) == codebook_digest(one.manifest)  # same data, same seed
    assert_same(built.search(queries, top_k=7, exhaustive=True), one.search(queries, top_k=7, exhaustive=True))
    reopened = ShardedIndex.open(tmp_path / "set" / "shards.json")
    assert reopened.n_docs == N_DOCS
    doc = built.search(queries[0], top_k=1).ids[0, 0]
    assert built.shards[built.shard_of(doc)].n_docs > 0


def test_duplicate_ids_across_shards_are_an_error(tmp_path, corpus, one):
    flat = corpus.tokens[:corpus.offsets[4]]
    a = gingham.Index.create(tmp_path / "a", flat, ["x", "y", "z", "w"], lengths=corpus.lengths[:4], codec=one.codec,
                             calibrate=False)
    b = gingham.Index.create(tmp_path / "b", flat, ["v", "u", "z", "t"], lengths=corpus.lengths[:4], codec=one.codec,
                             calibrate=False)
    with pytest.raises(ValueError, match="'z' is in shard .*a and in shard .*b"):
        ShardedIndex([a, b])
    b.delete(["z"])
    assert ShardedIndex([a, b]).n_docs == 7  # a deleted copy is no duplicate


def test_top_k_larger_than_a_shard_and_mismatches(tmp_path, corpus, one, shards, queries):
    small = gingham.Index.create(tmp_path / "small", corpus.tokens[:corpus.offsets[2]], ["s1", "s2"],
                                 lengths=corpus.lengths[:2], codec=one.codec, calibrate=False)
    both = ShardedIndex([small, *shards.shards])
    res = both.search(queries[:2], top_k=5, exhaustive=True)
    assert res.ids.shape == (2, 5) and (res.positions >= 0).all()
    with pytest.raises(ValueError, match="larger than the number of documents"):
        both.search(queries[:1], top_k=N_DOCS + 3)
    ints = gingham.Index.create(tmp_path / "ints", corpus.tokens[:corpus.offsets[2]], [1, 2],
                                lengths=corpus.lengths[:2], codec=one.codec, calibrate=False)
    with pytest.raises(ValueError, match="ids"):
        ShardedIndex([small, ints])
    with pytest.raises(ValueError, match="nbits=4 but codec= was trained with nbits=2"):
        gingham.Index.create(tmp_path / "bad", corpus.tokens[:corpus.offsets[2]], lengths=corpus.lengths[:2],
                             codec=one.codec, nbits=4)
    with pytest.raises(FileNotFoundError, match="shards.json"):
        shard_paths(tmp_path)


def test_merge_ranks_ties_by_shard_then_position():
    pos = [np.array([[0, 1]]), np.array([[0, -1]])]
    sc = [np.array([[1.0, 0.5]], np.float32), np.array([[1.0, -np.inf]], np.float32)]
    ids = [np.array([[10, 11]]), np.array([[20, -1]])]
    res = merge(list(zip(pos, sc, ids)), [0, 5], 4, 1, "int")
    np.testing.assert_array_equal(res.ids, [[10, 20, 11, -1]])
    np.testing.assert_array_equal(res.positions, [[0, 5, 1, -1]])
    assert res.scores[0, 3] == -np.inf


def test_subset_spanning_shards_equals_one_index(shards, one, queries):
    subset = [f"doc-{i}" for i in range(0, N_DOCS, 7)]  # ids in every shard
    assert_same(shards.search(queries, top_k=5, subset=subset, exhaustive=True),
                one.search(queries, top_k=5, subset=subset, exhaustive=True))
    only_first = shards.search(queries[:2], top_k=3, subset=["doc-1", "doc-2", "doc-3"])
    assert set(only_first.ids.ravel()) == {"doc-1", "doc-2", "doc-3"}
    with pytest.raises(KeyError, match="'nope' is in none of the 3 shards"):
        shards.search(queries[:1], top_k=3, subset=["doc-1", "nope"])


def test_search_kernels_release_the_gil():
    """The threaded fan-out runs shards' searches at once: the kernels they call must not hold the GIL."""
    from numba.core.registry import CPUDispatcher

    import gingham.kernels.codec as codec_kernels
    import gingham.kernels.scoring as scoring

    kernels = [f for m in (scoring, codec_kernels) for f in vars(m).values() if isinstance(f, CPUDispatcher)]
    assert len(kernels) >= 10
    assert [f.__name__ for f in kernels if not f.targetoptions.get("nogil")] == []


def test_codec_of_another_dim_is_an_error(tmp_path, one):
    with pytest.raises(ValueError, match="codec= holds 64-dim centroids but the embeddings are 32-dim"):
        gingham.Index.create(tmp_path / "x", np.ones((8, 32), np.float32), lengths=[4, 4], codec=one.codec)

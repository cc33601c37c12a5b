"""Streaming builds: same index as Index.create, independent of chunking and of the source's form."""

import dataclasses
import json

import numpy as np
import pytest

import gingham
from gingham.build.streaming import IteratorSource, ShardSource, TextSource, build, plan
from streamhelpers import CHUNK_TOKENS, OPTIONS, assert_same_index, ids, source


@pytest.fixture(scope="module")
def reference(small_corpus, tmp_path_factory):
    """The streaming build every other build is compared with."""
    path = tmp_path_factory.mktemp("ref") / "ix"
    return build(path, source(small_corpus), chunk_tokens=CHUNK_TOKENS, show_progress=False, **OPTIONS)


def test_reference_is_finished_and_compacted(reference, small_corpus):
    b = reference.manifest["build"]
    assert b["state"] == "finished"
    assert b["docs_done"] == small_corpus.n_docs and b["tokens_done"] == int(small_corpus.lengths.sum())
    assert b["chunks_done"] > 5  # really built in chunks
    assert len(reference._snap.segments) == 1
    assert reference.ids() == ids(small_corpus.n_docs)
    reference.verify()


@pytest.mark.parametrize("n_centroids,kmeans", [(256, "flat"), (257, "flat"), (257, "two-level")],
                         ids=["centroids", "sub-centroids", "two-level"])
def test_equals_index_create_when_the_sample_spans_the_corpus(small_corpus, tmp_path, n_centroids, kmeans):
    # n_centroids x 200 points > the corpus's 43k tokens: both builds train on the same sample of all tokens
    # (257 centroids need uint16 codes, whose 2 spare bits hold sub-centroids); a two-level codebook assigns every
    # chunk's tokens through its stored coarse level, as Index.create assigns the whole corpus
    c = small_corpus
    opts = {**OPTIONS, "kmeans_points_per_centroid": 200, "n_centroids": n_centroids, "kmeans": kmeans,
            "sub_centroids": True}
    streamed = build(tmp_path / "s", source(c), chunk_tokens=3000, train_on="first", show_progress=False, **opts)
    created = gingham.Index.create(tmp_path / "c", c.tokens, ids(c.n_docs), lengths=c.lengths, **opts)
    assert streamed.codec.sub_bits == created.codec.sub_bits == (2 if n_centroids == 257 else 0)
    assert (streamed.codec.coarse is None) == (created.codec.coarse is None) == (kmeans == "flat")
    assert_same_index(streamed, created)


def test_recall_vs_exact_matches_in_memory_build(reference, small_corpus, tmp_path):
    from gingham.evaluation.synthetic import make_queries

    c = small_corpus
    queries, _ = make_queries(c, 40, query_length=16, seed=3)
    exact = gingham.exact_search(queries, c.tokens, 10, lengths=c.lengths, doc_ids=ids(c.n_docs))
    created = gingham.Index.create(tmp_path / "c", c.tokens, ids(c.n_docs), lengths=c.lengths, **OPTIONS)

    def recall(index):
        res = index.search(queries, 10)
        return np.mean([len(set(res.ids[i]) & set(exact.ids[i])) / 10 for i in range(len(queries))])

    first = build(tmp_path / "first", source(c), chunk_tokens=CHUNK_TOKENS, train_on="first", show_progress=False,
                  **OPTIONS)
    r_first, r_all, r_create = recall(first), recall(reference), recall(created)
    # different training samples give different codebooks: recall within a few points of the in-memory build
    assert min(r_first, r_all) >= 0.8, (r_first, r_all)
    assert r_first >= r_create - 0.08 and r_all >= r_create - 0.06, (r_first, r_all, r_create)


@pytest.mark.parametrize("chunk_tokens,prefetch", [(1000, 0), (25_000, 2), (10**6, 1)])
def test_same_index_whatever_the_chunk_size(reference, small_corpus, tmp_path, chunk_tokens, prefetch):
    other = build(tmp_path / "ix", source(small_corpus), chunk_tokens=chunk_tokens, prefetch=prefetch,
                  show_progress=False, **OPTIONS)
    assert_same_index(other, reference)
    q = small_corpus.doc(7)[:8]
    np.testing.assert_array_equal(other.search(q, 10).ids, reference.search(q, 10).ids)


def test_one_shot_iterator_and_shards_give_the_same_index(reference, small_corpus, tmp_path):
    c = small_corpus
    names = ids(c.n_docs)
    gen = ((names[i], c.doc(i)) for i in range(c.n_docs))  # read once, size unknown: trains on the first tokens
    from_iter = build(tmp_path / "it", IteratorSource(gen), chunk_tokens=CHUNK_TOKENS, show_progress=False,
                      **OPTIONS)
    assert from_iter.manifest["build"]["train_on"] == "first"
    first = build(tmp_path / "first", source(c), chunk_tokens=CHUNK_TOKENS, train_on="first", show_progress=False,
                  **OPTIONS)
    assert_same_index(from_iter, first)

    shards = tmp_path / "shards"
    shards.mkdir()
    bounds = [0, 400, 401, 1100, c.n_docs]
    for n, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        np.save(shards / f"part-{n}.npy", c.tokens[c.offsets[lo]:c.offsets[hi]])
        np.save(shards / f"part-{n}.lengths.npy", c.lengths[lo:hi])
        np.save(shards / f"part-{n}.ids.npy", np.array(names[lo:hi]))
    src = ShardSource(shards)
    assert (src.n_docs, src.n_tokens) == (c.n_docs, int(c.lengths.sum()))
    from_shards = build(tmp_path / "sh", shards, chunk_tokens=CHUNK_TOKENS, show_progress=False, **OPTIONS)
    assert_same_index(from_shards, reference)


def test_parquet_source(reference, small_corpus, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    c = small_corpus
    table = pa.table({"id": ids(c.n_docs), "embeddings": [c.doc(i).tolist() for i in range(c.n_docs)]})
    pq.write_table(table, tmp_path / "corpus.parquet", row_group_size=300)
    index = build(tmp_path / "ix", tmp_path / "corpus.parquet", chunk_tokens=CHUNK_TOKENS, show_progress=False,
                  **OPTIONS)
    assert_same_index(index, reference)


def test_size_unknown_needs_n_centroids_or_expected_tokens(small_corpus, tmp_path):
    c = small_corpus
    opts = {k: v for k, v in OPTIONS.items() if k != "n_centroids"}
    gen = ((i, c.doc(i)) for i in range(c.n_docs))
    with pytest.raises(ValueError, match="expected_tokens"):
        build(tmp_path / "a", IteratorSource(gen), sample_tokens=5000, show_progress=False, **opts)
    gen = ((i, c.doc(i)) for i in range(c.n_docs))
    index = build(tmp_path / "b", IteratorSource(gen), sample_tokens=5000, expected_tokens=int(c.lengths.sum()),
                  show_progress=False, **opts)
    assert index.codec.n_centroids == gingham.BuildConfig().resolve_n_centroids(int(c.lengths.sum()))


@dataclasses.dataclass
class FakeConfig:
    name: str = "fake"


class FakeEncoder:
    """Deterministic 'encoder': one token per word, a seeded vector per word."""

    dim = 32
    config = FakeConfig()

    def encode_documents(self, texts, batch_size=None, show_progress=None):
        out = []
        for t in texts:
            vecs = [np.random.default_rng(abs(hash(w)) % 2**32).standard_normal(self.dim) for w in t.split()]
            v = np.array(vecs, dtype=np.float32)
            out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        return out


def test_text_source_encodes_in_chunks_and_stores_texts(tmp_path):
    words = [f"w{i}" for i in range(300)]
    rng = np.random.default_rng(0)
    rows = [{"_id": f"t{i}", "text": " ".join(rng.choice(words, 12))} for i in range(200)]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    src = TextSource(tmp_path / "c.jsonl", encoder=FakeEncoder(), encode_docs=32)
    index = build(tmp_path / "ix", src, chunk_tokens=500, n_centroids=64, show_progress=False)
    assert index.n_docs == 200 and index.text("t5") == rows[5]["text"]
    assert index.manifest["encoder"]["model"] == "multilingual-e5-small"
    q = FakeEncoder().encode_documents([rows[5]["text"]])[0]
    assert index.search(q, 1).ids[0, 0] == "t5"


class _Batches(gingham.build.streaming.Source):
    """A source that yields the given batches as they are (each a :class:`gingham.build.streaming.Batch`)."""

    def __init__(self, batches, name="batches"):
        self._batches, self._name = batches, name
        self.n_docs = sum(len(b) for b in batches)
        self.n_tokens = sum(int(b.lengths.sum()) for b in batches)

    def fingerprint(self):
        return {"kind": "batches", "name": self._name, "n_docs": self.n_docs}

    def batches(self, start=0):
        yield from self._batches


def test_batches_with_and_without_metadata_keep_every_document_s(small_corpus, tmp_path):
    """Issue 27.1: a batch without metadata after one with it (or before) lost metadata in the chunk that joined
    them, and the finishing compaction then dropped every document's."""
    c = small_corpus
    offsets = np.concatenate([[0], np.cumsum(c.lengths)])

    def batch(lo, hi, meta):
        return gingham.build.streaming.Batch(ids(c.n_docs)[lo:hi], c.tokens[offsets[lo]:offsets[hi]], c.lengths[lo:hi],
                                       metadata=meta)

    metas = {i: {"n": i, "odd": i % 2 == 1} for i in range(300)}
    parts = [batch(0, 40, None), batch(40, 100, [metas[i] for i in range(40, 100)]), batch(100, 160, None),
             batch(160, 300, [metas[i] if i % 3 else None for i in range(160, 300)])]
    index = build(tmp_path / "ix", _Batches(parts), chunk_tokens=1000, show_progress=False, **OPTIONS)
    expected = {doc: (metas[i] if 40 <= i < 100 or (i >= 160 and i % 3) else None)
                for i, doc in enumerate(ids(300))}
    assert {doc: index.metadata(doc) for doc in index.ids()} == expected
    allowed = index._masks(index._snap, None, "odd = 1")[0]
    assert set(index._snap.take(np.flatnonzero(allowed))) == {d for d, m in expected.items() if m and m["odd"]}
    index.verify()


@pytest.mark.parametrize("texts_first", [True, False])
def test_batches_with_and_without_texts_are_refused(small_corpus, tmp_path, texts_first):
    """A source that gives texts for some batches only was built with every text dropped (or failed with a
    TypeError when chunking): refused, as Index.add refuses it."""
    c = small_corpus
    offsets = np.concatenate([[0], np.cumsum(c.lengths)])

    def batch(lo, hi, with_texts):
        return gingham.build.streaming.Batch(ids(c.n_docs)[lo:hi], c.tokens[offsets[lo]:offsets[hi]], c.lengths[lo:hi],
                                       texts=[f"text {i}" for i in range(lo, hi)] if with_texts else None)

    parts = [batch(0, 100, texts_first), batch(100, 300, not texts_first)]
    with pytest.raises(ValueError, match=r"documents 100\.\.299 come with(out)? texts"):
        build(tmp_path / "ix", _Batches(parts), chunk_tokens=1000, show_progress=False, **OPTIONS)


def test_existing_index_needs_overwrite_and_rerun_is_a_no_op(reference, small_corpus, tmp_path):
    with pytest.raises(FileExistsError):
        build(reference.path, source(small_corpus), chunk_tokens=CHUNK_TOKENS, show_progress=False,
              **{**OPTIONS, "seed": 6})
    again = build(reference.path, source(small_corpus), chunk_tokens=CHUNK_TOKENS, show_progress=False, **OPTIONS)
    assert again.generation == reference.generation


def test_plan_follows_the_budget():
    cfg = gingham.BuildConfig()
    small, big = plan(128, 256, cfg), plan(128, 2048, cfg)
    assert big.chunk_tokens > 8 * small.chunk_tokens and big.sample_tokens > 8 * small.sample_tokens
    # the chunk's float tokens fit in half the budget
    assert small.chunk_tokens * 128 * 4 * 2 < 256 * 2**20 / 2
    with pytest.raises(ValueError, match="memory_budget_mb"):
        plan(128, 10, cfg)


def test_train_on_first_and_all_differ(reference, small_corpus, tmp_path):
    from gingham.evaluation.synthetic import make_queries

    c = small_corpus
    assert reference.manifest["build"]["train_on"] == "all"  # the default for a re-readable source
    index = build(tmp_path / "first", source(c), chunk_tokens=CHUNK_TOKENS, train_on="first", show_progress=False,
                  **OPTIONS)
    assert index.manifest["build"]["train_on"] == "first" and index.n_docs == c.n_docs
    assert not np.array_equal(index.codec.centroids, reference.codec.centroids)
    queries, _ = make_queries(c, 40, query_length=16, seed=3)
    exact = gingham.exact_search(queries, c.tokens, 10, lengths=c.lengths, doc_ids=ids(c.n_docs))
    res = index.search(queries, 10)
    assert np.mean([len(set(res.ids[i]) & set(exact.ids[i])) / 10 for i in range(len(queries))]) >= 0.85
    with pytest.raises(ValueError, match="one-shot"):
        build(tmp_path / "x", IteratorSource(iter([("a", c.doc(0))])), train_on="all", show_progress=False)


def test_a_streaming_build_calibrates_its_search_defaults_once(small_corpus, tmp_path):
    c = small_corpus
    opts = {**OPTIONS, "calibrate": True}
    index = build(tmp_path / "s", source(c), chunk_tokens=CHUNK_TOKENS, show_progress=False, **opts)
    record = index.manifest["calibration"]
    assert record["truth"] == "exhaustive" and set(record["settings"]) == {"10", "100"}
    assert index.info()["calibration"] is not None
    generation = index.generation
    again = build(tmp_path / "s", source(c), chunk_tokens=CHUNK_TOKENS, show_progress=False, **opts)
    assert again.generation == generation  # a finished, calibrated build is left as it is
    off = build(tmp_path / "off", source(c), chunk_tokens=CHUNK_TOKENS, show_progress=False,
                **{**OPTIONS, "calibrate": False})
    assert "calibration" not in off.manifest

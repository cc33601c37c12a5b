"""The live index: add / delete / upsert by caller ids, compaction, refresh, filters, concurrent readers."""

import threading

import numpy as np
import pytest

import gingham
from gingham.evaluation.synthetic import make_corpus, make_queries


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(600, mean_length=30, n_topics=64, vocab_size=4096, seed=21)


@pytest.fixture()
def index(tmp_path, corpus, request):
    # indirect parameter: the number of centroids (257 leaves 2 spare code bits: sub-centroids)
    n_centroids = getattr(request, "param", None)
    docs = corpus.docs()
    return gingham.Index.create(tmp_path / "ix", docs[:400], [f"d{i}" for i in range(400)],
                                metadata=[{"i": i, "even": i % 2 == 0} for i in range(400)], n_centroids=n_centroids,
                                sub_centroids=n_centroids is not None)


def _expected_exhaustive(index, queries, live_docs: dict, k):
    """Exact MaxSim over each live document compressed with the index's own codebook (a from-scratch rebuild
    with the same codebook stores exactly these tokens)."""
    codec = index.codec
    ids = list(live_docs)
    lengths = [len(live_docs[i]) for i in ids]
    flat = np.concatenate([live_docs[i] for i in ids])
    vecs = codec.decompress(*codec.compress(flat))
    return gingham.exact_search(queries, vecs, top_k=k, lengths=lengths, doc_ids=ids)


def test_add_delete_upsert_keep_ids_stable(index, corpus):
    docs = corpus.docs()
    g0 = index.generation
    index.add(docs[400:450], [f"d{i}" for i in range(400, 450)], metadata=[{"i": i} for i in range(400, 450)])
    assert index.generation == g0 + 1 and len(index) == 450 and "d420" in index
    index.delete(["d3", "d420"])
    assert len(index) == 448 and "d3" not in index and "d420" not in index
    assert index.metadata("d5") == {"i": 5, "even": False}
    before = index.decompress("d7").copy()
    index.upsert([docs[500]], ["d7"], metadata=[{"i": 7, "new": True}])
    assert len(index) == 448 and index.metadata("d7") == {"i": 7, "new": True}
    assert not np.array_equal(index.decompress("d7")[:1], before[:1]) or len(before) != len(docs[500])
    with pytest.raises(ValueError, match="already in the index; use upsert"):
        index.add([docs[0]], ["d0"])
    with pytest.raises(KeyError, match="nope"):
        index.delete(["nope"])
    index.delete(["nope"], missing_ok=True)
    res = index.search(docs[3][:5], top_k=20)
    assert "d3" not in set(res.ids[0]) and "d420" not in set(res.ids[0])
    index.verify()


def test_failed_add_loses_nothing(index, corpus):
    gen = index.generation
    with pytest.raises(ValueError, match="dim"):
        index.add([np.ones((3, 7), np.float32)], ["x"])
    with pytest.raises(ValueError, match="duplicate"):
        index.add(corpus.docs()[:2], ["x", "x"])
    assert index.generation == gen and len(index) == 400


@pytest.mark.parametrize("index", [None, 257], indirect=True, ids=["centroids", "sub-centroids"])
def test_exhaustive_after_updates_equals_rebuild_with_same_codebook(index, corpus):
    assert index.codec.sub_bits == (2 if index.codec.n_centroids == 257 else 0)
    docs = corpus.docs()
    index.add(docs[400:500], [f"d{i}" for i in range(400, 500)], metadata=[{}] * 100)
    index.delete([f"d{i}" for i in range(0, 500, 7)])
    index.upsert([docs[550], docs[551]], ["d1", "n1"], metadata=[{}, {}])
    live = {f"d{i}": docs[i] for i in range(500) if i % 7}
    live["d1"] = docs[550]
    live["n1"] = docs[551]
    queries, _ = make_queries(corpus, 8, seed=3)
    want = _expected_exhaustive(index, queries, live, 10)
    got = index.search(queries, top_k=10, exhaustive=True)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    # compaction reclaims deleted documents and keeps results
    tokens_before = index.n_tokens
    index.compact()
    assert index.info()["n_segments"] == 1 and index.info()["n_deleted"] == 0
    assert index.n_tokens < tokens_before
    after = index.search(queries, top_k=10, exhaustive=True)
    np.testing.assert_array_equal(after.ids, want.ids)
    np.testing.assert_allclose(after.scores, want.scores, rtol=1e-5)
    assert index.metadata("d2") == {"i": 2, "even": True}
    index.verify()
    from gingham.storage.disk import referenced_dirs

    on_disk = {p.name for p in index.path.iterdir() if p.name.startswith("gen-")}
    assert on_disk == referenced_dirs(index.manifest)  # the codebook's generation and the compacted segment


def test_recall_after_adding_half_again(tmp_path):
    # in-distribution additions: the first 600 documents already cover the vocabulary the new ones use
    corpus = make_corpus(900, mean_length=80, n_topics=128, vocab_size=4096, seed=31)
    docs = corpus.docs()
    ix = gingham.Index.create(tmp_path / "ix", docs[:600], list(range(600)))
    ix.add(docs[600:], list(range(600, 900)))
    queries, _ = make_queries(corpus, 60, seed=32)
    exact = gingham.exact_search(queries, corpus.tokens, top_k=10, lengths=corpus.lengths)
    got = ix.search(queries, top_k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.ids, got.ids)])
    assert recall >= 0.95
    assert ix.codebook_drift() < 1.5


def test_codebook_drift_reported_for_foreign_data(index):
    rng = np.random.default_rng(0)
    far = [rng.standard_normal((20, 128)).astype(np.float32) * 3 for _ in range(10)]
    index.add(far, [f"far{i}" for i in range(10)], metadata=[{}] * 10)
    assert index.codebook_drift() > 1.5
    assert index.info()["codebook_drift"] == index.codebook_drift()
    index.rebuild()
    assert index.codebook_drift() == 1.0 and "far3" in index and len(index) == 410


def test_other_reader_sees_commits_after_refresh(index, corpus):
    other = gingham.Index.open(index.path)
    index.delete(["d1"])
    assert "d1" in other
    assert other.refresh() and "d1" not in other
    assert not other.refresh()


def test_where_filter_keeps_recall(index, corpus):
    queries, _ = make_queries(corpus, 10, seed=9)
    want = index.search(queries, top_k=5, where=lambda m: m.get("i", -1) % 50 == 0, exhaustive=True)
    got = index.search(queries, top_k=5, where=lambda m: m.get("i", -1) % 50 == 0)
    np.testing.assert_array_equal(got.ids, want.ids)
    assert all(int(i[1:]) % 50 == 0 for i in got.ids.ravel())
    # a broad filter goes through PLAID with the mask; results satisfy it
    evens = index.search(queries, top_k=5, where=lambda m: m.get("even", False))
    assert all(int(i[1:]) % 2 == 0 for i in evens.ids.ravel())


def test_concurrent_searches_during_writes(index, corpus):
    docs = corpus.docs()
    queries, _ = make_queries(corpus, 6, seed=4)
    live_by_generation = {index.generation: set(index.ids())}
    errors, seen = [], []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                res = index.search(queries, top_k=10, n_threads=1)
                seen.append((res.generation, {i for row in res.ids for i in row}))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for step in range(6):
            index.add(docs[400 + 10 * step:410 + 10 * step], [f"n{step}-{j}" for j in range(10)],
                      metadata=[{}] * 10)
            live_by_generation[index.generation] = set(index.ids())
            index.delete([f"d{j}" for j in range(step * 30, step * 30 + 30)])
            live_by_generation[index.generation] = set(index.ids())
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert seen
    for generation, ids in seen:
        assert ids <= live_by_generation[generation]


@pytest.mark.parametrize("how", ["compact", "rebuild"])
def test_compact_and_rebuild_keep_metadata_when_an_added_document_had_none(tmp_path, corpus, how):
    """Issue 27.1: compacting an index one of whose segments stores no metadata wiped every document's."""
    docs = corpus.docs()
    index = gingham.Index.create(tmp_path / "ix", docs[:60], [f"d{i}" for i in range(60)],
                                 metadata=[{"topic": "ab"[i % 2], "i": i} for i in range(60)], n_centroids=32,
                                 calibrate=False)
    index.add(docs[60:62], ["bare0", "bare1"])
    index.add(docs[62:63], ["some"], metadata=[{"topic": "a", "new": True}])
    index.delete(["d3"])
    index.compact() if how == "compact" else index.rebuild()
    assert len(index._snap.segments) == 1
    assert index.metadata("d5") == {"topic": "b", "i": 5}
    assert index.metadata("bare0") is None and index.metadata("some") == {"topic": "a", "new": True}
    res = index.search(docs[1], top_k=5, where="topic = ?", params=["a"])
    assert set(res.ids[0]) <= {f"d{i}" for i in range(0, 60, 2)} | {"some"}
    allowed = index._masks(index._snap, None, "topic IS NULL OR new = 1")[0]
    assert sorted(index._snap.take(np.flatnonzero(allowed))) == ["bare0", "bare1", "some"]
    index.verify()

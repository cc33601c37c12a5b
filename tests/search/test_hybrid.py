"""BM25 (SQLite FTS5) and the fusion of rankings, each against a plain reference."""

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gingham
from gingham.storage.docstore import lexical
from gingham.search import fusion


# ------------------------------------------------------------------------------------------------ fusion
def rrf_reference(lists, weights, top_k, k=60):
    score = {}
    for ranked, w in zip(lists, weights):
        for rank, doc in enumerate(ranked, start=1):
            if doc >= 0:
                score[doc] = score.get(doc, 0.0) + w / (k + rank)
    return sorted(score.items(), key=lambda t: (-t[1], t[0]))[:top_k]


def relative_reference(lists, scores, weights, top_k):
    fused = {}
    for ranked, sc, w in zip(lists, scores, weights):
        pairs = [(d, s) for d, s in zip(ranked, sc) if d >= 0]
        if not pairs:
            continue
        lo, hi = min(s for _, s in pairs), max(s for _, s in pairs)
        for d, s in pairs:
            fused[d] = fused.get(d, 0.0) + w * ((s - lo) / (hi - lo) if hi > lo else 1.0)
    return sorted(fused.items(), key=lambda t: (-t[1], t[0]))[:top_k]


@st.composite
def rankings(draw):
    """Two ranked lists of distinct positions (best first) with descending scores, -1 padded."""
    out_pos, out_sc = [], []
    for _ in range(2):
        docs = draw(st.lists(st.integers(0, 30), unique=True, max_size=12))
        sc = sorted(draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=len(docs), max_size=len(docs))),
                    reverse=True)
        pad = draw(st.integers(0, 3))
        out_pos.append(np.array(docs + [-1] * pad, dtype=np.int64))
        out_sc.append(np.array(sc + [-np.inf] * pad, dtype=np.float32))
    return out_pos, out_sc


@settings(max_examples=300, deadline=None)
@given(r=rankings(), alpha=st.sampled_from([0.0, 0.25, 0.5, 1.0]), top_k=st.integers(1, 30))
def test_fusion_equals_the_reference(r, alpha, top_k):
    pos, sc = r
    weights = (alpha, 1 - alpha)
    got_pos, got_sc = fusion.rrf(pos, weights, top_k)
    want = rrf_reference([p.tolist() for p in pos], weights, top_k)
    assert got_pos.tolist() == [d for d, _ in want]
    np.testing.assert_allclose(got_sc, [s for _, s in want], rtol=1e-12)
    got_pos, got_sc = fusion.relative(pos, sc, weights, top_k)
    want = relative_reference([p.tolist() for p in pos], [s.astype(np.float64).tolist() for s in sc], weights,
                              top_k)
    np.testing.assert_allclose(got_sc, [s for _, s in want], rtol=1e-9, atol=1e-12)
    # ties may order differently only where the fused scores are equal to rounding
    assert sorted(got_pos.tolist()) == sorted(d for d, _ in want) or np.allclose(got_sc, [s for _, s in want])


def test_fusion_edge_cases():
    empty = np.zeros(0, np.int64)
    assert fusion.rrf([empty, empty], (0.5, 0.5), 5)[0].tolist() == []
    assert fusion.relative([empty, empty], [empty, empty], (0.5, 0.5), 5)[0].tolist() == []
    # one list only; plain RRF: 1/61 for rank 1
    pos, sc = fusion.rrf([np.array([4, 2]), np.array([-1])], (1.0, 1.0), 5)
    assert pos.tolist() == [4, 2] and sc[0] == pytest.approx(1 / 61)
    # a document first in both lists beats one first in one; equal scores tie by position
    pos, _ = fusion.rrf([np.array([3, 1]), np.array([1, 3])], (0.5, 0.5), 2)
    assert pos.tolist() == [1, 3]
    # relative: all-equal scores normalise to 1; min-max maps the best to 1, the worst to 0
    pos, sc = fusion.relative([np.array([7, 8]), np.array([9])], [np.array([2.0, 2.0]), np.array([5.0])],
                              (0.5, 0.5), 3)
    assert pos.tolist() == [7, 8, 9] and np.allclose(sc, 0.5)
    pos, sc = fusion.relative([np.array([1, 2, 3]), np.array([3])], [np.array([9.0, 5.0, 1.0]), np.array([1.0])],
                              (0.7, 0.3), 3)
    assert pos.tolist() == [1, 2, 3] and np.allclose(sc, [0.7, 0.35, 0.3])


# ------------------------------------------------------------------------------------------------ BM25
def bm25_reference(texts, query, k1=1.2, b=0.75):
    """FTS5's bm25(): idf = log((N - n + 0.5) / (n + 0.5)) (1e-6 when not positive), summed over the query's
    distinct words."""
    docs = [re.findall(r"[a-z0-9]+", t.lower()) for t in texts]
    avgdl = sum(map(len, docs)) / len(docs)
    words = list(dict.fromkeys(re.findall(r"[a-z0-9]+", query.lower())))
    out = {}
    for i, d in enumerate(docs):
        total, hit = 0.0, False
        for w in words:
            n = sum(w in doc for doc in docs)
            tf = d.count(w)
            if not tf:
                continue
            hit = True
            idf = math.log((len(docs) - n + 0.5) / (n + 0.5))
            idf = idf if idf > 0 else 1e-6
            total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        if hit:
            out[i] = total
    return out


@pytest.fixture(scope="module")
def text_index(tmp_path_factory):
    rng = np.random.default_rng(3)
    vocab = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "x1", "y2", "zeta"]
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(2, 15)), p=np.linspace(2, 0.2, 10) / 11.0))
             for _ in range(120)]
    docs = []
    for n in rng.integers(3, 8, 120):
        x = rng.standard_normal((int(n), 32)).astype(np.float32)
        docs.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    root = tmp_path_factory.mktemp("hybrid") / "ix"
    ix = gingham.Index.create(root, docs, texts=texts, metadata=[{"i": i} for i in range(120)], nbits=2,
                              calibrate=False)
    return ix, texts, docs


@pytest.mark.parametrize("query", ["zeta", "fig grape", "apple zeta x1 zeta", "Cherry, DATE!", "nothing"])
def test_bm25_equals_the_reference(text_index, query):
    ix, texts, _ = text_index
    ref = bm25_reference(texts, query)
    res = ix.search_bm25(query, top_k=120)
    got = {int(i): float(s) for i, s in res.rows(0)}
    assert set(got) == set(ref)
    for i in ref:
        assert got[i] == pytest.approx(ref[i], rel=1e-5, abs=1e-6)
    order = sorted(ref.items(), key=lambda t: (-t[1], t[0]))
    top = res.rows(0)[:10]
    assert [s for _, s in top] == pytest.approx([s for _, s in order[:10]], rel=1e-5)


def test_bm25_filters_deletions_and_segments(tmp_path, text_index):
    _, texts, docs = text_index
    ix = gingham.Index.create(tmp_path / "ix", docs[:60], texts=texts[:60], metadata=[{"i": i} for i in range(60)],
                              nbits=2, calibrate=False)
    ix.add(docs[60:], list(range(60, 120)), texts=texts[60:], metadata=[{"i": i} for i in range(60, 120)])
    ix.delete([0, 1, 2, 61])
    res = ix.search_bm25(["fig", "grape"], top_k=10, where="i % 2 = ?", params=[0])
    for row in range(2):
        ids = [i for i, _ in res.rows(row)]
        assert ids and all(i % 2 == 0 and i not in (0, 1, 2, 61) for i in ids)
    only = ix.search_bm25("fig grape", top_k=5, subset=[5, 70])
    assert {i for i, _ in only.rows(0)} <= {5, 70}
    assert (ix.search_bm25("?!", top_k=3).positions == -1).all()  # no word: no match, not an FTS5 syntax error
    ix.compact()  # one segment: statistics of the live documents only, as the reference sees them
    live = [i for i in range(120) if i not in (0, 1, 2, 61)]
    ref = bm25_reference([texts[i] for i in live], "fig grape")
    got = dict(ix.search_bm25("fig grape", top_k=len(live)).rows(0))
    assert {live.index(i): s for i, s in got.items()} == pytest.approx(ref, rel=1e-5)


def test_match_query_quotes_every_word():
    assert lexical.match_query('who "discovered" penicillin? AND OR NEAR(x') == \
        '"who" OR "discovered" OR "penicillin" OR "and" OR "or" OR "near" OR "x"'
    assert lexical.match_query("Café crème") == '"café" OR "crème"'
    assert lexical.match_query(" ?! ") is None


def test_bm25_needs_stored_texts(tmp_path, text_index):
    _, _, docs = text_index
    ix = gingham.Index.create(tmp_path / "ix", docs[:20], nbits=2, calibrate=False)
    with pytest.raises(ValueError, match="does not store its documents' texts"):
        ix.search_bm25("fig", top_k=3)


def test_diacritics_are_removed(tmp_path, text_index):
    _, _, docs = text_index
    ix = gingham.Index.create(tmp_path / "ix", docs[:3], texts=["le café crème", "the cafe", "über alles"],
                              nbits=2, calibrate=False)
    assert {i for i, _ in ix.search_bm25("CAFÉ", top_k=3).rows(0)} == {0, 1}
    assert [i for i, _ in ix.search_bm25("uber", top_k=3).rows(0)] == [2]

"""An index written by Gingham at 91f43ae (before the house redesign, issue 28) opens with today's code and gives
the results that Gingham gave: the same ids, the same scores. The fixture and its expected results were written by
that old code (tests/fixtures/make_old_index_fixture.py says how); nothing here recomputes them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import gingham

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "index_91f43ae"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    # a copy: opening and BM25 must not touch the checked-in files
    root = tmp_path_factory.mktemp("old") / "index"
    shutil.copytree(FIXTURE / "index", root)
    return gingham.Index.open(root, verify=True)


@pytest.fixture(scope="module")
def queries():
    flat = np.load(FIXTURE / "queries.npy")
    bounds = np.concatenate([[0], np.cumsum(np.load(FIXTURE / "query_lengths.npy"))])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def same(res, want):
    """The results equal the old ones: ids and gaps exactly, scores to float32's last bits (a sum of the same
    terms in another order may round differently; a different document or rank never passes)."""
    assert res.positions.tolist() == want["positions"]
    for q, want_rows in enumerate(want["rows"]):
        got = res.rows(q)
        assert [doc for doc, _ in got] == [doc for doc, _ in want_rows], f"query {q}"
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want_rows], rtol=1e-6, atol=1e-6)


def test_opens_with_its_counts_ids_texts_and_metadata(index):
    assert (index.n_docs, index.n_tokens, index.generation) == (EXPECTED["n_docs"], EXPECTED["n_tokens"],
                                                                 EXPECTED["generation"])
    assert [str(x) for x in index.ids()] == EXPECTED["ids"]
    assert "doc03" not in index and "doc31" not in index and "doc30" in index
    assert len(index._snap.segments) == 2
    doc = EXPECTED["doc"]
    assert index.text(doc["id"]) == doc["text"]
    assert index.metadata(doc["id"]) == doc["metadata"]


def test_plaid_search_gives_the_old_results(index, queries):
    same(index.search(queries, top_k=5), EXPECTED["search"])
    same(index.search(queries, top_k=8, n_ivf_probe=4, n_full_scores=64), EXPECTED["search_probe"])


def test_exhaustive_search_gives_the_old_results(index, queries):
    same(index.exact_search(queries, top_k=10), EXPECTED["exhaustive"])


def test_filtered_searches_give_the_old_results(index, queries):
    f = EXPECTED["filtered"]
    same(index.search(queries, top_k=5, where=f["where"], params=f["params"]), f)
    s = EXPECTED["subset"]
    same(index.search(queries, top_k=4, subset=s["subset"]), s)


def test_bm25_gives_the_old_results(index):
    texts = EXPECTED["text_queries"]
    same(index.search_bm25(texts, top_k=6), EXPECTED["bm25"])
    f = EXPECTED["bm25_filtered"]
    same(index.search_bm25(texts, top_k=6, where=f["where"], params=f["params"]), f)


def test_old_index_takes_an_add_and_searches_it(index, queries, tmp_path):
    # the old layout is not only readable: today's write path commits on top of it
    root = tmp_path / "index"
    shutil.copytree(index.path, root)
    ix = gingham.Index.open(root)
    ix.add([queries[0] * 1.0], ["new"], texts=["river"], metadata=[{"lang": "en", "year": 2024, "n": 99}])
    assert ix.n_docs == EXPECTED["n_docs"] + 1 and ix.text("new") == "river"
    # the query is the new document's own tokens: it ranks among the first (doc05, whose tokens the query
    # perturbs, may come before it)
    assert "new" in [doc for doc, _ in ix.exact_search(queries[0], top_k=2).rows(0)]

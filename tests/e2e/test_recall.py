"""Accuracy pinned against exact brute-force MaxSim over the original float vectors, on a seeded corpus.

The full-size figure (20,000 documents, ~2.4M tokens) comes from bench/bench_core.py.
"""

import numpy as np
import pytest

import gingham
from gingham.evaluation.synthetic import make_corpus, make_queries


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(2000, seed=11)


@pytest.fixture(scope="module")
def queries(corpus):
    return make_queries(corpus, 100, seed=12)


@pytest.fixture(scope="module")
def exact(corpus, queries):
    return gingham.exact_search(queries[0], corpus.tokens, top_k=10, lengths=corpus.lengths)


def recall(a, b, k=10):
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a.positions, b.positions)]))


@pytest.mark.parametrize("nbits,minimum", [(2, 0.95), (4, 0.98)])
def test_default_search_recall_against_exact(tmp_path, corpus, queries, exact, nbits, minimum):
    ix = gingham.Index.create(tmp_path / "ix", corpus.tokens, lengths=corpus.lengths, nbits=nbits)
    got = ix.search(queries[0], top_k=10)
    assert recall(exact, got) >= minimum
    # each query finds the document it was derived from
    assert (got.positions[:, 0] == queries[1]).mean() >= 0.95


def test_exact_search_matches_reference_maxsim(corpus, queries, exact):
    from gingham.kernels.reference import maxsim

    q = queries[0][0]
    scores = np.array([maxsim(q, corpus.doc(i)) for i in range(corpus.n_docs)])
    order = np.lexsort((np.arange(len(scores)), -scores))[:10]
    np.testing.assert_array_equal(exact.positions[0], order)

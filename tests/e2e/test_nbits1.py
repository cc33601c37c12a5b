"""nbits 1 end to end: build, store, reopen and search an index of one bit per dimension (a byte of packed
residuals is eight dimensions), with either exact-stage scorer; recall against exact MaxSim on the float vectors."""

import numpy as np
import pytest

import gingham
from gingham.search import scorer
from gingham.evaluation.synthetic import make_corpus, make_queries


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(800, seed=21)


@pytest.fixture(scope="module")
def queries(corpus):
    return make_queries(corpus, 40, seed=22)


def recall(a, b, k=10):
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a.positions, b.positions)]))


def test_nbits1_index_builds_reopens_and_searches(tmp_path, corpus, queries):
    path = tmp_path / "ix1"
    built = gingham.Index.create(path, corpus.tokens, lengths=corpus.lengths, nbits=1, calibrate=False)
    assert built.nbits == 1
    ix = gingham.Index.open(path)
    info = ix.info()
    assert info["nbits"] == 1
    # 16 residual bytes a token at dim 128, plus its code
    assert 16 < info["bytes_per_token_compressed"] <= 16 + 4
    assert ix.decompress(0).shape == (corpus.lengths[0], 128)

    exact = gingham.exact_search(queries[0], corpus.tokens, top_k=10, lengths=corpus.lengths)
    got = {}
    for name in ("decompress", "packed"):
        with scorer.forced(name):
            got[name] = ix.search(queries[0], top_k=10)
    np.testing.assert_array_equal(got["packed"].positions, got["decompress"].positions)
    np.testing.assert_allclose(got["packed"].scores, got["decompress"].scores, rtol=1e-5, atol=1e-5)
    assert recall(exact, got["packed"]) >= 0.9  # 0.92 measured
    assert (got["packed"].positions[:, 0] == queries[1]).mean() >= 0.95
    with scorer.forced("packed-int8"):
        coarse = ix.search(queries[0], top_k=10)
    assert recall(got["packed"], coarse) >= 0.95

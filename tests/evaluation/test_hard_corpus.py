import json

import numpy as np
import pytest
from typer.testing import CliRunner

import gingham
from gingham.evaluation import run_bench
from gingham.evaluation.bench import score_gap
from gingham.app.evaluation_cli import register
from gingham.evaluation.synthetic import make_corpus, make_hard_corpus, make_hard_queries, make_queries


@pytest.fixture(scope="module")
def hard():
    return make_hard_corpus(3000, seed=0)


def _pair_cosine(tokens: np.ndarray, n: int = 100_000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(tokens), (2, n))
    keep = a != b
    return float(np.einsum("ij,ij->i", tokens[a[keep]], tokens[b[keep]]).mean())


def _median_relative_gap(corpus, queries, k: int = 10) -> float:
    exact = gingham.exact_search(queries, corpus.tokens, k + 1, lengths=corpus.lengths)
    return score_gap(exact.scores, k)["relative_gap"]["median"]


def test_seeded_reproducibility():
    a, b, c = make_hard_corpus(40, seed=7), make_hard_corpus(40, seed=7), make_hard_corpus(40, seed=8)
    for x in ("tokens", "lengths", "offsets"):
        np.testing.assert_array_equal(getattr(a, x), getattr(b, x))
    assert a.tokens.shape != c.tokens.shape or not np.array_equal(a.tokens, c.tokens)
    qa, ta = make_hard_queries(a, 5, seed=3)
    qb, tb = make_hard_queries(b, 5, seed=3)
    qc, _ = make_hard_queries(a, 5, seed=4)
    np.testing.assert_array_equal(ta, tb)
    np.testing.assert_array_equal(np.stack(qa), np.stack(qb))
    assert not np.array_equal(np.stack(qa), np.stack(qc))


def test_shape_dtype_and_norms(hard):
    assert hard.tokens.dtype == np.float32 and hard.tokens.shape == (hard.offsets[-1], 128)
    assert hard.offsets[0] == 0 and np.array_equal(np.diff(hard.offsets), hard.lengths)
    np.testing.assert_allclose(np.linalg.norm(hard.tokens[:5000], axis=1), 1.0, atol=1e-5)
    assert make_hard_corpus(5, dim=16, seed=0).tokens.shape[1] == 16


def test_lengths(hard):
    assert hard.lengths.min() >= 30 and hard.lengths.max() <= 300
    assert abs(hard.lengths.mean() - 120) < 6  # measured 119.0 at 3,000 docs, seed 0 (median 106)


def test_mean_pair_cosine(hard):
    # measured 0.084 here (seed 0, 3,000 docs); 0.087-0.118, mean 0.103, over seeds 0-7 at 1,000 docs. Easy: 0.001
    assert abs(_pair_cosine(hard.tokens) - 0.1) < 0.03


def test_queries(hard):
    queries, targets = make_hard_queries(hard, 20, seed=1)
    assert len(queries) == 20 and targets.dtype == np.int64 and targets.max() < hard.n_docs
    for q in queries:
        assert q.shape == (32, 128) and q.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="n_from_doc"):
        make_hard_queries(hard, 2, n_from_doc=40)


def test_harder_than_easy():
    n = 800
    hard = make_hard_corpus(n, seed=0)
    easy = make_corpus(n, seed=0)
    hard_gap = _median_relative_gap(hard, make_hard_queries(hard, 40, seed=1)[0])
    easy_gap = _median_relative_gap(easy, make_queries(easy, 40, seed=1)[0])
    assert hard_gap < 0.5 * easy_gap  # measured ~10x smaller at 2,000 docs


def test_score_gap():
    scores = np.array([[5.0, 4.0, 3.0], [2.0, 1.0, 0.5], [1.0, -np.inf, -np.inf]], dtype=np.float32)
    g = score_gap(scores, 2)
    assert g["n_queries"] == 2 and g["k"] == 2  # the query without a rank 3 is left out
    assert g["gap"]["median"] == pytest.approx(0.75) and g["relative_gap"]["median"] == pytest.approx(0.375)
    assert score_gap(scores[:, :2], 2) is None


def test_bench_hard_end_to_end(tmp_path):
    import typer

    app = typer.Typer()
    register(app)
    out = tmp_path / "b"
    r = CliRunner().invoke(app, ["bench", "--out", str(out), "--corpus", "hard", "--n-docs", "120",
                                 "--n-queries", "8", "--nbits", "2", "-q"])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "results.json").read_text())["data"]
    assert data["name"] == "synthetic-hard-120" and data["mean_query_tokens"] == 32
    gap = data["score_gap"]
    assert gap["k"] == 10 and gap["n_queries"] == 8 and gap["gap"]["p10"] <= gap["gap"]["median"] <= gap["gap"]["p90"]
    assert "How hard" in r.output
    with pytest.raises(ValueError, match="corpus must be one of"):
        run_bench(tmp_path / "x", corpus="medium")

"""The exact stage's choice of scorer (gingham.search.scorer): decompress-then-score or scoring from the packed
residuals, measured once per shape and process, forced by tests, benches or GINGHAM_EXACT_SCORER; and that every
choice gives decompress-then-score's scores (int8: within its bound), also through PLAID search's centroid scores."""

from __future__ import annotations

import numpy as np
import pytest

from gingham.common.config import SearchConfig
from gingham.kernels import reference as ref
from gingham.kernels.ivf import build_ivf
from gingham.kernels.packed import packed_query_table, quantize_table
from gingham.kernels.scoring import rank_centroids
from gingham.search import parallel, plaid, scorer
from gingham.search.centroids import CentroidScorer, CentroidScores


@pytest.fixture(autouse=True)
def _fresh_costs(monkeypatch):
    monkeypatch.delenv(scorer.ENV, raising=False)
    scorer.forget()
    yield
    scorer.forget()


def _arrays(rng, dim=32, n_docs=40, max_len=9, n_c=12, nbits=2, code_dtype=np.uint16):
    lengths = rng.integers(0, max_len, n_docs)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(0, n_c, offsets[-1]).astype(code_dtype)
    packed = rng.integers(0, 256, (offsets[-1], dim * nbits // 8)).astype(np.uint8)
    fine = rng.standard_normal((n_c, dim)).astype(np.float32)
    fine /= np.linalg.norm(fine, axis=1, keepdims=True)
    scales = rng.uniform(0.5, 2.0, n_c).astype(np.float32)
    lut = (rng.standard_normal((dim * nbits // 8, 256, 8 // nbits)) * 0.05).astype(np.float32)
    ivf_docs, ivf_offsets = build_ivf(codes, 0, offsets, n_c)
    return plaid.IndexArrays(centroids=fine, fine=fine, scales=scales, lut=lut, codes=codes, residuals=packed,
                             doc_offsets=offsets, ivf_docs=ivf_docs, ivf_offsets=ivf_offsets, normalize=True)


def _want(ix, q, docs):
    return ref.maxsim_decompress(docs, ix.doc_offsets, ix.codes, ix.residuals, ix.fine, ix.scales, ix.lut, True, q)


def test_choose_weighs_the_table_against_the_tokens():
    costs = scorer.Costs(per_token={"decompress": 3.0, "packed": 1.0, "packed-int8": 0.5},
                         per_query={"decompress": 0.0, "packed": 100.0, "packed-int8": 150.0})
    assert scorer.choose(costs, 10, margin=1.0) == "decompress"  # 30 against 110: the table is not repaid
    assert scorer.choose(costs, 50, margin=1.0) == "decompress"  # 150 = 150: a tie keeps the first
    assert scorer.choose(costs, 51, margin=1.0) == "packed"
    assert scorer.choose(costs, 10_000) == "packed"  # int8 is never chosen unless allowed
    assert scorer.choose(costs, 10_000, allowed=scorer.SCORERS) == "packed-int8"
    # the default margin: packed must take at most 0.8 of decompress's time (a close call keeps decompress)
    assert scorer.MARGIN == 0.8
    assert scorer.choose(costs, 80) == "packed"  # 180 against 240: 0.75
    assert scorer.choose(costs, 62) == "decompress"  # 162 against 186: 0.87
    close = scorer.Costs({"decompress": 1.0, "packed": 0.85}, {})
    assert scorer.choose(close, 1000) == "decompress" and scorer.choose(close, 1000, margin=0.9) == "packed"


def test_measure_times_every_scorer_and_the_table_with_the_timer_given():
    """A fake clock that advances 1 s per reading: every timed call lasts 1 s, so each scorer costs 1 s over the
    calibration's tokens and each table 1 s a query; the fastest of the rounds is kept."""
    clock = iter(range(10**6))
    costs = scorer.measure(1, 16, 5, np.uint8, timer=lambda: float(next(clock)), n_tokens=256, rounds=2)
    assert set(costs.per_token) == set(scorer.SCORERS)
    assert all(v == pytest.approx(1 / 256) for v in costs.per_token.values())
    assert costs.per_query == {"decompress": 0.0, "packed": 1.0, "packed-int8": 1.0}
    readings = next(clock)
    assert readings == 2 * 2 * 5  # two readings per call, two rounds, five timed steps


def test_costs_are_measured_once_per_shape_and_process(monkeypatch):
    calls = []

    def fake(nbits, dim, n_q, code_dtype, timer, read_only=False):
        calls.append((nbits, dim, n_q, np.dtype(code_dtype).str))
        return scorer.Costs({"decompress": 1.0, "packed": 2.0, "packed-int8": 0.1}, {})

    monkeypatch.setattr(scorer, "measure", fake)
    first = scorer.costs(2, 128, 32, np.uint16)
    assert scorer.costs(2, 128, 32, np.uint16) is first
    assert scorer.costs(2, 128, 20, np.uint16) is first  # 20 and 32 query tokens share a table width (32)
    scorer.costs(2, 128, 33, np.uint16)
    scorer.costs(1, 128, 32, np.uint16)
    scorer.costs(2, 128, 32, np.int32)
    assert len(calls) == 4
    scorer.forget()
    scorer.costs(2, 128, 32, np.uint16)
    assert len(calls) == 5


def test_pick_reads_the_shape_from_the_index_arrays(monkeypatch):
    seen = []

    def fake(nbits, dim, n_q, code_dtype, timer=None, read_only=False):
        seen.append((nbits, dim, n_q, np.dtype(code_dtype), read_only))
        return scorer.Costs({"decompress": 2.0, "packed": 1.0, "packed-int8": 0.1}, {"packed": 5.0})

    monkeypatch.setattr(scorer, "costs", fake)
    rng = np.random.default_rng(0)
    for nbits in (1, 2, 4):
        ix = _arrays(rng, dim=64, nbits=nbits, code_dtype=np.uint8)
        q = rng.standard_normal((7, 64)).astype(np.float32)
        cs = CentroidScorer(ix.centroids)(q, 2)
        # with the margin: packed at (5 + n) / 0.8 against decompress at 2 n
        assert scorer.pick(ix, 7, 6, cs) == "decompress" and scorer.pick(ix, 7, 10, cs) == "packed"
        assert seen[-1] == (nbits, 64, 7, np.dtype(np.uint8), False)
        # without usable centroid scores, the codes' rows (at most 12 here) are charged to the packed scorer
        assert scorer.pick(ix, 7, 100) == "packed"  # 200 against (100 + 5 + 12 * 2) / 0.8
        assert scorer.pick(ix, 7, 8) == "decompress"  # 16 against (8 + 5 + 8 * 2) / 0.8
        assert scorer.pick(ix._replace(shift=1), 7, 10, cs) == "decompress"  # sub-centroid codes: rows not given
        codes = ix.codes.view()
        codes.flags.writeable = False  # an opened index's memory map: timed on read-only arrays, as warmed up
        scorer.pick(ix._replace(codes=codes), 7, 8, cs)
        assert seen[-1][-1] is True


def test_forced_and_environment(monkeypatch):
    rng = np.random.default_rng(1)
    ix = _arrays(rng)
    monkeypatch.setattr(scorer, "costs", lambda *a, **k: pytest.fail("a forced scorer measures nothing"))
    monkeypatch.setenv(scorer.ENV, "packed-int8")
    assert scorer.requested() == "packed-int8" and scorer.pick(ix, 4, 100) == "packed-int8"
    with scorer.forced("decompress"):
        assert scorer.pick(ix, 4, 100) == "decompress"
        with scorer.forced("packed"):
            assert scorer.pick(ix, 4, 100) == "packed"
        assert scorer.requested() == "decompress"
    assert scorer.requested() == "packed-int8"
    monkeypatch.setenv(scorer.ENV, "fast")
    with pytest.raises(ValueError, match=r"GINGHAM_EXACT_SCORER='fast' is not an exact-stage scorer; use one of "
                                         r"'auto', 'decompress', 'packed', 'packed-int8'"):
        scorer.requested()
    with pytest.raises(ValueError, match="scorer='lut'"):
        with scorer.forced("lut"):
            pass


@pytest.mark.parametrize("name", ["decompress", "packed", "packed-int8", "auto"])
@pytest.mark.parametrize("n_threads", [1, 3])
def test_exact_scores_by_every_scorer(monkeypatch, name, n_threads):
    """Each scorer (and the measured choice) gives MaxSim over the decompressed tokens, the same bits on any
    number of threads; int8 within its quantisation bound."""
    monkeypatch.setattr(parallel, "MIN_RUN_TOKENS", 5)
    rng = np.random.default_rng(n_threads)
    for nbits in (1, 2, 4):
        ix = _arrays(rng, nbits=nbits)
        q = rng.standard_normal((5, 32)).astype(np.float32)
        docs = np.sort(rng.choice(40, 25, replace=False)).astype(np.int64)
        with scorer.forced(name):
            got = plaid.exact_scores_for(ix, q, docs, n_threads)
            assert got.dtype == np.float32 and got.shape == (len(docs),)
            np.testing.assert_array_equal(got, plaid.exact_scores_for(ix, q, docs, 1))
        want = _want(ix, q, docs)
        if name != "packed-int8":
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
            continue
        # int8: per query token, n_bytes half-steps of its table scale, times a token's scale and inverse norm
        n_bytes = ix.residuals.shape[1]
        _, steps = quantize_table(packed_query_table(ix.lut, q), n_bytes)
        x = ref.decompress(ix.codes, ix.residuals, ix.fine, ix.scales, ix.lut)
        worst = float(np.max(ix.scales[ix.codes.astype(np.int64)] / np.linalg.norm(x, axis=1)))
        assert np.all(np.abs(got - want) <= 0.5 * n_bytes * worst * float(steps[:len(q)].sum()) + 1e-4)


def test_centroid_rows_score_the_codes_of_the_candidates():
    rng = np.random.default_rng(2)
    ix = _arrays(rng, n_c=64, n_docs=30, max_len=9)
    q = rng.standard_normal((3, 32)).astype(np.float32)
    docs = np.array([1, 5, 7], dtype=np.int64)
    rows, slot = scorer.centroid_rows(ix, q, docs)
    codes = np.concatenate([ix.codes[ix.doc_offsets[d]:ix.doc_offsets[d + 1]] for d in docs]).astype(np.int64)
    assert len(slot) == 64 and len(rows) == len(np.unique(codes)) < 32  # a share of the codes: only theirs
    np.testing.assert_allclose(rows[slot[codes]], ix.fine[codes] @ q.T, rtol=1e-5, atol=1e-5)
    every, no_slot = scorer.centroid_rows(ix, q, np.arange(30, dtype=np.int64))  # most codes: all of them
    assert len(no_slot) == 0 and every.shape == (64, 3)
    cs = CentroidScorer(ix.centroids)(q, 2)
    assert scorer.centroid_rows(ix, q, docs, cs)[0] is cs.scores  # the search's own scores, when it vouches
    sub = ix._replace(shift=1)  # codes with sub-centroid bits: the centroids' rows are not the codes' rows
    assert scorer.centroid_rows(sub, q, docs, cs)[0] is not cs.scores


@pytest.mark.parametrize("stage3", [False, True])
def test_plaid_search_never_hands_group_scores_to_the_packed_scorer(stage3):
    """With a coarse-level scoring, centroids outside the chosen groups carry their group's scores. The exact stage
    reads the query's centroid scores only once every candidate's centroids were scored exactly (after the
    unpruned pass, which adds their rows); otherwise it scores the codes itself. Either way the packed scorer
    gives decompress-then-score's results."""
    rng = np.random.default_rng(3)
    n_c = 12
    ix = _arrays(rng, n_c=n_c, n_docs=40, max_len=8)
    q = rng.standard_normal((6, 32)).astype(np.float32)
    true = np.ascontiguousarray(ix.centroids @ q.T)
    n_exact = n_c // 2  # centroids 0..5 scored exactly; the others share two groups' (wrong) rows
    groups = rng.standard_normal((2, len(q))).astype(np.float32) + 5.0
    scores = np.ascontiguousarray(np.concatenate([true[:n_exact], groups]))
    slot = np.where(np.arange(n_c) < n_exact, np.arange(n_c), n_exact + np.arange(n_c) % 2).astype(np.int32)
    ranked, _ = rank_centroids(true, 4)
    cs = CentroidScores(scores, slot, ranked, scores.max(axis=1), n_exact)
    cfg = SearchConfig(top_k=5, n_ivf_probe=4, n_full_scores=12 if stage3 else 400, min_candidates=0,
                       centroid_score_threshold=-10.0).resolved()
    results = {}
    for name in ("decompress", "packed"):
        with scorer.forced(name):
            results[name] = plaid.plaid_search(ix, q, cfg, plaid.NO_MASK, cs)
    np.testing.assert_array_equal(results["packed"][0], results["decompress"][0])
    np.testing.assert_allclose(results["packed"][1], results["decompress"][1], rtol=1e-5, atol=1e-5)

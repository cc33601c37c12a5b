"""Search defaults calibrated at build time: reproducible for a seed, used by search, overridable, measured."""

from __future__ import annotations

import numpy as np
import pytest

import gingham
from gingham.search import calibration
from gingham.evaluation.synthetic import make_hard_corpus, make_hard_queries


@pytest.fixture(scope="module")
def hard():
    corpus = make_hard_corpus(400, dim=32, seed=3)
    queries, _ = make_hard_queries(corpus, 24, seed=4)
    return corpus, queries


@pytest.fixture(scope="module")
def built(hard, tmp_path_factory):
    corpus, _ = hard
    return gingham.Index.create(tmp_path_factory.mktemp("cal") / "ix", corpus.docs(), n_centroids=64)


def test_ladder_rises_in_cost():
    for k in (10, 100):
        steps = calibration.ladder(k)
        assert all(a["n_full_scores"] <= b["n_full_scores"] for a, b in zip(steps, steps[1:]))
        assert all(a["n_ivf_probe"] < b["n_ivf_probe"] for a, b in zip(steps, steps[1:])
                   if a["n_full_scores"] == b["n_full_scores"])  # at one shortlist size, probes only widen
        assert all("centroid_score_threshold" in b for a, b in zip(steps, steps[1:])
                   if "centroid_score_threshold" in a)  # pruning, once off, stays off
        assert steps[0]["n_full_scores"] >= 4 * k  # a quarter is scored exactly: at least top_k


def test_build_stores_a_calibration_that_reaches_its_target(built):
    record = built.manifest["calibration"]
    assert record["source"] == "pseudo-queries" and record["n_queries"] == calibration.N_QUERIES
    assert set(record["settings"]) == {"10", "100"}
    for k, chosen in record["settings"].items():
        tried = record["measured"][k]
        assert {key: tried[-1][key] for key in chosen} == chosen  # the last rung tried is the one chosen
        assert tried[-1]["recall"] >= record["target"]
        assert all(t["recall"] < record["target"] for t in tried[:-1])  # and it is the cheapest that met it
    info = built.info()["calibration"]
    assert info["chosen"]["10"]["recall"] == record["measured"]["10"][-1]["recall"]


def test_calibration_is_reproducible_for_a_seed(hard, tmp_path):
    corpus, _ = hard
    a = gingham.Index.create(tmp_path / "a", corpus.docs(), n_centroids=64, seed=5)
    b = gingham.Index.create(tmp_path / "b", corpus.docs(), n_centroids=64, seed=5)
    assert a.manifest["calibration"] == b.manifest["calibration"]
    assert calibration.calibrate(a, seed=11) == calibration.calibrate(a, seed=11)
    qa = calibration.pseudo_queries(a, 8, seed=1)
    qb = calibration.pseudo_queries(a, 8, seed=2)
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(qa, qb))


def test_search_uses_calibrated_settings_for_what_the_caller_leaves_unset(built):
    chosen = built.manifest["calibration"]["settings"]["10"]
    cfg = built.search_config(10)
    assert cfg.n_ivf_probe == chosen["n_ivf_probe"] and cfg.n_full_scores == chosen["n_full_scores"]
    assert built._config(5, {}, built.n_docs).n_full_scores == chosen["n_full_scores"]  # top_k 5 uses the 10 row
    mid = built._config(50, {}, built.n_docs)
    assert mid.n_full_scores == built.manifest["calibration"]["settings"]["100"]["n_full_scores"]
    assert built._config(10, {"n_ivf_probe": 7}, built.n_docs).n_ivf_probe == 7  # a per-call setting wins
    assert built._config(200, {}, built.n_docs).n_full_scores == 4096  # beyond the calibrated top_ks: PLAID's


def test_stored_search_defaults_win_over_calibration(hard, tmp_path):
    corpus, _ = hard
    ix = gingham.Index.create(tmp_path / "ix", corpus.docs(), n_centroids=64)
    ix.set_search_defaults(n_full_scores=300)
    assert ix._config(10, {}, ix.n_docs).n_full_scores == 300


def test_calibrated_defaults_keep_recall_on_hard_queries(built, hard):
    """Held-out hard queries (not the pseudo-queries): calibrated defaults keep recall@10 vs exhaustive near the
    target."""
    _, queries = hard
    truth = built.search(queries, top_k=10, exhaustive=True).positions
    calibrated = built.search(queries, top_k=10).positions
    plaid = built.search(queries, top_k=10, n_ivf_probe=1, n_full_scores=256, centroid_score_threshold=0.5)
    r_cal = calibration.recall_at_k(calibrated, truth, 10).mean()
    r_plaid = calibration.recall_at_k(plaid.positions, truth, 10).mean()
    assert r_cal >= 0.9  # held-out queries, not the ones calibrated on: near the 0.95 target
    assert r_cal >= r_plaid - 0.03  # and not much below PLAID's fixed table, even where it chose cheaper


def test_calibrate_with_real_queries_and_compaction_recalibrates(hard, tmp_path):
    corpus, queries = hard
    ix = gingham.Index.create(tmp_path / "ix", corpus.docs(), n_centroids=64)
    record = ix.calibrate(queries, top_ks=[10], target=0.99)
    assert record["source"] == "queries" and record["n_queries"] == len(queries)
    assert gingham.Index.open(ix.path).manifest["calibration"] == record
    ix.delete(list(range(0, 400, 2)))
    ix.compact()
    again = ix.manifest["calibration"]
    assert again["source"] == "pseudo-queries" and again["n_docs"] == 200
    with pytest.raises(ValueError, match="target"):
        ix.calibrate(target=1.5)


def test_calibrate_false_and_tiny_indexes(hard, tmp_path):
    corpus, _ = hard
    off = gingham.Index.create(tmp_path / "off", corpus.docs(), n_centroids=64, calibrate=False)
    assert "calibration" not in off.manifest
    assert off._config(10, {}, off.n_docs).n_full_scores == 256  # PLAID's table
    tiny = gingham.Index.create(tmp_path / "tiny", corpus.docs()[:20])
    assert "skipped" in tiny.manifest["calibration"]
    assert tiny._config(10, {}, tiny.n_docs).n_full_scores == 256


def test_large_indexes_calibrate_against_a_wide_search(hard, tmp_path, monkeypatch):
    """Past EXHAUSTIVE_TRUTH_MAX_TOKENS the ground truth is a search wider than every rung, reproducibly."""
    corpus, _ = hard
    ix = gingham.Index.create(tmp_path / "ix", corpus.docs(), n_centroids=64, calibrate=False)
    assert calibration.calibrate(ix)["truth"] == "exhaustive"
    monkeypatch.setattr(calibration, "EXHAUSTIVE_TRUTH_MAX_TOKENS", ix.n_tokens - 1)
    monkeypatch.setattr(calibration, "WIDE_FULL_SCORES", 2048)  # a small index: a truth narrow enough to matter
    wide = calibration.wide_truth()
    first = calibration.calibrate(ix, seed=3, target=0.999)
    assert first["truth"] == wide == {"n_ivf_probe": 64, "n_full_scores": 2048, "centroid_score_threshold": -1e9}
    assert first == calibration.calibrate(ix, seed=3, target=0.999)
    assert set(first["settings"]) == {"10", "100"}
    for k, tried in first["measured"].items():
        # no rung as wide as the truth is measured against it; the chosen one reached the target or was the widest
        assert all(t["n_full_scores"] < 2048 and t["n_ivf_probe"] < 64 for t in tried)
        chosen = first["settings"][k]
        assert tried[-1]["recall"] >= 0.999 or chosen == {x: v for x, v in tried[-1].items() if x != "recall"}


def test_small_indexes_are_calibrated_to_a_higher_target(built, hard, tmp_path, monkeypatch):
    assert built.n_docs <= calibration.SMALL_DOCS
    assert built.manifest["calibration"]["target"] == calibration.TARGET_SMALL == 0.99
    monkeypatch.setattr(calibration, "SMALL_DOCS", built.n_docs - 1)
    record = calibration.calibrate(built)
    assert record["target"] == calibration.TARGET == 0.95
    assert calibration.calibrate(built, target=0.9)["target"] == 0.9  # an explicit target wins


def test_precise_codecs_are_calibrated_to_a_higher_target(hard, tmp_path, monkeypatch):
    """At nbits >= PRECISE_NBITS the search aims to keep what the codec keeps, whatever the corpus's size."""
    corpus, _ = hard
    monkeypatch.setattr(calibration, "SMALL_DOCS", 10)  # past the small-corpus rule
    four = gingham.Index.create(tmp_path / "four", corpus.docs(), n_centroids=64, nbits=4)
    two = gingham.Index.create(tmp_path / "two", corpus.docs(), n_centroids=64, nbits=2)
    assert four.manifest["calibration"]["target"] == calibration.TARGET_PRECISE == 0.98
    assert two.manifest["calibration"]["target"] == calibration.TARGET == 0.95
    assert [calibration.default_target(5000, nb) for nb in (1, 2, 4)] == [0.95, 0.95, 0.98]
    assert calibration.default_target(5, 4) == calibration.TARGET_SMALL == 0.99  # small (<= 10 here): the higher
    record = four.manifest["calibration"]
    assert record["cost_cap"] == {"n_full_scores": four.n_docs, "after_recall": calibration.TARGET}
    for k, tried in record["measured"].items():  # the rung stored reached 0.98, or the cap or the ladder's end
        chosen = {x: v for x, v in tried[-1].items() if x != "recall"}
        assert record["settings"][k] == chosen
        assert tried[-1]["recall"] >= 0.98 or k in record.get("capped", []) or chosen == calibration.ladder(int(k))[-1]


def test_the_precision_target_stops_short_of_near_exhaustive_settings(hard, tmp_path, monkeypatch):
    """Past TARGET, the raised target tries no rung that scores more than a quarter of the documents exactly."""
    corpus, _ = hard
    monkeypatch.setattr(calibration, "SMALL_DOCS", 10)
    # this 400-document corpus reaches 0.82 at 256 scored, 0.997 at 1,024 (> 400): a TARGET of 0.8 puts the cap
    # between them, and an unreachable precision target makes the walk go on until the cap
    monkeypatch.setattr(calibration, "TARGET", 0.8)
    monkeypatch.setattr(calibration, "TARGET_PRECISE", 1.0001)
    ix = gingham.Index.create(tmp_path / "four", corpus.docs(), n_centroids=64, nbits=4, calibrate=False)
    record = calibration.calibrate(ix, top_ks=(10,))
    tried, ladder = record["measured"]["10"], calibration.ladder(10)
    assert record["target"] == 1.0001 and record["capped"] == ["10"]
    assert tried[-1]["recall"] >= calibration.TARGET
    assert record["settings"]["10"] == ladder[len(tried) - 1]  # the most thorough rung tried
    ix.calibrate(top_ks=(10,))  # stored and shown by info()
    shown = ix.info()["calibration"]
    assert shown["cost_cap"] == record["cost_cap"] and shown["chosen"]["10"]["capped"] is True
    assert ladder[len(tried)]["n_full_scores"] > ix.n_docs >= tried[-1]["n_full_scores"]
    explicit = calibration.calibrate(ix, top_ks=(10,), target=1.0)  # a caller's target is not capped
    assert "cost_cap" not in explicit and len(explicit["measured"]["10"]) > len(tried)
    assert explicit["measured"]["10"][:len(tried)] == tried  # same rungs, same recall: one seed, one walk


@pytest.mark.parametrize("opts,match", [
    ({"top_ks": [10**9]}, r"top_ks holds \[1000000000\], more than the index's 300 live documents.*up to 300"),
    ({"top_ks": [10, 301]}, r"top_ks holds \[301\]"),
    ({"top_ks": "abc"}, "top_ks must be a list of positive integers"),
    ({"top_ks": 10}, "top_ks must be a list of positive integers"),
    ({"top_ks": []}, "top_ks is empty"),
    ({"top_ks": [0]}, "top_ks must hold positive integers.*0"),
    ({"top_ks": [10.5]}, "top_ks must hold positive integers.*10.5"),
    ({"top_ks": [True]}, "top_ks must hold positive integers"),
    ({"n_queries": 0}, "n_queries must be a positive integer.*got 0"),
    ({"n_queries": 2.5}, "n_queries must be a positive integer"),
    ({"seed": "x"}, "seed must be a non-negative integer, got 'x'"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"target": "0.9"}, "target .* must be a number in \\(0, 1\\]"),
    ({"target": 0}, "target"),
])
def test_calibrate_refuses_bad_options_before_measuring(hard, tmp_path, monkeypatch, opts, match):
    """Issue 27.5: each bad option is a ValueError naming it, raised before any search (top_k above the live
    documents is refused, as search refuses it, rather than stored as n_full_scores 4e9)."""
    corpus, _ = hard
    ix = gingham.Index.create(tmp_path / "ix", corpus.docs()[:300], n_centroids=32, calibrate=False)
    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: pytest.fail("measured before checking"))
    with pytest.raises(ValueError, match=match):
        ix.calibrate(**opts)
    assert "calibration" not in ix.manifest


def test_calibrate_takes_numpy_integers(hard, tmp_path):
    corpus, _ = hard
    ix = gingham.Index.create(tmp_path / "ix", corpus.docs()[:100], n_centroids=32, calibrate=False)
    record = ix.calibrate(top_ks=np.array([5, 100]), n_queries=np.int64(8), seed=np.int32(2), target=np.float32(0.9))
    assert set(record["settings"]) == {"5", "100"} and record["n_queries"] == 8 and record["seed"] == 2
    assert isinstance(record["seed"], int)
    assert ix.calibrate(n_queries=8)["seed"] == ix.build_config.seed  # None: the build's seed

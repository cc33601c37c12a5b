import json

import numpy as np
import pytest

import gingham
from gingham.evaluation import grid_points, pareto, run_bench, tune
from gingham.evaluation.sweep import measure
from gingham.evaluation.synthetic import make_corpus, make_queries

GRID = {"n_ivf_probe": (1, 4), "n_full_scores": (32, 256)}


def test_bench_end_to_end(tmp_path):
    out = tmp_path / "bench"
    res = run_bench(out, n_docs=200, n_queries=12, nbits=(2,), do_sweep=True, grid=GRID, target_recall=0.9,
                    peers=["fast-plaid"], peers_python=tmp_path / "no-python")
    for name in ("results.json", "summary.md", "latency.png", "frontier.png"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "results.json").read_text())
    g = data["engines"]["gingham-nbits2"]
    for key in ("build_s", "build_tokens_per_s", "bytes_per_token", "bytes_per_token_on_disk", "qps", "peak_rss_mb",
                "build_peak_rss_mb"):
        assert g[key] > 0
    # built in its own process: its peak is not this one's (which holds the exact engine's data and the search)
    assert g["build_peak_rss_mb"] != data["peak_rss_mb"]
    assert not (out / "indexes" / "inputs").exists()  # the build's input files are removed
    assert set(g["latency"]) >= {"p50_ms", "p95_ms", "p99_ms"}
    assert 0 <= g["quality"]["recall@10_vs_exact"] <= 1
    assert data["engines"]["exact"]["quality"]["recall@10_vs_exact"] == 1.0
    assert len(data["sweeps"]["gingham-nbits2"]["rows"]) == 4
    assert "fast-plaid" in data["peers_skipped"]  # peers are optional: a missing one is reported, not fatal
    assert "gingham-nbits2 vs exact" in data["ratios"]
    assert data["environment"]["cpu_model"] and data["environment"]["versions"]["gingham"]
    assert "search_defaults" in (out / "summary.md").read_text()
    assert res["tuning"]["gingham-nbits2"]["settings"]
    assert data["at_target"]["engines"]["gingham-nbits2"]["settings"] == res["tuning"]["gingham-nbits2"]["settings"]


def test_grid_and_pareto():
    pts = grid_points({"n_ivf_probe": (1, 2), "n_full_scores": (4, 64)}, top_k=10)
    assert pts == [{"n_ivf_probe": 1, "n_full_scores": 64}, {"n_ivf_probe": 2, "n_full_scores": 64}]
    with pytest.raises(ValueError, match="unknown search setting"):
        grid_points({"nprobe": (1,)})
    rows = [{"p50_ms": 1, "recall": 0.5}, {"p50_ms": 2, "recall": 0.4}, {"p50_ms": 3, "recall": 0.9}]
    assert [r["p50_ms"] for r in pareto(rows)] == [1, 3]


def test_tuner_meets_target_on_sample(tmp_path):
    corpus = make_corpus(300, seed=3)
    queries, _ = make_queries(corpus, 40, seed=4)
    ix = gingham.Index.create(tmp_path / "ix", corpus.tokens, lengths=corpus.lengths, nbits=2,
                              show_progress=False)
    exact = gingham.exact_search(queries, corpus.tokens, 10, lengths=corpus.lengths)
    grid = {"n_ivf_probe": (1, 2, 8), "n_full_scores": (32, 300)}
    t = tune(ix, queries, target_recall=0.9, top_k=10, exact_positions=exact.positions, grid=grid,
             sample=20, seed=0)
    assert t["met"] and t["recall"] >= 0.9 and t["n_sample"] == 20
    assert set(t["settings"]) == {"n_ivf_probe", "n_full_scores"}
    idx = np.sort(np.random.default_rng(0).choice(40, 20, replace=False))
    again = measure(ix, [queries[i] for i in idx], exact.positions[idx], 10, t["settings"])
    assert again["recall"] >= 0.9
    # the chosen point is the fastest of those meeting the target
    ok = [r for r in t["rows"] if r["recall"] >= 0.9]
    assert t["p50_ms"] == min(r["p50_ms"] for r in ok)
    # the stored settings are valid search defaults
    gingham.SearchConfig.from_dict(t["settings"])
    with pytest.raises(ValueError):
        tune(ix, queries, target_recall=1.5)


def test_at_target_compares_engines_at_equal_recall():
    from gingham.evaluation.bench import at_target

    def rows(*pts):
        return {"rows": [{"settings": {"n": i}, "recall": r, "p50_ms": ms} for i, (r, ms) in enumerate(pts)]}

    sweeps = {"gingham-nbits2": rows((0.90, 1.0), (0.96, 3.0), (0.99, 9.0)),
              "gingham-nbits4": rows((0.97, 2.0)),
              "fast-plaid-nbits2": rows((0.95, 40.0), (0.97, 80.0)),
              "fast-plaid-nbits4": rows((0.80, 10.0))}
    at = at_target(sweeps, 0.95)
    assert at["engines"]["gingham-nbits2"] == {"settings": {"n": 1}, "recall": 0.96, "p50_ms": 3.0, "met": True,
                                               "target_recall": 0.95}
    assert not at["engines"]["fast-plaid-nbits4"]["met"]
    # same nbits, and the fastest Gingham of any nbits; a peer that misses the target is not compared
    assert set(at["pairs"]) == {"gingham-nbits2 vs fast-plaid-nbits2", "gingham-nbits4 vs fast-plaid-nbits2"}
    assert at["pairs"]["gingham-nbits2 vs fast-plaid-nbits2"]["p50_ratio"] == pytest.approx(3.0 / 40.0)
    assert at["pairs"]["gingham-nbits4 vs fast-plaid-nbits2"]["p50_ratio"] == pytest.approx(2.0 / 40.0)

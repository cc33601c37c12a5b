"""PyLate peers (pylate-voyager, pylate-plaid): registry and skip reasons everywhere; real runs only where PyLate's
own virtual environment exists (.venv-pylate / .venv-pylate-plaid or $GINGHAM_PYLATE_PYTHON /
$GINGHAM_PYLATE_PLAID_PYTHON), which CI does not have. Timings are never asserted."""

import json
import sys

import numpy as np
import pytest

import gingham
from gingham.evaluation import peers, run_bench
from gingham.evaluation.metrics import overlap_recall
from gingham.evaluation.synthetic import make_corpus, make_queries

from evalhelpers import peer_python_or_skip

PYLATE = ("pylate-voyager", "pylate-plaid")


def test_registry():
    for name in PYLATE:
        assert name in peers.PEERS and peers.driver_path(name).name == "pylate_indexes.py"
        assert peers.driver_path(name).exists()
    assert not peers.USES_NBITS["pylate-voyager"] and peers.USES_NBITS["pylate-plaid"]
    with pytest.raises(ValueError, match="unknown peer"):
        peers.default_python("pylate-nope")


@pytest.mark.parametrize("name", PYLATE)
def test_missing_python_gives_clear_skip_reason(name, tmp_path, monkeypatch):
    assert "create .venv-pylate" in peers.available(name, None)
    why = peers.available(name, tmp_path / "no-python")
    assert why.startswith(f"no Python for peer {name} found") and "GINGHAM_PYLATE" in why
    # the environment variable wins over the venv lookup
    monkeypatch.setenv("GINGHAM_PYLATE_PYTHON", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("GINGHAM_PYLATE_PLAID_PYTHON", raising=False)
    assert peers.default_python(name) == tmp_path / "elsewhere"


@pytest.mark.parametrize("name", PYLATE)
def test_python_without_pylate_gives_clear_skip_reason(name):
    probe = peers.subprocess.run([sys.executable, "-c", "import pylate, voyager"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("this Python has pylate")
    why = peers.available(name, sys.executable)
    assert why.startswith(f"{name} cannot run with {sys.executable}") and "No module named" in why


def test_python_and_settings_lookup(tmp_path):
    assert peers.python_for("pylate-voyager", tmp_path / "py") == tmp_path / "py"  # one Python for all peers
    mapping = {"pylate-voyager": tmp_path / "a", "fast-plaid": tmp_path / "b"}
    assert peers.python_for("fast-plaid", mapping) == tmp_path / "b"
    assert peers.python_for("pylate-plaid", mapping) == peers.default_python("pylate-plaid")
    assert peers.settings_for("pylate-voyager", None, sweep=False) == [{"k_token": 100, "ef_search": 200}]
    assert len(peers.settings_for("pylate-voyager", None, sweep=True)) == 4
    plaid = [{"n_ivf_probe": 2, "n_full_scores": 128}]
    assert peers.settings_for("pylate-plaid", plaid, sweep=True) == plaid
    # PLAID settings mean nothing to Voyager: it keeps its own; a mapping gives each peer its own
    assert peers.settings_for("pylate-voyager", plaid, sweep=False) == [{"k_token": 100, "ef_search": 200}]
    assert peers.settings_for("pylate-voyager", {"pylate-voyager": [{"k_token": 7}]}, sweep=True) == [{"k_token": 7}]


def test_bench_reports_missing_pylate(tmp_path):
    res = run_bench(tmp_path / "b", n_docs=60, n_queries=6, nbits=(2,), peers=list(PYLATE),
                    peers_python={"pylate-voyager": tmp_path / "none", "pylate-plaid": tmp_path / "none"},
                    plots=False, target_recall=None)
    assert set(res["peers_skipped"]) == set(PYLATE)
    assert "peer pylate-voyager skipped: no Python" in (tmp_path / "b" / "summary.md").read_text()


# --- real runs (skipped without PyLate's venv) ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    corpus = make_corpus(50, seed=11)
    queries, _ = make_queries(corpus, 10, seed=12)
    exact = gingham.exact_search(queries, corpus.tokens, 10, lengths=corpus.lengths)
    return corpus, queries, exact.positions


def _maxsim(query, corpus, doc):
    return float((query @ corpus.tokens[corpus.offsets[doc]:corpus.offsets[doc + 1]].T).max(axis=1).sum())


# Voyager: the retriever reranks the docs behind each query token's k_token nearest tokens with exact float32 MaxSim,
# so its order is exact and its recall grows with k_token (with k_token=100 the pool can be one long document here:
# every query token's 100 nearest tokens lie in the target document). PLAID: compressed, approximate order; on this
# tiny corpus 8 probed centroids per query token can likewise hold only the target document (fast-plaid alike).
@pytest.mark.slow
@pytest.mark.parametrize("name,config,exact_order", [
    ("pylate-voyager", {"settings": [{"k_token": 100, "ef_search": 200}, {"k_token": 3000, "ef_search": 3000}]},
     True),
    ("pylate-plaid", {"nbits": 4, "settings": [{"n_ivf_probe": 8, "n_full_scores": 4096},
                                               {"n_ivf_probe": 64, "n_full_scores": 4096}]}, False),
])
def test_driver_end_to_end(name, config, exact_order, tiny, tmp_path):
    python = peer_python_or_skip(name)
    corpus, queries, exact = tiny
    inputs = peers.write_inputs(tmp_path / "in", corpus.docs(), queries)
    rep = peers.run(name, python, inputs, {"top_k": 10, "n_single": 5, "warm": 1, **config}, timeout=600)
    assert rep["engine"] == name and rep["versions"]["pylate"]
    assert rep["n_tokens"] == len(corpus.tokens) and rep["index_bytes"] > 0 and rep["build_s"] > 0
    assert [r["settings"] for r in rep["runs"]] == config["settings"]
    for run in rep["runs"]:
        pos = np.asarray(run["positions"])
        assert pos.shape == (len(queries), 10) and len(run["single_s"]) == 5
        assert ((pos >= -1) & (pos < 50)).all()
        for q, row in zip(queries, pos):
            hits = row[row >= 0]
            assert len(hits) and len(set(hits.tolist())) == len(hits)  # no document twice
            assert (row[len(hits):] == -1).all()
            if exact_order:
                scores = [_maxsim(q, corpus, d) for d in hits]
                assert np.all(np.diff(scores) <= 1e-4)
        assert np.mean(pos[:, 0] == exact[:, 0]) >= 0.9  # the best document of exact MaxSim comes first
    assert overlap_recall(np.asarray(rep["runs"][-1]["positions"]), exact, 10) >= 0.85  # the widest setting


@pytest.mark.slow
def test_bench_with_pylate_voyager(tmp_path):
    python = peer_python_or_skip("pylate-voyager")
    res = run_bench(tmp_path / "b", n_docs=50, n_queries=8, nbits=(2,), do_sweep=True,
                    grid={"n_ivf_probe": (1, 4), "n_full_scores": (64,)}, peers=["pylate-voyager"],
                    peers_python=python, plots=False)
    assert not res["peers_skipped"], res["peers_skipped"]
    v = json.loads((tmp_path / "b" / "results.json").read_text())["engines"]["pylate-voyager"]
    assert "nbits" not in v and v["settings"] == {"k_token": 100, "ef_search": 200}  # built once, float vectors
    assert v["quality"]["recall@10_vs_exact"] > 0 and v["quality"]["target@1"] >= 0.9
    assert len(res["sweeps"]["pylate-voyager"]["rows"]) == 4
    assert "gingham-nbits2 vs pylate-voyager" in res["ratios"]

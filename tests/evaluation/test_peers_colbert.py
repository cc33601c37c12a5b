"""colbert-ai peer: registry, skip reasons and settings checks everywhere; real runs only where colbert-ai's own
virtual environment exists (.venv-colbert or $GINGHAM_COLBERT_PYTHON), which CI does not have (its first run
compiles colbert-ai's C++ extensions, minutes). Timings are never asserted."""

import json
import subprocess
import sys

import numpy as np
import pytest

import gingham
from gingham.evaluation import peers, run_bench
from gingham.evaluation.metrics import overlap_recall
from gingham.evaluation.synthetic import make_corpus, make_queries

from evalhelpers import peer_python_or_skip

NAME = "colbert-ai"


def test_registry():
    assert NAME in peers.PEERS and peers.driver_path(NAME).name == "colbert_ai.py" and peers.driver_path(NAME).exists()
    assert peers.USES_NBITS[NAME]
    rungs = peers.settings_for(NAME, None, sweep=True)
    assert [(s["ncells"], s["centroid_score_threshold"], s["ndocs"]) for s in rungs] == [
        (1, 0.5, 256), (2, 0.45, 1024), (4, 0.4, 4096)]  # PLAID's table
    assert peers.settings_for(NAME, None, sweep=False) == rungs[:1]  # colbert-ai's own default for k <= 10
    # fast-plaid's settings mean nothing to colbert-ai: it keeps its own
    assert peers.settings_for(NAME, [{"n_ivf_probe": 2, "n_full_scores": 64}], sweep=True) == rungs
    mine = [{"ncells": 8, "ndocs": 512}]
    assert peers.settings_for(NAME, {NAME: mine}, sweep=False) == mine


def test_missing_python_gives_clear_skip_reason(tmp_path, monkeypatch):
    assert "create .venv-colbert" in peers.available(NAME, None)
    why = peers.available(NAME, tmp_path / "no-python")
    assert why.startswith(f"no Python for peer {NAME} found") and "GINGHAM_COLBERT_PYTHON" in why
    monkeypatch.setenv("GINGHAM_COLBERT_PYTHON", str(tmp_path / "elsewhere"))
    assert peers.default_python(NAME) == tmp_path / "elsewhere"


def test_python_without_colbert_gives_clear_skip_reason():
    if subprocess.run([sys.executable, "-c", "import colbert"], capture_output=True).returncode == 0:
        pytest.skip("this Python has colbert-ai")
    why = peers.available(NAME, sys.executable)
    assert why.startswith(f"{NAME} cannot run with {sys.executable}") and "No module named" in why


@pytest.mark.parametrize("config,message", [
    ({"settings": [{"n_ivf_probe": 4}]}, "unknown search settings ['n_ivf_probe'] for colbert-ai"),
    ({"build": {"kmeans_iters": 4}}, "unknown build options ['kmeans_iters'] for colbert-ai"),
])
def test_driver_rejects_unknown_options_before_importing_colbert(config, message, tmp_path):
    # checked before torch is imported: any Python with numpy runs this far
    proc = subprocess.run([sys.executable, str(peers.driver_path(NAME)), str(tmp_path), str(tmp_path / "o.json"),
                           "--config", json.dumps(config)], capture_output=True, text=True)
    assert proc.returncode != 0 and message in proc.stderr


# --- real runs (skipped without colbert-ai's venv) -----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    corpus = make_corpus(300, dim=128, seed=3)
    queries, _ = make_queries(corpus, 20, seed=4)
    exact = gingham.exact_search(queries, corpus.tokens, 10, lengths=corpus.lengths)
    return corpus, queries, exact.positions


# PLAID's rungs probe 1-4 centroids per query token, which on this small clustered corpus reach the target document
# (first) but few of the weaker neighbours behind it; probing every centroid unpruned (the last setting) leaves only
# the 2-bit compression between colbert-ai and exact MaxSim.
@pytest.mark.slow
def test_driver_end_to_end(tiny, tmp_path):
    python = peer_python_or_skip(NAME)
    corpus, queries, exact = tiny
    n_centroids = 2 ** int(np.floor(np.log2(16 * np.sqrt(len(corpus.tokens)))))  # colbert-ai's rule
    settings = [*peers.SETTINGS[NAME], {"ncells": n_centroids, "centroid_score_threshold": -1.0, "ndocs": 4096}]
    inputs = peers.write_inputs(tmp_path / "in", corpus.docs(), queries)
    rep = peers.run(NAME, python, inputs, {"top_k": 10, "nbits": 2, "threads": 1, "n_single": 5, "warm": 1,
                                           "settings": settings}, timeout=900)
    assert rep["engine"] == NAME and rep["versions"]["colbert-ai"] == "0.2.22" and rep["nbits"] == 2
    assert rep["torch_threads"] == 1 and rep["versions"]["torch"].endswith("+cpu")
    # the compiled extensions were loaded and the searched path called them
    assert set(rep["extensions"]) == {"segmented_maxsim", "filter_pids", "decompress_residuals", "segmented_lookup"}
    assert all(str(f).endswith(".so") for f in rep["extensions"].values()), rep["extensions"]
    assert all(n >= 1 for n in rep["extension_calls_one_query"].values()), rep["extension_calls_one_query"]
    assert rep["n_tokens"] == len(corpus.tokens) and rep["index_bytes"] > 0 and rep["build_s"] > 0
    assert 0 < rep["bytes_per_token_on_disk"] < 4 * 128  # compressed: far below float32
    # an int32 centroid code + 2-bit residuals a token (colbert-ai pads the arrays with 512 rows)
    assert rep["bytes_per_token"] == pytest.approx(4 + 128 * 2 / 8, rel=0.02)
    assert rep["n_centroids"] == n_centroids
    assert [r["settings"] for r in rep["runs"]] == settings
    recalls = []
    for run in rep["runs"]:
        pos, scores = np.asarray(run["positions"]), run["scores"]
        assert pos.shape == (len(queries), 10) and len(run["single_s"]) == 5
        assert ((pos >= -1) & (pos < len(corpus.lengths))).all()
        for row, sc in zip(pos, scores):
            hits = row[row >= 0]
            assert len(set(hits.tolist())) == len(hits) and (row[len(hits):] == -1).all()
            assert np.all(np.diff([s for s in sc if s is not None]) <= 1e-5)  # best first
        assert np.mean(pos[:, 0] == exact[:, 0]) >= 0.9  # the best document of exact MaxSim comes first
        recalls.append(overlap_recall(pos, exact, 10))
    assert min(recalls) >= 0.3, recalls  # every rung finds more than the target (random: 10 / 300)
    assert recalls[-1] >= 0.8, recalls  # every centroid, no pruning: only the compression is left


@pytest.mark.slow
def test_bench_with_colbert_ai(tmp_path):
    python = peer_python_or_skip(NAME)
    res = run_bench(tmp_path / "b", n_docs=300, n_queries=20, nbits=(2,), do_sweep=True,
                    grid={"n_ivf_probe": (1, 4), "n_full_scores": (256,)}, peers=[NAME], peers_python=python,
                    plots=False)
    assert not res["peers_skipped"], res["peers_skipped"]
    v = json.loads((tmp_path / "b" / "results.json").read_text())["engines"][f"{NAME}-nbits2"]
    assert v["settings"] == peers.SETTINGS[NAME][0] and v["nbits"] == 2
    assert v["quality"]["recall@10_vs_exact"] >= 0.3 and v["quality"]["target@1"] >= 0.9
    rows = res["sweeps"][f"{NAME}-nbits2"]["rows"]
    assert [r["settings"] for r in rows] == list(peers.SETTINGS[NAME]) and all(r["recall"] > 0 for r in rows)
    assert f"{NAME}-nbits2" in (tmp_path / "b" / "summary.md").read_text()

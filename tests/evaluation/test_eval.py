import json

import pytest

from evalhelpers import write_beir
from gingham.evaluation import load_beir, run_eval


def test_run_eval_beir_with_cache(tmp_path, word_encoder):
    task = load_beir(write_beir(tmp_path / "b"))
    out = tmp_path / "out"
    res = run_eval([task], out, model="words", nbits=(2,), top_k=8, encoder=word_encoder,
                   metrics=("nDCG@10", "RR@10", "R@10", "AP"))
    t = res["tasks"][task.name]
    assert set(t["engines"]) == {"exact", "gingham-nbits2"}
    # the word encoder matches query words exactly: each query's graded-2 / only relevant doc ranks first
    assert t["engines"]["exact"]["RR@10"] == pytest.approx(1.0)
    assert 0.0 <= t["engines"]["gingham-nbits2"]["recall@10_vs_exact"] <= 1.0
    for name in ("results.json", "summary.md", "heatmap.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["kind"] == "eval"
    assert "nDCG@10" in (out / "summary.md").read_text()
    calls = word_encoder.calls
    run_eval([task], out, model="words", nbits=(4,), top_k=8, encoder=word_encoder, plots=False)
    assert word_encoder.calls == calls  # second run (another nbits) reuses the cached encodings

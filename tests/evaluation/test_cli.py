import json

import typer
from typer.testing import CliRunner

import gingham.encoder
from evalhelpers import WordEncoder, write_beir
from gingham.app.evaluation_cli import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_bench(tmp_path):
    out = tmp_path / "b"
    r = runner.invoke(_app(), ["bench", "--out", str(out), "--n-docs", "150", "--n-queries", "8", "--nbits", "2",
                               "--sweep", "--grid", '{"n_ivf_probe": [1, 2]}', "-q"])
    assert r.exit_code == 0, r.output
    assert "Gingham bench" in r.output and "tuned search_defaults" in r.output
    assert json.loads((out / "results.json").read_text())["data"]["n_docs"] == 150


def test_cli_eval_beir(tmp_path, monkeypatch):
    monkeypatch.setattr(gingham.encoder, "load_encoder", lambda *a, **k: WordEncoder())
    data = write_beir(tmp_path / "beir", header=False, qrels_path="qrels/test.tsv")
    out = tmp_path / "e"
    r = runner.invoke(_app(), ["eval", str(data), "--out", str(out), "--nbits", "2", "--top-k", "8",
                               "--metrics", "nDCG@10,RR@10,R@10,AP", "-q"])
    assert r.exit_code == 0, r.output
    assert "nDCG@10" in r.output and (out / "heatmap.png").exists()


def test_cli_errors(tmp_path):
    r = runner.invoke(_app(), ["eval", str(tmp_path), "--out", str(tmp_path / "o"), "--mode", "nope"])
    assert r.exit_code == 2 and "--mode" in r.output
    r = runner.invoke(_app(), ["bench", "--out", str(tmp_path / "o"), "--nbits", "two"])
    assert r.exit_code == 2 and "--nbits" in r.output

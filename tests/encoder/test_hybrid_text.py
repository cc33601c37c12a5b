"""Hybrid text search end to end with a tiny model: BM25 fused with MaxSim in the API, the CLI and the server."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import gingham
from gingham.search import fusion

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from test_server import call, serve_app  # noqa: E402,F401  (serve_app is a fixture)

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "late interaction keeps one vector per token",
    "colbert plaid and pylate compress search engines",
    "penicillin was discovered by alexander fleming in 1928",
    "the moon landing happened in 1969",
    "zanzibar is an island off the coast of tanzania",
    "a short note about queries and documents",
    "bidirectional convolutions must not leak padding",
] * 3


@pytest.fixture(scope="module")
def text_index(bert_pylate, tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid") / "ix"
    ids = [f"t{i}" for i in range(len(TEXTS))]
    meta = [{"part": i // 8, "even": i % 2 == 0} for i in range(len(TEXTS))]
    ix = gingham.Index.from_texts(root, TEXTS, ids, model=str(bert_pylate), metadata=meta, nbits=2,
                                  calibrate=False)
    return ix, root


@pytest.mark.parametrize("mode", ["rrf", "relative"])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_hybrid_is_the_fusion_of_maxsim_and_bm25(text_index, mode, alpha):
    ix, _ = text_index
    queries = ["who discovered penicillin", "zanzibar tanzania", "quick fox"]
    depth = 20
    dense = ix.search_text(queries, depth, exhaustive=True)
    lexical = ix.search_bm25(queries, depth)
    res = ix.search_text(queries, 5, hybrid=mode, alpha=alpha, n_candidates=depth, exhaustive=True)
    for q in range(len(queries)):
        if mode == "rrf":
            pos, sc = fusion.rrf([dense.positions[q], lexical.positions[q]], (alpha, 1 - alpha), 5)
        else:
            pos, sc = fusion.relative([dense.positions[q], lexical.positions[q]],
                                      [dense.scores[q], lexical.scores[q]], (alpha, 1 - alpha), 5)
        np.testing.assert_array_equal(res.positions[q, :len(pos)], pos)
        np.testing.assert_allclose(res.scores[q, :len(sc)], sc, rtol=1e-6)
        assert res.ids[q, 0] == ix._snap.take(pos[:1])[0]
    if alpha == 0.0:  # BM25 alone decides: its best document first
        assert res.ids[1, 0] in {"t5", "t13", "t21"}


def test_hybrid_with_filters_and_bad_arguments(text_index):
    ix, _ = text_index
    res = ix.search_text("penicillin fleming", 4, hybrid="rrf", where="part = ? AND even = 1", params=[1])
    ids = [i for i, _ in res.rows(0)]
    assert ids and all(8 <= int(i[1:]) < 16 and int(i[1:]) % 2 == 0 for i in ids)
    with pytest.raises(ValueError, match="hybrid must be one of"):
        ix.search_text("x", 3, hybrid="bm25")
    with pytest.raises(ValueError, match="alpha"):
        ix.search_text("x", 3, hybrid="rrf", alpha=1.5)


def test_cli_search_hybrid_and_where(text_index):
    from typer.testing import CliRunner

    from gingham.app.cli import app

    _, root = text_index
    out = CliRunner().invoke(app, ["search", str(root), "zanzibar tanzania", "--top-k", "3", "--hybrid", "rrf",
                                   "--alpha", "0.2", "--where", "part >= ? AND even = ?", "--param", "1",
                                   "--param", "false", "--json"])
    assert out.exit_code == 0, out.output
    # (the model's load report may share a line with a row)
    rows = [json.loads(line[line.index('{"query"'):]) for line in out.output.splitlines() if '{"query"' in line]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["id"] in ("t13", "t21") and all(int(r["id"][1:]) % 2 == 1 for r in rows)
    bad = CliRunner().invoke(app, ["search", str(root), "x", "--where", "part = "])
    assert bad.exit_code != 0 and "not a valid SQL expression" in bad.output


def test_server_search_hybrid_and_sql_filter(text_index, serve_app):  # noqa: F811
    from gingham.app.server import create_app

    _, root = text_index
    base, _ = serve_app(create_app(root))
    status, out = call(base, "/search", {"queries": ["zanzibar tanzania"], "top_k": 3, "hybrid": "relative",
                                         "alpha": 0.2, "filter": "part = ?", "params": [2]})
    assert status == 200, out
    assert out["results"][0][0]["id"] == "t21"

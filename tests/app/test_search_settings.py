"""One definition serves every door (issue 28): each SearchConfig field is a flag of `gingham search` and a field of
the server's /search request, derived from the config with its help text, and reaches the search; a bad value is
the config's typed error (CLI: one line, exit 2; HTTP: 422 for what the schema bounds, 400 for the rest)."""

import dataclasses
import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import gingham
from gingham.app.cli import app
from gingham.common.config import SearchConfig, search_settings
from tests.app.test_cli_errors import WordEncoder, encoder, files  # noqa: F401 (fixtures)
from tests.conftest import normalised

pytest.importorskip("fastapi")
pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from gingham.app.server import create_app  # noqa: E402

runner = CliRunner()

#: A value for every SearchConfig field, none of them its default: a new field fails the tests until it is here.
VALUES = {"top_k": 3, "n_ivf_probe": 2, "centroid_score_threshold": 0.25, "n_full_scores": 64, "min_candidates": 5,
          "max_ivf_probe": 7, "exhaustive": True, "n_coarse_probe": 1}


def test_every_field_has_a_value_here():
    assert set(VALUES) == {f.name for f in dataclasses.fields(SearchConfig)}
    assert all(VALUES[f.name] != f.default for f in dataclasses.fields(SearchConfig))


@pytest.fixture()
def seen(monkeypatch):
    """``Index.search`` wrapped: records the config each search runs with."""
    configs = []
    real = gingham.Index.search
    names = {f.name for f in dataclasses.fields(SearchConfig)}

    def search(self, queries, top_k=None, **kwargs):
        overrides = {k: v for k, v in kwargs.items() if k in names}
        configs.append(self.search_config(top_k, **overrides))
        return real(self, queries, top_k, **kwargs)

    monkeypatch.setattr(gingham.Index, "search", search)
    return configs


def _flags(values: dict) -> list[str]:
    out = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        out += [flag] if value is True else [flag, str(value)]
    return out


def test_every_field_reaches_the_search_from_the_cli(files, seen):  # noqa: F811
    r = runner.invoke(app, ["search", str(files["index"]), "paris tennis", "--json"] + _flags(VALUES))
    assert r.exit_code == 0, r.output
    assert len(seen) == 1
    assert {name: getattr(seen[0], name) for name in VALUES} == VALUES


def test_unset_flags_leave_the_index_its_stored_settings(files, seen):  # noqa: F811
    gingham.Index.open(files["index"]).set_search_defaults(max_ivf_probe=9, min_candidates=4)
    r = runner.invoke(app, ["search", str(files["index"]), "paris tennis", "--json", "--top-k", "5"])
    assert r.exit_code == 0, r.output
    assert (seen[0].max_ivf_probe, seen[0].min_candidates, seen[0].top_k) == (9, 4, 5)


def test_every_flag_is_derived_from_the_config_with_its_help():
    command = typer.main.get_command(app).commands["search"]
    helps = {param.name: param.help for param in command.params}
    for setting in search_settings():
        assert helps.get(setting.name) == setting.help, setting.name
        assert "Default:" in setting.help or "None:" in setting.help, setting.name


@pytest.mark.parametrize("flags,expected", [
    (["--min-candidates", "-1"], "min_candidates must be >= 0, got -1"),
    (["--max-ivf-probe", "0"], "max_ivf_probe must be >= 1, got 0"),
    (["--n-coarse-probe", "-2"], "n_coarse_probe must be >= 0, got -2"),
    (["--top-k", "0"], "top_k must be >= 1, got 0"),
])
def test_a_bad_value_is_one_line_exit_2(files, flags, expected):  # noqa: F811
    r = runner.invoke(app, ["search", str(files["index"]), "query"] + flags)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert [line for line in r.output.splitlines() if line.strip()] == [f"error: {expected}"]
    assert WordEncoder.encoded == 0


# --- over HTTP -------------------------------------------------------------------------------------------------------

@pytest.fixture()
def client(tmp_path):
    rng = np.random.default_rng(5)
    vecs = [normalised(rng, int(k), 16) for k in rng.integers(3, 9, 30)]
    gingham.Index.create(tmp_path / "ix", vecs, [f"d{i}" for i in range(30)])
    return TestClient(create_app(tmp_path / "ix", warm_up=False)), vecs


def test_every_field_reaches_the_search_over_http(client, seen):
    app_client, vecs = client
    reply = app_client.post("/search", json={"embeddings": [vecs[0].tolist()], **VALUES})
    assert reply.status_code == 200, reply.text
    assert {name: getattr(seen[0], name) for name in VALUES} == VALUES
    assert len(reply.json()["results"][0]) == VALUES["top_k"]


def test_every_request_field_is_derived_from_the_config_with_its_help(client):
    app_client, _ = client
    schema = app_client.get("/openapi.json").json()["components"]["schemas"]["SearchRequest"]["properties"]
    for setting in search_settings():
        assert schema[setting.name]["description"] == setting.help, setting.name


@pytest.mark.parametrize("body,status,field", [
    ({"min_candidates": -1}, 422, "min_candidates"),
    ({"max_ivf_probe": 0}, 422, "max_ivf_probe"),
    ({"max_ivf_probe": "7"}, 422, "max_ivf_probe"),
    ({"min_candidates": True}, 422, "min_candidates"),
    ({"min_candidates": 10**30}, 422, "min_candidates"),
    ({"top_k": 0}, 422, "top_k"),
    ({"centroid_score_threshold": "NaN"}, 400, "centroid_score_threshold"),
])
def test_a_bad_value_over_http(client, body, status, field):
    app_client, vecs = client
    payload = json.dumps({"embeddings": [vecs[0].tolist()]})[:-1] + ", " + json.dumps(body)[1:]
    if body.get("centroid_score_threshold") == "NaN":  # JSON cannot carry NaN; Python's parser reads it
        payload = payload.replace('"NaN"', "NaN")
    reply = app_client.post("/search", content=payload, headers={"Content-Type": "application/json"})
    assert reply.status_code == status, reply.text
    assert field in json.dumps(reply.json())

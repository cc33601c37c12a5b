"""``gingham update`` (issue 27): documents' metadata and stored texts changed in place, without re-embedding, from
arguments or a JSONL file, in one atomic commit."""

import json

from typer.testing import CliRunner

import gingham
from gingham.app.cli import app
from tests.app.test_cli_errors import WordEncoder, encoder, files  # noqa: F401 (fixtures)

runner = CliRunner()


def _get(index, *ids) -> list[dict]:
    r = runner.invoke(app, ["get", str(index), *ids])
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.output.splitlines()]


def test_update_from_arguments(files):  # noqa: F811
    index = files["index"]
    before = gingham.Index.open(index).generation
    r = runner.invoke(app, ["update", str(index), "d1", "d2", "--metadata", '{"lang": "de", "year": 2020}'])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"{index}: 2 documents updated, generation {before + 1}"
    assert runner.invoke(app, ["update", str(index), "d1", "--metadata", '{"year": 2024}']).exit_code == 0
    d1, d2 = _get(index, "d1", "d2")
    assert d1["metadata"] == {"lang": "de", "year": 2024} and d2["metadata"] == {"lang": "de", "year": 2020}
    r = runner.invoke(app, ["update", str(index), "d1", "--metadata", '{"year": 1999}', "--mode", "replace",
                            "--text", "a new stored text"])
    assert r.exit_code == 0, r.output
    assert _get(index, "d1")[0] == {"id": "d1", "text": "a new stored text", "metadata": {"year": 1999}}
    assert WordEncoder.encoded == 0  # nothing re-embedded
    r = runner.invoke(app, ["search", str(index), "anything", "--json", "--top-k", "8", "--where", "year = ?",
                            "--param", "1999"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["id"] for line in r.output.splitlines() if line.startswith("{")] == ["d1"]


def test_update_from_a_jsonl_file(files, tmp_path):  # noqa: F811
    index = files["index"]
    path = tmp_path / "updates.jsonl"
    path.write_text('{"id": "d3", "metadata": {"lang": "fr"}}\n\n{"id": "d4", "text": "four"}\n'
                    '{"id": "d5", "metadata": {"lang": "it"}, "text": "five"}\n', encoding="utf-8")
    r = runner.invoke(app, ["update", str(index), "--file", str(path)])
    assert r.exit_code == 0, r.output
    d3, d4, d5 = _get(index, "d3", "d4", "d5")
    assert d3["metadata"] == {"lang": "fr"} and d3["text"].startswith("football")  # text left as it was
    assert d4["text"] == "four" and d4["metadata"] is None
    assert (d5["text"], d5["metadata"]) == ("five", {"lang": "it"})


def test_an_unknown_id_in_the_file_updates_nothing(files, tmp_path):  # noqa: F811
    index = files["index"]
    generation = gingham.Index.open(index).generation
    path = tmp_path / "updates.jsonl"
    path.write_text('{"id": "d3", "metadata": {"lang": "fr"}}\n{"id": "zz", "metadata": {"lang": "it"}}\n',
                    encoding="utf-8")
    r = runner.invoke(app, ["update", str(index), "--file", str(path)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert r.output.startswith("error: document id 'zz' is not in the index; nothing was updated")
    assert gingham.Index.open(index).generation == generation and _get(index, "d3")[0]["metadata"] is None

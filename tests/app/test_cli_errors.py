"""The ``gingham`` command line: a user's mistake is one line naming it and the fix, exit status 2, no traceback,
and it is caught before the expensive work (issue 27.6)."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import gingham
import gingham.encoder
from gingham.app.cli import app

runner = CliRunner()


@dataclasses.dataclass(frozen=True)
class _Config:
    revision: int = 1


class WordEncoder:
    """A stand-in for the text encoder: one seeded unit vector per lower-cased word; counts what it encodes."""

    dim = 16
    config = _Config()
    encoded = 0

    @staticmethod
    def _vec(word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(WordEncoder.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def _encode(self, texts, **_):
        WordEncoder.encoded += len(texts)
        return [np.stack([self._vec(w) for w in (t.lower().split() or ["<empty>"])]) for t in texts]

    encode_queries = _encode
    encode_documents = _encode


@pytest.fixture()
def encoder(monkeypatch):
    """``gingham.encoder.load_encoder`` replaced by the word encoder; ``loads`` counts the loads."""
    loads = []

    def load(model, **options):
        loads.append(model)
        return WordEncoder()

    monkeypatch.setattr(gingham.encoder, "load_encoder", load)
    WordEncoder.encoded = 0
    return loads


TOPICS = ["apple banana cherry", "river mountain lake", "guitar piano violin", "football tennis golf",
          "python java rust", "paris london berlin", "winter summer autumn", "red green blue"]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def files(tmp_path, encoder):
    """Paths the mistakes refer to: a corpus, one with a repeated id, an index built from texts, a folder that is
    not an index."""
    corpus = _write_jsonl(tmp_path / "corpus.jsonl",
                          [{"_id": f"d{i}", "text": f"{t} words about {t.split()[0]}"} for i, t in enumerate(TOPICS)])
    dup = _write_jsonl(tmp_path / "dup.jsonl", [{"_id": "a", "text": "one"}, {"_id": "b", "text": "two"},
                                                {"_id": "a", "text": "three"}])
    index = tmp_path / "index"
    r = runner.invoke(app, ["index", str(corpus), str(index), "--model", "words", "-q"])
    assert r.exit_code == 0, r.output
    (tmp_path / "empty").mkdir()
    encoder.clear()
    WordEncoder.encoded = 0
    return {"corpus": corpus, "dup": dup, "index": index, "not_index": tmp_path / "empty",
            "missing": tmp_path / "no-such-index", "out": tmp_path / "out"}


#: For every subcommand, user mistakes: (arguments with {placeholders} from ``files``, text the error names).
MISTAKES = {
    "index": [
        (["{corpus}", "{out}", "--nbits", "3"], r"nbits must be one of \(1, 2, 4\), got 3"),
        (["{corpus}", "{index}"], "an index already exists at .*; add --overwrite"),
        (["{dup}", "{out}"], "duplicate document id 'a' at positions 0 and 2"),
        (["{missing}", "{out}"], "corpus file .*no-such-index does not exist"),
        (["{corpus}", "{out}", "--limit", "0"], "--limit must be a positive integer, got 0"),
    ],
    "build": [
        (["{corpus}", "{out}", "--nbits", "3"], r"nbits must be one of \(1, 2, 4\), got 3"),
        (["{missing}", "{out}"], "no-such-index does not exist"),
    ],
    "search": [
        (["{not_index}", "query"], "is not a Gingham index: it has no manifest.json"),
        (["{index}", "query", "--param", "3"], "--param gives values for the \\? of --where; add --where"),
    ],
    "info": [(["{missing}"], "no index at .*no-such-index: the directory does not exist")],
    "verify": [(["{not_index}"], "is not a Gingham index")],
    "add": [
        (["{index}", "{corpus}"], "document id 'd0' is already in the index; .*--upsert"),
        (["{not_index}", "{corpus}"], "is not a Gingham index"),
    ],
    "delete": [
        (["{index}", "nope"], "document id 'nope' is not in the index"),
        (["{missing}", "d1"], "no index at"),
        (["{index}"], "give document ids or --where"),
        (["{index}", "d1", "--where", "n = 1"], "not both or neither"),
        (["{index}", "--param", "1"], "give document ids or --where"),
        (["{index}", "--where", "nosuch = ?", "--param", "1"], "its fields are"),
    ],
    "get": [
        (["{index}", "d1", "nope"], "document id 'nope' is not in the index"),
        (["{missing}", "d1"], "no index at"),
    ],
    "update": [
        (["{index}", "d1"], "nothing to update: give --metadata"),
        (["{index}"], "give document ids .* or --file, not both or neither"),
        (["{index}", "d1", "--metadata", "[1]"], "--metadata must be a JSON object"),
        (["{index}", "d1", "--metadata", "yes please"], "--metadata is not JSON"),
        (["{index}", "nope", "--text", "t"], "document id 'nope' is not in the index"),
        (["{index}", "d1", "--text", "t", "--mode", "patch"], "mode must be one of"),
        (["{index}", "--file", "{missing}"], "updates file .*no-such-index does not exist"),
        (["{index}", "--file", "{corpus}"], "update 1 must hold \"id\""),
        (["{missing}", "d1", "--text", "t"], "no index at"),
    ],
    "compact": [(["{missing}"], "no index at .*no-such-index: the directory does not exist")],
    "serve": [
        (["{missing}"], "no index at"),
        (["{index}", "--max-request-mb", "0"], "--max-request-mb must be positive"),
    ],
    "warmup": [(["--bogus"], "No such option: --bogus")],  # no value to get wrong: a usage error
    "eval": [
        (["{missing}", "--out", "{out}", "--nbits", "3"], "--nbits must be one or more of 1, 2, 4"),
        (["{missing}", "--out", "{out}"], "no-such-index is not a folder; pass a BEIR folder"),
    ],
    "bench": [
        (["--out", "{out}", "--nbits", "3"], "--nbits must be one or more of 1, 2, 4"),
        (["--out", "{out}", "--n-docs", "0"], "n_docs .* must be a positive integer, got 0"),
        (["--out", "{out}", "--nbits", "2", "--top-k", "0"], "top_k must be a positive integer, got 0"),
    ],
}


def _commands() -> set[str]:
    return set(typer.main.get_command(app).commands)


def test_every_subcommand_has_its_mistakes_tested():
    """A new subcommand needs its entry in MISTAKES."""
    assert set(MISTAKES) == _commands()


@pytest.mark.parametrize("command,args,expected", [(c, a, e) for c, cases in MISTAKES.items() for a, e in cases],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_a_users_mistake_is_one_line_exit_2_before_the_expensive_work(files, encoder, monkeypatch, command, args,
                                                                      expected):
    import re

    from gingham.evaluation import bench

    # the expensive work, each a failure if reached: encoding, the bench's data and ground truth
    monkeypatch.setattr(bench, "synthetic_data", lambda *a, **k: pytest.fail("bench made its data first"))
    argv = [command] + [a.format(**files) for a in args]
    if command == "index" and "--model" not in argv:
        argv += ["--model", "words"]
    r = runner.invoke(app, argv)
    assert r.exit_code == 2, (r.output, r.exception)
    assert "Traceback" not in r.output and not isinstance(r.exception, AssertionError)
    assert re.search(expected, " ".join(r.output.split())), r.output
    assert WordEncoder.encoded == 0, "encoded texts before refusing"
    if command != "warmup":  # click's usage errors have their own layout
        lines = [line for line in r.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), r.output


def test_the_library_refuses_before_encoding_too(files, encoder, tmp_path):
    texts = ["one text", "two texts", "three"]
    for kwargs, match in [({"nbits": 3}, "nbits must be one of"), ({"doc_ids": ["a", "b", "a"]}, "duplicate"),
                          ({"metadata": [{"k": 1}]}, "metadata"), ({"no_such_option": 1}, "unknown BuildConfig"),
                          ({"path": files["index"]}, "an index already exists")]:
        kwargs = {"path": tmp_path / "new", **kwargs}
        with pytest.raises((ValueError, FileExistsError), match=match):
            gingham.Index.from_texts(kwargs.pop("path"), texts, model="words", **kwargs)
    ix = gingham.Index.open(files["index"])
    for ids, match in [(["x", "x"], "duplicate"), (["d3", "x"], "'d3' is already in the index"),
                       ([1, 2], "this index uses str ids")]:
        with pytest.raises(ValueError, match=match):
            ix.add_texts(texts[:2], ids)
    assert encoder == [] and WordEncoder.encoded == 0


# ---------------------------------------------------------------------------------------- metadata (issue 27.7)
def test_index_and_add_keep_the_jsonl_fields_as_metadata(tmp_path, encoder):
    rows = [{"_id": f"d{i}", "text": f"{t} words", "title": f"T{i}", "lang": "de" if i % 2 else "en",
             "metadata": {"year": 2000 + i}} for i, t in enumerate(TOPICS)]
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", rows)
    index = tmp_path / "index"
    assert runner.invoke(app, ["index", str(corpus), str(index), "--model", "words", "-q"]).exit_code == 0
    assert gingham.Index.open(index).metadata("d3") == {"title": "T3", "lang": "de", "year": 2003}

    def hits(where, *params):
        argv = ["search", str(index), "paris tennis piano", "--json", "--top-k", "8", "--where", where]
        r = runner.invoke(app, argv + [a for p in params for a in ("--param", p)])
        assert r.exit_code == 0, r.output
        # on a cold cache a progress bar comes first, erased with \r and spaces on the line the JSON then starts
        lines = [line.split("\r")[-1].strip() for line in r.output.splitlines()]
        return sorted(json.loads(line)["id"] for line in lines if line.startswith("{"))

    assert hits("lang = ? AND year >= ?", "de", "2004") == ["d5", "d7"]
    assert hits("title = ?", "T0") == ["d0"]
    more = _write_jsonl(tmp_path / "more.jsonl", [{"id": "n1", "contents": "snow ice", "lang": "fi"}])
    r = runner.invoke(app, ["add", str(index), str(more), "-q"])
    assert r.exit_code == 0, r.output
    assert hits("lang = ?", "fi") == ["n1"]


def test_the_metadata_rule(tmp_path):
    from gingham.build.corpus import read_documents, read_texts

    path = _write_jsonl(tmp_path / "c.jsonl", [
        {"_id": "a", "text": "x", "id": 7, "metadata": {"k": [1, 2]}},  # '_id' is the id: 'id' is metadata
        {"docid": "b", "contents": "y"},
        {"_id": "c", "text": "z", "metadata": {}},
    ])
    ids, texts, metas = read_documents(path)
    assert ids == ["a", "b", "c"] and texts == ["x", "y", "z"]
    assert metas == [{"id": 7, "k": [1, 2]}, {}, {}]
    plain = _write_jsonl(tmp_path / "p.jsonl", [{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}])
    assert read_documents(plain)[2] is None  # no row has metadata: none at all
    tsv = tmp_path / "c.tsv"
    tsv.write_text("a\tx\nb\ty\n", encoding="utf-8")
    assert read_documents(tsv) == (["a", "b"], ["x", "y"], None)
    assert read_texts(path)[0] == ["a", "b", "c"]
    for row, match in [({"_id": "a", "text": "x", "lang": "en", "metadata": {"lang": "de"}}, r"\['lang'\] both"),
                       ({"_id": "a", "text": "x", "metadata": "en"}, "'metadata' must be a JSON object")]:
        with pytest.raises(ValueError, match=match):
            read_documents(_write_jsonl(tmp_path / "bad.jsonl", [row]))
    # queries are read without metadata: a queries file with odd fields still reads
    assert read_texts(_write_jsonl(tmp_path / "q.jsonl", [{"_id": "q", "text": "t", "metadata": "x"}])) == (
        ["q"], ["t"])


def test_index_help_documents_the_metadata_rule():
    r = runner.invoke(app, ["index", "--help"], terminal_width=200)
    text = " ".join(r.output.replace("│", " ").split())
    assert "every other field is metadata" in text and "'metadata' object" in text


# ---------------------------------------------------------------------------------------- help (issue 27.12)
def test_every_option_and_argument_has_help():
    group = typer.main.get_command(app)
    missing = [f"{name} {param.name}" for name, command in [("gingham", group), *group.commands.items()]
               for param in command.params if not (getattr(param, "help", None) or "").strip()]
    assert not missing, f"give these a help text: {missing}"

import json

import pytest

from evalhelpers import SHARED_DATA, write_beir
from gingham.evaluation import load_beir, load_xquad


@pytest.mark.parametrize("header,qrels_path", [(True, "qrels.tsv"), (False, "qrels/test.tsv")])
def test_load_beir_keeps_judged_queries(tmp_path, header, qrels_path):
    task = load_beir(write_beir(tmp_path / "b", header=header, qrels_path=qrels_path))
    assert task.query_ids == ["q0", "q1", "q2"]  # q3 has no judgments
    assert task.qrels["q0"] == {"d0": 2, "d7": 1}
    assert len(task.corpus.ids) == 8
    sample = load_beir(tmp_path / "b", limit_queries=2).query_ids  # a seeded sample over the judged documents
    assert len(sample) == 2 and set(sample) < {"q0", "q1", "q2"} and sample == sorted(sample)
    assert load_beir(tmp_path / "b", limit_queries=2).query_ids == sample
    limited = load_beir(tmp_path / "b", limit_docs=3)
    assert limited.query_ids == ["q0", "q1"] and limited.corpus.name != task.corpus.name


def test_load_beir_other_query_file(tmp_path):
    root = _fake_xquad(tmp_path / "x")
    task = load_beir(root, queries="queries.de.jsonl")
    assert task.query_texts == ["de question a", "de question b"]
    assert task.corpus.texts[0] == "en paragraph 0" and task.name == "x-queries.de"
    assert task.corpus.name == load_beir(root, queries="queries.en.jsonl").corpus.name  # one corpus encoding
    with pytest.raises(FileNotFoundError, match=r"queries\.de\.jsonl.*queries\.en\.jsonl"):
        load_beir(root, queries="queries.fr.jsonl")


def test_load_beir_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_beir(tmp_path / "missing")
    with pytest.raises(ValueError, match="limit_queries"):
        load_beir(write_beir(tmp_path / "b"), limit_queries=0)


def _fake_xquad(root):
    root.mkdir()
    (root / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nqa\tp0\t1\nqb\tp1\t1\n")
    for lang in ("en", "de"):
        with open(root / f"corpus.{lang}.jsonl", "w") as f:
            for i in range(3):
                f.write(json.dumps({"_id": f"p{i}", "text": f"{lang} paragraph {i}"}) + "\n")
        with open(root / f"queries.{lang}.jsonl", "w") as f:
            f.write(json.dumps({"_id": "qa", "text": f"{lang} question a"}) + "\n")
            f.write(json.dumps({"_id": "qb", "text": f"{lang} question b"}) + "\n")
    (root / "corpus.jsonl").write_text((root / "corpus.en.jsonl").read_text())
    return root


def test_load_xquad_modes(tmp_path):
    root = _fake_xquad(tmp_path / "xq")
    xen = load_xquad(root, "x-en", ["en", "de"])
    assert [t.name for t in xen] == ["en->en", "de->en"]
    assert xen[0].corpus is xen[1].corpus  # one shared corpus, encoded once
    xx = load_xquad(root, "x-x", ["de"], limit_queries=1)
    assert xx[0].corpus.texts[0] == "de paragraph 0" and xx[0].query_ids == ["qa"]
    with pytest.raises(ValueError, match="unknown language"):
        load_xquad(root, "x-en", ["xx"])
    with pytest.raises(ValueError, match="mode"):
        load_xquad(root, "y-z")


@pytest.mark.skipif(not (SHARED_DATA / "xquad-retrieval").exists(), reason="shared data not present")
def test_load_real_xquad():
    tasks = load_xquad(SHARED_DATA / "xquad-retrieval", "x-en", ["en", "th"], limit_queries=5)
    assert len(tasks[0].corpus.ids) == 240 and [len(t.query_ids) for t in tasks] == [5, 5]
    assert tasks[0].query_ids == tasks[1].query_ids

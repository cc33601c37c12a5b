"""Streaming builds from a JSONL corpus through a real (tiny) checkpoint, in this process and in workers."""

import json

import numpy as np
import pytest

from gingham.encoder import load_encoder
from gingham.build.streaming import TextSource, build
from tests.encoder.conftest import CORPUS

pytestmark = pytest.mark.encoder


@pytest.fixture()
def corpus_file(tmp_path):
    rng = np.random.default_rng(0)
    words = " ".join(CORPUS).split()
    rows = [{"_id": f"p{i}", "text": " ".join(rng.choice(words, int(rng.integers(3, 20))))} for i in range(30)]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path, rows


def _collect(src, start=0):
    out = list(src.batches(start))
    return [i for b in out for i in b.ids], [b for b in out if b.flat is not None]


def test_worker_processes_encode_what_this_process_encodes(bert_pylate, corpus_file):
    path, rows = corpus_file
    local = TextSource(path, model=str(bert_pylate), encode_docs=4)
    pooled = TextSource(path, model=str(bert_pylate), encode_docs=4, workers=2)
    ids_a, a = _collect(local)
    ids_b, b = _collect(pooled)
    assert ids_a == ids_b == [r["_id"] for r in rows]
    assert len(a) == len(b) == 8
    for x, y in zip(a, b):
        assert x.ids == y.ids and x.texts == y.texts
        np.testing.assert_array_equal(x.lengths, y.lengths)
        np.testing.assert_allclose(x.flat, y.flat, atol=1e-5)
    # a resumed read skips encoding the groups before the resume point, in order
    ids_c, c = _collect(pooled, start=9)
    assert ids_c == ids_a and [x.ids for x in c] == [x.ids for x in a[2:]]


def test_build_from_jsonl_with_workers_is_searchable(bert_pylate, corpus_file, tmp_path):
    path, rows = corpus_file
    src = TextSource(path, model=str(bert_pylate), encode_docs=8, workers=2)
    index = build(tmp_path / "ix", src, n_centroids=16, chunk_tokens=200, show_progress=False)
    assert index.ids() == [r["_id"] for r in rows] and index.text("p7") == rows[7]["text"]
    enc = load_encoder(bert_pylate)
    q = enc.encode_documents([rows[7]["text"]])[0]
    assert index.search(q, 1).ids[0, 0] == "p7"


def test_workers_need_a_model_name_not_an_object(bert_pylate, corpus_file):
    with pytest.raises(ValueError, match="pass model="):
        TextSource(corpus_file[0], encoder=load_encoder(bert_pylate), workers=2)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        TextSource(corpus_file[0], model=str(bert_pylate), workers=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_streaming_build_keeps_the_lines_metadata(bert_pylate, tmp_path, workers):
    """A JSONL line's fields but the id and the text are its metadata, as for `gingham index` (issue 27.7): the
    streaming build keeps them, in this process and in workers, and where= finds them."""
    rows = [{"_id": f"p{i}", "text": f"document number {i} about topic {i % 3}", "topic": i % 3,
             **({"metadata": {"lang": "de" if i % 2 else "en"}} if i < 20 else {})} for i in range(30)]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    src = TextSource(path, model=str(bert_pylate), encode_docs=8, workers=workers)
    index = build(tmp_path / "ix", src, n_centroids=16, chunk_tokens=200, show_progress=False)
    assert index.metadata("p3") == {"topic": 0, "lang": "de"} and index.metadata("p25") == {"topic": 1}
    q = load_encoder(bert_pylate).encode_queries(["topic"])[0]
    hits = index.search(q, 30, where="topic = ? AND lang = ?", params=[2, "en"])
    assert sorted(d for d, _ in hits.rows(0)) == sorted(f"p{i}" for i in range(20) if i % 3 == 2 and i % 2 == 0)

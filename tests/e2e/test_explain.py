"""Token-level explanations on the bundled sample with the offline e5 model: alignment of tokens to the index's
vectors, a cross-lingual query, the CLI's --explain and the server's /explain."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gingham import Index
from gingham.search.explain import SOURCE, align
from tests.conftest import normalised

QUERY = "Wer hat das Penicillin entdeckt?"  # German; the document is English


def test_every_document_token_aligns_with_its_vector(sample_index):
    enc = sample_index.encoder
    for doc in sample_index.ids():
        text = sample_index.text(doc)
        tokens = align(enc, text, is_query=False)
        assert len(tokens) == sample_index.decompress(doc).shape[0] == len(enc.encode_documents([text])[0])
        for span, kind in zip(tokens.spans, tokens.kinds):
            assert span is None or kind == "text"  # a text token may be bare whitespace (sentencepiece's lone ▁)
            if span:
                assert text[span[0]:span[1]].strip() == text[span[0]:span[1]] != ""
    q = align(enc, QUERY, is_query=True)
    assert len(q) == len(enc.encode_queries([QUERY])[0])
    assert q.kinds[:4] == ("special", "prefix", "prefix", "prefix") and q.kinds[-1] == "special"  # <s> query: … </s>


def test_cross_lingual_explanation_adds_up_to_the_indexed_score(sample_index):
    res = sample_index.search_text(QUERY, 3)
    assert res.ids[0, 0] == "penicillin"
    e = sample_index.explain(QUERY, "penicillin")
    assert e.source == SOURCE and "decompressed" in e.source
    assert e.score == pytest.approx(float(res.scores[0, 0]), abs=1e-3)
    assert e.score == pytest.approx(float(e.token_scores.sum()), abs=1e-4)
    assert e.token_scores.dtype == np.float32 and e.doc_token.dtype == np.int64
    # the scores are those of the decompressed tokens
    q = sample_index.encoder.encode_queries([QUERY])[0]
    np.testing.assert_allclose(e.token_scores, (q @ sample_index.decompress("penicillin").T).max(axis=1), atol=1e-5)
    pairs = {m["query_text"]: (m["doc_text"] or "").lower() for m in e.matches() if m["query_kind"] == "text"}
    assert pairs["entdeckt"] == "discovered"
    assert "".join(pairs[p] for p in ("Pe", "nici", "llin")) == "penicillin"
    text = sample_index.text("penicillin")
    for m in e.matches():
        if m["doc_span"]:
            assert text[m["doc_span"][0]:m["doc_span"][1]] == m["doc_text"]
        if m["query_span"]:
            assert QUERY[m["query_span"][0]:m["query_span"][1]] == m["query_text"]
    plain = e.highlight(color=False)
    assert "**discovered**" in plain and "**penicillin**" in plain and plain.replace("**", "") == text
    assert "\x1b[1;33mdiscovered\x1b[0m" in e.highlight(color=True)
    json.dumps(e.to_dict())  # JSON-ready


def test_explain_from_embeddings_and_errors(sample_index, tmp_path):
    q = sample_index.encoder.encode_queries([QUERY])[0]
    e = sample_index.explain(q, "penicillin")
    assert e.query_tokens is None and e.doc_tokens is not None
    assert e.score == pytest.approx(sample_index.explain(QUERY, "penicillin").score, abs=1e-4)
    with pytest.raises(ValueError, match="one query"):
        sample_index.explain([q, q], "penicillin")
    with pytest.raises(KeyError, match="not in the index"):
        sample_index.explain(QUERY, "no-such-doc")
    with pytest.raises(ValueError, match="dim"):
        sample_index.explain(q[:, :10], "penicillin")
    # an index built from embeddings: positions and scores, no spans, and a text query needs an encoder
    rng = np.random.default_rng(0)
    docs = [normalised(rng, 6, 16) for _ in range(30)]
    ix = Index.create(tmp_path / "vec", docs, calibrate=False)
    query = normalised(rng, 4, 16)
    e = ix.explain(query, 7)
    sims = query @ ix.decompress(7).T
    np.testing.assert_array_equal(e.doc_token, sims.argmax(axis=1))
    assert e.doc_tokens is None and e.highlight() == "" and "MaxSim" in e.report(color=False)
    with pytest.raises(ValueError, match="no encoder"):
        ix.explain("a text", 7)


def test_cli_search_explain(sample_index):
    from typer.testing import CliRunner

    from gingham.app.cli import app

    out = CliRunner().invoke(app, ["search", str(sample_index.path), "¿En qué año llegó el hombre a la Luna?",
                                   "--top-k", "1", "--explain", "--no-color"])
    assert out.exit_code == 0, out.output
    assert "moon" in out.output and "**Moon**" in out.output and "decompressed" in out.output
    assert any(line.split()[:2] == ["Luna", "Moon"] for line in out.output.splitlines())
    out = CliRunner().invoke(app, ["search", str(sample_index.path), QUERY, "--top-k", "1", "--explain", "--json"])
    start = out.output.index('{"query"')  # after whatever the model loader wrote to stderr
    record, _ = json.JSONDecoder().raw_decode(out.output[start:])
    assert record["id"] == "penicillin" and record["explanation"]["matches"]


def test_server_explain(sample_index):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from gingham.app.server import create_app

    client = TestClient(create_app(sample_index.path))
    r = client.post("/explain", json={"query": QUERY, "id": "penicillin"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "penicillin" and "decompressed" in body["source"]
    assert body["score"] == pytest.approx(sample_index.explain(QUERY, "penicillin").score, abs=1e-4)
    q = sample_index.encoder.encode_queries([QUERY])[0].tolist()
    r = client.post("/explain", json={"embedding": q, "id": "penicillin"})
    assert r.status_code == 200 and r.json()["matches"][0]["query"] is None
    assert client.post("/explain", json={"query": QUERY, "id": "nope"}).status_code == 404
    assert client.post("/explain", json={"id": "penicillin"}).status_code == 400

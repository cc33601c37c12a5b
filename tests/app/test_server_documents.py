"""Documents over HTTP (issue 27.8): hits with text and metadata, documents by id, delete by filter, metadata and
text updates; writes need the key, bad input is a 400 (or a 422 for the wrong JSON types) naming the problem."""

import json

import numpy as np
import pytest

import gingham
from tests.conftest import normalised

pytest.importorskip("fastapi")
pytest.importorskip("httpx", reason="fastapi's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from gingham.app.server import create_app  # noqa: E402

KEY = "test-key-documents-0123"
AUTH = {"Authorization": f"Bearer {KEY}"}
N = 30


@pytest.fixture()
def served(tmp_path):
    rng = np.random.default_rng(4)
    vecs = [normalised(rng, int(k), 16) for k in rng.integers(3, 9, N)]
    gingham.Index.create(tmp_path / "ix", vecs, [f"d{i}" for i in range(N)], texts=[f"doc d{i} w{i}" for i in range(N)],
                         metadata=[{"lang": "en" if i % 2 else "de", "n": i} for i in range(N)])
    client = TestClient(create_app(tmp_path / "ix", api_key=KEY, warm_up=False))
    return client, vecs, tmp_path / "ix"


def test_search_hits_with_text_and_metadata(served):
    client, vecs, _ = served
    q = {"embeddings": [vecs[3][:3].tolist()], "top_k": 3}
    plain = client.post("/search", json=q).json()
    assert set(plain["results"][0][0]) == {"id", "score"}  # the default response is as it was
    full = client.post("/search", json={**q, "include_text": True, "include_metadata": True}).json()
    assert [h["id"] for h in full["results"][0]] == [h["id"] for h in plain["results"][0]]
    top = full["results"][0][0]
    assert top == {"id": "d3", "score": plain["results"][0][0]["score"], "text": "doc d3 w3",
                   "metadata": {"lang": "en", "n": 3}}
    only = client.post("/search", json={**q, "include_metadata": True}).json()["results"][0][0]
    assert "text" not in only and only["metadata"]["n"] == 3
    assert client.post("/search", json={**q, "include_text": "yes"}).status_code == 422


def test_documents_get(served):
    client, _, _ = served
    r = client.post("/documents/get", json={"ids": ["d2", "nope", "d1"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["documents"] == [{"id": "d2", "text": "doc d2 w2", "metadata": {"lang": "de", "n": 2}},
                                 {"id": "d1", "text": "doc d1 w1", "metadata": {"lang": "en", "n": 1}}]
    assert body["missing"] == ["nope"] and isinstance(body["generation"], int)
    r = client.post("/documents/get", json={"ids": ["d2"], "include_text": False})
    assert r.json()["documents"] == [{"id": "d2", "metadata": {"lang": "de", "n": 2}}]
    r = client.post("/documents/get", json={"ids": [5]})
    assert r.status_code == 400 and "this index uses string ids" in r.json()["detail"]
    assert client.post("/documents/get", json={"ids": []}).status_code == 422


def test_protected_reads_cover_documents_get(served):
    _, _, path = served
    client = TestClient(create_app(path, api_key=KEY, protect_reads=True, warm_up=False))
    assert client.post("/documents/get", json={"ids": ["d1"]}).status_code == 401
    assert client.post("/documents/get", json={"ids": ["d1"]}, headers=AUTH).status_code == 200


def test_delete_by_filter(served):
    client, vecs, path = served
    body = {"filter": "lang = ? AND n < ?", "params": ["en", 10]}
    assert client.post("/documents/delete", json=body).status_code == 401  # a write: the key is needed
    r = client.post("/documents/delete", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] == 5 and r.json()["n_docs"] == N - 5
    gen = r.json()["generation"]
    r = client.post("/documents/delete", json={"filter": "lang = ?", "params": ["xx"]}, headers=AUTH)
    assert r.json() == {"generation": gen, "n_docs": N - 5, "deleted": 0}
    assert set(gingham.Index.open(path).ids()) == {f"d{i}" for i in range(N) if not (i % 2 and i < 10)}
    for bad, match in [({"filter": "lang = "}, "not a valid SQL expression"),
                       ({"filter": "1; DROP TABLE docs"}, "contains a ';'"),
                       ({"filter": "nosuch = 1"}, "its fields are"),
                       ({"ids": ["d2"], "filter": "n = 1"}, "exactly one of 'ids'"),
                       ({}, "exactly one of 'ids'"),
                       ({"ids": ["d2"], "params": [1]}, "'params' binds"),
                       ({"filter": "n = 1", "missing_ok": True}, "'missing_ok' is for 'ids'")]:
        r = client.post("/documents/delete", json=bad, headers=AUTH)
        assert r.status_code == 400 and match in json.dumps(r.json()), (bad, r.text)
    assert client.post("/documents/delete", json={"filter": {"lang": "en"}}, headers=AUTH).status_code == 422
    assert gingham.Index.open(path).generation == gen
    assert client.post("/documents/delete", json={"ids": ["d2"]}, headers=AUTH).json()["n_docs"] == N - 6


def test_update_metadata_and_text(served):
    client, vecs, path = served
    body = {"documents": [{"id": "d4", "metadata": {"lang": "fr", "tag": "x"}}, {"id": "d5", "text": "zebra"}]}
    assert client.post("/documents/update", json=body).status_code == 401
    r = client.post("/documents/update", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    got = client.post("/documents/get", json={"ids": ["d4", "d5"]}).json()["documents"]
    assert got == [{"id": "d4", "text": "doc d4 w4", "metadata": {"lang": "fr", "n": 4, "tag": "x"}},
                   {"id": "d5", "text": "zebra", "metadata": {"lang": "en", "n": 5}}]
    q = {"embeddings": [vecs[4][:3].tolist()], "top_k": 5}
    hits = client.post("/search", json={**q, "filter": "lang = ?", "params": ["fr"]}).json()["results"][0]
    assert [h["id"] for h in hits] == ["d4"]
    r = client.post("/documents/update", json={"documents": [{"id": "d4", "metadata": {"only": 1}}],
                                               "mode": "replace"}, headers=AUTH)
    assert r.status_code == 200
    assert gingham.Index.open(path, verify=True).metadata("d4") == {"only": 1}
    gen = r.json()["generation"]
    for bad, status, match in [
            ({"documents": [{"id": "nope", "metadata": {"a": 1}}]}, 404, "'nope' is not in the index"),
            ({"documents": [{"id": "d1"}]}, 400, "neither 'metadata' nor 'text'"),
            ({"documents": [{"id": "d1", "metadata": {}}, {"id": "d1", "metadata": {}}]}, 400, "appears twice"),
            ({"documents": [{"id": "d1", "metadata": {"a": 1}}], "mode": "patch"}, 422, "merge"),
            ({"documents": [{"id": "d1", "metadata": [1]}]}, 422, "dict"),
            ({"documents": [{"id": "d1", "embedding": [[1.0]]}]}, 422, "embedding"),
            ({"documents": []}, 422, "documents")]:
        r = client.post("/documents/update", json=bad, headers=AUTH)
        assert r.status_code == status and match in json.dumps(r.json()), (bad, r.text)
    assert gingham.Index.open(path).generation == gen

"""The HTTP server driven by a real HTTP client (urllib) on 127.0.0.1."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import gingham
from tests.conftest import normalised

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    from gingham.server import create_app

    rng = np.random.default_rng(0)
    docs = [normalised(rng, int(n), 32) for n in rng.integers(2, 10, 50)]
    gingham.Index.create(tmp_path / "ix", docs, [f"d{i}" for i in range(50)],
                         metadata=[{"lang": "en" if i % 2 else "de"} for i in range(50)])
    port = _free_port()
    config = uvicorn.Config(create_app(tmp_path / "ix", max_request_bytes=200_000), host="127.0.0.1", port=port,
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", docs, tmp_path / "ix"
    srv.should_exit = True
    thread.join(timeout=10)


def call(base, path, body=None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_health_info_search_add_delete(server):
    base, docs, _ = server
    assert call(base, "/health")[1]["n_docs"] == 50
    assert call(base, "/info")[1]["dim"] == 32
    status, out = call(base, "/search", {"embeddings": [docs[3][:3].tolist()], "top_k": 3})
    assert status == 200 and out["results"][0][0]["id"] == "d3"
    status, out = call(base, "/search", {"embeddings": [docs[3][:3].tolist()], "top_k": 5, "filter": {"lang": "en"}})
    assert status == 200 and all(int(r["id"][1:]) % 2 == 1 for r in out["results"][0])
    new = normalised(np.random.default_rng(9), 4, 32)
    status, out = call(base, "/documents", {"documents": [{"id": "n1", "embedding": new.tolist(),
                                                           "metadata": {"lang": "fr"}}]})
    assert status == 200 and out["n_docs"] == 51
    status, out = call(base, "/search", {"embeddings": [new.tolist()], "top_k": 1})
    assert out["results"][0][0]["id"] == "n1"
    assert call(base, "/documents/delete", {"ids": ["n1", "d3"]})[1]["n_docs"] == 49
    status, out = call(base, "/search", {"embeddings": [docs[3][:3].tolist()], "top_k": 3})
    assert "d3" not in [r["id"] for r in out["results"][0]]
    assert call(base, "/compact", {})[0] == 200


@pytest.mark.parametrize(
    "path,body,status,match",
    [
        ("/search", {"embeddings": [[[1.0] * 31]]}, 400, "dim 31"),
        ("/search", {}, 400, "exactly one of"),
        ("/search", {"embeddings": [[[1.0] * 32]], "top_k": 0}, 422, ""),
        ("/search", {"embeddings": [[[1.0] * 32]], "bogus": 1}, 422, ""),
        ("/search", {"queries": ["hello"]}, 400, "no encoder"),
        ("/search", {"embeddings": [[[1.0] * 32, [1.0]]]}, 400, "rectangular"),
        ("/search", {"embeddings": [[[1.0] * 32]], "subset": ["missing"]}, 404, "missing"),
        ("/documents", {"documents": [{"id": "d1", "embedding": [[1.0] * 32]}]}, 400, "already in the index"),
        ("/documents", {"documents": []}, 422, ""),
        ("/documents/delete", {"ids": ["zzz"]}, 404, "zzz"),
    ],
)
def test_malformed_requests_get_clear_4xx(server, path, body, status, match):
    base, _, _ = server
    got, out = call(base, path, body)
    assert got == status, out
    assert match in json.dumps(out)


def test_not_json_and_oversize(server):
    base, _, _ = server
    assert call(base, "/search", raw=b"{not json")[0] == 422
    big = {"embeddings": [[[0.1] * 32] * 2000]}
    status, out = call(base, "/search", big)
    assert status == 413 and "exceeds the limit" in out["detail"]


def test_concurrent_requests(server):
    base, docs, path = server

    def search(i):
        return call(base, "/search", {"embeddings": [docs[i % 50][:2].tolist()], "top_k": 3})

    def add(i):
        v = normalised(np.random.default_rng(100 + i), 3, 32)
        return call(base, "/documents", {"documents": [{"id": f"c{i}", "embedding": v.tolist()}]})

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(search, i) for i in range(40)] + [pool.submit(add, i) for i in range(8)]
        results = [f.result() for f in futures]
    assert all(status == 200 for status, _ in results)
    assert call(base, "/health")[1]["n_docs"] == 58
    gingham.Index.open(path, verify=True).verify()

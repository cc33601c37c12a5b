"""The server micro-batches concurrent text searches' query encodes: concurrent clients get the results each
would get alone, in fewer encode calls; repeated queries hit the cache; batching=None keeps one call per request."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

from gingham import Index  # noqa: E402
from gingham.encoder.batcher import BatchingConfig  # noqa: E402

pytestmark = pytest.mark.encoder

DOCS = ["the quick brown fox jumps over the lazy dog", "late interaction keeps one vector per token",
        "colbert plaid and pylate are search engines", "hello world", "a short query about numbers 1 2 3",
        "documents are longer than queries", "bidirectional convolutions must not leak padding",
        "compressed search engines score with maxsim"] * 2
QUERIES = ["quick fox", "late interaction", "search engines", "hello", "numbers", "longer documents",
           "padding leaks", "maxsim scores"]


@pytest.fixture(scope="module")
def text_index(bert_pylate, tmp_path_factory):
    path = tmp_path_factory.mktemp("batching") / "ix"
    Index.from_texts(path, DOCS, [f"d{i}" for i in range(len(DOCS))], model=str(bert_pylate),
                     encoder_options={"dtype": "float32"}, show_progress=False)
    return path


def _serve(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    return srv, thread, f"http://127.0.0.1:{port}"


def _search(base: str, query: str) -> list:
    req = urllib.request.Request(base + "/search", data=json.dumps({"queries": [query], "top_k": 5}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["results"][0]


@pytest.mark.parametrize("batching", [BatchingConfig(max_batch=8, max_wait_ms=1000), None])
def test_concurrent_text_searches(text_index, batching):
    from gingham.app.server import create_app

    expected = Index.open(text_index).search_text(QUERIES, 5)
    app = create_app(text_index, warm_up=False, batching=batching)
    srv, thread, base = _serve(app)
    try:
        with ThreadPoolExecutor(len(QUERIES)) as pool:
            got = list(pool.map(lambda q: _search(base, q), QUERIES))
        for q, rows in enumerate(got):
            want = expected.rows(q)
            assert [r["id"] for r in rows] == [i for i, _ in want]
            assert [r["score"] for r in rows] == pytest.approx([s for _, s in want], abs=1e-4)
        if batching is None:
            assert not hasattr(app.state, "query_batcher")
            return
        stats = app.state.query_batcher.stats
        assert stats["queries"] == len(QUERIES) and stats["batches"] < len(QUERIES)  # shared encode calls
        assert stats["max_batch"] > 1
        _search(base, QUERIES[0])  # a repeated query: from the cache
        assert app.state.query_batcher.stats["cache_hits"] == 1
        with urllib.request.urlopen(base + "/info", timeout=60) as resp:
            info = json.loads(resp.read())
        assert info["query_batching"]["cache_hits"] == 1 and info["query_batching"]["queries"] == len(QUERIES) + 1
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_batching_config_is_checked(text_index):
    from gingham.app.server import create_app

    with pytest.raises(ValueError, match="BatchingConfig"):
        create_app(text_index, warm_up=False, batching={"max_batch": 4})

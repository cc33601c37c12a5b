"""A slow filter over HTTP must not stall other requests (issue 27.4): requests with a SQL filter run on threads of
their own (``filter_slots``); beyond them a filtered request waits ``filter_wait_s``, then gets 503 with Retry-After,
while requests without a filter keep the default thread pool."""

import json
import threading
import time
import urllib.error
import urllib.request

import anyio.to_thread
import pytest

from gingham.storage.docstore import filters
from tests.app.test_server import KEY, call, index_path, serve_app  # noqa: F401 (fixtures)

pytest.importorskip("fastapi")

#: An uncorrelated cross join: 50^7 rows, hours on any machine; only the filter's deadline stops it.
ENDLESS = "(SELECT count(*) FROM docs a, docs b, docs c, docs d, docs e, docs f, docs g) >= 0"


class SmallPool:
    """The app with anyio's default thread pool cut to ``tokens`` threads (40 by default): without filter slots
    of their own, that many slow filters would hold every thread."""

    def __init__(self, app, tokens: int) -> None:
        self.app, self.tokens = app, tokens

    async def __call__(self, scope, receive, send):
        anyio.to_thread.current_default_thread_limiter().total_tokens = self.tokens
        await self.app(scope, receive, send)


def _post(base: str, path: str, body: dict) -> tuple:
    """(status, JSON reply, headers: case-insensitive)."""
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), err.headers


def test_slow_filters_beyond_their_slots_leave_plain_requests_a_thread(index_path, serve_app,  # noqa: F811
                                                                       monkeypatch):
    from gingham.app.server import create_app

    monkeypatch.setattr(filters, "TIME_LIMIT_S", 8.0)
    path, docs = index_path
    base, _ = serve_app(SmallPool(create_app(path, api_key=KEY, warm_up=False, filter_slots=2, filter_wait_s=0.5),
                                  tokens=3))
    query = docs[0].tolist()
    plain = {"embeddings": [query], "top_k": 3}
    slow = {"embeddings": [query], "top_k": 3, "filter": ENDLESS}
    assert call(base, "/search", plain)[0] == 200  # compile and open everything first
    assert call(base, "/search", {**plain, "filter": "lang = ?", "params": ["de"]})[0] == 200
    replies = []
    threads = [threading.Thread(target=lambda: replies.append(_post(base, "/search", slow))) for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)  # two filters run; the other three waited 0.5 s for a slot and were refused
    for body in (plain, plain, {"ids": ["d1"]}):
        start = time.monotonic()
        status, reply = call(base, "/search" if "embeddings" in body else "/documents/get", body)[:2]
        assert status == 200, reply
        assert time.monotonic() - start < 5.0
    status, reply, headers = _post(base, "/search", {**plain, "filter": "lang = ?", "params": ["de"]})
    assert status == 503 and headers.get("Retry-After") == "1" and "filter slots are busy" in reply["detail"]
    status, reply, _ = _post(base, "/documents/delete", {"filter": "lang = ?", "params": ["de"]})
    assert status == 503, reply  # a delete by filter takes a slot too
    busy = call(base, "/info")[1]["filter_slots"]
    assert busy["slots"] == 2 and busy["running"] == 2 and busy["refused"] == 5
    for thread in threads:
        thread.join(timeout=30)
    statuses = sorted(status for status, _, _ in replies)
    assert statuses == [400, 400, 503, 503, 503], replies
    assert all("ran longer than 8 s" in json.dumps(reply) for status, reply, _ in replies if status == 400)
    assert call(base, "/search", {**plain, "filter": "lang = ?", "params": ["de"]})[0] == 200  # slots free again

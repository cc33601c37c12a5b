"""The HTTP server driven by a real HTTP client (urllib) on 127.0.0.1."""

import json
import select
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


KEY = "test-key-0123456789"


class CountingApp:
    """Wraps an ASGI app and counts the request-body bytes it takes from the server."""

    def __init__(self, app):
        self.app, self.bytes_read = app, 0

    async def __call__(self, scope, receive, send):
        async def counted():
            message = await receive()
            self.bytes_read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@pytest.fixture()
def index_path(tmp_path):
    rng = np.random.default_rng(0)
    docs = [normalised(rng, int(n), 32) for n in rng.integers(2, 10, 50)]
    gingham.Index.create(tmp_path / "ix", docs, [f"d{i}" for i in range(50)],
                         metadata=[{"lang": "en" if i % 2 else "de"} for i in range(50)])
    return tmp_path / "ix", docs


@pytest.fixture()
def serve_app():
    """``serve_app(app)`` runs ``app`` under uvicorn on a free loopback port and returns (base url, port)."""
    servers = []

    def start(app):
        port = _free_port()
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        servers.append((srv, thread))
        for _ in range(200):
            if srv.started:
                break
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}", port

    yield start
    for srv, thread in servers:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture()
def server(index_path, serve_app):
    from gingham.app.server import create_app

    path, docs = index_path
    base, _ = serve_app(create_app(path, max_request_bytes=200_000, api_key=KEY))
    return base, docs, path


def call(base, path, body=None, raw: bytes | None = None, key: str | None = KEY, method: str | None = None,
         headers: dict | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    head = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {}),
            **(headers or {})}
    req = urllib.request.Request(base + path, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers=head)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = resp.read()
            return resp.status, json.loads(out) if out else None
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


def test_sql_filter(server):
    base, docs, _ = server
    q = [docs[3][:3].tolist()]
    status, out = call(base, "/search", {"embeddings": q, "top_k": 5, "filter": "lang = ?", "params": ["en"]})
    assert status == 200 and out["results"][0] and all(int(r["id"][1:]) % 2 == 1 for r in out["results"][0])
    status, out = call(base, "/search", {"embeddings": q, "top_k": 5, "filter": "lang = :l", "params": {"l": "de"}})
    assert status == 200 and all(int(r["id"][1:]) % 2 == 0 for r in out["results"][0])
    status, out = call(base, "/search", {"embeddings": q, "top_k": 5, "filter": "lang = ?",
                                         "params": ["en' OR '1'='1"]})
    assert status == 200 and out["results"][0] == []
    for body, match in [({"filter": "lang = "}, "not a valid SQL expression"),
                        ({"filter": "1; DROP TABLE docs"}, "contains a ';'"),
                        ({"filter": {"lang": "en"}, "params": ["x"]}, "'params' binds"),
                        ({"filter": "lang = ?", "params": []}, "not a valid SQL expression"),
                        ({"hybrid": "rrf"}, "give text 'queries'")]:
        status, out = call(base, "/search", {"embeddings": q, "top_k": 5, **body})
        assert status == 400 and match in json.dumps(out), (body, out)
    assert call(base, "/search", {"embeddings": q, "filter": "lang = ?", "params": [[1]]})[0] == 422
    assert call(base, "/search", {"embeddings": q, "hybrid": "bm25"})[0] == 422


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


# --- authentication -------------------------------------------------------------------------------------------------

WRITES = [("/documents", {"documents": [{"id": "w1", "embedding": [[0.1] * 32]}]}),
          ("/documents/delete", {"ids": ["d1"]}), ("/compact", {})]


@pytest.mark.parametrize("path,body", WRITES)
def test_writes_need_the_api_key(server, path, body):
    base, _, _ = server
    status, out = call(base, path, body, key=None)
    assert status == 401 and "missing API key" in out["detail"] and "X-API-Key" in out["detail"]
    status, out = call(base, path, body, key="wrong")
    assert status == 401 and "wrong API key" in out["detail"]
    status, out = call(base, path, body, key=None, headers={"X-API-Key": "wrong"})
    assert status == 401 and "wrong API key" in out["detail"]
    assert call(base, "/health")[1]["n_docs"] == 50  # nothing was written
    assert call(base, path, body, key=None, headers={"X-API-Key": KEY})[0] == 200


def test_unauthorised_reply_and_reads_stay_open(server):
    base, docs, _ = server
    req = urllib.request.Request(base + "/compact", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": "Basic abc"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 401 and err.value.headers["WWW-Authenticate"] == "Bearer"
    assert call(base, "/info", key=None)[0] == 200
    assert call(base, "/search", {"embeddings": [docs[3][:3].tolist()], "top_k": 3}, key=None)[0] == 200


def test_key_compared_in_constant_time(server, monkeypatch):
    import hmac

    from gingham.app import guard as server_module

    seen, real = [], hmac.compare_digest
    monkeypatch.setattr(server_module.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    base, _, _ = server
    assert call(base, "/compact", {}, key="nope")[0] == 401
    assert seen == [(b"nope", KEY.encode())]


def test_no_key_configured_refuses_writes_unless_allowed(index_path, serve_app):
    from gingham.app.server import create_app

    path, _ = index_path
    closed, _ = serve_app(create_app(path))
    status, out = call(closed, "/documents/delete", {"ids": ["d1"]}, key=None)
    assert status == 403 and "--api-key" in out["detail"] and "--allow-unauthenticated-writes" in out["detail"]
    assert call(closed, "/compact", {}, key="anything")[0] == 403
    assert call(closed, "/health")[1]["n_docs"] == 50
    open_, _ = serve_app(create_app(path, allow_unauthenticated_writes=True))
    assert call(open_, "/documents/delete", {"ids": ["d1"]}, key=None)[1]["n_docs"] == 49


def test_protect_reads(index_path, serve_app):
    from gingham.app.server import create_app

    path, docs = index_path
    base, _ = serve_app(create_app(path, api_key=KEY, protect_reads=True))
    body = {"embeddings": [docs[3][:3].tolist()], "top_k": 3}
    for route, payload in [("/search", body), ("/info", None)]:
        status, out = call(base, route, payload, key=None)
        assert status == 401 and "reads" in out["detail"]
        assert call(base, route, payload, key="wrong")[0] == 401
        assert call(base, route, payload)[0] == 200
    assert call(base, "/health", key=None) == (200, {"status": "ok"})  # alive, but no counts without the key
    assert call(base, "/health")[1]["n_docs"] == 50


@pytest.mark.parametrize("kwargs,match", [
    (dict(api_key=""), "non-empty"),
    (dict(api_key="k", allow_unauthenticated_writes=True), "not both"),
    (dict(protect_reads=True), "needs an api_key"),
    (dict(max_request_bytes=True), "positive int"),
    (dict(filter_slots=0), "filter_slots must be a positive int"),
    (dict(filter_wait_s=float("inf")), "filter_wait_s must be a finite number"),
])
def test_create_app_rejects_unsafe_or_contradictory_settings(index_path, kwargs, match):
    from gingham.app.server import create_app

    with pytest.raises(ValueError, match=match):
        create_app(index_path[0], **kwargs)


def test_every_route_is_classified_for_auth(index_path):
    from gingham.app import server as server_module

    from gingham.app import guard

    app = server_module.create_app(index_path[0], api_key=KEY, docs=True)
    known = guard.WRITE_PATHS | guard.READ_PATHS | guard.OPEN_PATHS
    assert {route.path for route in app.routes} <= known


# --- request size ---------------------------------------------------------------------------------------------------

def _post_chunked(port: int, total: int, chunk: int = 64 * 1024) -> tuple[int, int]:
    """POST ``total`` bytes with chunked transfer encoding, stopping as soon as the server answers.

    Returns (status, bytes of body sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (f"POST /documents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    frame = b"%x\r\n" % chunk + b" " * chunk + b"\r\n"
    sock.sendall(head)
    sent = 0
    try:
        while sent < total:
            # poll, not select(): select() fails on descriptors above 1023, which a long test session reaches
            events = select.poll()
            events.register(sock, select.POLLIN | select.POLLOUT)
            ready = dict(events.poll(30_000))
            readable = ready.get(sock.fileno(), 0) & (select.POLLIN | select.POLLHUP | select.POLLERR)
            writable = ready.get(sock.fileno(), 0) & select.POLLOUT
            if readable:
                break
            if writable:
                sock.sendall(frame)
                sent += chunk
        else:
            sock.sendall(b"0\r\n\r\n")
        reply = b""
        while b"\r\n" not in reply:
            part = sock.recv(4096)
            if not part:
                break
            reply += part
    finally:
        sock.close()
    return int(reply.split(b" ", 2)[1]), sent


def test_chunked_upload_refused_at_the_limit_without_reading_it_all(index_path, serve_app):
    from gingham.app.server import create_app

    limit, total = 200_000, 32 * 2**20
    app = CountingApp(create_app(index_path[0], max_request_bytes=limit, api_key=KEY))
    base, port = serve_app(app)
    status, sent = _post_chunked(port, total)
    assert status == 413
    assert app.bytes_read <= limit + 2**20, app.bytes_read  # the app stopped reading at the limit
    assert sent < total // 2, sent  # and the client was answered long before it finished sending
    assert call(base, "/health")[1]["n_docs"] == 50


def test_content_length_over_limit_refused_unread(index_path, serve_app):
    from gingham.app.server import create_app

    app = CountingApp(create_app(index_path[0], max_request_bytes=200_000, api_key=KEY))
    base, _ = serve_app(app)
    status, out = call(base, "/search", raw=b" " * 300_000)
    assert status == 413 and "300000 bytes exceeds the limit of 200000" in out["detail"]
    assert app.bytes_read == 0
    assert call(base, "/search", {"embeddings": [[[0.1] * 32]], "top_k": 1})[0] == 200  # under the limit: served


def test_search_takes_n_coarse_probe(server):
    base, _, _ = server
    for probe in (0, 3):
        status, out = call(base, "/search", {"embeddings": [V], "top_k": 2, "n_coarse_probe": probe})
        assert status == 200 and len(out["results"][0]) == 2, out


# --- strict, well-formed input --------------------------------------------------------------------------------------

V = [[0.1] * 32]


@pytest.mark.parametrize("path,body,field", [
    ("/search", {"embeddings": [V], "top_k": True}, "top_k"),
    ("/search", {"embeddings": [V], "top_k": 2.0}, "top_k"),
    ("/search", {"embeddings": [V], "n_ivf_probe": True}, "n_ivf_probe"),
    ("/search", {"embeddings": [V], "n_full_scores": "8"}, "n_full_scores"),
    ("/search", {"embeddings": [V], "n_ivf_probe": 10**30}, "n_ivf_probe"),  # was an OverflowError (500)
    ("/search", {"embeddings": [V], "centroid_score_threshold": False}, "centroid_score_threshold"),
    ("/search", {"embeddings": [V], "exhaustive": "yes"}, "exhaustive"),
    ("/search", {"embeddings": [V], "n_coarse_probe": -1}, "n_coarse_probe"),
    ("/search", {"embeddings": [V], "n_coarse_probe": 1.5}, "n_coarse_probe"),
    ("/search", {"embeddings": [[[True] * 32]]}, "embeddings"),
    ("/search", {"embeddings": [V], "subset": [True]}, "subset"),
    ("/documents", {"documents": [{"id": True, "embedding": V}]}, "id"),
    ("/documents", {"documents": [{"id": "x", "embedding": V}], "upsert": 1}, "upsert"),
    ("/documents", {"documents": [{"id": "x", "embedding": V, "metadata": {"a": float("nan")}}]}, "metadata"),
    ("/documents/delete", {"ids": ["d1"], "missing_ok": "true"}, "missing_ok"),
])
def test_strict_types(server, path, body, field):
    base, _, _ = server
    status, out = call(base, path, body)
    assert status == 422, out
    assert field in out["detail"][0]["loc"]
    assert "input" not in out["detail"][0]  # the bad input is not echoed back


@pytest.mark.parametrize("path,body,field", [
    ("/search", '{"queries": ["a\\ud800b"]}', "queries"),
    ("/search", '{"embeddings": [%s], "subset": ["\\ud800"]}' % json.dumps(V), "subset"),
    ("/search", '{"embeddings": [%s], "filter": {"lang": "\\udfff"}}' % json.dumps(V), "filter"),
    ("/search", '{"embeddings": [%s], "filter": {"\\ud800": 1}}' % json.dumps(V), "filter"),
    ("/documents", '{"documents": [{"id": "\\ud800", "embedding": %s}]}' % json.dumps(V), "id"),
    ("/documents", '{"documents": [{"id": "t", "text": "\\ud800"}]}', "text"),
    ("/documents", '{"documents": [{"id": "m", "embedding": %s, "metadata": {"a": ["\\ud800"]}}]}' % json.dumps(V),
     "metadata"),
    ("/documents/delete", '{"ids": ["\\udc00"]}', "ids"),
])
def test_lone_surrogate_is_a_422_naming_the_field(server, path, body, field):
    base, _, _ = server
    status, out = call(base, path, raw=body.encode())
    assert status == 422, out
    assert field in out["detail"][0]["loc"] and "surrogate" in out["detail"][0]["msg"]


def test_head_health(server):
    base, _, _ = server
    assert call(base, "/health", method="HEAD") == (200, None)


def test_docs_off_by_default_openapi_served(index_path, serve_app):
    from gingham.app.server import create_app

    base, _ = serve_app(create_app(index_path[0], api_key=KEY))
    for route in ("/docs", "/redoc"):
        assert call(base, route, key=None)[0] == 404
    status, schema = call(base, "/openapi.json", key=None)
    assert status == 200 and "/search" in schema["paths"]
    with_docs, _ = serve_app(create_app(index_path[0], api_key=KEY, docs=True))
    with urllib.request.urlopen(with_docs + "/docs", timeout=30) as resp:
        assert resp.status == 200 and b"swagger" in resp.read().lower()


def _wait_ready(base, timeout=120.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        status, out = call(base, "/ready", key=None)
        seen.append((status, out["status"]))
        if status == 200:
            return seen, out
        time.sleep(0.02)
    raise AssertionError(f"not ready after {timeout} s: {seen[-3:]}")


def test_ready_after_warm_up_while_health_answers_at_once(index_path, serve_app, monkeypatch):
    """Liveness (/health) answers while the server warms; readiness (/ready) is 503 until the kernels are warm,
    then 200 with what the warm-up took, and a search after it answers."""
    from gingham.app import server as server_module

    release = threading.Event()
    real_warm = server_module.warm

    def slow_warm(index):
        release.wait(30)
        return real_warm(index)

    monkeypatch.setattr(server_module, "warm", slow_warm)
    path, docs = index_path
    base, _ = serve_app(server_module.create_app(path, api_key=KEY))
    assert call(base, "/health")[0] == 200
    status, out = call(base, "/ready", key=None)
    assert (status, out["status"]) == (503, "warming")
    release.set()
    _, out = _wait_ready(base)
    assert out["status"] == "ready" and out["warm_up"]["kernels_s"] >= 0
    status, out = call(base, "/search", {"embeddings": [docs[3][:3].tolist()], "top_k": 3})
    assert status == 200 and out["results"][0][0]["id"] == "d3"


def test_a_failed_warm_up_is_not_ready(index_path, serve_app, monkeypatch):
    from gingham.app import server as server_module

    def broken(index):
        raise RuntimeError("no encoder here")

    monkeypatch.setattr(server_module, "warm", broken)
    base, _ = serve_app(server_module.create_app(index_path[0], api_key=KEY))
    for _ in range(200):
        status, out = call(base, "/ready", key=None)
        if out["status"] != "warming":
            break
        time.sleep(0.02)
    assert status == 503 and out["status"] == "failed" and "no encoder here" in out["error"]
    assert call(base, "/health")[0] == 200


def test_without_warm_up_ready_at_once(index_path, serve_app):
    from gingham.app.server import create_app

    base, _ = serve_app(create_app(index_path[0], api_key=KEY, warm_up=False))
    assert call(base, "/ready", key=None)[0] == 200


def test_warm_loads_the_encoder_of_a_text_index(sample_index):
    from gingham.app.server import warm

    took = warm(gingham.Index.open(sample_index.path))
    assert set(took) == {"kernels_s", "encoder_s"}


@pytest.mark.parametrize("code, name", [(10, "SQLITE_IOERR"), (7, "SQLITE_NOMEM")])
def test_a_failure_of_the_moment_is_503_with_retry_after(server, monkeypatch, code, name):
    """An I/O error or exhausted memory while a filter reads its database is not the request's fault nor the
    index's damage: 503 with Retry-After and the reason (it was a 500), and the next request is served."""
    import contextlib
    import sqlite3

    from gingham.storage.docstore import filters

    base, docs, _ = server
    real = filters.DocStore.connection

    class Failing:  # the store's connection, whose statements fail as SQLite fails them
        def __init__(self, conn):
            self.conn = conn

        def __getattr__(self, attr):
            return getattr(self.conn, attr)

        def execute(self, *args):
            exc = sqlite3.OperationalError(f"{name.lower()} raised by the test")
            exc.sqlite_errorcode, exc.sqlite_errorname = code, name
            raise exc

    @contextlib.contextmanager
    def failing(self):
        with real(self) as conn:
            yield Failing(conn)

    monkeypatch.setattr(filters.DocStore, "connection", failing)
    req = urllib.request.Request(base + "/search", data=json.dumps(
        {"embeddings": [docs[3][:3].tolist()], "top_k": 3, "filter": "lang = ?", "params": ["en"]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 503 and info.value.headers["Retry-After"]
    assert "not damage to the index" in json.loads(info.value.read())["detail"]
    monkeypatch.setattr(filters.DocStore, "connection", real)
    assert call(base, "/search", {"embeddings": [docs[3][:3].tolist()], "top_k": 3, "filter": "lang = ?",
                                  "params": ["en"]})[0] == 200

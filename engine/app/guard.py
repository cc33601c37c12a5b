"""The server's guard, an ASGI middleware run before any route: the API key, then the body-size limit. Every route
is a write, a read or open (:data:`WRITE_PATHS`, :data:`READ_PATHS`, :data:`OPEN_PATHS`)."""

from __future__ import annotations

import hmac
from typing import Optional

WRITE_PATHS = frozenset({"/documents", "/documents/delete", "/documents/update", "/compact"})
READ_PATHS = frozenset({"/search", "/info", "/explain", "/documents/get"})
OPEN_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})

class Guard:
    """ASGI middleware run before any route: the API key, then the body-size limit.

    The key is checked on the headers alone, before a byte of the body is read. The body is then read here, counted
    as it streams in (Content-Length or chunked alike), and the request refused with 413 as soon as the count passes
    ``max_request_bytes``; the route gets the buffered body, so no request holds more than the limit in memory.
    """

    def __init__(self, app, *, max_request_bytes: int, api_key: Optional[str], allow_unauthenticated_writes: bool,
                 protect_reads: bool) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.key = api_key.encode("utf-8") if api_key is not None else None
        self.allow_unauthenticated_writes = allow_unauthenticated_writes
        self.protect_reads = protect_reads

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # ASGI: lower-case names, raw bytes
        path = scope["path"].rstrip("/") or "/"
        authenticated = self._authenticated(headers)
        refusal = self._refusal(path, headers, authenticated)
        if refusal is not None:
            await reply(scope, receive, send, *refusal)
            return
        if path == "/health" and self.protect_reads and not authenticated and scope["method"] in ("GET", "HEAD"):
            await reply(scope, receive, send, 200, None)  # alive, and nothing about the index without the key
            return
        limit = self.max_request_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await reply(scope, receive, send, 413, f"request body of {int(length)} bytes exceeds the limit of "
                                                    f"{limit} bytes; send smaller batches")
            return
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await reply(scope, receive, send, 413, f"request body exceeds the limit of {limit} bytes; "
                                                        "send smaller batches")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False
        del chunks

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _authenticated(self, headers: dict[bytes, bytes]) -> bool:
        if self.key is None:
            return False
        given = []
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer":
            given.append(token.strip())
        if b"x-api-key" in headers:
            given.append(headers[b"x-api-key"].strip())
        return any([hmac.compare_digest(g, self.key) for g in given])  # every candidate compared: no early exit

    def _refusal(self, path: str, headers: dict[bytes, bytes], authenticated: bool):
        write = path in WRITE_PATHS
        if not (write or (self.protect_reads and path in READ_PATHS)) or authenticated:
            return None
        if self.key is None:
            if self.allow_unauthenticated_writes:
                return None
            return (403, "writes are disabled: this server has no API key; start it with --api-key or "
                         "GINGHAM_API_KEY (then send the key), or pass --allow-unauthenticated-writes")
        what = "writes" if write else "reads"
        how = "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        if b"authorization" in headers or b"x-api-key" in headers:
            return 401, f"wrong API key: {what} on this server need the key it was started with; {how}"
        return 401, f"missing API key: {what} on this server need an API key; {how}"


async def reply(scope, receive, send, status: int, detail: Optional[str]) -> None:
    from starlette.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    body = {"status": "ok"} if detail is None else {"detail": detail}
    await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)

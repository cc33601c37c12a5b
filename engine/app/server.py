"""``gingham serve``: the index over HTTP (FastAPI), for apps not written in Python.

Endpoints: ``GET /health`` (liveness), ``GET /ready`` (readiness: 503 until the kernels and the encoder are warm),
``GET /info``, ``POST /search`` (text or vectors), ``POST /explain`` (which query
token matched which document token), ``POST /documents`` (add or upsert, text or vectors, with metadata),
``POST /documents/delete`` (by ids, or by a SQL ``filter``), ``POST /documents/get`` (stored text and metadata by
id), ``POST /documents/update`` (metadata or stored text, without re-embedding), ``POST /compact``. Requests larger than ``max_request_bytes`` are refused with 413 as
soon as that many bytes have arrived (chunked uploads too); malformed ones get a 4xx naming the problem. Writes
need the API key (see :func:`create_app`). Each request first picks up commits made by other processes (a cheap
manifest read), so several servers or writers can share an index.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np

from gingham.common.config import SearchConfig, search_settings
from gingham.common.errors import require
from gingham.encoder.batcher import BatchingConfig, QueryBatcher
from gingham.search.warm import warm

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 32 * 2**20

require("pydantic", "server")
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat,  # noqa: E402
                      StrictInt, StrictStr, create_model)

_MAX_INT = 2**31 - 1  # bounds the numeric settings, so a huge JSON integer is a 422, not an overflow (500)
_WRITE_PATHS = frozenset({"/documents", "/documents/delete", "/documents/update", "/compact"})
_READ_PATHS = frozenset({"/search", "/info", "/explain", "/documents/get"})
_OPEN_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def _check_json_value(value: Any, where: str) -> None:
    """Metadata and filter values are stored and compared as JSON: no lone surrogates, no NaN or infinity."""
    if isinstance(value, str):
        _check_text(value, f"the value at {where}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"the value at {where} is {value}, which JSON cannot carry; use a finite number or null")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"the key {key!r}" + (f" at {where}" if where else ""))
            _check_json_value(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_value(item, f"{where}[{i}]")


def _json_object(value: dict) -> dict:
    _check_json_value(value, "")
    return value


def _check_text(value: str, where: str = "the text") -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where} contains a lone UTF-16 surrogate ({value[exc.start]!r} at position "
                         f"{exc.start}), which is not valid Unicode; send well-formed UTF-8 text") from None
    return value


def _check_id(value: Union[str, int]) -> Union[str, int]:
    return _check_text(value, "the id") if isinstance(value, str) else value


def _printable(value: Any) -> Any:
    """A validation error's piece made safe to send as JSON (a lone surrogate would make the 422 itself a 500)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


Text = Annotated[StrictStr, AfterValidator(_check_text)]
DocId = Annotated[Union[StrictStr, StrictInt], AfterValidator(_check_id)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


class Strict(BaseModel):
    """Request bodies: unknown keys are errors, and no type coercion (``true`` is not an int, ``"1"`` no number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _setting(setting) -> tuple:
    """A :class:`SearchConfig` field as a request field: its type (strict, bounded as the config bounds it) and
    help; absent or null, the index's stored setting applies (``top_k``: 10, at most the index's documents)."""
    if setting.kind is int:
        kind = Annotated[StrictInt, Field(ge=setting.minimum, le=_MAX_INT)]
    else:
        kind = {float: StrictFloat, bool: StrictBool}[setting.kind]
    return Optional[kind], Field(None, description=setting.help)


#: The search settings of a request, one field per SearchConfig field, derived from it (never restated here).
SearchSettings = create_model("SearchSettings", __base__=Strict,
                              **{setting.name: _setting(setting) for setting in search_settings()})


class SearchRequest(SearchSettings):
    queries: Optional[list[Text]] = Field(None, description="Text queries (needs an index built from texts).")
    embeddings: Optional[list[list[list[StrictFloat]]]] = Field(None, description="Query token vectors.")
    subset: Optional[list[DocId]] = None
    filter: Optional[Union[JsonObject, Text]] = Field(  # an object first: its errors are reported first
        None, description="A SQL expression over metadata fields, with ? placeholders bound from 'params' "
        "(\"lang = ? AND year >= ?\"), or an object of metadata fields that must equal these values.")
    params: Optional[Union[list[Optional[Union[StrictStr, StrictInt, StrictFloat]]],
                           dict[str, Optional[Union[StrictStr, StrictInt, StrictFloat]]]]] = Field(
        None, description="Values for the placeholders of a SQL 'filter' (a list for ?, an object for :name).")
    hybrid: Optional[Literal["rrf", "relative"]] = Field(
        None, description="Fuse BM25 over the stored texts with MaxSim (text 'queries' only): reciprocal-rank or "
        "min-max normalised relative-score fusion.")
    alpha: Annotated[StrictFloat, Field(ge=0, le=1)] = Field(0.5, description="Weight of MaxSim against BM25.")
    include_text: StrictBool = Field(False, description="Give each hit its stored 'text' (null if none).")
    include_metadata: StrictBool = Field(False, description="Give each hit its 'metadata' (null if none).")


class ExplainRequest(Strict):
    id: DocId = Field(..., description="The document to explain.")
    query: Optional[Text] = Field(None, description="A text query (needs an index built from texts).")
    embedding: Optional[list[list[StrictFloat]]] = Field(None, description="One query's token vectors.")


class Document(Strict):
    id: DocId
    text: Optional[Text] = None
    embedding: Optional[list[list[StrictFloat]]] = None
    metadata: Optional[JsonObject] = None


class AddRequest(Strict):
    documents: list[Document] = Field(..., min_length=1)
    upsert: StrictBool = False


class DeleteRequest(Strict):
    ids: Optional[list[DocId]] = Field(None, min_length=1, description="Delete these documents...")
    missing_ok: StrictBool = False
    filter: Optional[Text] = Field(None, description="... or every document whose metadata satisfies this SQL "
                                   "expression (as /search's 'filter'), with 'params'.")
    params: Optional[Union[list[Optional[Union[StrictStr, StrictInt, StrictFloat]]],
                           dict[str, Optional[Union[StrictStr, StrictInt, StrictFloat]]]]] = None


class GetRequest(Strict):
    ids: list[DocId] = Field(..., min_length=1)
    include_text: StrictBool = True
    include_metadata: StrictBool = True


class DocumentUpdate(Strict):
    id: DocId
    metadata: Optional[JsonObject] = Field(None, description="Merged into (or, with mode 'replace', replacing) "
                                           "the stored metadata.")
    text: Optional[Text] = Field(None, description="The new stored text (BM25, results); not re-embedded.")


class UpdateRequest(Strict):
    documents: list[DocumentUpdate] = Field(..., min_length=1)
    mode: Literal["merge", "replace"] = "merge"


class _Guard:
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
            await _reply(scope, receive, send, *refusal)
            return
        if path == "/health" and self.protect_reads and not authenticated and scope["method"] in ("GET", "HEAD"):
            await _reply(scope, receive, send, 200, None)  # alive, and nothing about the index without the key
            return
        limit = self.max_request_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _reply(scope, receive, send, 413, f"request body of {int(length)} bytes exceeds the limit of "
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
                await _reply(scope, receive, send, 413, f"request body exceeds the limit of {limit} bytes; "
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
        write = path in _WRITE_PATHS
        if not (write or (self.protect_reads and path in _READ_PATHS)) or authenticated:
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


async def _reply(scope, receive, send, status: int, detail: Optional[str]) -> None:
    from starlette.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    body = {"status": "ok"} if detail is None else {"detail": detail}
    await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)


def create_app(index_path: str | Path, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, *,
               api_key: Optional[str] = None, allow_unauthenticated_writes: bool = False,
               protect_reads: bool = False, docs: bool = False, warm_up: bool = True,
               batching: Optional[BatchingConfig] = BatchingConfig()):
    """The FastAPI application serving the index at ``index_path``.

    Writes (add, delete, update, compact) need ``api_key``, sent as ``Authorization: Bearer <key>`` or ``X-API-Key``; with
    no key configured they are refused (403) unless ``allow_unauthenticated_writes``. ``protect_reads`` makes search
    and info need the key too (``/health`` then answers only its status). ``docs`` serves the interactive docs at
    ``/docs`` and ``/redoc``, whose JavaScript comes from a CDN; ``/openapi.json`` is always served.

    ``warm_up``: when the server starts, a background thread loads the kernels and the encoder (:func:`warm`);
    ``GET /ready`` answers 503 until it is done and 200 after, while ``GET /health`` (liveness) answers at once.
    Without it, ``/ready`` is 200 from the start and the first requests pay for the warm-up.

    ``batching``: concurrent text searches' query encodes are micro-batched (one worker collects the queued queries
    for at most ``max_wait_ms`` or ``max_batch`` texts, then one ``encode_queries`` call) and repeated queries'
    vectors are cached (:class:`gingham.encoder.batcher.QueryBatcher`); ``None`` encodes each request's queries
    in its own call.
    """
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise ValueError("api_key must be a non-empty string; leave it None to run without one")
    if api_key is not None and allow_unauthenticated_writes:
        raise ValueError("give api_key or allow_unauthenticated_writes, not both: with a key, writes need the key")
    if protect_reads and api_key is None:
        raise ValueError("protect_reads needs an api_key (--api-key or GINGHAM_API_KEY)")
    if isinstance(max_request_bytes, bool) or not isinstance(max_request_bytes, int) or max_request_bytes < 1:
        raise ValueError(f"max_request_bytes must be a positive int, got {max_request_bytes!r}")
    if batching is not None and not isinstance(batching, BatchingConfig):
        raise ValueError(f"batching must be a BatchingConfig or None, got {type(batching).__name__}")
    fastapi = require("fastapi", "server")
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from gingham import GinghamError, Index

    index = Index.open(index_path)
    readiness = {"ready": not warm_up, "error": None, "took": None}

    def warm_in_background() -> None:
        t = time.perf_counter()
        try:
            readiness["took"] = {k: round(v, 3) for k, v in warm(index).items()}
        except Exception as exc:  # noqa: BLE001 - a failed warm-up must be visible on /ready, not kill the server
            readiness["error"] = f"{type(exc).__name__}: {exc}"
            log.error("warm-up failed: %s", readiness["error"])
            return
        readiness["ready"] = True
        log.info("ready: kernels and encoder warm in %.1f s", time.perf_counter() - t)

    batcher: dict = {"batcher": None}
    batcher_lock = threading.Lock()

    def query_encoder(ix: Index):
        """The micro-batching front of the index's encoder (made on first use), or None when batching is off."""
        if batching is None:
            return None
        if batcher["batcher"] is None:
            encoder = ix.query_encoder  # loads it; raises ValueError for an index built from embeddings
            with batcher_lock:
                if batcher["batcher"] is None:
                    batcher["batcher"] = app.state.query_batcher = QueryBatcher(encoder, batching)
        return batcher["batcher"]

    @asynccontextmanager
    async def lifespan(_app):
        if warm_up:
            threading.Thread(target=warm_in_background, name="gingham-warm-up", daemon=True).start()
        yield
        if batcher["batcher"] is not None:
            batcher["batcher"].close()

    app = FastAPI(title="Gingham", version=index.manifest["engine_version"], lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None)
    app.add_middleware(_Guard, max_request_bytes=max_request_bytes, api_key=api_key,
                       allow_unauthenticated_writes=allow_unauthenticated_writes, protect_reads=protect_reads)
    if api_key is None and allow_unauthenticated_writes:
        log.warning("writes (add, delete, update, compact) are open to anyone who can reach this server")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each bad input back: megabytes for a bad embedding, and a 500 when the input
        # holds what JSON cannot encode (a lone surrogate, NaN). The field's location and the reason suffice.
        errors = []
        for err in exc.errors():
            msg = err["msg"] + (f": {err['ctx']['error']}" if err["type"] == "json_invalid" and "ctx" in err else "")
            errors.append({"loc": [_printable(p) for p in err["loc"]], "msg": _printable(msg), "type": err["type"]})
        return JSONResponse({"detail": errors}, status_code=422)

    def fresh() -> Index:
        try:
            index.refresh()
        except GinghamError as exc:  # the index on disk became unreadable: keep serving the last good state
            log.error("cannot refresh the index: %s", exc)
        return index

    def bad_request(exc: Exception) -> HTTPException:
        status = 404 if isinstance(exc, KeyError) else 400
        detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return HTTPException(status_code=status, detail=detail)

    def as_vectors(rows: list[list[float]], what: str) -> np.ndarray:
        try:
            arr = np.asarray(rows, dtype=np.float32)
        except ValueError as exc:
            raise ValueError(f"{what} must be a rectangular list of token vectors") from exc
        return arr

    @app.get("/health")
    def health() -> dict:
        ix = fresh()
        return {"status": "ok", "generation": ix.generation, "n_docs": len(ix)}

    app.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)  # load balancers' probes

    @app.get("/ready", response_model=None)
    def ready():
        """Readiness: 200 once the kernels and the encoder are warm, 503 while warming or after a failed warm-up."""
        if readiness["ready"]:
            return JSONResponse({"status": "ready", "warm_up": readiness["took"]})
        if readiness["error"] is not None:
            return JSONResponse({"status": "failed", "error": readiness["error"]}, status_code=503)
        return JSONResponse({"status": "warming"}, status_code=503)

    app.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False)

    @app.get("/info")
    def info() -> dict:
        out = fresh().info()
        out["encoder"] = index.manifest.get("encoder")
        if batcher["batcher"] is not None:  # text queries so far: encode calls, texts per call, cache hits
            out["query_batching"] = dict(batcher["batcher"].stats)
        return out

    @app.post("/search")
    def search(req: SearchRequest) -> dict:
        ix = fresh()
        if (req.queries is None) == (req.embeddings is None):
            raise HTTPException(400, "give exactly one of 'queries' (texts) or 'embeddings' (token vectors)")
        overrides = {name: value for name in SearchSettings.model_fields
                     if (value := getattr(req, name)) is not None}
        where = None
        if isinstance(req.filter, str):
            where = req.filter
        elif req.filter:
            wanted = dict(req.filter)
            where = lambda meta: all(meta.get(k) == v for k, v in wanted.items())  # noqa: E731
        if req.params is not None and not isinstance(req.filter, str):
            raise HTTPException(400, "'params' binds the placeholders of a SQL 'filter' string; give one")
        if req.hybrid is not None and req.queries is None:
            raise HTTPException(400, "'hybrid' fuses BM25 over texts with MaxSim: give text 'queries'")
        top_k = min(overrides.pop("top_k", SearchConfig().top_k), max(1, len(ix)))
        docs = {"include_text": req.include_text, "include_metadata": req.include_metadata}
        try:
            if req.queries is not None:
                hybrid = {"hybrid": req.hybrid, "alpha": req.alpha} if req.hybrid else {}
                res = ix.search_text(req.queries, top_k, encoder=query_encoder(ix), subset=req.subset, where=where,
                                     params=req.params, **hybrid, **overrides, **docs)
            else:
                qs = [as_vectors(q, f"embeddings[{i}]") for i, q in enumerate(req.embeddings)]
                res = ix.search(qs, top_k, subset=req.subset, where=where, params=req.params, **overrides, **docs)
        except (ValueError, KeyError, ImportError) as exc:
            raise bad_request(exc) from exc
        return {"generation": res.generation, "results": [res.hits(q) for q in range(len(res))]}

    @app.post("/explain")
    def explain(req: ExplainRequest) -> dict:
        """Each query token's best document token, its score and both text spans, from the compressed index's
        decompressed tokens (``source`` says so)."""
        ix = fresh()
        if (req.query is None) == (req.embedding is None):
            raise HTTPException(400, "give exactly one of 'query' (a text) or 'embedding' (token vectors)")
        try:
            query = req.query if req.query is not None else as_vectors(req.embedding, "embedding")
            return {"generation": ix.generation, **ix.explain(query, req.id).to_dict()}
        except (ValueError, KeyError, ImportError) as exc:
            raise bad_request(exc) from exc

    @app.post("/documents")
    def add(req: AddRequest) -> dict:
        ix = fresh()
        docs = req.documents
        ids = [d.id for d in docs]
        metadata = [d.metadata or {} for d in docs]
        try:
            if all(d.embedding is not None for d in docs):
                vecs = [as_vectors(d.embedding, f"documents[{i}].embedding") for i, d in enumerate(docs)]
                texts = [d.text for d in docs] if all(d.text is not None for d in docs) else None
                op = ix.upsert if req.upsert else ix.add
                generation = op(vecs, ids, texts=texts, metadata=metadata)
            elif all(d.text is not None and d.embedding is None for d in docs):
                generation = ix.add_texts([d.text for d in docs], ids, metadata=metadata, upsert=req.upsert)
            else:
                raise ValueError("give every document an 'embedding', or every document a 'text' and no embedding")
        except (ValueError, KeyError, ImportError) as exc:
            raise bad_request(exc) from exc
        return {"generation": generation, "n_docs": len(ix)}

    @app.post("/documents/delete")
    def delete(req: DeleteRequest) -> dict:
        """By ``ids``, or every document matching a SQL ``filter`` (then ``deleted`` says how many: 0 commits
        nothing)."""
        ix = fresh()
        if (req.ids is None) == (req.filter is None):
            raise HTTPException(400, "give exactly one of 'ids' (documents to delete) or 'filter' (a SQL expression "
                                     "over metadata fields, with 'params')")
        if req.filter is None and req.params is not None:
            raise HTTPException(400, "'params' binds the placeholders of a SQL 'filter'; give one, or leave 'params' "
                                     "out")
        if req.filter is not None and req.missing_ok:
            raise HTTPException(400, "'missing_ok' is for 'ids'; a 'filter' that matches nothing deletes nothing")
        try:
            if req.filter is not None:
                deleted = ix.delete_where(req.filter, req.params)
                return {"generation": ix.generation, "n_docs": len(ix), "deleted": deleted}
            generation = ix.delete(req.ids, missing_ok=req.missing_ok)
        except (ValueError, KeyError) as exc:
            raise bad_request(exc) from exc
        return {"generation": generation, "n_docs": len(ix)}

    @app.post("/documents/get")
    def get_documents(req: GetRequest) -> dict:
        """Stored text and metadata by id, from one generation: found ones in request order under ``documents``,
        the ids not in the index under ``missing``."""
        ix = fresh()
        try:
            found = ix.documents(req.ids, include_text=req.include_text, include_metadata=req.include_metadata,
                                 missing_ok=True)
        except (ValueError, KeyError) as exc:
            raise bad_request(exc) from exc
        return {"generation": ix.generation, "documents": [d for d in found if d is not None],
                "missing": [i for i, d in zip(req.ids, found) if d is None]}

    @app.post("/documents/update")
    def update(req: UpdateRequest) -> dict:
        """Metadata (merged, or replaced with ``mode: "replace"``) and / or stored text, without re-embedding, in
        one atomic commit; an unknown id is a 404 and updates nothing."""
        ix = fresh()
        docs = req.documents
        for i, d in enumerate(docs):
            if d.metadata is None and d.text is None:
                raise HTTPException(400, f"documents[{i}] (id {d.id!r}) gives neither 'metadata' nor 'text': "
                                         "nothing to update")
        metadata = [d.metadata for d in docs] if any(d.metadata is not None for d in docs) else None
        texts = [d.text for d in docs] if any(d.text is not None for d in docs) else None
        try:
            generation = ix.update([d.id for d in docs], metadata=metadata, texts=texts, mode=req.mode)
        except (ValueError, KeyError) as exc:
            raise bad_request(exc) from exc
        return {"generation": generation, "n_docs": len(ix)}

    @app.post("/compact")
    def compact() -> dict:
        ix = fresh()
        return {"generation": ix.compact(), "n_docs": len(ix)}

    del fastapi
    return app


def serve(index_path: str | Path, host: str = "127.0.0.1", port: int = 8765,
          max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, *, api_key: Optional[str] = None,
          allow_unauthenticated_writes: bool = False, protect_reads: bool = False,
          docs: bool = False, warm_up: bool = True,
          batching: Optional[BatchingConfig] = BatchingConfig()) -> None:  # pragma: no cover - runs forever
    """Run :func:`create_app` under uvicorn (its arguments as there)."""
    uvicorn = require("uvicorn", "server")
    app = create_app(index_path, max_request_bytes, api_key=api_key, protect_reads=protect_reads, docs=docs,
                     allow_unauthenticated_writes=allow_unauthenticated_writes, warm_up=warm_up, batching=batching)
    if host not in ("127.0.0.1", "localhost", "::1") and not protect_reads:
        log.warning("serving on %s: searches are open to anyone who can reach it (--protect-reads needs the key)",
                    host)
    uvicorn.run(app, host=host, port=port, log_level="info")

"""``gingham serve``: the index over HTTP (FastAPI), for apps not written in Python.

Endpoints: ``GET /health`` (liveness), ``GET /ready`` (readiness: 503 until the kernels and the encoder are warm),
``GET /info``, ``POST /search`` (text or vectors), ``POST /explain`` (which query
token matched which document token), ``POST /documents`` (add or upsert, text or vectors, with metadata),
``POST /documents/delete`` (by ids, or by a SQL ``filter``), ``POST /documents/get`` (stored text and metadata by
id), ``POST /documents/update`` (metadata or stored text, without re-embedding), ``POST /compact``. Requests
larger than ``max_request_bytes`` are refused with 413 as soon as that many bytes have arrived (chunked uploads
too; :mod:`gingham.app.guard`); malformed ones get a 4xx naming the problem (:mod:`gingham.app.schemas`). Writes
need the API key (see :func:`create_app`). Each request first picks up commits made by other processes (a cheap
manifest read), so several servers or writers can share an index.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional

import numpy as np

from gingham.app.guard import Guard
from gingham.app.limits import (DEFAULT_FILTER_SLOTS, DEFAULT_FILTER_WAIT_S, RETRY_AFTER_S, FilterSlots,
                                Saturated)
from gingham.app.schemas import (AddRequest, DeleteRequest, ExplainRequest, GetRequest, SearchRequest,
                                 SearchSettings, UpdateRequest, printable)
from gingham.common.config import SearchConfig
from gingham.common.errors import require
from gingham.encoder.batcher import BatchingConfig, QueryBatcher
from gingham.search.warm import warm

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 32 * 2**20


def create_app(index_path: str | Path, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, *,
               api_key: Optional[str] = None, allow_unauthenticated_writes: bool = False,
               protect_reads: bool = False, docs: bool = False, warm_up: bool = True,
               batching: Optional[BatchingConfig] = BatchingConfig(), filter_slots: int = DEFAULT_FILTER_SLOTS,
               filter_wait_s: float = DEFAULT_FILTER_WAIT_S):
    """The FastAPI application serving the index at ``index_path``.

    Writes (add, delete, update, compact) need ``api_key``, sent as ``Authorization: Bearer <key>`` or
    ``X-API-Key``; with no key configured they are refused (403) unless ``allow_unauthenticated_writes``.
    ``protect_reads`` makes search and info need the key too (``/health`` then answers only its status). ``docs``
    serves the interactive docs at ``/docs`` and ``/redoc``, whose JavaScript comes from a CDN; ``/openapi.json`` is
    always served.

    ``warm_up``: when the server starts, a background thread loads the kernels and the encoder (:func:`warm`);
    ``GET /ready`` answers 503 until it is done and 200 after, while ``GET /health`` (liveness) answers at once.
    Without it, ``/ready`` is 200 from the start and the first requests pay for the warm-up.

    ``batching``: concurrent text searches' query encodes are micro-batched (one worker collects the queued queries
    for at most ``max_wait_ms`` or ``max_batch`` texts, then one ``encode_queries`` call) and repeated queries'
    vectors are cached (:class:`gingham.encoder.batcher.QueryBatcher`); ``None`` encodes each request's queries
    in its own call.

    ``filter_slots``: requests that run a SQL filter (``/search`` and ``/documents/delete`` with a ``filter``) run on
    that many threads of their own, so slow filters never take the threads other requests need; one that waits
    ``filter_wait_s`` seconds for a slot is answered 503 with ``Retry-After`` (:mod:`gingham.app.limits`).
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
    slots = FilterSlots(filter_slots, filter_wait_s)
    fastapi = require("fastapi", "server")
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.concurrency import run_in_threadpool
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
    app.add_middleware(Guard, max_request_bytes=max_request_bytes, api_key=api_key,
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
            errors.append({"loc": [printable(p) for p in err["loc"]], "msg": printable(msg), "type": err["type"]})
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
        out["filter_slots"] = dict(slots.stats)
        return out

    @app.exception_handler(Saturated)
    async def saturated(request: Request, exc: Saturated) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(OSError)
    @app.exception_handler(MemoryError)
    async def of_the_moment(request: Request, exc: Exception) -> JSONResponse:
        # out of file descriptors or memory, an I/O error (gingham.storage.docstore.database.failure): nothing is
        # wrong with the request or the index, so 503 and a retry, not a 500 that reads as a bug
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    async def off_the_loop(fn, req):
        """``fn(req)`` on a thread: a filter slot's when ``req`` has a filter, else the default pool's."""
        return await (slots.run(fn, req) if req.filter is not None else run_in_threadpool(fn, req))

    @app.post("/search")
    async def search(req: SearchRequest) -> dict:
        return await off_the_loop(run_search, req)

    def run_search(req: SearchRequest) -> dict:
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
    async def delete(req: DeleteRequest) -> dict:
        """By ``ids``, or every document matching a SQL ``filter`` (then ``deleted`` says how many: 0 commits
        nothing)."""
        return await off_the_loop(run_delete, req)

    def run_delete(req: DeleteRequest) -> dict:
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
          **options) -> None:  # pragma: no cover - runs forever
    """Run :func:`create_app` (``index_path`` and ``options`` as there) under uvicorn on ``host``:``port``."""
    uvicorn = require("uvicorn", "server")
    app = create_app(index_path, **options)
    if host not in ("127.0.0.1", "localhost", "::1") and not options.get("protect_reads"):
        log.warning("serving on %s: searches are open to anyone who can reach it (--protect-reads needs the key)",
                    host)
    uvicorn.run(app, host=host, port=port, log_level="info")

"""``gingham serve``: the index over HTTP (FastAPI), for apps not written in Python.

Endpoints: ``GET /health``, ``GET /info``, ``POST /search`` (text or vectors), ``POST /documents`` (add or upsert,
text or vectors, with metadata), ``POST /documents/delete``, ``POST /compact``. Requests larger than
``max_request_bytes`` are refused with 413; malformed ones get a 4xx naming the problem. Each request first picks
up commits made by other processes (a cheap manifest read), so several servers or writers can share an index.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from gingham.errors import require

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 32 * 2**20

require("pydantic", "server")
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

class SearchRequest(Strict):
    queries: Optional[list[str]] = Field(None, description="Text queries (needs an index built from texts).")
    embeddings: Optional[list[list[list[float]]]] = Field(None, description="Query token vectors.")
    top_k: int = Field(10, ge=1)
    subset: Optional[list[Union[str, int]]] = None
    filter: Optional[dict[str, Any]] = Field(None, description="Metadata fields that must equal these values.")
    n_ivf_probe: Optional[int] = Field(None, ge=1)
    centroid_score_threshold: Optional[float] = None
    n_full_scores: Optional[int] = Field(None, ge=1)
    exhaustive: bool = False

class Document(Strict):
    id: Union[str, int]
    text: Optional[str] = None
    embedding: Optional[list[list[float]]] = None
    metadata: Optional[dict[str, Any]] = None

class AddRequest(Strict):
    documents: list[Document] = Field(..., min_length=1)
    upsert: bool = False

class DeleteRequest(Strict):
    ids: list[Union[str, int]] = Field(..., min_length=1)
    missing_ok: bool = False



def create_app(index_path: str | Path, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
    """The FastAPI application serving the index at ``index_path``."""
    fastapi = require("fastapi", "server")
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse

    from gingham import GinghamError, Index

    index = Index.open(index_path)
    app = FastAPI(title="Gingham", version=index.manifest["engine_version"])

    @app.middleware("http")
    async def limit_size(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_request_bytes:
            return JSONResponse({"detail": f"request body of {length} bytes exceeds the limit of "
                                           f"{max_request_bytes} bytes; send smaller batches"}, status_code=413)
        if request.method in ("POST", "PUT") and length is None:
            body = await request.body()  # chunked upload: measure what arrived
            if len(body) > max_request_bytes:
                return JSONResponse({"detail": f"request body exceeds the limit of {max_request_bytes} bytes"},
                                    status_code=413)
        return await call_next(request)

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

    @app.get("/info")
    def info() -> dict:
        out = fresh().info()
        out["encoder"] = index.manifest.get("encoder")
        return out

    @app.post("/search")
    def search(req: SearchRequest) -> dict:
        ix = fresh()
        if (req.queries is None) == (req.embeddings is None):
            raise HTTPException(400, "give exactly one of 'queries' (texts) or 'embeddings' (token vectors)")
        overrides = {k: v for k, v in dict(n_ivf_probe=req.n_ivf_probe, n_full_scores=req.n_full_scores,
                                           centroid_score_threshold=req.centroid_score_threshold).items()
                     if v is not None}
        where = None
        if req.filter:
            wanted = dict(req.filter)
            where = lambda meta: all(meta.get(k) == v for k, v in wanted.items())  # noqa: E731
        top_k = min(req.top_k, max(1, len(ix)))
        try:
            if req.queries is not None:
                res = ix.search_text(req.queries, top_k, subset=req.subset, where=where, exhaustive=req.exhaustive,
                                     **overrides)
            else:
                qs = [as_vectors(q, f"embeddings[{i}]") for i, q in enumerate(req.embeddings)]
                res = ix.search(qs, top_k, subset=req.subset, where=where, exhaustive=req.exhaustive, **overrides)
        except (ValueError, KeyError, ImportError) as exc:
            raise bad_request(exc) from exc
        return {"generation": res.generation,
                "results": [[{"id": i, "score": s} for i, s in res.rows(q)] for q in range(len(res))]}

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
        ix = fresh()
        try:
            generation = ix.delete(req.ids, missing_ok=req.missing_ok)
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
          max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:  # pragma: no cover - runs forever
    uvicorn = require("uvicorn", "server")
    uvicorn.run(create_app(index_path, max_request_bytes), host=host, port=port, log_level="info")

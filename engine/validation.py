"""Validation of caller input, done once at the API boundary. Inner layers trust what comes out of here."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _as_float_matrix(arr, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"{what} must be a floating-point array (float16/32/64), got dtype {arr.dtype}; convert it with "
            ".astype(np.float32)"
        )
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_tokens, dim), got shape {arr.shape}")
    return arr


def _check_finite(arr: np.ndarray, what: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{what} contains NaN or infinity (first at row {bad[0]}, column {bad[1]}); clean the input")


def documents(embeddings, lengths=None, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token embeddings of documents as (flat float32 (n_tokens, dim), doc_offsets int64 (n_docs + 1,)).

    ``embeddings`` is a sequence of (n_tokens_i, dim) arrays, or one flat (n_tokens, dim) array with ``lengths``.
    """
    if lengths is not None:
        flat = _as_float_matrix(embeddings, "embeddings")
        lengths = np.asarray(lengths)
        if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError("lengths must be a 1-D array of integers, one per document")
        if len(lengths) == 0:
            raise ValueError("no documents given: lengths is empty")
        if (lengths <= 0).any():
            d = int(np.argmax(lengths <= 0))
            raise ValueError(f"document {d} has {lengths[d]} tokens; every document needs at least one token")
        if int(lengths.sum()) != flat.shape[0]:
            raise ValueError(
                f"lengths sum to {int(lengths.sum())} tokens but embeddings has {flat.shape[0]} rows; they must match"
            )
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
    else:
        if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
            raise ValueError(
                "a single 2-D array was given without lengths; pass a list of per-document arrays, or the flat "
                "array together with lengths="
            )
        docs = [_as_float_matrix(e, f"document {i}") for i, e in enumerate(embeddings)]
        if not docs:
            raise ValueError("no documents given: the embeddings list is empty")
        for i, e in enumerate(docs):
            if e.shape[0] == 0:
                raise ValueError(f"document {i} is empty (0 tokens); every document needs at least one token")
        dims = {e.shape[1] for e in docs}
        if len(dims) > 1:
            first = docs[0].shape[1]
            bad = next(i for i, e in enumerate(docs) if e.shape[1] != first)
            raise ValueError(f"documents disagree on dim: document 0 has {first}, document {bad} has {docs[bad].shape[1]}")
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum([e.shape[0] for e in docs], out=offsets[1:])
        flat = np.concatenate(docs, axis=0) if len(docs) > 1 else docs[0]
    if dim is not None and flat.shape[1] != dim:
        raise ValueError(f"embeddings have dim {flat.shape[1]} but the index has dim {dim}")
    _check_finite(flat, "embeddings")
    return np.ascontiguousarray(flat, dtype=np.float32), offsets


def queries(queries, dim: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Query token embeddings as (flat float32, q_offsets int64 (n_queries + 1,), single).

    A 2-D array is one query (``single`` is True); a 3-D array or a sequence of 2-D arrays is a batch.
    """
    single = False
    if isinstance(queries, np.ndarray) and queries.ndim == 2:
        qs: Sequence = [queries]
        single = True
    elif isinstance(queries, np.ndarray) and queries.ndim == 3:
        qs = list(queries)
    elif isinstance(queries, np.ndarray):
        raise ValueError(
            f"a query must be a 2-D array (n_query_tokens, dim) and a batch a 3-D array or a list; got shape "
            f"{queries.shape}"
        )
    else:
        qs = list(queries)
    if not qs:
        raise ValueError("no queries given")
    mats = [_as_float_matrix(q, f"query {i}") for i, q in enumerate(qs)]
    for i, q in enumerate(mats):
        if q.shape[0] == 0:
            raise ValueError(f"query {i} is empty (0 tokens)")
        if q.shape[1] != dim:
            raise ValueError(f"query {i} has dim {q.shape[1]} but the index has dim {dim}")
    offsets = np.zeros(len(mats) + 1, dtype=np.int64)
    np.cumsum([q.shape[0] for q in mats], out=offsets[1:])
    flat = np.ascontiguousarray(np.concatenate(mats, axis=0), dtype=np.float32)
    _check_finite(flat, "queries")
    return flat, offsets, single


def top_k(k, n_docs: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"top_k must be a positive integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k > n_docs:
        raise ValueError(f"top_k={k} is larger than the number of documents ({n_docs}); ask for at most {n_docs}")
    return int(k)

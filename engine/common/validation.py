"""Validation of caller input, done once at the API boundary. Inner layers trust what comes out of here."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np

from gingham.common.ids import check_ids, check_text


def as_array(x):
    """A torch tensor (any device or dtype, with or without grad: sentence-transformers and PyLate output) as a
    numpy array; anything else unchanged. Torch is never imported here: a tensor is known by its methods."""
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":  # numpy has no bfloat16
            x = x.float()
        return x.numpy()
    return x


def _as_float_matrix(arr, what: str) -> np.ndarray:
    arr = np.asarray(as_array(arr))
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"{what} must be a floating-point array (float16/32/64), got dtype {arr.dtype}; convert it with "
            ".astype(np.float32)"
        )
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_tokens, dim), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} has dim 0 (shape {arr.shape}); token vectors need at least one dimension")
    return arr


def _check_finite32(out: np.ndarray, orig: np.ndarray, what: str, row0: int = 0) -> None:
    """Every value of ``out`` (``orig`` cast to float32) finite, else a ValueError naming the first bad one."""
    if not np.isfinite(out).all():
        r, c = np.argwhere(~np.isfinite(out))[0]
        value = orig[r, c]
        if np.isfinite(value):
            raise ValueError(
                f"{what} holds {float(value)!r} at row {row0 + r}, column {c}, beyond float32's range "
                f"(+-{float(np.finfo(np.float32).max):.3g}) where the index stores vectors; scale or clean the input"
            )
        raise ValueError(f"{what} contains NaN or infinity (first at row {row0 + r}, column {c}); clean the input")
    with np.errstate(over="ignore"):
        sq = np.einsum("ij,ij->i", out, out)
    if not np.isfinite(sq).all():
        r = int(np.argmax(~np.isfinite(sq)))
        raise ValueError(
            f"{what} row {row0 + r} has a squared length beyond float32's range (values up to "
            f"{float(np.abs(out[r]).max()):.3g}), so its scores would overflow; scale the vectors (late-interaction "
            "token vectors are usually unit length)")


def _as_float32(arr: np.ndarray, what: str) -> np.ndarray:
    """``arr`` as contiguous float32, every value finite *after* the cast (a float64 beyond float32's range
    becomes infinity there)."""
    with np.errstate(over="ignore"):  # overflow is reported below, naming the value
        out = np.ascontiguousarray(arr, dtype=np.float32)
    _check_finite32(out, arr, what)
    return out


def documents(embeddings, lengths=None, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token embeddings of documents as (flat float32 (n_tokens, dim), doc_offsets int64 (n_docs + 1,)).

    ``embeddings`` is a sequence of (n_tokens_i, dim) arrays, or one flat (n_tokens, dim) array with ``lengths``;
    torch tensors are accepted wherever arrays are (the per-document token embeddings that sentence-transformers'
    ``encode(..., output_value="token_embeddings")`` and PyLate's ``encode(..., is_query=False)`` return).
    """
    embeddings = as_array(embeddings)
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
    return _as_float32(flat, "embeddings"), offsets


def queries(queries, dim: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Query token embeddings as (flat float32, q_offsets int64 (n_queries + 1,), single).

    A 2-D array is one query (``single`` is True); a 3-D array or a sequence of 2-D arrays is a batch.
    """
    single = False
    queries = as_array(queries)
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
    return _as_float32(np.concatenate(mats, axis=0), "queries"), offsets, single


def top_k(k, n_docs: int | None) -> int:
    """``k`` as an int in 1..n_docs (no upper bound when ``n_docs`` is None: an index with no live documents)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"top_k must be a positive integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if n_docs is not None and k > n_docs:
        raise ValueError(f"top_k={k} is larger than the number of documents ({n_docs}); ask for at most {n_docs}")
    return int(k)


def _as_list(items, what: str) -> list:
    if isinstance(items, (str, bytes, bytearray, Mapping)):
        raise ValueError(f"{what} must be a list with one entry per document, got a single {type(items).__name__}; "
                         "wrap it in a list")
    try:
        return list(items)
    except TypeError:
        raise ValueError(f"{what} must be a list, got {type(items).__name__}") from None


def texts(items, what: str = "text", n: int | None = None, allow_blank: bool = False) -> list[str]:
    """A list of strings (valid Unicode), ``n`` of them when given; blank ones only if ``allow_blank``."""
    items = _as_list(items, f"{what}s")
    if n is not None and len(items) != n:
        raise ValueError(f"got {len(items)} {what}s for {n} documents; pass one {what} per document")
    if not items:
        raise ValueError(f"no {what}s given")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise ValueError(f"{what} {i} must be a str, got {type(t).__name__} {t!r}")
        if not allow_blank and not t.strip():
            raise ValueError(f"{what} {i} is empty ({t!r})")
        check_text(t, f"{what} {i}")
    return items


def _check_json(value: Any, where: str) -> None:
    """String keys and valid Unicode all the way down (other types are left to json.dumps)."""
    if isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(
                    f"{where} has the key {k!r} ({type(k).__name__}); metadata keys must be strings, since JSON "
                    f"stores every key as a string and {k!r} would read back as {json.dumps({k: 0})[1:-4]}: convert "
                    "the keys with str() first")
            check_text(k, f"{where}, key {k!r},")
            _check_json(v, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for j, v in enumerate(value):
            _check_json(v, f"{where}[{j}]")


def metadata(items, n: int) -> list[dict | None]:
    """One JSON-serialisable dict (or None) per document: string keys, valid Unicode, no NaN or infinity."""
    items = _as_list(items, "metadata")
    if len(items) != n:
        raise ValueError(f"got {len(items)} metadata dicts for {n} documents; pass one per document")
    out = []
    for i, m in enumerate(items):
        if m is None:
            out.append(None)
            continue
        if not isinstance(m, Mapping):
            raise ValueError(f"metadata {i} must be a dict (or None), got {type(m).__name__}")
        m = dict(m)
        _check_json(m, f"metadata {i}")
        try:
            json.dumps(m, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata {i} is not JSON-serialisable ({exc}); store plain str, int, float (finite), "
                             "bool, None, lists and dicts") from exc
        out.append(m)
    return out


def ids(items, kind: str | None, what: str = "document id") -> list:
    """Caller ids to look up in an index whose ids are of ``kind``, by the id rule (:mod:`gingham.common.ids`)."""
    return check_ids(items, kind, what)[0]


#: Rows cast and checked at a time by :func:`stream_batch` (a memory-mapped shard is not copied whole).
_CHECK_ROWS = 65_536


def stream_batch(ids, flat, lengths, doc_texts, doc_metadata, dim: int | None, kind: str | None, at: int):
    """One batch of a streaming source, documents ``at``.., checked as :meth:`Index.create` checks its input,
    without copying ``flat`` (it may be a memory-mapped shard; the build casts it to float32 chunk by chunk).

    ``flat`` None (documents before a resume point, given as ids only) checks the ids alone. Returns (ids, texts,
    metadata) normalised, and the batch's (dim, id kind) for the next batch to match.
    """
    where = f"the source's documents {at}..{at + max(len(ids), 1) - 1}"
    try:
        ids, kind = check_ids(ids, kind)
        if flat is not None:
            flat = _as_float_matrix(flat, "embeddings")
            if dim is not None and flat.shape[1] != dim:
                raise ValueError(f"embeddings have dim {flat.shape[1]} but the earlier documents have dim {dim}")
            dim = flat.shape[1]
            lengths = np.asarray(lengths)
            if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer) or len(lengths) != len(ids):
                raise ValueError(f"the batch has {len(ids)} ids but lengths {lengths!r}; pass one length per id")
            if (lengths <= 0).any():
                d = int(np.argmax(lengths <= 0))
                raise ValueError(f"document {d} has {lengths[d]} tokens; every document needs at least one token")
            if int(lengths.sum()) != flat.shape[0]:
                raise ValueError(f"lengths sum to {int(lengths.sum())} tokens but embeddings has {flat.shape[0]} rows")
            for r in range(0, flat.shape[0], _CHECK_ROWS):
                part = flat[r:r + _CHECK_ROWS]
                with np.errstate(over="ignore"):
                    part32 = np.asarray(part, dtype=np.float32)
                _check_finite32(part32, part, "embeddings", r)
            if doc_texts is not None:
                doc_texts = texts(doc_texts, "text", n=len(ids), allow_blank=True)
            if doc_metadata is not None:
                doc_metadata = metadata(doc_metadata, len(ids))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return ids, doc_texts, doc_metadata, dim, kind

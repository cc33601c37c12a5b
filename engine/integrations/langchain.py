"""LangChain's VectorStore and retriever over a Gingham index (``pip install 'gingham[langchain]'``: langchain-core).

>>> from gingham.integrations.langchain import GinghamVectorStore
>>> store = GinghamVectorStore.from_texts(texts, metadatas=metadatas, path="my-index")   # offline e5 by default
>>> store.similarity_search("¿Quién descubrió la penicilina?", k=3, filter={"lang": "en"})
>>> chain = {"context": store.as_retriever(search_kwargs={"k": 3}), ...}

A late-interaction index encodes with its own model (one vector per token), not with a LangChain ``Embeddings``
(one vector per text): the store takes a model name (``model=``, as :meth:`gingham.Index.from_texts` does) and the
index remembers it, so ``embeddings`` is None and ``from_texts`` refuses an ``embedding``. Ids are strings, as
LangChain's are (an index with integer ids takes and gives their decimal strings); adding an id that is there
replaces that document. ``filter`` is a dict of metadata fields that must equal the given values, a predicate
taking a metadata dict, or whatever :meth:`gingham.Index.search` takes as ``where``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from gingham.common.errors import require

require("langchain_core", "langchain")
from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402
from pydantic import ConfigDict  # noqa: E402

from gingham.index import Index  # noqa: E402
from gingham.storage.disk import MANIFEST  # noqa: E402

log = logging.getLogger(__name__)


class GinghamVectorStore(VectorStore):
    """A LangChain vector store backed by the Gingham index at ``index`` (a path, or an open :class:`Index`).

    A path with no index yet is built by the first :meth:`add_texts`, encoding with ``model`` (and
    ``encoder_options``) and building with ``build_options`` (:class:`gingham.BuildConfig` fields); an index already
    there keeps the encoder it was built with. ``search_options`` are :class:`gingham.SearchConfig` overrides for
    every search (``n_ivf_probe``, ``n_full_scores``, ``exhaustive``...).
    """

    def __init__(self, index: Index | str | os.PathLike, *, model: str = "multilingual-e5-small",
                 encoder_options: Mapping[str, Any] | None = None, build_options: Mapping[str, Any] | None = None,
                 search_options: Mapping[str, Any] | None = None) -> None:
        if isinstance(index, Index):
            self.index: Index | None = index
            self.path = index.path
        else:
            self.path = Path(index)
            self.index = Index.open(self.path) if (self.path / MANIFEST).exists() else None
        self.model = model
        self.encoder_options = dict(encoder_options or {})
        self.build_options = dict(build_options or {})
        self.search_options = dict(search_options or {})

    def __repr__(self) -> str:
        return f"GinghamVectorStore({str(self.path)!r}, n_docs={len(self.index) if self.index is not None else 0})"

    @property
    def embeddings(self) -> None:
        """None: the index encodes with its own late-interaction model (:attr:`gingham.Index.encoder`)."""
        return None

    # ------------------------------------------------------------------------------------------- writes
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: Sequence[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Encode and add texts (one atomic commit); an id already in the store is replaced. Returns the ids,
        new ones (uuid4 hex) where none was given."""
        if kwargs:
            raise TypeError(f"unexpected argument(s) {sorted(kwargs)}; add_texts takes texts, metadatas and ids")
        texts = list(texts)
        if not texts:
            return []
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids for {len(texts)} texts; pass one id per text (or None)")
        keys = [str(i) if i is not None else uuid.uuid4().hex for i in (ids or [None] * len(texts))]
        metadata = [dict(m or {}) for m in metadatas] if metadatas is not None else [{} for _ in texts]
        if self.index is None:
            self.index = Index.from_texts(self.path, texts, keys, model=self.model,
                                          encoder_options=self.encoder_options, metadata=metadata,
                                          show_progress=False, **self.build_options)
        else:
            self.index.add_texts(texts, self._keys(keys), metadata=metadata, upsert=True, show_progress=False)
        return keys

    def delete(self, ids: Sequence[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id (ids not in the store are ignored); ``ids=None`` deletes every document."""
        if kwargs:
            raise TypeError(f"unexpected argument(s) {sorted(kwargs)}; delete takes ids")
        if self.index is None:
            return True
        keys = self.index.ids() if ids is None else self._keys(ids)
        if keys:
            self.index.delete(keys, missing_ok=True)
        return True

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Any = None, metadatas: list[dict] | None = None, *,
                   ids: Sequence[str | None] | None = None, path: str | os.PathLike | None = None,
                   model: str = "multilingual-e5-small", encoder_options: Mapping[str, Any] | None = None,
                   search_options: Mapping[str, Any] | None = None, overwrite: bool = False,
                   **build_options: Any) -> "GinghamVectorStore":
        """Build a store from texts at ``path`` (default: a new temporary folder), encoding with ``model``.

        ``overwrite`` replaces an index already at ``path`` (atomically); ``build_options`` are
        :class:`gingham.BuildConfig` fields. ``embedding`` must be None: see the module's docstring.
        """
        if embedding is not None:
            raise ValueError("a Gingham index encodes with its own late-interaction model (one vector per token), "
                             "not a LangChain Embeddings; pass embedding=None and model='<model folder or name>'")
        if path is None:
            path = Path(tempfile.mkdtemp(prefix="gingham-langchain-")) / "index"
            log.info("no path given: building the index in %s", path)
        path = Path(path)
        if (path / MANIFEST).exists():
            if not overwrite:
                raise FileExistsError(f"an index already exists at {path}; pass overwrite=True to replace it, or "
                                      "open it with GinghamVectorStore(path) and add_texts")
            store = cls(path, model=model, encoder_options=encoder_options, search_options=search_options,
                        build_options={**build_options, "overwrite": True})
            store.index = None  # the first add_texts builds anew (the old index stays readable until it commits)
        else:
            store = cls(path, model=model, encoder_options=encoder_options, search_options=search_options,
                        build_options=build_options)
        store.add_texts(texts, metadatas, ids=ids)
        store.build_options.pop("overwrite", None)
        return store

    # ------------------------------------------------------------------------------------------- reads
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in that order; ids not in the store are left out."""
        if self.index is None:
            return []
        found = self.index.documents(self._keys(ids), missing_ok=True)  # one generation
        return [Document(id=str(d["id"]), page_content=d["text"] or "", metadata=d["metadata"] or {})
                for d in found if d is not None]

    def similarity_search(self, query: str, k: int = 4, filter: Any = None, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Any = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """The ``k`` best documents for ``query`` with their MaxSim scores (a sum over query tokens of
        cosine similarities: higher is better, not bounded by 1). ``kwargs``: search settings for this call."""
        return [(doc, score) for doc, score, _ in self._search(query, k, filter, kwargs)]

    def _similarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                 **kwargs: Any) -> list[tuple[Document, float]]:
        """Relevance in [0, 1] on a scale where a threshold means the same for every query
        (:mod:`gingham.search.relevance`): the hit's MaxSim per query token, in standard deviations above what the
        query scores against a fixed sample of the index's documents, through a logistic curve fitted on real judged
        queries; 0.5: a hit as likely relevant as not. Increasing in MaxSim for a given query. LangChain's
        ``score_threshold`` (``similarity_search_with_relevance_scores``, ``search_type=
        "similarity_score_threshold"``) applies to it."""
        from gingham.search import relevance

        filter = kwargs.pop("filter", None)
        if self.index is None or len(self.index) == 0:
            return []
        q = self._query(query)
        hits = self._search(q, k, filter, kwargs)
        if not hits:
            return []
        background = self._background(q)
        rel = relevance.relevance([score for _, score, _ in hits], len(q), background)
        return [(doc, float(r)) for (doc, _, _), r in zip(hits, rel)]

    def _query(self, query) -> np.ndarray:
        """A text query encoded with the index's encoder, or token vectors as given."""
        return self.index.query_encoder.encode_queries([query])[0] if isinstance(query, str) else query

    def _background(self, q: np.ndarray) -> np.ndarray | None:
        """The query's MaxSim against the index's background sample (:func:`gingham.search.relevance.
        background_ids`, drawn once per generation), or None on an index too small for one."""
        from gingham.search import relevance

        index = self.index
        cached = getattr(self, "_background_sample", None)
        if cached is None or cached[0] != index.generation:
            cached = (index.generation, relevance.background_ids(index.ids()))
            self._background_sample = cached
        ids = cached[1]
        if len(ids) < relevance.MIN_BACKGROUND:
            return None
        return index.rerank(q, [ids], top_k=len(ids)).scores[0]

    def similarity_search_by_vector(self, embedding: Any, k: int = 4, filter: Any = None,
                                    **kwargs: Any) -> list[Document]:
        """The ``k`` best documents for a query given as its token vectors: an (n_tokens, dim) array or list of
        lists (a late-interaction query is one vector per token), or one vector (a one-token query)."""
        return [doc for doc, _, _ in self._search(_query_vectors(embedding), k, filter, kwargs)]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      filter: Any = None, **kwargs: Any) -> list[Document]:
        """``k`` documents chosen for relevance to ``query`` and diversity among themselves, from its ``fetch_k``
        best (maximal marginal relevance: each pick maximises ``lambda_mult`` × relevance − (1 − ``lambda_mult``)
        × its similarity to the documents already picked). Relevance is the document's MaxSim score per query
        token; the similarity of two documents is their symmetric Chamfer similarity (each one's tokens matched to
        the other's best, averaged, then the two directions averaged), both over the index's decompressed
        tokens, so both are cosines on the same scale."""
        return self._mmr(query, k, fetch_k, lambda_mult, filter, kwargs)

    def max_marginal_relevance_search_by_vector(self, embedding: Any, k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: Any = None,
                                                **kwargs: Any) -> list[Document]:
        """:meth:`max_marginal_relevance_search` for a query given as its token vectors."""
        return self._mmr(_query_vectors(embedding), k, fetch_k, lambda_mult, filter, kwargs)

    def _mmr(self, query, k: int, fetch_k: int, lambda_mult: float, filter: Any, overrides: Mapping[str, Any]):
        if isinstance(fetch_k, bool) or not isinstance(fetch_k, int) or fetch_k < 1:
            raise ValueError(f"fetch_k must be a positive integer, got {fetch_k!r}")
        if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, (int, float)) or not 0 <= lambda_mult <= 1:
            raise ValueError(f"lambda_mult must be a number in [0, 1], got {lambda_mult!r}")
        _check_k(k)
        hits = self._search(query, max(k, fetch_k), filter, overrides)
        if not hits:
            return []
        relevance = np.array([score / n for _, score, n in hits], dtype=np.float64)
        tokens = [self.index.decompress(self._keys([doc.id])[0]) for doc, _, _ in hits]
        chosen = maximal_marginal_relevance(relevance, document_similarities(tokens), min(k, len(hits)),
                                            float(lambda_mult))
        return [hits[i][0] for i in chosen]

    def _search(self, query, k: int, filter: Any, overrides: Mapping[str, Any]):
        """(document, MaxSim score, query tokens) of the ``k`` best documents for ``query``: a text, encoded with
        the index's encoder, or its token vectors."""
        _check_k(k)
        index = self.index
        if index is None or len(index) == 0:
            return []
        index.refresh()  # writes by other processes
        q = self._query(query)
        if q.ndim != 2 or q.shape[1] != index.dim:
            raise ValueError(f"the query's token vectors have shape {q.shape}; this index needs (n_tokens, "
                             f"{index.dim})")
        res = index.search(q, min(k, len(index)), where=_where(filter), show_progress=False, include_text=True,
                           include_metadata=True, **{**self.search_options, **overrides})
        return [(Document(id=str(h["id"]), page_content=h["text"] or "", metadata=h["metadata"] or {}), h["score"],
                 len(q)) for h in res.hits(0)]

    def _keys(self, ids: Iterable) -> list:
        """LangChain's string ids as the index's ids (ints for an index with integer ids)."""
        if self.index is not None and self.index.manifest["doc_id_kind"] == "int":
            out = []
            for i in ids:
                try:
                    out.append(int(i))
                except ValueError:
                    raise ValueError(f"this index has integer ids; {i!r} is not one") from None
            return out
        return [str(i) for i in ids]

    def as_retriever(self, **kwargs: Any):
        """LangChain's ``VectorStoreRetriever`` over this store (``search_type`` "similarity" or
        "similarity_score_threshold"; ``search_kwargs`` such as ``{"k": 3, "filter": {...}}``)."""
        return super().as_retriever(**kwargs)


class GinghamRetriever(BaseRetriever):
    """A LangChain retriever over a :class:`GinghamVectorStore`: the ``k`` best documents for a query, each with its
    MaxSim score in ``metadata["score"]`` when ``include_score``.

    >>> retriever = GinghamRetriever(store=GinghamVectorStore("my-index"), k=5, filter={"lang": "en"})
    >>> retriever.invoke("who discovered penicillin?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: GinghamVectorStore
    k: int = 4
    filter: Any = None
    include_score: bool = False
    search_options: dict = {}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.store.similarity_search_with_score(query, self.k, self.filter, **self.search_options)
        if not self.include_score:
            return [doc for doc, _ in hits]
        return [Document(id=doc.id, page_content=doc.page_content, metadata={**doc.metadata, "score": score})
                for doc, score in hits]


def _check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _query_vectors(embedding: Any) -> np.ndarray:
    """A query's token vectors as float32 (n_tokens, dim); one vector is a one-token query."""
    try:
        q = np.asarray(embedding, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError("embedding must be a query's token vectors: an (n_tokens, dim) array or list of lists "
                         "of numbers") from exc
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or not q.size or not np.isfinite(q).all():
        raise ValueError(f"embedding must be a non-empty (n_tokens, dim) array of finite numbers, got shape "
                         f"{q.shape}")
    return q


def document_similarities(tokens: Sequence[np.ndarray]) -> np.ndarray:
    """Symmetric Chamfer similarity between documents given as token vectors: for each pair, each document's
    tokens matched to the other's most similar token and averaged, the two directions averaged. A (n, n) float64
    matrix of cosines (the vectors are normalised first), 1 on the diagonal for documents with distinct tokens."""
    unit = [t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12) for t in tokens]
    n = len(unit)
    sim = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            dots = unit[i] @ unit[j].T
            sim[i, j] = sim[j, i] = 0.5 * (dots.max(axis=1).mean() + dots.max(axis=0).mean())
    return sim


def maximal_marginal_relevance(relevance: np.ndarray, similarity: np.ndarray, k: int,
                               lambda_mult: float) -> list[int]:
    """Greedy maximal marginal relevance (Carbonell and Goldstein, 1998): positions of ``k`` items, first the most
    relevant, then each maximising ``lambda_mult * relevance - (1 - lambda_mult) * max similarity to those picked``
    (ties to the lower position)."""
    picked = [int(np.argmax(relevance))]
    closest = similarity[picked[0]].copy()
    while len(picked) < k:
        gain = lambda_mult * relevance - (1.0 - lambda_mult) * closest
        gain[picked] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        closest = np.maximum(closest, similarity[best])
    return picked


def _where(filter: Any) -> Callable[[dict], bool] | Any:
    """A LangChain filter as :meth:`gingham.Index.search`'s ``where``: a dict means "these fields equal these
    values"; anything else is passed through."""
    if filter is None or callable(filter) or not isinstance(filter, Mapping):
        return filter
    wanted = dict(filter)
    return lambda meta: all(k in meta and meta[k] == v for k, v in wanted.items())


__all__ = ["GinghamRetriever", "GinghamVectorStore"]

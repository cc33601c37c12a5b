"""A Gingham index with the interface ``pylate.retrieve.ColBERT`` calls, so a PyLate pipeline swaps its index.

PyLate's retriever asks an index for ``is_end_to_end_index`` and, when it is true, calls
``index(queries_embeddings=..., k=..., subset=...)`` and returns what that gives: one list per query of
``{"id": ..., "score": ...}`` dicts, best first (PyLate's ``RerankResult``). Older PyLate releases call every index
that is not a Voyager index the same way. Documents come in through ``add_documents(documents_ids,
documents_embeddings)`` and leave through ``remove_documents(documents_ids)``; both return the index, as PyLate's
do. Only numpy is needed: PyLate is never imported, and its embeddings (lists of numpy arrays or torch tensors, or
one padded 3-D array) are accepted as they come.

>>> from gingham.integrations.pylate import PLAID          # instead of: from pylate.indexes import PLAID
>>> index = PLAID(index_folder="indexes", index_name="docs", override=True)
>>> index.add_documents(documents_ids=ids, documents_embeddings=model.encode(texts, is_query=False))
>>> retriever = pylate.retrieve.ColBERT(index=index)
>>> retriever.retrieve(queries_embeddings=model.encode(queries, is_query=True), k=10)

Differences from PyLate's PLAID, on purpose: adding an id that is already in the index replaces that document
(PyLate's fast-plaid backend would keep both); removal is a real deletion (compaction reclaims the space);
``get_documents_embeddings`` returns the decompressed tokens (fast-plaid raises NotImplementedError).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gingham.common.validation import as_array
from gingham.index import Index
from gingham.storage.disk import MANIFEST

log = logging.getLogger(__name__)


class PLAID:
    """A Gingham index at ``index_folder/index_name`` behind PyLate's index interface.

    The parameters PyLate's PLAID takes are accepted under the same names and, for the build, with the same
    defaults (``nbits=4``, ``kmeans_niters=4``). ``nbits``, ``kmeans_niters`` and ``n_samples_kmeans`` (Gingham's
    ``kmeans_sample``) set the build, ``n_ivf_probe`` and ``n_full_scores`` the search. Their default differs on
    purpose: PyLate fixes 8 and 8,192, tuned for fast-plaid; ``None`` here means the settings Gingham calibrated on
    the index's own data (the README's "Calibrated defaults"); pass 8 and 8192 for PyLate's. ``use_fast``,
    ``max_points_per_centroid``, ``batch_size``, ``device``, ``use_triton`` and the Stanford backend's keyword
    arguments choose among PyLate's backends and have no meaning here, so they are ignored. ``build_options`` passes any other :class:`gingham.BuildConfig`
    field (``seed``, ``n_centroids``...).

    With ``override=False`` an index already in the folder is opened and added to; with ``override=True`` the first
    ``add_documents`` replaces it (atomically: until then readers see the old one).
    """

    is_end_to_end_index = True

    def __init__(
        self,
        index_folder: str | os.PathLike = "indexes",
        index_name: str = "colbert",
        override: bool = False,
        use_fast: bool = True,
        nbits: int = 4,
        kmeans_niters: int = 4,
        max_points_per_centroid: int = 256,
        n_ivf_probe: int | None = None,
        n_full_scores: int | None = None,
        n_samples_kmeans: int | None = None,
        batch_size: int = 1 << 18,
        show_progress: bool = True,
        device: Any = None,
        *,
        build_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # PyLate's backend choices, and the Stanford backend's parameters PyLate takes as **kwargs (embedding_size,
        # nranks, index_bsize, ndocs, centroid_score_threshold, ncells, search_batch_size): no meaning here
        del use_fast, max_points_per_centroid, batch_size, device, kwargs
        self.path = Path(index_folder) / index_name
        self.show_progress = show_progress
        self._build = {k: v for k, v in dict(nbits=nbits, kmeans_niters=kmeans_niters,
                                             kmeans_sample=n_samples_kmeans).items() if v is not None}
        self._build.update(build_options or {})
        self._search = {k: v for k, v in dict(n_ivf_probe=n_ivf_probe, n_full_scores=n_full_scores).items()
                        if v is not None}
        self._override = bool(override)
        self.index: Index | None = None
        if not self._override and (self.path / MANIFEST).exists():
            self.index = Index.open(self.path)

    def __repr__(self) -> str:
        return f"PLAID({str(self.path)!r}, n_docs={len(self.index) if self.index is not None else 0})"

    # ------------------------------------------------------------------------------------------- writes
    def add_documents(
        self,
        documents_ids: str | int | Sequence,
        documents_embeddings,
        **kwargs: Any,
    ) -> "PLAID":
        """Add documents (an id already present is replaced). The first call builds the index: its codebook is
        trained on these documents, so give it a representative batch. Returns ``self``. ``kwargs`` (PyLate's
        backends take ``batch_size``) are ignored."""
        del kwargs
        ids = [documents_ids] if isinstance(documents_ids, (str, int, np.integer)) else list(documents_ids)
        embeddings = _documents(documents_embeddings)
        if self.index is None or self._override:
            self.index = Index.create(self.path, embeddings, ids, overwrite=True, show_progress=self.show_progress,
                                      **self._build)
            self._override = False
        else:
            self.index.upsert(embeddings, ids, show_progress=self.show_progress)
        return self

    def remove_documents(self, documents_ids: Sequence) -> "PLAID":
        """Delete documents; ids not in the index are ignored, as PyLate does. Returns ``self``."""
        if self.index is not None:
            ids = [documents_ids] if isinstance(documents_ids, (str, int, np.integer)) else list(documents_ids)
            if ids:
                self.index.delete(ids, missing_ok=True)
        return self

    # ------------------------------------------------------------------------------------------- reads
    def __call__(self, queries_embeddings, k: int = 10, subset: Sequence | None = None) -> list[list[dict]]:
        """Search: one list per query of ``{"id": document id, "score": MaxSim}``, best first.

        ``queries_embeddings``: one (n_tokens, dim) query, or a list / 3-D array of them (numpy or torch).
        ``subset``: ids to search among, one list for every query or one list per query; ids not in the index are
        ignored. At most ``k`` results per query, fewer when fewer documents qualify.
        """
        index = self._ready()
        queries = _queries(queries_embeddings)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        top_k = int(min(k, max(1, len(index))))
        if subset is None:
            res = index.search(queries, top_k, show_progress=False, **self._search)
            return [_rows(res, q) for q in range(len(queries))]
        per_query = len(subset) > 0 and not isinstance(subset[0], (str, int, np.integer))
        if per_query and len(subset) != len(queries):
            raise ValueError(f"subset has {len(subset)} lists for {len(queries)} queries; pass one list per query, "
                             "or one list of ids for every query")
        out = []
        for q, query in enumerate(queries):
            allowed = _known(index, subset[q] if per_query else subset)
            if not allowed:
                out.append([])
                continue
            res = index.search([query], min(top_k, len(allowed)), subset=allowed, show_progress=False,
                               **self._search)
            out.append(_rows(res, 0))
        return out

    def get_documents_embeddings(self, document_ids: Sequence[Sequence]) -> list[list[np.ndarray]]:
        """The documents' token vectors as the index holds them (decompressed: the codec's approximation of what
        was added), one list per list of ids."""
        index = self._ready()
        return [[index.decompress(doc) for doc in ids] for ids in document_ids]

    def _ready(self) -> Index:
        if self.index is None or self._override:
            raise ValueError(f"the index at {self.path} is empty; add documents with add_documents() before "
                             "searching it")
        return self.index


def _documents(embeddings) -> list[np.ndarray] | np.ndarray:
    """PyLate's document embeddings as Gingham takes them: a list of (n_tokens, dim) arrays."""
    embeddings = as_array(embeddings)
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
        return [embeddings]  # one document, as PyLate reads a 2-D array
    return [as_array(e) for e in embeddings]


def _queries(queries) -> list[np.ndarray]:
    queries = as_array(queries)
    if isinstance(queries, np.ndarray) and queries.ndim == 2:
        return [queries]
    return [np.asarray(as_array(q)) for q in queries]


def _known(index: Index, ids) -> list:
    if isinstance(ids, (str, int, np.integer)):
        ids = [ids]
    keep = []
    for doc in ids:
        try:
            if doc in index:
                keep.append(doc)
        except ValueError:  # of the other id kind than the index's: not in it
            continue
    return keep


def _rows(res, q: int) -> list[dict]:
    return [{"id": doc, "score": float(score)} for doc, score in res.rows(q)]


__all__ = ["PLAID"]

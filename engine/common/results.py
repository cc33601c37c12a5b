"""Typed search results: positions and scores as arrays, with the caller's ids beside them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SearchResults:
    """Results of a batch of queries, best first.

    positions: int64 (n_queries, k) internal document numbers; -1 where fewer than k documents qualified.
    scores: float32 (n_queries, k) MaxSim scores; -inf where positions is -1.
    ids: (n_queries, k) the caller's document ids (int64 array with -1, or object array with None, for gaps);
        integer ids are >= 0 (:mod:`gingham.common.ids`), so -1 is never a document.
    generation: the index generation that answered (-1 for brute force over caller-given vectors).
    texts, metadata: (n_queries, k) object arrays of the hits' stored texts and metadata dicts (None at gaps and
        for documents without them), when the search was asked for them (``include_text`` /
        ``include_metadata``), else None. They come from the generation that answered.
    """

    positions: np.ndarray
    scores: np.ndarray
    ids: np.ndarray
    generation: int = -1
    texts: np.ndarray | None = None
    metadata: np.ndarray | None = None

    def __len__(self) -> int:
        return self.positions.shape[0]

    def rows(self, query: int = 0) -> list[tuple[object, float]]:
        """(caller id, score) pairs of one query, best first, without gaps."""
        keep = self.positions[query] >= 0
        ids = self.ids[query][keep].tolist()
        return list(zip(ids, self.scores[query][keep].tolist()))

    def hits(self, query: int = 0) -> list[dict]:
        """One dict per hit of one query, best first, without gaps: ``id``, ``score``, and ``text`` / ``metadata``
        when the search included them."""
        keep = np.flatnonzero(self.positions[query] >= 0)
        out = []
        for j in keep.tolist():
            hit = {"id": self.ids[query, j].item() if hasattr(self.ids[query, j], "item") else self.ids[query, j],
                   "score": float(self.scores[query, j])}
            if self.texts is not None:
                hit["text"] = self.texts[query, j]
            if self.metadata is not None:
                hit["metadata"] = self.metadata[query, j]
            out.append(hit)
        return out

    def to_records(self, query_ids=None) -> list[dict]:
        """One dict per (query, rank): ``query``, ``rank`` (1-based), ``id``, ``score`` (and ``text`` /
        ``metadata`` when the search included them)."""
        out = []
        for q in range(len(self)):
            qid = query_ids[q] if query_ids is not None else q
            for rank, hit in enumerate(self.hits(q), start=1):
                out.append({"query": qid, "rank": rank, **hit})
        return out

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
        integer ids are >= 0 (:mod:`gingham.ids`), so -1 is never a document.
    generation: the index generation that answered (-1 for brute force over caller-given vectors).
    """

    positions: np.ndarray
    scores: np.ndarray
    ids: np.ndarray
    generation: int = -1

    def __len__(self) -> int:
        return self.positions.shape[0]

    def rows(self, query: int = 0) -> list[tuple[object, float]]:
        """(caller id, score) pairs of one query, best first, without gaps."""
        keep = self.positions[query] >= 0
        ids = self.ids[query][keep].tolist()
        return list(zip(ids, self.scores[query][keep].tolist()))

    def to_records(self, query_ids=None) -> list[dict]:
        """One dict per (query, rank): ``query``, ``rank`` (1-based), ``id``, ``score``."""
        out = []
        for q in range(len(self)):
            qid = query_ids[q] if query_ids is not None else q
            for rank, (doc, score) in enumerate(self.rows(q), start=1):
                out.append({"query": qid, "rank": rank, "id": doc, "score": score})
        return out

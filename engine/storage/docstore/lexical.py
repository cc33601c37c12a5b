"""BM25 over stored texts with SQLite FTS5, segment by segment.

A query's text is cut into words as FTS5's unicode61 tokenizer cuts documents (letters and digits; ``_`` and
punctuation separate) and matched as any of them (``"w1" OR "w2" ...``, each quoted, so no query is FTS5 syntax).
FTS5's ``bm25()`` (k1 = 1.2, b = 0.75) scores the matches; it is negated here so that higher is better.

Term statistics (document frequencies, average length) are each segment's own: after adds, scores of documents in
different segments are comparable only approximately, and deleted documents count until :meth:`Index.compact`
(which merges the segments and their full-text indexes). A freshly built or compacted index is one segment, exact.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Sequence

import numpy as np

from gingham.storage.docstore.database import DocStore

#: Distinct words of a query used (the rest are ignored).
MAX_TERMS = 64
_WORD = re.compile(r"[^\W_]+")


def match_query(text: str) -> str | None:
    """The FTS5 query for free text ``text``: its distinct words (case-folded), quoted, joined by OR; None when
    it holds no word."""
    words = list(dict.fromkeys(w.casefold() for w in _WORD.findall(text)))[:MAX_TERMS]
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def search(store: DocStore, query: str | None, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best documents of one segment for FTS5 query ``query`` among those ``mask`` allows (None: all), as
    (positions int64, scores float32), best first; ties by position."""
    if query is None or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    limit = "" if mask is not None else f" LIMIT {int(k)}"
    sql = f"SELECT rowid, bm25(texts) FROM texts WHERE texts MATCH ? ORDER BY rank, rowid{limit}"
    pos, scores = [], []
    with store.connection() as conn:
        try:
            cur = conn.execute(sql, (query,))
            while len(pos) < k:
                rows = cur.fetchmany(max(256, k))
                if not rows:
                    break
                for p, s in rows:
                    if mask is None or (0 <= p < len(mask) and mask[p]):
                        pos.append(p)
                        scores.append(-s)
        except sqlite3.Error as exc:
            raise store.failure(exc, "be searched for the words of a query", schema=True) from exc
    pos, scores = np.array(pos[:k], dtype=np.int64), np.array(scores[:k], dtype=np.float32)
    order = np.lexsort((pos, -scores))
    return pos[order], scores[order]


def merge(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of several segments' (global positions, scores), ties by position."""
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    pos = np.concatenate([p for p, _ in parts])
    sc = np.concatenate([s for _, s in parts])
    order = np.lexsort((pos, -sc))[:k]
    return pos[order], sc[order]

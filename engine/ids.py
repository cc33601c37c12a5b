"""The caller's document ids: all integers or all strings, unique, mapped to internal positions 0..n-1.

Stored without pickle: integers as one int64 array; strings as their UTF-8 bytes concatenated plus int64 offsets.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pack_strings(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as (UTF-8 bytes uint8, offsets int64 (n + 1,)), the pickle-free layout used on disk."""
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def unpack_string(utf8: np.ndarray, offsets: np.ndarray, i: int) -> str:
    return bytes(utf8[offsets[i]:offsets[i + 1]]).decode("utf-8")


class DocIds:
    """Position <-> caller id mapping. ``kind`` is ``"int"`` or ``"str"``."""

    def __init__(self, kind: str, ints: np.ndarray | None = None, utf8: np.ndarray | None = None,
                 offsets: np.ndarray | None = None):
        self.kind = kind
        self._ints = ints
        self._utf8 = utf8
        self._offsets = offsets

    # construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_user(cls, ids: Sequence | np.ndarray | None, n_docs: int) -> "DocIds":
        """Validate the caller's ids (or number the documents 0..n-1 when ``ids`` is None)."""
        if ids is None:
            return cls("int", ints=np.arange(n_docs, dtype=np.int64))
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        ids = list(ids)
        if len(ids) != n_docs:
            raise ValueError(f"got {len(ids)} document ids for {n_docs} documents; pass exactly one id per document")
        if all(isinstance(i, str) for i in ids):
            kind = "str"
        elif all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
            kind = "int"
        else:
            first = str if isinstance(ids[0], str) else int
            bad = next(i for i in ids if isinstance(i, bool) or not isinstance(i, str if first is str else (int, np.integer)))
            raise ValueError(
                f"document ids must be all strings or all integers; found {type(bad).__name__} {bad!r} "
                f"among them"
            )
        seen: dict = {}
        for pos, i in enumerate(ids):
            if i in seen:
                raise ValueError(f"duplicate document id {i!r} at positions {seen[i]} and {pos}; ids must be unique")
            seen[i] = pos
        if kind == "int":
            try:
                ints = np.array(ids, dtype=np.int64)
            except OverflowError as exc:
                raise ValueError("integer document ids must fit in a signed 64-bit integer") from exc
            out = cls("int", ints=ints)
        else:
            utf8, offsets = pack_strings(ids)
            out = cls("str", utf8=utf8, offsets=offsets)
        return out

    @classmethod
    def from_arrays(cls, kind: str, arrays: dict[str, np.ndarray]) -> "DocIds":
        if kind == "int":
            return cls("int", ints=arrays["doc_ids"])
        return cls("str", utf8=arrays["doc_ids_utf8"], offsets=arrays["doc_ids_offsets"])

    def arrays(self) -> dict[str, np.ndarray]:
        if self.kind == "int":
            return {"doc_ids": self._ints}
        return {"doc_ids_utf8": self._utf8, "doc_ids_offsets": self._offsets}

    # access -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ints) if self.kind == "int" else len(self._offsets) - 1

    def __getitem__(self, pos: int):
        if self.kind == "int":
            return int(self._ints[pos])
        return unpack_string(self._utf8, self._offsets, pos)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Caller ids at ``positions`` (any shape); -1 positions give -1 (int ids) or None (str ids)."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.kind == "int":
            out = np.where(positions >= 0, self._ints[np.maximum(positions, 0)], -1)
            return out.astype(np.int64)
        out = np.empty(positions.shape, dtype=object)
        for idx, pos in np.ndenumerate(positions):
            out[idx] = self[int(pos)] if pos >= 0 else None
        return out

    def to_list(self) -> list:
        if self.kind == "int":
            return self._ints.tolist()
        return [self[i] for i in range(len(self))]

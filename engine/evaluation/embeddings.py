"""Encoded texts, cached inside a run's output folder so that several builds (nbits 2 and 4) reuse one encoding.

Each entry is three files named after the texts' content hash: ``<name>-<hash>.npy`` (flat float32 tokens),
``<name>-<hash>.offsets.npy`` and ``<name>-<hash>.json`` (model, kind, counts, encode seconds).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encoded:
    """Token vectors of a list of texts as a flat array plus offsets, with how long encoding took."""

    flat: np.ndarray
    offsets: np.ndarray
    seconds: float
    cached: bool

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def item(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def items(self) -> list[np.ndarray]:
        return [self.item(i) for i in range(len(self))]

    def stats(self) -> dict:
        n = len(self)
        return {"n_texts": n, "n_tokens": int(self.offsets[-1]), "seconds": round(self.seconds, 3),
                "texts_per_s": n / self.seconds if self.seconds > 0 else None,
                "tokens_per_s": float(self.offsets[-1]) / self.seconds if self.seconds > 0 else None,
                "cached": self.cached}


def flatten(vectors: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(v) for v in vectors], dtype=np.int64)
    offsets = np.zeros(len(vectors) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    dim = vectors[0].shape[1] if len(vectors) else 0
    flat = np.concatenate(vectors).astype(np.float32, copy=False) if len(vectors) else np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(flat), offsets


def _key(model: str, kind: str, texts: Sequence[str]) -> str:
    h = hashlib.sha256(f"{model}\0{kind}\0".encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


class EmbeddingCache:
    """Encode-once store under ``folder``. ``encoder_factory`` is called only on a miss (loading is slow)."""

    def __init__(self, folder: str | Path, model: str, encoder_factory: Callable[[], object]):
        self.folder = Path(folder)
        self.model = model
        self._factory = encoder_factory
        self._encoder = None

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = self._factory()
        return self._encoder

    def get(self, name: str, texts: Sequence[str], kind: str) -> Encoded:
        """Token vectors of ``texts`` (kind ``"queries"`` or ``"documents"``), from the cache or freshly encoded.

        Entries are found by content (model, kind, texts); ``name`` only labels the files."""
        if kind not in ("queries", "documents"):
            raise ValueError(f"kind must be 'queries' or 'documents', got {kind!r}")
        key = _key(self.model, kind, texts)
        found = sorted(self.folder.glob(f"*-{key}.json")) if self.folder.is_dir() else []
        stem = found[0].with_suffix("") if found else self.folder / f"{_safe(name)}-{key}"
        meta_path = stem.with_name(stem.name + ".json")
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            flat = np.load(stem.with_name(stem.name + ".npy"), mmap_mode="r")
            offsets = np.load(stem.with_name(stem.name + ".offsets.npy"))
            return Encoded(flat, offsets, float(meta["seconds"]), cached=True)
        encode = self.encoder.encode_queries if kind == "queries" else self.encoder.encode_documents
        log.info("encoding %d %s (%s)", len(texts), kind, name)
        t0 = time.perf_counter()
        vectors = encode(list(texts))
        seconds = time.perf_counter() - t0
        flat, offsets = flatten(vectors)
        self.folder.mkdir(parents=True, exist_ok=True)
        np.save(stem.with_name(stem.name + ".npy"), flat)
        np.save(stem.with_name(stem.name + ".offsets.npy"), offsets)
        meta = {"model": self.model, "kind": kind, "name": name, "n_texts": len(texts),
                "n_tokens": int(offsets[-1]), "dim": int(flat.shape[1]) if flat.ndim == 2 else 0,
                "seconds": seconds}
        meta_path.write_text(json.dumps(meta, indent=2))  # written last: its presence marks a complete entry
        return Encoded(flat, offsets, seconds, cached=False)

"""Sharded search on a Ray cluster: each shard held open by a Ray actor, a query sent to all, merged at the driver.

::

    import ray
    from gingham.shards.ray_shards import RayShardedIndex
    ray.init(address="auto")
    shards = RayShardedIndex.open("/shared/corpus-shards")  # a shard set, or a list of index folders
    shards.search(query_embeddings, top_k=10)

Every shard folder must be readable at the same path from the node its actor lands on (shared storage, or a copy
per node). Each actor opens its shard once (arrays memory-mapped) and answers :meth:`gingham.Index.search`;
only the per-shard top-k (positions, scores, ids) travels back. Results, ties and guarantees are those of
:class:`gingham.shards.sharded.ShardedIndex`, whose merge this uses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gingham.common import validation
from gingham.common.errors import MissingDependencyError
from gingham.common.results import SearchResults
from gingham.shards.sharded import check_unique_ids, codebook_digest, merge, shard_bases, shard_paths

PathLike = str | os.PathLike


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            "Ray is needed for sharded search on Ray but is not installed; install it with: pip install 'gingham[ray]'"
        ) from exc
    return ray


class ShardServer:
    """One shard, opened once, answering searches (the body of a Ray actor; a plain class, testable without Ray)."""

    def __init__(self, path: str):
        from gingham.index import Index

        self.index = Index.open(path)

    def describe(self) -> dict[str, Any]:
        ix = self.index
        return {"path": str(ix.path), "dim": ix.dim, "n_docs": ix.n_docs, "n_positions": ix.snapshot.n_positions,
                "id_kind": ix.manifest["doc_id_kind"], "codebook": codebook_digest(ix.manifest),
                "encoder": ix.manifest.get("encoder"), "top_k": ix.search_defaults.top_k, "pid": os.getpid()}

    def ids(self) -> list:
        return self.index.ids()

    def search(self, queries: list[np.ndarray], top_k: int, overrides: dict[str, Any], subset=None):
        """This shard's top-k (positions, scores, ids), how many ``subset`` ids it holds (ids from any shard:
        those it holds restrict it; none: no results), and the hits' texts / metadata when ``overrides`` ask."""
        if subset is not None:
            subset = [doc for doc in subset if doc in self.index]
            if not subset:
                n = len(queries)
                ids = (np.full((n, top_k), -1, dtype=np.int64) if self.index.manifest["doc_id_kind"] == "int"
                       else np.full((n, top_k), None, dtype=object))
                extras = {name: np.full((n, top_k), None, dtype=object) for name, flag in
                          (("texts", "include_text"), ("metadata", "include_metadata")) if overrides.get(flag)}
                return (np.full((n, top_k), -1, dtype=np.int64), np.full((n, top_k), -np.inf, np.float32), ids, 0,
                        extras)
        res = self.index.search(queries, top_k, subset=subset, show_progress=False, **overrides)
        extras = {name: getattr(res, name) for name in ("texts", "metadata") if getattr(res, name) is not None}
        return res.positions, res.scores, res.ids, 0 if subset is None else len(set(subset)), extras


class RayShardedIndex:
    """Shards searched by Ray actors, one per shard (``num_cpus`` each), merged at the driver."""

    def __init__(self, paths: Sequence[PathLike], *, num_cpus: float = 1, check_ids: bool = True):
        ray = _ray()
        if not ray.is_initialized():
            raise RuntimeError("Ray is not initialised: call ray.init(...) before opening shards on Ray")
        self.ray = ray
        actor = ray.remote(num_cpus=num_cpus)(ShardServer)
        self.actors = [actor.remote(str(Path(p).absolute())) for p in paths]
        if not self.actors:
            raise ValueError("a RayShardedIndex needs at least one shard")
        try:
            self._check(check_ids)
        except BaseException:
            self.close()
            raise
        self._bases = shard_bases([i["n_positions"] for i in self.info])

    def _check(self, check_ids: bool) -> None:
        ray = self.ray
        self.info = ray.get([a.describe.remote() for a in self.actors])
        first = self.info[0]
        for other in self.info[1:]:
            for key, what in (("dim", "vector dims"), ("id_kind", "id kinds")):
                if other[key] != first[key]:
                    raise ValueError(f"shards {first['path']} and {other['path']} have different {what} "
                                     f"({first[key]} vs {other[key]}); shards must come from one encoder and id kind")
        if check_ids:
            check_unique_ids(ray.get([a.ids.remote() for a in self.actors]), [i["path"] for i in self.info])

    @classmethod
    def open(cls, paths: PathLike | Sequence[PathLike], **kwargs: Any) -> "RayShardedIndex":
        """Actors for shards given as index folders, or as one shard-set folder (``shards.json``)."""
        return cls(shard_paths(paths), **kwargs)

    @property
    def dim(self) -> int:
        return self.info[0]["dim"]

    @property
    def n_docs(self) -> int:
        return sum(i["n_docs"] for i in self.info)

    @property
    def shared_codebook(self) -> bool:
        return len({tuple(i["codebook"]) for i in self.info}) == 1

    def __len__(self) -> int:
        return self.n_docs

    def search(self, queries, top_k: int | None = None, *, subset=None, **overrides: Any) -> SearchResults:
        """Every shard's :meth:`gingham.Index.search` at once on its actor; the merged top-k. ``subset``: ids from
        any shard (each actor keeps those it holds); ``where`` and the search settings go to every shard."""
        k = validation.top_k(self.info[0]["top_k"] if top_k is None else top_k, self.n_docs or None)
        q_flat, q_offsets, _ = validation.queries(queries, self.dim)
        qs = [q_flat[q_offsets[i]:q_offsets[i + 1]] for i in range(len(q_offsets) - 1)]
        qref = self.ray.put(qs)
        live = [i for i, info in enumerate(self.info) if info["n_docs"]]
        sref = None if subset is None else self.ray.put(list(subset))
        parts = self.ray.get([self.actors[i].search.remote(qref, min(k, self.info[i]["n_docs"]), dict(overrides), sref)
                              for i in live])
        if subset is not None and sum(p[3] for p in parts) < len(set(subset)):
            raise KeyError(f"{len(set(subset)) - sum(p[3] for p in parts)} subset id(s) are in none of the "
                           f"{len(live)} shards")
        extras = {name: [p[4][name] for p in parts] for name in (parts[0][4] if parts else {})}
        return merge([p[:3] for p in parts], [int(self._bases[i]) for i in live], k, len(qs), self.info[0]["id_kind"],
                     extras)

    def search_text(self, queries, top_k: int | None = None, *, encoder=None, **overrides: Any) -> SearchResults:
        """Encode text queries at the driver (the shards' encoder, or ``encoder``) and :meth:`search`."""
        texts = validation.texts([queries] if isinstance(queries, str) else queries, "query")
        if encoder is None:
            infos = {json.dumps(i["encoder"], sort_keys=True) for i in self.info}
            if len(infos) > 1 or self.info[0]["encoder"] is None:
                raise ValueError("the shards were not built with one encoder from texts; pass encoder=")
            from gingham.encoder import load_encoder

            enc = self.info[0]["encoder"]
            encoder = load_encoder(enc["model"], **enc.get("options", {}))
        return self.search(encoder.encode_queries(texts), top_k, **overrides)

    def pids(self) -> list[int]:
        """The process id of each shard's actor."""
        return [i["pid"] for i in self.info]

    def close(self) -> None:
        """Stop the actors."""
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []

"""Search over shards: several indexes of one corpus, split by documents, searched as one.

A query goes to every shard; each answers its own top-k; the answers are merged by score into one top-k with the
callers' ids. Ties rank the earlier shard first, then the lower position in it: a corpus split into contiguous
shards in order ranks ties as one index over the whole corpus does.

What equals one index over the same documents, when the shards share a codebook (built with one trained codec:
``Index.create(..., codec=other.codec)`` or :func:`gingham.shards.sharding.build_shards`):

* exhaustive search: the same documents and scores (each document's score is exact MaxSim over its decompressed
  tokens, the same in any index compressed with that codebook);
* PLAID search that prunes nothing (``min_candidates=0`` and ``n_full_scores`` at least four times the candidates):
  the candidates are the documents listed under the query tokens' best centroids, the same union of inverted
  lists however the documents are split, each scored exactly;
* PLAID search that prunes: each shard keeps its own ``n_full_scores`` best approximate candidates, so the shards
  together score more documents exactly than one index does. Results usually agree, are not guaranteed to, and
  tend to be at least as close to exact search. Each shard runs with its own settings (its calibrated defaults,
  and the call's overrides); :meth:`ShardedIndex.search_config` lists them.

Shards compressed with different codebooks can be searched together too: their scores approximate the same MaxSim
and merge, but no single index gives the same results.

A shard set on disk is a folder with ``shards.json`` (:func:`write_shard_set`) naming the shard folders.
The Ray fan-out (each shard held by an actor, possibly on another machine) is :mod:`gingham.shards.ray_shards`.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from gingham.common import validation
from gingham.common.config import SearchConfig
from gingham.common.results import SearchResults
from gingham.storage.segment import CODEBOOK_ARRAYS

PathLike = str | os.PathLike
#: The file that makes a folder a shard set.
SHARDS_FILE = "shards.json"
SHARD_SET_FORMAT = 1


class ShardedIndex:
    """Several :class:`gingham.Index` shards of one corpus searched as one (fan-out in threads, merged top-k).

    Open with :meth:`open` (folders, or a shard-set folder) or wrap opened indexes. Document ids must be unique
    across the shards (checked here, once: a set of every live id).
    """

    def __init__(self, shards: Sequence, *, check_ids: bool = True):
        shards = list(shards)
        if not shards:
            raise ValueError("a ShardedIndex needs at least one shard")
        describe_mismatch(shards)
        self.shards = shards
        if check_ids:
            check_unique_ids([s.ids() for s in shards], [str(s.path) for s in shards])

    @classmethod
    def open(cls, paths: PathLike | Sequence[PathLike], *, check_ids: bool = True) -> "ShardedIndex":
        """Open shards from index folders, or from one shard-set folder (``shards.json``)."""
        from gingham.index import Index

        return cls([Index.open(p) for p in shard_paths(paths)], check_ids=check_ids)

    # ---------------------------------------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        return self.shards[0].dim

    @property
    def n_docs(self) -> int:
        return sum(s.n_docs for s in self.shards)

    @property
    def n_tokens(self) -> int:
        return sum(s.n_tokens for s in self.shards)

    def __len__(self) -> int:
        return self.n_docs

    def __repr__(self) -> str:
        return (f"ShardedIndex({len(self.shards)} shards, n_docs={self.n_docs}, n_tokens={self.n_tokens}, "
                f"dim={self.dim}, shared_codebook={self.shared_codebook})")

    @property
    def shared_codebook(self) -> bool:
        """Whether every shard is compressed with the same codebook (by the checksums of its arrays)."""
        return len({codebook_digest(s.manifest) for s in self.shards}) == 1

    def bases(self) -> np.ndarray:
        """First merged position of each shard: a result's position is its shard's base plus its position there."""
        return shard_bases([s.snapshot.n_positions for s in self.shards])

    def locate(self, position: int) -> tuple[int, int]:
        """(shard number, position in that shard) of a merged result position."""
        bases = self.bases()
        shard = int(np.searchsorted(bases, position, side="right")) - 1
        return shard, int(position - bases[shard])

    def refresh(self) -> bool:
        """Pick up new generations of every shard (ids stay unchecked: adding to one shard checks that one only)."""
        return any([s.refresh() for s in self.shards])

    # ---------------------------------------------------------------------------------------------- search
    def search_config(self, top_k: int | None = None, **overrides: Any) -> list[SearchConfig]:
        """The settings each shard runs a search with (see :meth:`gingham.Index.search_config`)."""
        k = self._top_k(top_k)
        return [s.search_config(min(k, s.n_docs), **overrides) for s in self.shards if s.n_docs]

    def _top_k(self, top_k: int | None) -> int:
        k = self.shards[0].search_defaults.top_k if top_k is None else top_k
        return validation.top_k(k, self.n_docs or None)

    def search(self, queries, top_k: int | None = None, *, subset=None, where: Callable[[dict], bool] | None = None,
               n_threads: int | None = None, show_progress: bool | None = None, include_text: bool = False,
               include_metadata: bool = False, **overrides: Any) -> SearchResults:
        """:meth:`gingham.Index.search` over every shard, merged: positions are merged positions (:meth:`locate`).
        ``subset`` (ids from any shard) and ``where`` restrict results, and ``include_text`` / ``include_metadata``
        add the hits' stored texts / metadata, as there.

        Shards are searched at once in threads (the kernels release the GIL), sharing ``n_threads`` (default:
        numba's) for their queries; an exhaustive search runs the shards one after another, each over all threads.
        """
        k = self._top_k(top_k)
        q_flat, q_offsets, _ = validation.queries(queries, self.dim)
        qs = [q_flat[q_offsets[i]:q_offsets[i + 1]] for i in range(len(q_offsets) - 1)]
        live = [s for s in self.shards if s.n_docs]
        subsets = split_subset(subset, live)
        live = [s for s in live if subsets is None or subsets[id(s)]]

        fan_out = not overrides.get("exhaustive") and len(live) > 1
        # the threads shared out: each shard spreads its queries over its share (an exhaustive search, one shard
        # at a time, over all of them)
        per_shard = _share(n_threads, len(live)) if fan_out else n_threads

        def one(shard) -> SearchResults:
            return shard.search(qs, min(k, shard.n_docs), subset=None if subsets is None else subsets[id(shard)],
                                where=where, n_threads=per_shard, show_progress=show_progress,
                                include_text=include_text, include_metadata=include_metadata, **overrides)

        if not fan_out:
            answers = [one(s) for s in live]
        else:
            with ThreadPoolExecutor(len(live), thread_name_prefix="gingham-shard") as pool:
                answers = list(pool.map(one, live))
        all_bases = dict(zip(map(id, self.shards), self.bases()))
        bases = [all_bases[id(s)] for s in live]
        kind = self.shards[0].manifest["doc_id_kind"]
        extras = {name: [getattr(a, name) for a in answers] for name, wanted in
                  (("texts", include_text), ("metadata", include_metadata)) if wanted}
        return merge([(a.positions, a.scores, a.ids) for a in answers], bases, k, len(qs), kind, extras)

    def search_text(self, queries: str | Sequence[str], top_k: int | None = None, *, encoder=None,
                    **kwargs: Any) -> SearchResults:
        """Encode text queries once (with the shards' encoder, or ``encoder``) and :meth:`search`."""
        texts = validation.texts([queries] if isinstance(queries, str) else queries, "query")
        if encoder is None:
            infos = {json.dumps(s.manifest.get("encoder"), sort_keys=True) for s in self.shards}
            if len(infos) > 1:
                raise ValueError("the shards were built with different encoders; pass encoder= to search them "
                                 "with one")
            encoder = self.shards[0].encoder
        if encoder.dim != self.dim:
            raise ValueError(f"the encoder makes {encoder.dim}-dim vectors but the shards hold {self.dim}-dim ones")
        return self.search(encoder.encode_queries(texts), top_k, **kwargs)

    # ---------------------------------------------------------------------------------------------- documents
    def shard_of(self, doc: Any) -> int:
        """The number of the shard holding live document ``doc`` (KeyError if none does)."""
        for i, s in enumerate(self.shards):
            if doc in s:
                return i
        raise KeyError(f"document id {doc!r} is in none of the {len(self.shards)} shards")

    def text(self, doc: Any) -> str | None:
        return self.shards[self.shard_of(doc)].text(doc)

    def metadata(self, doc: Any) -> dict | None:
        return self.shards[self.shard_of(doc)].metadata(doc)


def _share(n_threads: int | None, n_shards: int) -> int:
    """Threads for each of ``n_shards`` shards searched at once, out of ``n_threads`` (default: numba's)."""
    if n_threads is None:
        import numba

        n_threads = numba.get_num_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    return max(1, n_threads // n_shards)


# ================================================================================================== merging
def shard_bases(n_positions: Sequence[int]) -> np.ndarray:
    """Merged position of each shard's first document (int64)."""
    return np.concatenate([[0], np.cumsum(n_positions, dtype=np.int64)[:-1]]).astype(np.int64)


def merge(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], bases: Sequence[int], k: int, n_queries: int,
          id_kind: str, extras: Mapping[str, Sequence[np.ndarray]] | None = None) -> SearchResults:
    """One top-``k`` per query from each shard's (positions, scores, ids), best score first; ties: the lower merged
    position (earlier shard, then lower position in it) first. Gaps (-1 positions) are dropped, then padded.
    ``extras``: the hits' ``"texts"`` / ``"metadata"``, one array per shard shaped like its ids, merged alike."""
    extras = extras or {}
    more = {name: np.full((n_queries, k), None, dtype=object) for name in extras}
    out_pos = np.full((n_queries, k), -1, dtype=np.int64)
    out_sc = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_ids = np.full((n_queries, k), -1, dtype=np.int64) if id_kind == "int" else np.full((n_queries, k), None,
                                                                                           dtype=object)
    if parts:
        pos = np.concatenate([np.where(p >= 0, p + b, -1) for (p, _, _), b in zip(parts, bases)], axis=1)
        sc = np.concatenate([s for _, s, _ in parts], axis=1)
        ids = np.concatenate([np.asarray(i, dtype=out_ids.dtype) for _, _, i in parts], axis=1)
        found = {name: np.concatenate([np.asarray(a, dtype=object) for a in arrays], axis=1)
                 for name, arrays in extras.items()}
        for r in range(n_queries):
            keep = np.flatnonzero(pos[r] >= 0)
            order = keep[np.lexsort((pos[r, keep], -sc[r, keep]))][:k]
            out_pos[r, :len(order)] = pos[r, order]
            out_sc[r, :len(order)] = sc[r, order]
            out_ids[r, :len(order)] = ids[r, order]
            for name, out in more.items():
                out[r, :len(order)] = found[name][r, order]
    return SearchResults(positions=out_pos, scores=out_sc, ids=out_ids, texts=more.get("texts"),
                         metadata=more.get("metadata"))


# ================================================================================================== checks
def split_subset(subset, shards: Sequence) -> dict[int, list] | None:
    """The ids of ``subset`` each shard holds (by ``id(shard)``); KeyError for an id no shard holds."""
    if subset is None:
        return None
    if isinstance(subset, (str, bytes)):
        raise ValueError("subset must be a list of ids, not a single string")
    wanted = list(subset)
    out = {id(s): [doc for doc in wanted if doc in s] for s in shards}
    found = sum(len(v) for v in out.values())
    if found < len(set(wanted)):
        held = {doc for v in out.values() for doc in v}
        missing = next(doc for doc in wanted if doc not in held)
        raise KeyError(f"subset id {missing!r} is in none of the {len(shards)} shards")
    return out


def codebook_digest(manifest: dict) -> tuple:
    """What makes two indexes' codes interchangeable: their codebook arrays' checksums and nbits."""
    files = manifest["files"]
    names = CODEBOOK_ARRAYS + ("centroid_scales", "sub_centroids", "residual_scales", "coarse_centroids")
    return tuple(files[n]["sha256"] for n in names if n in files) + (manifest["nbits"], manifest.get("normalized"),
                                                                    manifest.get("assign_nprobe", 0))


def describe_mismatch(shards: Sequence) -> None:
    """ValueError unless the shards hold vectors of one dim and ids of one kind."""
    first = shards[0]
    for s in shards[1:]:
        if s.dim != first.dim:
            raise ValueError(f"shard {s.path} holds {s.dim}-dim vectors but shard {first.path} holds {first.dim}-dim "
                             "ones; shards of one ShardedIndex must come from one encoder")
        if s.manifest["doc_id_kind"] != first.manifest["doc_id_kind"]:
            raise ValueError(f"shard {s.path} uses {s.manifest['doc_id_kind']} ids but shard {first.path} uses "
                             f"{first.manifest['doc_id_kind']} ids; use one kind of id in every shard")


def check_unique_ids(id_lists: Sequence[Sequence], names: Sequence[str]) -> None:
    """ValueError naming an id held by two shards (and the shards)."""
    seen: dict[Any, int] = {}
    for i, ids in enumerate(id_lists):
        for doc in ids:
            j = seen.setdefault(doc, i)
            if j != i:
                raise ValueError(f"document id {doc!r} is in shard {names[j]} and in shard {names[i]}; ids must be "
                                 "unique across shards (delete one copy, or give the shards disjoint ids)")


# ================================================================================================== shard sets
def write_shard_set(folder: PathLike, shards: Sequence[PathLike]) -> Path:
    """Write ``folder/shards.json`` naming the shard folders (relative to ``folder`` when inside it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for p in shards:
        p = Path(p).absolute()
        try:
            names.append(str(p.relative_to(folder.absolute())))
        except ValueError:
            names.append(str(p))
    target = folder / SHARDS_FILE
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"format": "gingham-shards", "format_version": SHARD_SET_FORMAT, "shards": names},
                              indent=2))
    os.replace(tmp, target)
    return target


def shard_paths(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """Shard folders from a list of index folders, a shard-set folder, or its ``shards.json``."""
    if isinstance(paths, (str, os.PathLike)):
        root = Path(paths)
        spec = root if root.name == SHARDS_FILE else root / SHARDS_FILE
        if not spec.is_file():
            raise FileNotFoundError(f"{spec} does not exist: give a folder written by write_shard_set (or "
                                    "build_shards), or a list of index folders")
        record = json.loads(spec.read_text())
        if record.get("format") != "gingham-shards" or record.get("format_version") != SHARD_SET_FORMAT:
            raise ValueError(f"{spec} is not a gingham shard set of format version {SHARD_SET_FORMAT}")
        return [spec.parent / p for p in record["shards"]]
    out = [Path(p) for p in paths]
    if not out:
        raise ValueError("no shard folders given")
    return out

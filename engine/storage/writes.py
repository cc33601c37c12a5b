"""The write path: how documents get into an index, for every verb that writes them.

Each write goes the same four steps: **validate** the caller's documents (:func:`documents`, :func:`check_packable`),
**compress** them with a codebook (:func:`compress`; trained for a new index), lay them out as a **segment**'s arrays
(:func:`gingham.storage.segment.segment_arrays`), and **commit** a generation (:mod:`gingham.storage.commits`):

- a new index, or a rebuilt one, is a first generation of one segment (:func:`first_generation`, :func:`create`;
  :mod:`gingham.storage.rebuild`);
- :meth:`gingham.Index.add` / ``upsert`` and each chunk of a streaming build add a segment to the newest state
  (:class:`AddDocuments`, :func:`save_segment`);
- :meth:`gingham.Index.compact` and the end of a streaming build merge every segment's live documents into one
  (:func:`compact`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from gingham._version import __version__
from gingham.codec.residual import ResidualCodec, codes_dtype
from gingham.codec.training import compress_all, reconstruction_mse, train_codec
from gingham.common import progress, validation
from gingham.common.config import BuildConfig
from gingham.common.ids import DocIds
from gingham.storage import disk
from gingham.storage.commits import (
    check_target,
    codebook_id,
    commit_arrays,
    merged_mse,
    next_segment,
    now,
    read_if_any,
    write_deletions,
)
from gingham.storage.segment import Snapshot, segment_arrays

log = logging.getLogger(__name__)

#: Codebook drift (mean squared reconstruction error of added tokens over that of the build's held-out tokens)
#: above which the index recommends :meth:`gingham.Index.rebuild`.
DRIFT_WARNING = 1.5
#: ... once the drift is measured on at least this many added tokens. Below, it mostly measures the baseline's
#: own small sample (a fifth of a small build's tokens). Adding documents drawn like the build's (synthetic
#: tokens, dim 32, 5 seeds) read drift 1.5-2.5 on builds of ~130 tokens, 0.9-1.7 on ~600 and 0.9-1.1 on ~6,000,
#: however few or many were added; on a build of 30,000 tokens (passages of ~100 correlated tokens, dim 64, 8
#: seeds) one added passage read 0.97-1.03, as fifty did: there a few documents read true, but however badly
#: they fit they do not justify re-clustering the whole index. From ~600 added tokens a build of ~600 read
#: 1.17-1.30, under the warning. Past 1,024 added tokens (about ten passages) a still smaller build does warn: a
#: rebuild then re-clusters several times the tokens it was trained on, worth it anyway.
DRIFT_MIN_TOKENS = 1024


# ------------------------------------------------------------------------------------------------- validate
@dataclass(frozen=True)
class Documents:
    """Documents checked for writing: flat float32 tokens, int64 offsets, ids, optional texts and metadata."""

    flat: np.ndarray
    doc_offsets: np.ndarray
    ids: DocIds
    texts: list[str] | None
    metadata: list | None

    @property
    def n_docs(self) -> int:
        return len(self.doc_offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.doc_offsets[-1])


def documents(embeddings, lengths, doc_ids, texts, metadata, *, dim: int | None = None,
              id_kind: str | None = None) -> Documents:
    """The caller's documents checked (:mod:`gingham.common.validation`): ``dim`` and ``id_kind`` those of the
    index they go into, None for a new one."""
    flat, doc_offsets = validation.documents(embeddings, lengths, dim=dim)
    n_docs = len(doc_offsets) - 1
    ids = DocIds.from_user(doc_ids, n_docs)
    check_id_kind(ids.kind, id_kind)
    texts, metadata = check_extras(texts, metadata, n_docs)
    return Documents(flat, doc_offsets, ids, texts, metadata)


def check_id_kind(kind: str, index_kind: str | None) -> None:
    if index_kind is not None and kind != index_kind:
        raise ValueError(f"this index uses {index_kind} ids; got {kind} ids")


def check_extras(texts, metadata, n_docs: int):
    """Stored texts (str, blank allowed) and metadata dicts, one per document."""
    if texts is not None:
        texts = validation.texts(texts, "text", n=n_docs, allow_blank=True)
    if metadata is not None:
        metadata = validation.metadata(metadata, n_docs)
    return texts, metadata


def check_packable(dim: int, nbits: int) -> None:
    """Residuals of ``dim`` dimensions at ``nbits`` bits each must fill whole bytes."""
    if (dim * nbits) % 8:
        raise ValueError(f"dim {dim} times nbits {nbits} must be a multiple of 8 to pack residuals into bytes")


# ------------------------------------------------------------------------------------------------- compress
def compress(codec: ResidualCodec, flat: np.ndarray, batch_size: int, show_progress,
             codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Codes, packed residuals and reconstruction error (the drift measure) of ``flat`` under ``codec``."""
    codes, residuals = compress_all(codec, flat, batch_size, show_progress, codes=codes)
    return codes, residuals, reconstruction_mse(codec, flat, codes, residuals)


# ------------------------------------------------------------------------------------------------- commit
def new_manifest(cfg: BuildConfig, codec: ResidualCodec, dim: int, doc_id_kind: str, codec_mse: float,
                 encoder: Mapping[str, Any] | None, search_defaults: Mapping[str, Any] | None = None) -> dict:
    """The manifest of an index compressed with ``codec`` that holds no segment yet."""
    return {
        "engine_version": __version__,
        "created": now(),
        "build_config": cfg.to_dict(),
        "search_defaults": dict(search_defaults or {}),
        "dim": dim,
        "dtype": "float32",
        "nbits": cfg.nbits,
        "n_centroids": codec.n_centroids,
        "codes_dtype": np.dtype(codes_dtype(codec.n_codes)).name,
        "doc_id_kind": doc_id_kind,
        "codec_mse": codec_mse,
        "residual_quantizer": codec.fit_report,
        "normalized": codec.normalize,
        "assign_nprobe": codec.assign_nprobe,
        "encoder": dict(encoder) if encoder else None,
        "next_segment": 1,
        "segments": [],
    }


def save_segment(writer: disk.GenerationWriter, manifest: dict, name: str, arrays: Mapping[str, np.ndarray],
                 n_docs: int, n_tokens: int, mse: float | None) -> None:
    """Write a new segment's ``arrays`` as segment ``name`` (from :func:`next_segment`) and list it."""
    for key, arr in arrays.items():
        writer.save(f"{name}/{key}", arr)
    manifest["segments"].append({"name": name, "n_docs": n_docs, "n_tokens": n_tokens, "mse": mse})


def first_generation(manifest: dict, codec: ResidualCodec, codes: np.ndarray, residuals: np.ndarray,
                     doc_offsets: np.ndarray, ids: DocIds, texts, metadata) -> dict[str, np.ndarray]:
    """The arrays of an index whose documents are one segment (listed in ``manifest``, from :func:`new_manifest`),
    with its codebook: what :func:`create` and :func:`gingham.storage.rebuild.rebuild` commit."""
    name = next_segment(manifest)
    arrays = {f"{name}/{k}": v for k, v in segment_arrays(codec, codes, residuals, doc_offsets, ids, texts,
                                                          metadata).items()}
    manifest["segments"].append({"name": name, "n_docs": len(doc_offsets) - 1, "n_tokens": int(doc_offsets[-1]),
                                 "mse": None})
    arrays.update(codec.arrays())
    return arrays


def create(root: Path, docs: Documents, cfg: BuildConfig, codec: ResidualCodec | None, *, overwrite: bool,
           encoder: Mapping[str, Any] | None, show_progress,
           measure: Callable[[Snapshot], dict] | None = None) -> None:
    """Write a new index of ``docs`` at ``root``: compressed with ``codec``, or with a codebook trained on them.
    ``measure`` (calibration) runs on the new arrays before they are committed, and its record is committed
    with them (one commit holds both)."""
    dim = docs.flat.shape[1]
    check_packable(dim, cfg.nbits)
    check_target(root, overwrite)
    if codec is None:
        codec, codec_mse, all_codes = train_codec(docs.flat, cfg, show_progress)
        codes, residuals, _ = compress(codec, docs.flat, cfg.batch_size, show_progress, codes=all_codes)
    else:
        if codec.dim != dim:
            raise ValueError(f"codec= holds {codec.dim}-dim centroids but the embeddings are {dim}-dim")
        # the drift baseline: how well this codebook fits these documents (it was not fitted to them)
        codes, residuals, codec_mse = compress(codec, docs.flat, cfg.batch_size, show_progress)
    manifest = new_manifest(cfg, codec, dim, docs.ids.kind, codec_mse, encoder)
    with progress.bar(1, "index", show_progress) as bar:
        arrays = first_generation(manifest, codec, codes, residuals, docs.doc_offsets, docs.ids, docs.texts,
                                  docs.metadata)
        bar.update(1)
    if measure is not None:
        manifest["calibration"] = measure(Snapshot({**manifest, "generation": 0, "files": {}}, arrays))
    root.mkdir(parents=True, exist_ok=True)
    with disk.write_lock(root):
        commit_arrays(root, read_if_any(root), manifest, arrays, keep={})


class AddDocuments:
    """The change that adds ``docs`` as a new segment (:meth:`gingham.Index.add`; ``replace``: ``upsert``, whose
    live documents of the same ids are deleted in the same commit). They are compressed with the codebook of
    ``snap``, the writer's snapshot, before the write lock is taken, and again under it if another writer
    rebuilt the index meanwhile."""

    def __init__(self, docs: Documents, snap: Snapshot, batch_size: int, replace: bool, show_progress) -> None:
        self.docs, self.batch_size, self.replace = docs, batch_size, replace
        self.codebook = codebook_id(snap.manifest)
        self.codes, self.residuals, self.mse = compress(snap.codec, docs.flat, batch_size, show_progress)

    def __call__(self, snap: Snapshot, writer: disk.GenerationWriter, manifest: dict) -> None:
        docs = self.docs
        if codebook_id(snap.manifest) != self.codebook:
            # another writer rebuilt the index since the caller's snapshot: its codes would be wrong there
            self.codes, self.residuals, self.mse = compress(snap.codec, docs.flat, self.batch_size, False)
            self.codebook = codebook_id(snap.manifest)
        existing = snap.positions(docs.ids.to_list(), missing_ok=True)
        if len(existing) and not self.replace:
            dup = snap.take(existing[:1])[0]
            raise ValueError(f"document id {dup!r} is already in the index; use upsert() to replace it")
        has_texts = any(s.texts is not None for s in snap.segments)
        if snap.segments and (docs.texts is not None) != has_texts:
            raise ValueError("pass texts for every add, or for none: this index "
                             + ("stores" if has_texts else "does not store") + " texts")
        write_deletions(snap, writer, manifest, existing)
        arrays = segment_arrays(snap.codec, self.codes, self.residuals, docs.doc_offsets, docs.ids, docs.texts,
                                docs.metadata)
        save_segment(writer, manifest, next_segment(manifest), arrays, docs.n_docs, docs.n_tokens, self.mse)


def compact(snap: Snapshot, writer: disk.GenerationWriter, manifest: dict, show_progress) -> None:
    """The change that rewrites the live documents of every segment into one (same codebook), out of core
    (:func:`gingham.storage.compaction.merge_segments`), dropping the deleted ones and the old segments."""
    from gingham.storage.compaction import merge_segments

    for key in list(writer.files):
        if "/" in key:  # a segment's file
            writer.drop(key)
    name = next_segment(manifest)
    n_docs, n_tokens = merge_segments(snap, writer, name, show_progress)
    manifest["segments"] = [{"name": name, "n_docs": n_docs, "n_tokens": n_tokens,
                             "mse": merged_mse(snap.manifest)}] if n_docs else []


# ------------------------------------------------------------------------------------------------- drift
def codebook_drift(manifest: Mapping[str, Any]) -> float:
    """Reconstruction error of tokens added after the build, relative to the build's own (1.0 = as good)."""
    base = manifest.get("codec_mse") or 0.0
    added = [(s["mse"], s["n_tokens"]) for s in manifest["segments"] if s.get("mse") is not None]
    if not added or base <= 0:
        return 1.0
    return float(sum(m * n for m, n in added) / sum(n for _, n in added) / base)


def warn_if_drifted(manifest: Mapping[str, Any]) -> None:
    """Log a warning when the documents added since the build fit its codebook badly (see :data:`DRIFT_WARNING`)."""
    added = sum(s["n_tokens"] for s in manifest["segments"] if s.get("mse") is not None)
    if added >= DRIFT_MIN_TOKENS and codebook_drift(manifest) > DRIFT_WARNING:
        log.warning("codebook drift %.2f over %d added tokens: added documents fit the codebook badly; consider "
                    "index.rebuild()", codebook_drift(manifest), added)


def config_for_codec(cfg: BuildConfig, codec: ResidualCodec, nbits_given: bool) -> BuildConfig:
    """The build config of an index compressed with a given ``codec``: its nbits and codebook size."""
    if nbits_given and cfg.nbits != codec.nbits:
        raise ValueError(f"nbits={cfg.nbits} but codec= was trained with nbits={codec.nbits}; leave nbits out "
                         "or pass the codec's")
    return BuildConfig.from_dict({**cfg.to_dict(), "nbits": codec.nbits, "n_centroids": codec.n_centroids})


# ------------------------------------------------------------------------------------------------- before encoding
def precheck_create(root: Path, n_docs: int, doc_ids, metadata, overwrite: bool, options: Mapping[str, Any]) -> None:
    """What :func:`create` would refuse of a build from ``n_docs`` texts, refused before they are encoded (minutes
    to hours on a large corpus): the build options, the ids, the metadata and the target folder."""
    from gingham.common.config import resolve_build_config

    build = dict(options)
    config = build.pop("config", None)
    build.pop("codec", None)
    resolve_build_config(config, build)
    DocIds.from_user(doc_ids, n_docs)
    check_extras(None, metadata, n_docs)
    check_target(root, overwrite)


def precheck_add(snap: Snapshot, doc_ids, n_docs: int, metadata, upsert: bool) -> None:
    """What :class:`AddDocuments` would refuse of ``n_docs`` texts added to ``snap``, refused before they are
    encoded (the commit checks again, under the lock)."""
    ids = DocIds.from_user(doc_ids, n_docs)
    check_extras(None, metadata, n_docs)
    check_id_kind(ids.kind, snap.manifest["doc_id_kind"])
    existing = snap.positions(ids.to_list(), missing_ok=True)
    if len(existing) and not upsert:
        raise ValueError(f"document id {snap.take(existing[:1])[0]!r} is already in the index; pass "
                         "upsert=True (gingham add --upsert) to replace it")


# ------------------------------------------------------------------------------------------------- small changes
def delete(doc_ids: list, missing_ok: bool) -> Callable[[Snapshot, disk.GenerationWriter, dict], None]:
    """The change that deletes the live documents with (checked) caller ids ``doc_ids``."""

    def change(snap: Snapshot, writer: disk.GenerationWriter, manifest: dict) -> None:
        write_deletions(snap, writer, manifest, snap.positions(doc_ids, missing_ok=missing_ok))

    return change


def set_field(key: str, value: Any) -> Callable[[Snapshot, disk.GenerationWriter, dict], None]:
    """The change that sets the manifest's ``key`` (search defaults, a calibration record) to ``value``."""

    def change(snap: Snapshot, writer: disk.GenerationWriter, manifest: dict) -> None:
        manifest[key] = value

    return change

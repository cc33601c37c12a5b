"""An index's encoder: what :class:`gingham.Index` holds to encode texts the way its documents were encoded.

The index's manifest records the encoder (``{"model", "options", "config", "pooling"?}``, made by
:func:`encode_corpus`). :class:`EncoderHandle` loads it on first use (one load per handle, thread-safe), prefers
this machine's query pack for text queries (:mod:`gingham.encoder.light`, no torch), and warns when the installed
encoder's revision differs from the one that encoded the index.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping, Sequence

log = logging.getLogger(__name__)


class EncoderHandle:
    """The encoder recorded in an index's manifest (``info``), loaded on first use; ``where`` names the index."""

    def __init__(self, info: Mapping[str, Any] | None, where: Any, encoder=None):
        self.info, self.where = info, where
        self._documents = encoder  # the encoder that built the index, when this process built it
        self._queries = None
        self._lock = threading.Lock()

    def documents(self):
        """The encoder the index was built with (needs ``gingham[encoder]``)."""
        if self._documents is None:
            if not self.info:
                raise ValueError(
                    f"the index at {self.where} was built from embeddings, not texts, so it has no encoder; "
                    "search it with query embeddings, or pass an encoder to search_text"
                )
            from gingham.encoder import load_encoder
            from gingham.encoder.config import revision_mismatch

            with self._lock:
                if self._documents is None:
                    encoder = load_encoder(self.info["model"], **self.info.get("options", {}))
                    note = revision_mismatch(self.info, getattr(encoder.config, "revision", 1))
                    if note:
                        log.warning("%s: %s", self.where, note)
                    self._documents = encoder
        return self._documents

    def queries(self):
        """This machine's query pack for the index's model and settings when there is one and it applies, else
        :meth:`documents`."""
        if self._queries is None:
            from gingham.encoder.light import load_pack, pack_applies

            info = self.info
            pack = None
            if pack_applies(info):
                pack = load_pack(info["model"], info["config"], threads=(info.get("options") or {}).get("threads"))
            if pack is None:
                return self.documents()
            self._queries = pack
        return self._queries

    def revision_note(self) -> str | None:
        """Why text queries encoded now may not match the index's documents (encoder revision), or None."""
        from gingham.encoder.config import revision_mismatch

        return revision_mismatch(self.info)

    def checked(self, encoder, dim: int):
        """``encoder`` (default: :meth:`queries`), refused unless it makes ``dim``-dim vectors."""
        enc = encoder if encoder is not None else self.queries()
        if enc.dim != dim:
            raise ValueError(f"the encoder makes {enc.dim}-dim vectors but the index holds {dim}-dim ones")
        return enc


def encode_corpus(texts: Sequence[str], model: str, encoder_options: Mapping[str, Any] | None, pooling,
                  batch_size: int | None, show_progress) -> tuple[Any, list, dict[str, Any]]:
    """Load ``model`` and encode ``texts`` as documents, pooled as ``pooling`` says (an entry of
    :func:`gingham.encoder.pooling.pooling_entry`, or None). Returns (encoder, embeddings, the manifest's record)."""
    from gingham.common.config import jsonable
    from gingham.encoder import load_encoder
    from gingham.encoder.pooling import pool_as_recorded

    enc_opts = dict(encoder_options or {})
    encoder = load_encoder(model, **enc_opts)
    embeddings = encoder.encode_documents(texts, batch_size=batch_size, show_progress=show_progress)
    info = {"model": str(model), "options": enc_opts, "config": jsonable(encoder.config)}
    if pooling:
        info["pooling"] = pooling
        embeddings = pool_as_recorded(info, embeddings)
    return encoder, embeddings, info


def write_query_pack(encoder, info: Mapping[str, Any]) -> None:
    """Write the query pack for an index's encoder when it applies and can be written; never fails the build."""
    from gingham.encoder.light import can_write_packs, pack_applies, write_pack

    if not (pack_applies(info) and can_write_packs()):
        return
    try:
        if encoder.config.dtype != "float32" or getattr(encoder, "backend", "torch") != "torch":
            from gingham.encoder import load_encoder  # the pack is the float32 forward (dtype "auto" may be bf16)

            encoder = load_encoder(info["model"], **{**(info.get("options") or {}), "dtype": "float32",
                                                     "backend": "torch"})
        write_pack(encoder, info["model"], info["config"])
    except Exception as exc:  # noqa: BLE001 - the index is built; text queries still work through torch
        log.warning("could not write the query pack for %s (%s: %s); text queries are encoded with torch",
                    info["model"], type(exc).__name__, exc)

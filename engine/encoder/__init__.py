"""Gingham's text encoder: ColBERT / PyLate checkpoints (BERT, ModernBERT, LFM2) to per-token vectors.

Needs the ``encoder`` extra (torch, transformers); importing this package does not import torch.
"""

from __future__ import annotations

from .batcher import BatchingConfig, QueryBatcher
from .capability import cpu_capability, resolve_dtype
from .config import EncoderConfig

__all__ = ["BatchingConfig", "Encoder", "EncoderConfig", "QueryBatcher", "cpu_capability", "ensure_multilingual_e5",
           "load_encoder", "resolve_dtype"]


def __getattr__(name: str):
    if name in ("Encoder", "load_encoder"):
        from . import encoder

        return getattr(encoder, name)
    if name == "ensure_multilingual_e5":
        from .offline import ensure_multilingual_e5

        return ensure_multilingual_e5
    raise AttributeError(f"module 'gingham.encoder' has no attribute {name!r}")

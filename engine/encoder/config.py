"""Resolved settings of a late-interaction encoder (what the checkpoint says, overridden by the caller)."""

from __future__ import annotations

import string
from dataclasses import dataclass

#: ColBERT's and PyLate's default skiplist: every ASCII punctuation character.
PUNCTUATION: tuple[str, ...] = tuple(string.punctuation)

LAYOUTS = ("pylate", "stanford", "plain")

#: How Gingham turns token ids into vectors; recorded in an index's manifest (``encoder.config.revision``) so
#: that a query encoded differently from the index's documents is reported. Bump it whenever the vectors
#: of some checkpoint change.
#:
#: 1. (no ``revision`` in the manifest) query expansion with the mask token, else the pad token; LFM2's short
#:    convolutions zeroed at expansion positions; padded and expansion rows also attended to themselves.
#: 2. PyLate's rules: expansion and batch padding with the mask token, else EOS, else pad; expansion positions
#:    are part of the query for LFM2's convolutions; every row attends to the allowed keys only; texts are
#:    stripped of surrounding whitespace before tokenising (sentence-transformers does; Stanford layout excepted);
#:    the PyLate layout's skiplist words outside the vocabulary map to [UNK], as in PyLate.
ENCODER_REVISION = 2


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that decides which vectors a text becomes. Frozen; validated on construction.

    ``query_prefix`` / ``document_prefix`` are inserted as one token right after the first token
    (``[CLS]`` / BOS) when ``prefix_is_token`` says the tokenizer knows them as one token (PyLate's
    ``[Q] `` / ``[D] ``, Stanford ColBERT's ``[unused0]`` / ``[unused1]``); otherwise they are
    prepended to the text (sentence-transformers prompts such as e5's ``query: ``).
    """

    query_prefix: str = ""
    document_prefix: str = ""
    query_length: int = 32
    document_length: int = 180
    do_query_expansion: bool = False
    attend_to_expansion_tokens: bool = False
    skiplist_words: tuple[str, ...] = ()
    skiplist_ids: tuple[int, ...] = ()
    dim: int = 128
    normalize: bool = True
    layout: str = "plain"
    model_type: str = ""
    bidirectional: bool = True
    query_prefix_id: int | None = None
    document_prefix_id: int | None = None
    expansion_token_id: int | None = None
    dtype: str = "float32"
    device: str = "cpu"
    revision: int = ENCODER_REVISION

    def __post_init__(self) -> None:
        for name in ("query_length", "document_length", "dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EncoderConfig.{name} must be a positive int, got {value!r}")
        min_len = 3 if self.query_prefix_id is not None else 2
        if self.query_length < min_len:
            raise ValueError(
                f"EncoderConfig.query_length={self.query_length} leaves no room for text after the special "
                f"tokens; use query_length >= {min_len + 1}"
            )
        if self.layout not in LAYOUTS:
            raise ValueError(f"EncoderConfig.layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.dtype not in ("float32", "bfloat16", "float16", "int8"):
            raise ValueError(f"dtype must be 'float32', 'bfloat16', 'float16' or 'int8', got {self.dtype!r}")
        if self.do_query_expansion and self.expansion_token_id is None:
            raise ValueError(
                "do_query_expansion=True needs an expansion token, but the tokenizer has neither a mask nor a "
                "pad token; pass do_query_expansion=False or use a tokenizer with a [MASK] or pad token"
            )
        object.__setattr__(self, "skiplist_words", tuple(self.skiplist_words))
        object.__setattr__(self, "skiplist_ids", tuple(sorted(set(int(i) for i in self.skiplist_ids))))


def revision_mismatch(recorded: dict | None, current: int = ENCODER_REVISION) -> str | None:
    """Why queries encoded now may not match an index's documents, or None.

    ``recorded``: the manifest's ``encoder`` entry (``{"model", "options", "config"}``); an index built before
    revisions were recorded was built by revision 1. None for an index built from embeddings.
    """
    if not recorded:
        return None
    config = recorded.get("config") or {}
    built = int(config.get("revision", 1))
    if built == int(current):
        return None
    return (
        f"the index's documents were encoded by Gingham's encoder revision {built} and queries are now encoded by "
        f"revision {current}; from revision 1 to 2 the vectors changed for LFM2 checkpoints and for tokenizers "
        "without a mask token (query expansion with EOS, PyLate's rules), and for texts with surrounding whitespace "
        "under byte-level or sentencepiece tokenizers (now stripped), so scores may shift; re-encode the "
        "documents (build the index again from its texts) to remove the mismatch"
    )

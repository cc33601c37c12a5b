"""Token-level explanations of a MaxSim score: for each query token, the document token it matched best, with
what score, and where both tokens are in their texts.

The document side is the index's own: its compressed tokens, decompressed (the codec's approximation of the vectors
that were added), so the explanation adds up to the score the index ranks by, not to the score of the original
vectors. Text spans come from the encoder's tokenizer (``return_offsets_mapping``), called exactly as
:meth:`gingham.encoder.Encoder.tokenize` calls it and checked against it token by token; the kept tokens are then
chosen as the encoder chooses the vectors it keeps (prefix token inserted after the first one, skiplist tokens
dropped from documents, query expansion tokens appended), so that token ``i`` is vector ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: What :attr:`Explanation.source` says: where the document vectors of an explanation come from.
SOURCE = "decompressed: the index's compressed document tokens, decoded (not the original vectors)"

TEXT, SPECIAL, PREFIX, EXPANSION = "text", "special", "prefix", "expansion"


@dataclass(frozen=True)
class Tokens:
    """The tokens behind a text's vectors, one per vector, in order.

    labels: the tokenizer's token strings (``▁Eiffel``, ``[CLS]``...).
    spans: (start, end) character offsets into the text, leading/trailing whitespace trimmed; None for a token
        with no text of its own (special, prefix or expansion tokens).
    kinds: ``text``, ``special`` (CLS, SEP, BOS...), ``prefix`` (the query / document prefix) or ``expansion``
        (the mask tokens a query is padded with).
    """

    labels: tuple[str, ...]
    spans: tuple[tuple[int, int] | None, ...]
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def align(encoder, text: str, *, is_query: bool) -> Tokens:
    """The tokens of ``text`` whose vectors ``encoder`` keeps, one per vector (see the module's docstring)."""
    c = encoder.config
    tok = encoder.tokenizer
    if not getattr(tok, "is_fast", False):
        raise ValueError("token spans need a fast (Rust) tokenizer, which returns character offsets; this encoder's "
                         f"tokenizer is {type(tok).__name__}. Explanations from embeddings still work without spans")
    prefix = c.query_prefix if is_query else c.document_prefix
    prefix_id = c.query_prefix_id if is_query else c.document_prefix_id
    limit = c.query_length if is_query else c.document_length
    shift = len(prefix) if (prefix_id is None and prefix) else 0
    full = (prefix + text) if shift else text
    max_length = limit - 1 if prefix_id is not None else limit
    enc = tok([full], add_special_tokens=True, truncation=True, max_length=max_length, padding=False,
              return_attention_mask=False, return_offsets_mapping=True)
    ids = [int(i) for i in enc["input_ids"][0]]
    offsets = [tuple(map(int, o)) for o in enc["offset_mapping"][0]]
    special = set(getattr(tok, "all_special_ids", ()) or ())
    kinds, spans = [], []
    for tid, (a, b) in zip(ids, offsets):
        if tid in special or a == b:
            kinds.append(SPECIAL)
            spans.append(None)
        elif b <= shift:
            kinds.append(PREFIX)
            spans.append(None)
        else:
            kinds.append(TEXT)
            spans.append(_trim(text, max(a - shift, 0), b - shift))
    if prefix_id is not None:  # inserted as one token after the first, as the encoder does
        ids[1:1], kinds[1:1], spans[1:1] = [int(prefix_id)], [PREFIX], [None]
    expected = [int(i) for i in encoder.tokenize([text], is_query=is_query)[0]]
    if ids != expected:
        raise RuntimeError(
            "the explanation's tokenisation no longer matches the encoder's (gingham.encoder.Encoder.tokenize "
            "changed): token spans would point at the wrong text; update gingham.search.explain.align to match")
    labels = list(tok.convert_ids_to_tokens(ids))
    if is_query and c.do_query_expansion:
        n_expand = max(0, c.query_length - len(ids))
        label = tok.convert_ids_to_tokens([c.expansion_token_id])[0] if c.expansion_token_id is not None else "[MASK]"
        labels += [label] * n_expand
        kinds += [EXPANSION] * n_expand
        spans += [None] * n_expand
    elif not is_query and c.skiplist_ids:
        skip = set(int(i) for i in c.skiplist_ids)
        keep = [i for i, tid in enumerate(ids) if tid not in skip]
        labels, kinds, spans = [labels[i] for i in keep], [kinds[i] for i in keep], [spans[i] for i in keep]
    return Tokens(tuple(labels), tuple(spans), tuple(kinds))


def _trim(text: str, a: int, b: int) -> tuple[int, int] | None:
    """``(a, b)`` without the whitespace at its ends (sentencepiece offsets include the space before a word)."""
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if a < b else None


def best_matches(query: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query token, the document token of highest dot product (the first on ties) and that product:
    (int64 (n_query_tokens,), float32 (n_query_tokens,)). Their sum is the MaxSim score."""
    sims = query.astype(np.float32) @ doc.astype(np.float32).T
    best = np.argmax(sims, axis=1).astype(np.int64)
    return best, sims[np.arange(len(best)), best].astype(np.float32)


@dataclass(frozen=True)
class Explanation:
    """Why a document scored what it did against a query: one match per query token.

    doc_token: int64 (n_query_tokens,), the index of the document token each query token matched best.
    token_scores: float32 (n_query_tokens,), that match's dot product; ``score`` is their sum (MaxSim).
    query_tokens / doc_tokens: the tokens behind the vectors, with text spans (None when the query was given as
        embeddings, or the index stores no texts or no encoder).
    source: where the document vectors come from (always the index's decompressed tokens: :data:`SOURCE`).
    """

    doc_id: Any
    score: float
    doc_token: np.ndarray
    token_scores: np.ndarray
    query_text: str | None = None
    doc_text: str | None = None
    query_tokens: Tokens | None = None
    doc_tokens: Tokens | None = None
    source: str = SOURCE

    def matches(self) -> list[dict[str, Any]]:
        """One dict per query token, in query order: the two tokens (index, label, kind, span, text) and the score."""
        out = []
        for i, (j, s) in enumerate(zip(self.doc_token.tolist(), self.token_scores.tolist())):
            row: dict[str, Any] = {"query_token": i, **_side("query", self.query_tokens, self.query_text, i),
                                   "doc_token": j, **_side("doc", self.doc_tokens, self.doc_text, j), "score": s}
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: id, score, source and :meth:`matches`."""
        return {"id": self.doc_id, "score": self.score, "source": self.source, "matches": self.matches()}

    def highlighted_spans(self, min_score: float | None = None) -> list[tuple[int, int, float]]:
        """(start, end, best score) of the document text's spans that a query *text* token matched best (at least
        ``min_score``), in text order, neighbouring tokens of one word merged."""
        if self.doc_tokens is None or self.doc_text is None:
            return []
        best: dict[int, float] = {}
        for i, (j, s) in enumerate(zip(self.doc_token.tolist(), self.token_scores.tolist())):
            if self.query_tokens is not None and self.query_tokens.kinds[i] != TEXT:
                continue
            if min_score is not None and s < min_score:
                continue
            if self.doc_tokens.spans[j] is not None:
                best[j] = max(best.get(j, -np.inf), s)
        spans = sorted((self.doc_tokens.spans[j][0], self.doc_tokens.spans[j][1], s) for j, s in best.items())
        merged: list[list] = []
        for a, b, s in spans:
            if merged and a <= merged[-1][1]:  # touching pieces of one word
                merged[-1][1] = max(merged[-1][1], b)
                merged[-1][2] = max(merged[-1][2], s)
            else:
                merged.append([a, b, s])
        return [(a, b, s) for a, b, s in merged]

    def highlight(self, color: bool = True, min_score: float | None = None) -> str:
        """The document text with its best-matched spans marked: bold yellow (ANSI) or ``**...**``."""
        if self.doc_text is None:
            return ""
        on, off = ("\x1b[1;33m", "\x1b[0m") if color else ("**", "**")
        out, at = [], 0
        for a, b, _ in self.highlighted_spans(min_score):
            out += [self.doc_text[at:a], on, self.doc_text[a:b], off]
            at = b
        out.append(self.doc_text[at:])
        return "".join(out)

    def report(self, color: bool = True, indent: str = "") -> str:
        """A few lines for a terminal: the highlighted document text, then each query text token with the document
        token it matched and the score, then what the score is made of."""
        on, off = ("\x1b[1;33m", "\x1b[0m") if color else ("", "")
        lines = [self.highlight(color)] if self.doc_text is not None else []
        rows = [m for m in self.matches() if m["query_kind"] in (TEXT, None)]
        if rows:
            q = [m["query_text"] or m["query"] or f"#{m['query_token']}" for m in rows]
            d = [m["doc_text"] or m["doc"] or f"#{m['doc_token']}" for m in rows]
            wq, wd = max(11, *map(len, q)), max(14, *map(len, d))
            lines.append(f"{'query token':<{wq}}  {'document token':<{wd}}  score")
            for qt, dt, m in zip(q, d, rows):
                lines.append(f"{qt:<{wq}}  {on}{dt:<{wd}}{off}  {m['score']:.3f}")
        other = len(self.token_scores) - len(rows)
        lines.append(f"MaxSim {self.score:.3f} = the sum over {len(self.token_scores)} query tokens"
                     + (f" ({other} special/prefix/expansion tokens not listed)" if other else "")
                     + "; document tokens decompressed from the compressed index")
        return "\n".join(indent + line for line in lines)


def _side(name: str, tokens: Tokens | None, text: str | None, i: int) -> dict[str, Any]:
    if tokens is None:
        return {name: None, f"{name}_kind": None, f"{name}_span": None, f"{name}_text": None}
    span = tokens.spans[i]
    return {name: tokens.labels[i], f"{name}_kind": tokens.kinds[i], f"{name}_span": list(span) if span else None,
            f"{name}_text": text[span[0]:span[1]] if span and text is not None else None}


def explain(doc_id: Any, query_vectors: np.ndarray, doc_vectors: np.ndarray, *, encoder=None,
            query_text: str | None = None, doc_text: str | None = None) -> Explanation:
    """The explanation of ``doc_id``'s score for a query. ``query_vectors`` (n_q, dim) and ``doc_vectors`` (the
    index's decompressed tokens) are checked by the caller; with an ``encoder``, the texts given are aligned to
    the vectors (a count that disagrees is an error: the vectors were made another way)."""
    best, scores = best_matches(query_vectors, doc_vectors)
    q_tokens = d_tokens = None
    if encoder is not None and query_text is not None:
        q_tokens = align(encoder, query_text, is_query=True)
        _check_count(q_tokens, query_vectors, "query", "encoded with the same encoder")
    if encoder is not None and doc_text is not None:
        d_tokens = align(encoder, doc_text, is_query=False)
        _check_count(d_tokens, doc_vectors, f"document {doc_id!r}",
                     "in the index; was it added as embeddings made another way, or by another encoder version?")
    return Explanation(doc_id=doc_id, score=float(scores.sum(dtype=np.float64)), doc_token=best,
                       token_scores=scores, query_text=query_text, doc_text=doc_text, query_tokens=q_tokens,
                       doc_tokens=d_tokens)


def _check_count(tokens: Tokens, vectors: np.ndarray, what: str, hint: str) -> None:
    if len(tokens) != len(vectors):
        raise ValueError(f"the {what} has {len(vectors)} vectors but its text gives {len(tokens)} tokens "
                         f"{hint}; token spans cannot be aligned. Explain with embeddings alone, or re-add it "
                         "from its text")


__all__ = ["Explanation", "SOURCE", "Tokens", "align", "best_matches", "explain"]

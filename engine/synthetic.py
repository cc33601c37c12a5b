"""Seeded synthetic corpora of clustered, L2-normalised token vectors, for tests and benchmarks.

The generator imitates what makes late-interaction data hard to compress and search: tokens are drawn from a
vocabulary of "word" vectors that cluster by topic, documents mix a few topics and vary in length, and every
occurrence of a word is perturbed (contextualisation). Queries are derived from a target document: a subset of its
tokens, perturbed further, so each query has a known target and realistic near-misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SyntheticCorpus:
    tokens: np.ndarray  # (n_tokens, dim) float32, L2-normalised
    lengths: np.ndarray  # (n_docs,) int64
    offsets: np.ndarray  # (n_docs + 1,) int64

    @property
    def n_docs(self) -> int:
        return len(self.lengths)

    def doc(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]

    def docs(self) -> list[np.ndarray]:
        return [self.doc(i) for i in range(self.n_docs)]


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_corpus(
    n_docs: int,
    dim: int = 128,
    mean_length: int = 120,
    n_topics: int = 512,
    vocab_size: int = 32_768,
    topic_spread: float = 0.5,
    context_noise: float = 0.25,
    seed: int = 0,
) -> SyntheticCorpus:
    """A corpus of ``n_docs`` documents with lognormal lengths around ``mean_length`` (at least 4 tokens)."""
    rng = np.random.default_rng(seed)
    topics = _normalise(rng.standard_normal((n_topics, dim)))
    word_topic = rng.integers(0, n_topics, vocab_size)
    words = _normalise(topics[word_topic] + topic_spread * _normalise(rng.standard_normal((vocab_size, dim))))
    topic_words = [np.flatnonzero(word_topic == t) for t in range(n_topics)]
    lengths = np.clip(rng.lognormal(np.log(mean_length) - 0.125, 0.5, n_docs), 4, 8 * mean_length).astype(np.int64)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.empty((int(offsets[-1]), dim), dtype=np.float32)
    for d in range(n_docs):
        n_doc_topics = rng.integers(1, 4)
        doc_topics = rng.choice(n_topics, n_doc_topics, replace=False)
        pool = np.concatenate([topic_words[t] for t in doc_topics])
        if len(pool) == 0:
            pool = np.arange(vocab_size)
        # Zipf-like reuse of a document's words
        weights = 1.0 / np.arange(1, len(pool) + 1)
        ids = rng.choice(rng.permutation(pool), lengths[d], p=weights / weights.sum())
        noise = rng.standard_normal((lengths[d], dim)).astype(np.float32)
        tokens[offsets[d]:offsets[d + 1]] = _normalise(words[ids] + context_noise * _normalise(noise))
    return SyntheticCorpus(tokens=tokens, lengths=lengths, offsets=offsets)


def make_queries(
    corpus: SyntheticCorpus,
    n_queries: int,
    query_length: int = 32,
    noise: float = 0.35,
    seed: int = 1,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Queries derived from random target documents. Returns (queries, target document positions)."""
    rng = np.random.default_rng(seed)
    targets = rng.choice(corpus.n_docs, n_queries, replace=n_queries > corpus.n_docs)
    queries = []
    for t in targets:
        doc = corpus.doc(int(t))
        n_from_doc = max(1, min(len(doc), query_length // 2))
        picked = doc[rng.choice(len(doc), n_from_doc, replace=False)]
        # the rest of the query length: perturbed copies of the picked tokens (like query-expansion tokens)
        extra = picked[rng.integers(0, n_from_doc, query_length - n_from_doc)]
        q = np.concatenate([picked, extra]) if len(extra) else picked
        q = q + noise * _normalise(rng.standard_normal(q.shape))
        queries.append(_normalise(q))
    return queries, targets.astype(np.int64)

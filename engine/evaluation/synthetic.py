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


# ------------------------------------------------------------------------------------------------ hard corpus
def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return w / w.sum()


def _sample(rng: np.random.Generator, cdf: np.ndarray, size) -> np.ndarray:
    """Indices drawn from the distribution whose cumulative sum is ``cdf`` (inverse-CDF sampling)."""
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1)


def make_hard_corpus(
    n_docs: int,
    dim: int = 128,
    *,
    n_topics: int = 256,
    words_per_topic: int = 128,
    shared_weight: float = 0.11,
    topic_spread: float = 0.6,
    context_noise: float = 0.35,
    topic_exponent: float = 1.0,
    word_exponent: float = 1.0,
    max_doc_topics: int = 4,
    n_stop_words: int = 64,
    stop_fraction: float = 0.2,
    length_mu: float = 4.67,
    length_sigma: float = 0.5,
    min_length: int = 30,
    max_length: int = 300,
    seed: int = 0,
) -> SyntheticCorpus:
    """A corpus built so that the exact top 10 of a query are close neighbours (small score gaps at rank 10/11).

    Topic centres share a mean direction (``shared_weight``: the squared cosine of a centre with it), so random
    tokens are not orthogonal; topic popularity is Zipf (``topic_exponent``), so many documents share the popular
    topics; each document mixes 1..``max_doc_topics`` topics with Dirichlet weights, its words Zipf within a topic
    (``word_exponent``), and ``stop_fraction`` of its tokens are "stop words": the most frequent words of the most
    popular topics, shared by every document. Lengths are log-normal (``length_mu``, ``length_sigma``) clipped
    to [``min_length``, ``max_length``]. Every occurrence of a word is perturbed (``context_noise``).
    The defaults are calibrated for dim 128 (see tests/evaluation/test_hard_corpus.py): mean random token-pair
    cosine ≈ 0.1 (0.087-0.118 over seeds, mean 0.103), mean length ≈ 120.
    """
    rng = np.random.default_rng(seed)
    shared = _normalise(rng.standard_normal(dim))
    own = _normalise(rng.standard_normal((n_topics, dim)))
    topics = _normalise(np.sqrt(shared_weight) * shared + np.sqrt(1.0 - shared_weight) * own)
    n_words = n_topics * words_per_topic  # word w belongs to topic w // words_per_topic
    words = _normalise(np.repeat(topics, words_per_topic, axis=0)
                       + topic_spread * _normalise(rng.standard_normal((n_words, dim))))
    # topic popularity: Zipf over a random order of the topics
    topic_rank = rng.permutation(n_topics)
    topic_cdf = np.cumsum(_zipf_weights(n_topics, topic_exponent))
    word_cdf = np.cumsum(_zipf_weights(words_per_topic, word_exponent))
    # stop words: the top words of the most popular topics, round-robin, Zipf frequency among themselves
    n_stop_topics = max(1, min(n_topics, n_stop_words // 4))
    stop_words = (topic_rank[np.arange(n_stop_words) % n_stop_topics] * words_per_topic
                  + np.arange(n_stop_words) // n_stop_topics)
    stop_cdf = np.cumsum(_zipf_weights(n_stop_words, 1.0))

    lengths = np.clip(np.rint(rng.lognormal(length_mu, length_sigma, n_docs)), min_length, max_length).astype(np.int64)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    n_tokens = int(offsets[-1])
    doc_of = np.repeat(np.arange(n_docs), lengths)

    # each document: max_doc_topics slots of Zipf-popular topics, with Dirichlet weights over 1..max of them
    doc_topics = topic_rank[_sample(rng, topic_cdf, (n_docs, max_doc_topics))]
    n_doc_topics = rng.integers(1, max_doc_topics + 1, n_docs)
    mix = rng.gamma(1.0, 1.0, (n_docs, max_doc_topics)) * (np.arange(max_doc_topics) < n_doc_topics[:, None])
    mix_cdf = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
    slot = (rng.random(n_tokens)[:, None] > mix_cdf[doc_of]).sum(axis=1)
    slot = np.minimum(slot, n_doc_topics[doc_of] - 1)
    word_ids = doc_topics[doc_of, slot] * words_per_topic + _sample(rng, word_cdf, n_tokens)
    is_stop = rng.random(n_tokens) < stop_fraction
    word_ids[is_stop] = stop_words[_sample(rng, stop_cdf, int(is_stop.sum()))]

    noise = rng.standard_normal((n_tokens, dim), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    tokens = words[word_ids]
    tokens += np.float32(context_noise) * noise
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    return SyntheticCorpus(tokens=tokens, lengths=lengths, offsets=offsets)


def make_hard_queries(
    corpus: SyntheticCorpus,
    n_queries: int,
    query_length: int = 32,
    n_from_doc: int = 12,
    noise: float = 0.45,
    seed: int = 1,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Queries of exactly ``query_length`` tokens: perturbed copies of ``n_from_doc`` distinct tokens of a random
    target document, and for the rest noise tokens (perturbed tokens of random other places in the corpus, so
    mostly popular topics and stop words, which every neighbour of the target matches too).
    Returns (queries, target document positions)."""
    if not 0 < n_from_doc <= query_length:
        raise ValueError(f"n_from_doc must be in 1..query_length ({query_length}), got {n_from_doc}")
    rng = np.random.default_rng(seed)
    targets = rng.choice(corpus.n_docs, n_queries, replace=n_queries > corpus.n_docs)
    n_own = np.minimum(n_from_doc, corpus.lengths[targets])
    # n_own distinct tokens of each target: the first n_own of a random order of its tokens
    rank = np.argsort(rng.random((n_queries, int(corpus.lengths.max()))), axis=1)
    picks = []
    for i, t in enumerate(targets):
        own = rank[i][rank[i] < corpus.lengths[t]][:n_own[i]] + corpus.offsets[t]
        other = rng.integers(0, len(corpus.tokens), query_length - n_own[i])
        picks.append(np.concatenate([own, other]))
    idx = np.stack(picks)
    q = corpus.tokens[idx] + noise * _normalise(rng.standard_normal((n_queries, query_length, corpus.tokens.shape[1])))
    q = _normalise(q)
    return list(q), targets.astype(np.int64)

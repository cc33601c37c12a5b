"""Token pooling at index time: fewer vectors per document, each the mean of a cluster of similar tokens.

PyLate's and next-plaid's recipe (Clavié et al., "Reducing the Footprint of Multi-Vector Retrieval with
Minimal Performance Impact via Token Pooling", 2024): per document, the first ``protected_tokens`` vectors
([CLS] / BOS, which carries the ``[D]`` prefix's context) are kept as they are; the rest are clustered
hierarchically with Ward linkage on the cosine distances ``1 - <a, b>``, cut into
``max(n // pool_factor, 1)`` clusters, and each cluster is replaced by the mean of its vectors. A document
with nothing to gain (``n // pool_factor >= n``) is returned unchanged; ``pool_factor=1`` is the identity.

``renormalize``: PyLate and next-plaid keep the mean as it is, shorter than a unit vector when its tokens
disagree, so a diffuse cluster weighs less in MaxSim. That is the default here too, being what the published
pooled indexes do; ``renormalize=True`` rescales each mean to unit length (then every stored vector is a
unit vector again). Measured with multilingual-e5-small token states on XQuAD X->en, XQuAD-R, MS MARCO and
DBpedia (docs/benchmarks/pooling-e5/, nbits 2): at pool factor 2, renormalising stays within 0.5 nDCG@10 point
of unpooled on all four, while the plain mean loses 3.3 points on XQuAD X->en; prefer ``renormalize=True`` with
such encoders. Documents only: queries are never pooled.

Needs numpy and scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def n_pooled(n_tokens: int, pool_factor: int, protected_tokens: int = 1) -> int:
    """How many vectors a document of ``n_tokens`` keeps: the protected ones plus ``max(rest // pool_factor, 1)``
    clusters (fewer only if Ward's tree cannot be cut into that many, which happens with duplicate vectors)."""
    protected = min(protected_tokens, n_tokens)
    rest = n_tokens - protected
    if rest == 0:
        return n_tokens
    clusters = max(rest // pool_factor, 1)
    return n_tokens if clusters >= rest else protected + clusters


def pool_document(vectors: np.ndarray, pool_factor: int, *, protected_tokens: int = 1,
                  renormalize: bool = False) -> np.ndarray:
    """Pool one document's (n, dim) token vectors; returns (m, dim) float32 with m = :func:`n_pooled`.

    The protected tokens come first, then one mean per cluster in the order of each cluster's first token
    (deterministic: scipy's Ward linkage breaks ties by index).
    """
    from scipy.cluster import hierarchy

    vectors = np.asarray(vectors, dtype=np.float32)
    protected, rest = vectors[:protected_tokens], vectors[protected_tokens:]
    m = rest.shape[0]
    clusters = max(m // pool_factor, 1)
    if pool_factor <= 1 or m == 0 or clusters >= m:
        return np.ascontiguousarray(vectors)
    # float32 similarities as PyLate computes them (so near-ties fall the same way); tiny negatives clipped
    condensed = np.clip(1.0 - (rest @ rest.T)[np.triu_indices(m, k=1)], 0.0, None).astype(np.float64)
    labels = hierarchy.fcluster(hierarchy.linkage(condensed, method="ward"), t=clusters, criterion="maxclust")
    # clusters numbered by their first token, so the output order follows the text
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    relabel = np.empty(labels.max() + 1, dtype=np.int64)
    relabel[np.unique(labels)[order]] = np.arange(order.size)
    lab = relabel[labels]
    sums = np.zeros((order.size, vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, lab, rest)
    means = sums / np.bincount(lab)[:, None]
    if renormalize:
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(np.concatenate([protected, means.astype(np.float32)], axis=0))


def pool_documents(documents: Sequence[np.ndarray], pool_factor: int, *, protected_tokens: int = 1,
                   renormalize: bool = False) -> list[np.ndarray]:
    """:func:`pool_document` over a list of documents (``pool_factor=1`` returns them as they are)."""
    pool_factor = check_pool_factor(pool_factor)
    if pool_factor == 1:
        return list(documents)
    return [pool_document(d, pool_factor, protected_tokens=protected_tokens, renormalize=renormalize)
            for d in documents]


def check_pool_factor(pool_factor) -> int:
    """Validate ``pool_factor`` at the API: an int >= 1."""
    if isinstance(pool_factor, bool) or not isinstance(pool_factor, (int, np.integer)) or pool_factor < 1:
        raise ValueError(f"pool_factor must be an int >= 1 (1 = no pooling), got {pool_factor!r}")
    return int(pool_factor)


__all__ = ["check_pool_factor", "n_pooled", "pool_as_recorded", "pool_document", "pool_documents", "pooling_entry"]


def pooling_entry(pool_factor: int, renormalize: bool = False) -> dict | None:
    """What an index records (``manifest["encoder"]["pooling"]``) so that later text additions pool the same
    way; None for no pooling."""
    pool_factor = check_pool_factor(pool_factor)
    if not isinstance(renormalize, bool):
        raise ValueError(f"pool_renormalize must be True or False, got {renormalize!r}")
    return {"pool_factor": pool_factor, "renormalize": renormalize, "protected_tokens": 1} if pool_factor > 1 else None


def pool_as_recorded(encoder_info: dict | None, documents: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Pool ``documents`` as the index's manifest entry says (unchanged when it records no pooling)."""
    entry = (encoder_info or {}).get("pooling")
    if not entry:
        return list(documents)
    return pool_documents(documents, int(entry["pool_factor"]), protected_tokens=int(entry.get("protected_tokens", 1)),
                          renormalize=bool(entry.get("renormalize", False)))

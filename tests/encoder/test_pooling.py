"""Token pooling (gingham.encoder.pooling): counts, the first token, identity, determinism, cluster means."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.encoder.pooling import check_pool_factor, n_pooled, pool_as_recorded, pool_document, pool_documents, pooling_entry


def _unit(rng, n, dim=16):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), pool_factor=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_counts_first_token_and_determinism(n, pool_factor, seed):
    x = _unit(np.random.default_rng(seed), n)
    out = pool_document(x, pool_factor)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert out.shape == (n_pooled(n, pool_factor), 16)
    if n:
        assert np.array_equal(out[0], x[0])  # first token kept unpooled
    rest = n - 1
    if n and pool_factor > 1 and rest // pool_factor < rest and rest > 0:
        assert out.shape[0] == 1 + max(rest // pool_factor, 1)
    np.testing.assert_array_equal(out, pool_document(x, pool_factor))  # deterministic


def test_pool_factor_one_is_identity():
    docs = [_unit(np.random.default_rng(i), n) for i, n in enumerate((1, 5, 30))]
    out = pool_documents(docs, 1)
    assert all(a is b for a, b in zip(out, docs))
    for d in docs:
        np.testing.assert_array_equal(pool_document(d, 1), d)


def test_small_documents_unchanged():
    x = _unit(np.random.default_rng(0), 3)  # rest = 2, 2 // 2 = 1 cluster < 2: pooled
    assert pool_document(x, 2).shape == (2, 16)
    x = _unit(np.random.default_rng(0), 2)  # rest = 1: nothing to pool
    np.testing.assert_array_equal(pool_document(x, 4), x)
    assert pool_document(np.zeros((0, 16), np.float32), 2).shape == (0, 16)


def test_clusters_replaced_by_their_means():
    rng = np.random.default_rng(1)
    centres = _unit(rng, 3)
    first = _unit(rng, 1)
    groups = [c + 0.05 * rng.standard_normal((4, 16)).astype(np.float32) for c in centres]
    groups = [g / np.linalg.norm(g, axis=1, keepdims=True) for g in groups]
    x = np.concatenate([first] + groups)  # 1 + 12 tokens, three tight groups
    out = pool_document(x, 4)  # 12 // 4 = 3 clusters
    assert out.shape == (4, 16)
    np.testing.assert_array_equal(out[0], first[0])
    for k, g in enumerate(groups):  # in the order of each cluster's first token
        np.testing.assert_allclose(out[1 + k], g.mean(axis=0), atol=1e-6)
    assert np.all(np.linalg.norm(out[1:], axis=1) < 1.0)  # means are not renormalised by default
    renorm = pool_document(x, 4, renormalize=True)
    np.testing.assert_allclose(np.linalg.norm(renorm, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(renorm[1:], out[1:] / np.linalg.norm(out[1:], axis=1, keepdims=True), atol=1e-6)


def test_duplicates_and_validation():
    x = np.repeat(_unit(np.random.default_rng(2), 1), 9, axis=0)  # all equal: distances 0
    out = pool_document(x, 2)
    assert out.shape[0] <= n_pooled(9, 2) and np.all(np.isfinite(out))
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="pool_factor"):
            check_pool_factor(bad)
    with pytest.raises(ValueError, match="pool_renormalize"):
        pooling_entry(2, renormalize="yes")
    assert pooling_entry(1) is None
    entry = pooling_entry(3, True)
    docs = [_unit(np.random.default_rng(3), 20)]
    np.testing.assert_array_equal(pool_as_recorded({"pooling": entry}, docs)[0], pool_document(docs[0], 3, renormalize=True))
    assert pool_as_recorded({"model": "m"}, docs)[0] is docs[0]
    assert pool_as_recorded(None, docs)[0] is docs[0]

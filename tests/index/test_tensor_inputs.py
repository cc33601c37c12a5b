"""Torch tensors wherever token embeddings go in: what sentence-transformers and PyLate encoders return."""

from __future__ import annotations

import numpy as np
import pytest

from gingham import Index
from tests.conftest import normalised

torch = pytest.importorskip("torch", reason="tensor inputs are tested with torch installed")


def test_create_add_search_with_tensors(tmp_path):
    rng = np.random.default_rng(0)
    docs = [normalised(rng, int(rng.integers(2, 9)), 16) for _ in range(40)]
    as_tensors = [torch.from_numpy(d).requires_grad_(True) for d in docs[:30]]  # grad-tracking, as a model gives
    ix = Index.create(tmp_path / "t", as_tensors, calibrate=False)
    ref = Index.create(tmp_path / "n", docs[:30], calibrate=False)
    q = normalised(rng, 4, 16)
    assert ix.search(torch.from_numpy(q), 5).rows() == ref.search(q, 5).rows()
    ix.add([torch.from_numpy(d).to(torch.bfloat16) for d in docs[30:]], list(range(30, 40)))  # bfloat16
    assert len(ix) == 40 and ix.decompress(35).shape == docs[35].shape
    padded = torch.zeros(3, 8, 16)  # one 3-D tensor: each row a document of 8 tokens
    for i in range(3):
        padded[i, :len(docs[i])] = torch.from_numpy(docs[i])
    ix.upsert(padded, [0, 1, 2])
    assert ix.decompress(0).shape == (8, 16)
    batch = torch.from_numpy(np.stack([q, q]))
    assert len(ix.search(batch, 3)) == 2 and len(ix.search([torch.from_numpy(q)] * 3, 3)) == 3


def test_flat_tensor_with_lengths(tmp_path):
    rng = np.random.default_rng(1)
    flat = torch.from_numpy(normalised(rng, 50, 8))
    ix = Index.create(tmp_path / "f", flat, lengths=[10, 20, 20], calibrate=False)
    assert ix.n_tokens == 50 and len(ix) == 3
    with pytest.raises(ValueError, match="floating-point"):
        Index.create(tmp_path / "bad", [torch.ones(3, 8, dtype=torch.int64)], calibrate=False)

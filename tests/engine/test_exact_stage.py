"""The exact stage of PLAID search: candidates decompressed and scored a block at a time."""

import numpy as np
import pytest

from gingham.kernels import reference as ref
from gingham.search import plaid


@pytest.mark.parametrize("rows", [1, 3, 7, 4096])
def test_blocked_exact_scores_equal_the_reference(monkeypatch, rows):
    """Blocks smaller than a document, empty documents, one block for all: each candidate's MaxSim over its
    decompressed tokens (numpy reference), in the candidates' order."""
    rng = np.random.default_rng(rows)
    dim, nbits, n_c, n_docs = 16, 2, 6, 40
    lengths = rng.integers(0, 9, n_docs)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(0, n_c, offsets[-1]).astype(np.uint16)
    packed = rng.integers(0, 256, (offsets[-1], dim * nbits // 8)).astype(np.uint8)
    fine = rng.standard_normal((n_c, dim)).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, n_c).astype(np.float32)
    lut = (rng.standard_normal((dim * nbits // 8, 256, 8 // nbits)) * 0.1).astype(np.float32)
    ix = plaid.IndexArrays(centroids=fine, fine=fine, scales=scales, lut=lut, codes=codes, residuals=packed,
                           doc_offsets=offsets, ivf_docs=np.zeros(0, np.int32),
                           ivf_offsets=np.zeros(n_c + 1, np.int64), normalize=True)
    q = rng.standard_normal((5, dim)).astype(np.float32)
    docs = np.sort(rng.choice(n_docs, 25, replace=False)).astype(np.int64)
    monkeypatch.setattr(plaid, "EXACT_STAGE_ROWS", rows)
    got = plaid.exact_scores_for(ix, q, docs)
    want = [ref.maxsim(q, ref.gather_decompress(np.array([d]), offsets, codes, packed, fine, scales, lut, True)[0])
            for d in docs]
    assert got.dtype == np.float32 and got.shape == (len(docs),)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert len(plaid.exact_scores_for(ix, q, np.zeros(0, np.int64))) == 0

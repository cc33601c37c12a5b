"""The exact stage of PLAID search: candidates decompressed and scored a block at a time."""

import numpy as np
import pytest

from gingham.kernels import reference as ref
from gingham.search import plaid


def _arrays(rng, dim, n_docs, max_len, n_c=6, nbits=2):
    lengths = rng.integers(0, max_len, n_docs)
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = rng.integers(0, n_c, offsets[-1]).astype(np.uint16)
    packed = rng.integers(0, 256, (offsets[-1], dim * nbits // 8)).astype(np.uint8)
    fine = rng.standard_normal((n_c, dim)).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, n_c).astype(np.float32)
    lut = (rng.standard_normal((dim * nbits // 8, 256, 8 // nbits)) * 0.1).astype(np.float32)
    return plaid.IndexArrays(centroids=fine, fine=fine, scales=scales, lut=lut, codes=codes, residuals=packed,
                             doc_offsets=offsets, ivf_docs=np.zeros(0, np.int32),
                             ivf_offsets=np.zeros(n_c + 1, np.int64), normalize=True)


def _want(ix, q, docs):
    return [ref.maxsim(q, ref.gather_decompress(np.array([d]), ix.doc_offsets, ix.codes, ix.residuals, ix.fine,
                                                ix.scales, ix.lut, True)[0]) for d in docs]


@pytest.mark.parametrize("rows", [1, 3, 7, 4096])
def test_blocked_exact_scores_equal_the_reference(monkeypatch, rows):
    """Blocks smaller than a document, empty documents, one block for all: each candidate's MaxSim over its
    decompressed tokens (numpy reference), in the candidates' order."""
    rng = np.random.default_rng(rows)
    ix = _arrays(rng, dim=16, n_docs=40, max_len=9)
    q = rng.standard_normal((5, 16)).astype(np.float32)
    docs = np.sort(rng.choice(40, 25, replace=False)).astype(np.int64)
    monkeypatch.setattr(plaid, "EXACT_STAGE_ROWS", rows)
    got = plaid.exact_scores_for(ix, q, docs)
    assert got.dtype == np.float32 and got.shape == (len(docs),)
    np.testing.assert_allclose(got, _want(ix, q, docs), rtol=1e-4, atol=1e-5)
    assert len(plaid.exact_scores_for(ix, q, np.zeros(0, np.int64))) == 0


def test_the_scratch_buffer_follows_dims_and_block_sizes(monkeypatch):
    """One thread's reused buffer serves indexes of different widths and blocks larger than it holds (a document
    longer than a block; a block past SCRATCH_KEEP, which is not kept): every call equals the reference."""
    rng = np.random.default_rng(0)
    monkeypatch.setattr(plaid, "EXACT_STAGE_ROWS", 8)
    small, wide = _arrays(rng, 16, 30, 9), _arrays(rng, 64, 12, 40)
    for ix in (small, wide, small, wide):
        q = rng.standard_normal((4, ix.fine.shape[1])).astype(np.float32)
        docs = np.arange(len(ix.doc_offsets) - 1, dtype=np.int64)
        np.testing.assert_allclose(plaid.exact_scores_for(ix, q, docs), _want(ix, q, docs), rtol=1e-4, atol=1e-5)
    monkeypatch.setattr(plaid, "SCRATCH_KEEP", 16 * 4)
    q = rng.standard_normal((3, 64)).astype(np.float32)
    docs = np.arange(12, dtype=np.int64)
    np.testing.assert_allclose(plaid.exact_scores_for(wide, q, docs), _want(wide, q, docs), rtol=1e-4, atol=1e-5)


def test_search_threads_keep_their_own_buffers():
    """Queries scored at once from several threads (as Index.search's pool does) get their own scores."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(1)
    ix = _arrays(rng, 32, 200, 30)
    docs = np.arange(200, dtype=np.int64)
    qs = [rng.standard_normal((5, 32)).astype(np.float32) for _ in range(16)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: plaid.exact_scores_for(ix, q, docs), qs))
    for q, g in zip(qs, got):
        np.testing.assert_allclose(g, _want(ix, q, docs), rtol=1e-4, atol=1e-5)

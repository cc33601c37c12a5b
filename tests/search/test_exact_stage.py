"""The exact stage of PLAID search: candidates decompressed and scored, one query over one or several threads."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from gingham.kernels import reference as ref
from gingham.search import parallel, plaid


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
    return ref.maxsim_decompress(docs, ix.doc_offsets, ix.codes, ix.residuals, ix.fine, ix.scales, ix.lut, True, q)


@pytest.mark.parametrize("n_threads", [1, 2, 3, 8])
def test_exact_scores_equal_the_reference_on_any_number_of_threads(monkeypatch, n_threads):
    """Candidates split into runs (runs of a few tokens, so that every split is exercised; empty documents
    included): each candidate's MaxSim over its decompressed tokens, in the candidates' order, and the same bits
    whatever the number of threads."""
    monkeypatch.setattr(parallel, "MIN_RUN_TOKENS", 5)
    rng = np.random.default_rng(n_threads)
    ix = _arrays(rng, dim=16, n_docs=40, max_len=9)
    q = rng.standard_normal((5, 16)).astype(np.float32)
    docs = np.sort(rng.choice(40, 25, replace=False)).astype(np.int64)
    got = plaid.exact_scores_for(ix, q, docs, n_threads)
    assert got.dtype == np.float32 and got.shape == (len(docs),)
    np.testing.assert_allclose(got, _want(ix, q, docs), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got, plaid.exact_scores_for(ix, q, docs, 1))
    assert len(plaid.exact_scores_for(ix, q, np.zeros(0, np.int64), n_threads)) == 0


@pytest.mark.parametrize("n_threads, min_tokens, n_runs", [(1, 1, 1), (4, 1, 4), (4, 10, 3), (4, 1000, 1), (50, 1, 5)])
def test_runs_cut_candidates_by_tokens(n_threads, min_tokens, n_runs):
    """At most one run per thread and per document, none below the token floor, covering every candidate once,
    about equal in tokens."""
    offsets = np.array([0, 10, 20, 25, 30, 35, 40], dtype=np.int64)  # documents of 10, 10, 5, 5, 5, 5 tokens
    docs = np.array([0, 1, 2, 3, 5], dtype=np.int64)  # 35 tokens
    cuts = parallel.runs(docs, offsets, n_threads, min_tokens)
    assert cuts[0] == 0 and cuts[-1] == len(docs) and cuts == sorted(set(cuts))
    assert len(cuts) - 1 == n_runs
    if n_runs == 4:
        tokens = [int((offsets[docs[a:b] + 1] - offsets[docs[a:b]]).sum()) for a, b in zip(cuts, cuts[1:])]
        assert max(tokens) <= 10


def test_a_failed_run_raises_in_the_caller():
    def boom(part):
        if part[0] > 0:
            raise RuntimeError("run failed")
        return part.astype(np.float32)

    with pytest.raises(RuntimeError, match="run failed"):
        parallel.map_runs(boom, np.arange(4, dtype=np.int64), [0, 2, 4])
    np.testing.assert_array_equal(parallel.map_runs(lambda p: p * 2, np.arange(6), [0, 2, 3, 6]), np.arange(6) * 2)


def test_queries_from_many_threads_at_once(monkeypatch):
    """Queries scored at once from several threads (as Index.search's pool or a server does), each of them
    splitting its candidates over the shared pool as well: every query gets its own scores."""
    monkeypatch.setattr(parallel, "MIN_RUN_TOKENS", 16)
    rng = np.random.default_rng(1)
    ix = _arrays(rng, 32, 200, 30)
    docs = np.arange(200, dtype=np.int64)
    qs = [rng.standard_normal((5, 32)).astype(np.float32) for _ in range(16)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda q: plaid.exact_scores_for(ix, q, docs, 3), qs))
    for q, g in zip(qs, got):
        np.testing.assert_allclose(g, _want(ix, q, docs), rtol=1e-4, atol=1e-5)


def test_a_busy_pool_leaves_the_query_to_its_own_thread():
    """While other queries' runs hold every pool thread (a server answering several at once), a query scores all
    its runs itself instead of queueing behind them; once the pool is idle, it splits again. A run's failure still
    reaches the caller and frees the pool."""
    import threading

    parallel._forget_pool()  # a pool of one thread, made by the first split below
    me = threading.current_thread().name
    release, started = threading.Event(), threading.Event()

    def hold(a, b):
        if a > 0:
            started.set()
            release.wait(10)
        return threading.current_thread().name

    other = ThreadPoolExecutor(1).submit(parallel.map_parts, hold, [0, 1, 2])
    assert started.wait(10)
    names = parallel.map_parts(lambda a, b: threading.current_thread().name, [0, 1, 2, 3])
    assert names == [me, me, me]
    release.set()
    assert other.result(10)[1].startswith("gingham-query")
    names = parallel.map_parts(lambda a, b: threading.current_thread().name, [0, 1, 2])
    assert names[0] == me and names[1].startswith("gingham-query")

    def fail(a, b):
        if a > 0:
            raise RuntimeError("run failed")
        return a

    with pytest.raises(RuntimeError, match="run failed"):
        parallel.map_parts(fail, [0, 1, 2])
    assert parallel.map_parts(lambda a, b: threading.current_thread().name, [0, 1, 2])[1].startswith("gingham-query")

"""Search kernels: candidate generation, centroid interaction, decompression of candidates, MaxSim, top-k.

Scores of query tokens against centroids arrive as ``cscores`` of shape (n_centroids, n_query_tokens), row-major,
so that one token's centroid id reads one contiguous row. Ragged data (documents, query batches) is a flat array
plus int64 offsets.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from gingham.kernels.codec import decompress_row, inv_norm, lut_by_row


@njit(cache=True, nogil=True)
def ivf_candidates(ranked, ivf_docs, ivf_offsets, doc_mask, n_docs, min_rounds, min_candidates):
    """Sorted unique documents listed under the query tokens' best centroids, probing wider when too few.

    ranked: (n_query_tokens, max_rounds) int64, each row a query token's centroids best first. Round r adds
    every token's r-th centroid; after ``min_rounds`` rounds, probing stops as soon as ``min_candidates``
    documents were found (``min_candidates=0``: exactly ``min_rounds`` rounds, PLAID's fixed probe).
    doc_mask: uint8 (n_docs,), non-zero marks an allowed document, or empty to allow all. Returns int64.
    """
    use_mask = doc_mask.shape[0] > 0
    n_tokens, max_rounds = ranked.shape
    seen_doc = np.zeros(n_docs, dtype=np.uint8)
    seen_centroid = np.zeros(ivf_offsets.shape[0] - 1, dtype=np.uint8)
    out = np.empty(min(n_docs, 1024), dtype=np.int64)
    n = 0
    for r in range(max_rounds):
        if r >= min_rounds and n >= min_candidates:
            break
        for qt in range(n_tokens):
            c = ranked[qt, r]
            if seen_centroid[c]:
                continue
            seen_centroid[c] = 1
            for j in range(ivf_offsets[c], ivf_offsets[c + 1]):
                d = ivf_docs[j]
                if seen_doc[d] or (use_mask and doc_mask[d] == 0):
                    continue
                seen_doc[d] = 1
                if n == out.shape[0]:
                    grown = np.empty(min(n_docs, 2 * n), dtype=np.int64)
                    grown[:n] = out
                    out = grown
                out[n] = d
                n += 1
    return np.sort(out[:n])


#: Centroid interaction's running maxima as ``max()`` under "no NaN" (scores are finite: queries are validated),
#: which LLVM turns into vector max instructions: 4.1 -> 3.4 ms over XQuAD-R's 13,014 documents (e5, 19 question
#: tokens), same results.
MAX_FASTMATH = {"nnan", "nsz"}


@njit(cache=True, nogil=True, fastmath=MAX_FASTMATH)
def centroid_interaction(cands, doc_offsets, codes, shift, slot, cscores, keep, prune):
    """Approximate MaxSim of each candidate from its tokens' centroid scores.

    A token's centroid is ``codes[t] >> shift``; its scores are row ``r = slot[centroid]`` of ``cscores``, or row
    ``centroid`` when ``slot`` is empty (every centroid scored; see :mod:`gingham.search.centroids`). For query
    token q, a document scores ``max over its tokens t of cscores[r, q]``; the document's score is the sum over
    q. With ``prune`` set, tokens whose row has ``keep[r] == False`` are skipped (PLAID's centroid pruning). A
    query token that sees no token contributes 0. Returns float32 (n_candidates,).
    """
    nq = cscores.shape[1]
    use_slot = slot.shape[0] > 0
    out = np.empty(cands.shape[0], dtype=np.float32)
    best = np.empty(nq, dtype=np.float32)
    for i in range(cands.shape[0]):
        d = cands[i]
        best[:] = -np.inf
        for t in range(doc_offsets[d], doc_offsets[d + 1]):
            c = np.int64(codes[t] >> shift)
            if use_slot:
                c = np.int64(slot[c])
            if prune and not keep[c]:
                continue
            row = cscores[c]
            for q in range(nq):
                best[q] = max(best[q], row[q])
        acc = np.float32(0.0)
        for q in range(nq):
            if best[q] != -np.inf:
                acc += best[q]
        out[i] = acc
    return out


#: Freedoms of the exact stage's dot products: reassociation vectorises each dot product over the dimensions
#: (several accumulators), contraction fuses multiply-adds; "no NaN" lets the running maxima be vector max
#: instructions (decoded tokens and validated queries are finite).
DOT_FASTMATH = {"reassoc", "contract", "nsz", "nnan"}
#: Decoded tokens scored together against each query token: four rows share each load of the query token.
DOT_ROWS = 4


@njit(cache=True, nogil=True, fastmath=DOT_FASTMATH, inline="always")
def _dots4x4(rows, c, q, j):
    """The 16 dot products of rows c..c+3 with query tokens j..j+3: each load feeds four multiply-adds."""
    dim = rows.shape[1]
    q0, q1, q2, q3 = q[j], q[j + 1], q[j + 2], q[j + 3]
    r0, r1, r2, r3 = rows[c], rows[c + 1], rows[c + 2], rows[c + 3]
    a00 = a01 = a02 = a03 = np.float32(0.0)
    a10 = a11 = a12 = a13 = np.float32(0.0)
    a20 = a21 = a22 = a23 = np.float32(0.0)
    a30 = a31 = a32 = a33 = np.float32(0.0)
    for k in range(dim):
        x0, x1, x2, x3 = r0[k], r1[k], r2[k], r3[k]
        v0, v1, v2, v3 = q0[k], q1[k], q2[k], q3[k]
        a00 += v0 * x0
        a01 += v0 * x1
        a02 += v0 * x2
        a03 += v0 * x3
        a10 += v1 * x0
        a11 += v1 * x1
        a12 += v1 * x2
        a13 += v1 * x3
        a20 += v2 * x0
        a21 += v2 * x1
        a22 += v2 * x2
        a23 += v2 * x3
        a30 += v3 * x0
        a31 += v3 * x1
        a32 += v3 * x2
        a33 += v3 * x3
    return (a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33)


@njit(cache=True, nogil=True, fastmath=DOT_FASTMATH, inline="always")
def _dot(x, y):
    a = np.float32(0.0)
    for k in range(x.shape[0]):
        a += x[k] * y[k]
    return a


@njit(cache=True, nogil=True, fastmath=DOT_FASTMATH)
def _max_dots(rows, n_rows, q, best, inv):
    """``best[j] = max(best[j], inv[r] * (q[j] . rows[r]))`` over the first ``n_rows`` (<= DOT_ROWS) rows, four
    rows by four query tokens at a time."""
    nq = q.shape[0]
    j = 0
    if n_rows == DOT_ROWS:
        s0, s1, s2, s3 = inv[0], inv[1], inv[2], inv[3]
        while j + 4 <= nq:
            d = _dots4x4(rows, 0, q, j)
            for t in range(4):
                best[j + t] = max(best[j + t], max(max(s0 * d[4 * t], s1 * d[4 * t + 1]),
                                                   max(s2 * d[4 * t + 2], s3 * d[4 * t + 3])))
            j += 4
    for jj in range(j, nq):
        for r in range(n_rows):
            best[jj] = max(best[jj], inv[r] * _dot(q[jj], rows[r]))


@njit(cache=True, nogil=True, fastmath=DOT_FASTMATH)
def dot_rows(rows, q):
    """``rows @ q.T`` as float32 (n_rows, n_q), row-major: every centroid (row) against every query token.

    Four rows by four query tokens at a time, so that each load feeds four multiply-adds. Serial and GIL-free, so
    that a search can split the rows over its own threads: BLAS's threads, which spin for a while after each call,
    took the second core from the rest of the query (XQuAD-R nbits 4: p50 33 ms with the BLAS product against 21 ms
    with BLAS held to one thread). Measured alone: 8,192 x 384 rows by 19 tokens 1.4 ms (BLAS: 2.0 ms on one
    thread, 1.1 ms on two); 16,384 x 128 by 32 tokens 1.75 ms (BLAS: 1.3 / 0.7 ms).
    """
    n = rows.shape[0]
    nq = q.shape[0]
    out = np.empty((n, nq), dtype=np.float32)
    c = 0
    while c + 4 <= n:
        j = 0
        while j + 4 <= nq:
            d = _dots4x4(rows, c, q, j)
            out[c, j], out[c + 1, j], out[c + 2, j], out[c + 3, j] = d[0], d[1], d[2], d[3]
            out[c, j + 1], out[c + 1, j + 1], out[c + 2, j + 1], out[c + 3, j + 1] = d[4], d[5], d[6], d[7]
            out[c, j + 2], out[c + 1, j + 2], out[c + 2, j + 2], out[c + 3, j + 2] = d[8], d[9], d[10], d[11]
            out[c, j + 3], out[c + 1, j + 3], out[c + 2, j + 3], out[c + 3, j + 3] = d[12], d[13], d[14], d[15]
            j += 4
        for jj in range(j, nq):
            for r in range(c, c + 4):
                out[r, jj] = _dot(q[jj], rows[r])
        c += 4
    for r in range(c, n):
        for jj in range(nq):
            out[r, jj] = _dot(q[jj], rows[r])
    return out


@njit(cache=True, nogil=True, fastmath=DOT_FASTMATH)
def maxsim_decompress(docs, doc_offsets, codes, packed, centroids, scales, lut, normalize, q):
    """Exact MaxSim of one query ``q`` (n_q, dim) float32 against the decompressed tokens of each of ``docs``: the
    exact stage of PLAID. Returns float32 (len(docs),); an empty document scores 0.

    Each token is decoded (:func:`decompress_row`) into a block of ``DOT_ROWS`` rows that stays in L1 and is
    scored there against every query token; no decoded candidate goes through memory. With ``normalize`` the
    unit-length rescale is folded into the scores (each dot product times the row's inverse norm), which equals
    scoring unit-length decoded rows up to float rounding and saves a pass over every row (XQuAD-R,
    1,024 candidates: 21.8 -> 18.7 ms at nbits 4). Measured on XQuAD-R (e5, dim 384, 1,024 candidates, 48,640
    tokens, 15 question tokens, one thread): 23.8 ms against 25.0 ms for decoding into a reused buffer and one
    two-thread BLAS product per 4,096 rows (27.4 ms with BLAS on one thread). Serial and GIL-free: a search splits
    one query's candidates over threads (:mod:`gingham.search.parallel`).
    """
    nq, dim = q.shape
    lut_rows = lut_by_row(lut)
    rows = np.empty((DOT_ROWS, dim), dtype=np.float32)
    inv = np.ones(DOT_ROWS, dtype=np.float32)
    best = np.empty(nq, dtype=np.float32)
    out = np.empty(docs.shape[0], dtype=np.float32)
    for i in range(docs.shape[0]):
        d = docs[i]
        t, end = doc_offsets[d], doc_offsets[d + 1]
        if t == end:
            out[i] = 0.0
            continue
        best[:] = -np.inf
        while t < end:
            n_rows = min(DOT_ROWS, end - t)
            for r in range(n_rows):
                # unit length folded into the scores: one scale per row instead of a pass over its dimensions
                decompress_row(rows, r, t + r, codes, packed, centroids, scales, lut_rows, False)
                inv[r] = inv_norm(rows[r]) if normalize else np.float32(1.0)
            _max_dots(rows, n_rows, q, best, inv)
            t += n_rows
        acc = np.float32(0.0)
        for j in range(nq):
            acc += best[j]
        out[i] = acc
    return out


@njit(cache=True, nogil=True)
def pair_maxsim(scores, lo, hi, q_lo, q_hi):
    """The MaxSim of one (query, document) pair from a score block: over columns ``q_lo:q_hi`` (the query's
    tokens), the sum of each column's maximum over rows ``lo:hi`` (the document's tokens); 0 when ``lo == hi``."""
    acc = np.float32(0.0)
    if hi == lo:
        return acc
    for j in range(q_lo, q_hi):
        m = scores[lo, j]
        for t in range(lo + 1, hi):
            s = scores[t, j]
            if s > m:
                m = s
        acc += m
    return acc


@njit(parallel=True, cache=True, nogil=True)
def segment_maxsim_parallel(scores, seg_offsets, q_offsets):
    """MaxSim of every (query, document) pair from a token-by-query-token score block, documents spread over
    numba's threads (for large brute-force blocks).

    scores: (n_doc_tokens, n_query_tokens) float32, row t = one document token against every query token of every
    query in the batch; seg_offsets: (n_docs + 1,) int64 over rows; q_offsets: (n_queries + 1,) int64 over
    columns. Returns float32 (n_queries, n_docs): for query i and document d, the sum over i's query tokens of the
    max over d's tokens. An empty document scores 0.
    """
    n_docs = seg_offsets.shape[0] - 1
    n_queries = q_offsets.shape[0] - 1
    out = np.zeros((n_queries, n_docs), dtype=np.float32)
    for d in prange(n_docs):
        for qi in range(n_queries):
            out[qi, d] = pair_maxsim(scores, seg_offsets[d], seg_offsets[d + 1], q_offsets[qi], q_offsets[qi + 1])
    return out


@njit(cache=True, nogil=True)
def _worse(s_a, i_a, s_b, i_b):
    return s_a < s_b or (s_a == s_b and i_a > i_b)


@njit(cache=True, nogil=True)
def _sift_down(hs, hi, pos, size):
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and _worse(hs[right], hi[right], hs[left], hi[left]):
            child = right
        if _worse(hs[child], hi[child], hs[pos], hi[pos]):
            hs[pos], hs[child] = hs[child], hs[pos]
            hi[pos], hi[child] = hi[child], hi[pos]
            pos = child
        else:
            return


@njit(cache=True, nogil=True)
def topk(scores, k):
    """Positions of the ``k`` highest scores, best first; equal scores rank the lower position first.

    Returns int64 (min(k, len(scores)),).
    """
    n = scores.shape[0]
    k = min(k, n)
    hs = np.empty(k, dtype=np.float64)
    hi = np.empty(k, dtype=np.int64)
    size = 0
    for i in range(n):
        s = scores[i]
        if size < k:
            # sift up
            pos = size
            hs[pos] = s
            hi[pos] = i
            size += 1
            while pos > 0:
                parent = (pos - 1) // 2
                if _worse(hs[pos], hi[pos], hs[parent], hi[parent]):
                    hs[pos], hs[parent] = hs[parent], hs[pos]
                    hi[pos], hi[parent] = hi[parent], hi[pos]
                    pos = parent
                else:
                    break
        elif _worse(hs[0], hi[0], s, i):
            hs[0] = s
            hi[0] = i
            _sift_down(hs, hi, 0, size)
    out = np.empty(k, dtype=np.int64)
    for j in range(k - 1, -1, -1):
        out[j] = hi[0]
        size -= 1
        hs[0] = hs[size]
        hi[0] = hi[size]
        _sift_down(hs, hi, 0, size)
    return out


@njit(parallel=True, cache=True, nogil=True)
def topk_rows(scores, k):
    """:func:`topk` of every row of a (n_rows, n) matrix. Returns int64 (n_rows, min(k, n))."""
    n_rows = scores.shape[0]
    kk = min(k, scores.shape[1])
    out = np.empty((n_rows, kk), dtype=np.int64)
    for r in prange(n_rows):
        out[r] = topk(scores[r], kk)
    return out


@njit(cache=True, nogil=True)
def rank_centroids(cscores, n_rounds):
    """Each query token's ``n_rounds`` best centroids, best first (ties: lower id first), and every centroid's best
    score over the query tokens, in one pass over ``cscores`` (n_centroids, n_query_tokens).

    Returns (ranked int64 (n_query_tokens, n_rounds), best float32 (n_centroids,)).
    """
    n_c, nq = cscores.shape
    r = min(n_rounds, n_c)
    top_s = np.full((nq, r), -np.inf, dtype=np.float32)
    top_i = np.full((nq, r), n_c, dtype=np.int64)
    best = np.empty(n_c, dtype=np.float32)
    for c in range(n_c):
        m = cscores[c, 0]
        for q in range(nq):
            s = cscores[c, q]
            if s > m:
                m = s
            if s > top_s[q, r - 1]:
                # insert keeping the row sorted descending; equal scores keep the earlier (lower) id first
                pos = r - 1
                while pos > 0 and top_s[q, pos - 1] < s:
                    top_s[q, pos] = top_s[q, pos - 1]
                    top_i[q, pos] = top_i[q, pos - 1]
                    pos -= 1
                top_s[q, pos] = s
                top_i[q, pos] = c
        best[c] = m
    return top_i, best

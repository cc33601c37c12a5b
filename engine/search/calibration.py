"""Search defaults calibrated to the corpus: the cheapest settings that keep recall on this index's own data.

PLAID's defaults are one table by ``top_k``, tuned on MS MARCO with ColBERTv2. Token spaces differ (e5's token
states, LFM2's, a fine-tuned model's): on another corpus the same probe count and pruning threshold can lose a
quarter of the true top-10. So a build measures instead of assuming:

1. **Pseudo-queries** from the index itself: for each of ``n_queries`` sampled documents, a query of up to
   ``query_tokens`` tokens, most of them perturbed copies of a random subset of that document's (decompressed)
   tokens, the rest perturbed tokens of random other documents (what a real query shares with several documents).
2. **Ground truth**: exhaustive MaxSim over every decompressed document (the best any setting can do), up to
   :data:`EXHAUSTIVE_TRUTH_MAX_TOKENS` tokens; on larger indexes (streaming builds of tens of millions of tokens,
   where exhaustive search of 64 queries takes ~10 minutes) a search far wider than any rung of the ladder
   (:func:`wide_truth`), whose cost grows with the candidates, not the corpus.
3. **A ladder** of settings in increasing cost, walked from the cheapest; the first whose mean recall@k against
   the ground truth reaches ``target`` is stored for that ``top_k``. The default target is :data:`TARGET`, or
   :data:`TARGET_SMALL` on small corpora and :data:`TARGET_PRECISE` at nbits 4; the latter stops short of
   near-exhaustive rungs once TARGET is reached (the manifest's ``cost_cap`` and ``capped``).

The result lives in the manifest (``calibration``); :meth:`gingham.Index.search` uses it for settings the caller
and :meth:`~gingham.Index.set_search_defaults` leave unset. Compaction and rebuild calibrate again;
:meth:`gingham.Index.tune` calibrates with real queries. Every step is seeded: one seed, one calibration.
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from gingham.common import validation

log = logging.getLogger(__name__)

#: top_k values calibrated at build time (a search with top_k up to a key uses that key's settings).
TOP_KS = (10, 100)
TARGET = 0.95
#: Indexes of at most SMALL_DOCS live documents are calibrated to TARGET_SMALL instead: pseudo-queries flatter
#: real ones, and on a small corpus the wider settings cost tens of milliseconds, not seconds. Measured on XQuAD
#: (240 paragraphs, e5's 384-dim states, 200 cross-lingual questions per language, `gingham eval`): recall@10 vs
#: exact rose from 0.84-0.91 to 0.87-0.91 at nbits 2 and from 0.91-0.95 to 0.96-0.97 at nbits 4, and the
#: single-query p50 from 16 to 87 ms at nbits 2 (the chosen probe 8 / 1,024 scores all 240 documents).
SMALL_DOCS = 4096
TARGET_SMALL = 0.99
#: Indexes whose residuals have at least PRECISE_NBITS bits per dimension are calibrated to TARGET_PRECISE: the
#: search should not lose more than the codec does. At nbits 4 the codec alone keeps 0.98-0.99 of exact MaxSim's
#: top 10 on real token states, so a search keeping 0.95 of the exhaustive top 10 would waste most of what the
#: extra bytes buy. Measured on XQuAD-R (13,014 sentences, e5's 384-dim states, nbits 4, `gingham eval`): the
#: rung TARGET chose (probe 8, 1,024 scored) kept 0.929-0.987 of exact MaxSim's top 10 over 11 languages; the
#: one TARGET_PRECISE chose (probe 64, 4,096) 0.977-0.991 (codec ceiling 0.982 on zh/ar/th). 0.98 rather than
#: 0.99: on the easy synthetic corpus (nbits 4) 0.99 moved the default from 256 to 1,024 scored documents, p50
#: 5.2 -> 12.6 ms, for 0.07 point of recall.
#: The raised target does not make the default search near-exhaustive, though: once a rung has reached TARGET,
#: rungs that send more than a quarter of the live documents to the exact stage (n_full_scores above the number
#: of live documents; the exact stage scores a quarter of n_full_scores) are not tried, and the most thorough rung
#: tried stands. Pseudo-queries can be far harder than real ones: on DBpedia 5k (nbits 4) they kept 0.966 of the
#: exhaustive top 10 at probe 64 / 4,096, where real queries kept 0.978 of exact MaxSim's, the codec's ceiling;
#: reaching 0.98 took 16,384 (every document scored exactly), p50 280 instead of 76 ms, for no real recall.
PRECISE_NBITS = 4
TARGET_PRECISE = 0.98
N_QUERIES = 64
QUERY_TOKENS = 32
#: Share of a pseudo-query's tokens copied (perturbed) from its source document; the rest come from others.
#: How hard pseudo-queries are, next to real ones, depends on the data. Recall@10 against exhaustive search at
#: PLAID's (probe 1, n_full_scores 256), e5 token states, nbits 2:
#:   XQuAD en paragraphs, zh/ar/de questions: real 0.949; pseudo (0.3, 0.7) 0.944, (0.5, 0.8) 0.978
#:   MS MARCO 5k, TREC-DL-2019 queries:       real 0.986; pseudo (0.3, 0.7) 0.773, (0.5, 0.8) 0.859
#: (share, cosine) = (0.5, 0.8) is the compromise: a little optimistic on cross-lingual questions, pessimistic (so
#: slower, never less accurate) on MS MARCO. Calibrating with real queries (Index.calibrate(queries)) removes
#: the guess.
OWN_SHARE = 0.5
#: Cosine between a pseudo-query token and the document token it was perturbed from (on average).
PERTURB_COSINE = 0.8
#: Settings that make no difference below this many documents: calibration is skipped (exhaustive is cheap).
MIN_DOCS = 64
#: Largest index whose calibration compares against exhaustive search (about 1 minute for 64 pseudo-queries on
#: 2 cores); beyond, against :func:`wide_truth`.
EXHAUSTIVE_TRUTH_MAX_TOKENS = 4_000_000
#: The wide search that stands for exhaustive search past EXHAUSTIVE_TRUTH_MAX_TOKENS (see :func:`wide_truth`).
WIDE_PROBE = 64
WIDE_FULL_SCORES = 8192


def wide_truth() -> dict[str, Any]:
    """The ground truth's settings on an index too large for exhaustive search: 64 probes per query token, no
    centroid pruning, 8,192 documents scored exactly. Its cost per query is bounded whatever the corpus; rungs of
    the ladder at least as wide are not tried against it (they would be measured against a narrower search)."""
    return {"n_ivf_probe": WIDE_PROBE, "n_full_scores": WIDE_FULL_SCORES, "centroid_score_threshold": -1e9}


def ladder(top_k: int) -> list[dict[str, Any]]:
    """Search settings for ``top_k`` in increasing cost (documents kept by centroid interaction first, then
    probes), with PLAID's centroid pruning on the cheap rungs and off (threshold -1e9) on the expensive ones.

    Probing wider is cheap next to scoring more documents exactly: on the hard corpus (10,000 docs, nbits 2) the
    bench's sweep measured recall@10 0.904 at (probe 8, n_full_scores 64) in 8.6 ms, against 0.862 at PLAID's
    (1, 256) in 11.0 ms. So each size of the centroid-interaction shortlist is tried with a few probe counts
    before the shortlist grows.
    """
    base = max(64, 4 * top_k)
    rungs = [(1, 1, True), (4, 1, True), (8, 1, True), (2, 4, True), (8, 4, True), (16, 4, True), (8, 16, True),
             (16, 16, False), (32, 32, False), (64, 64, False), (64, 256, False)]
    out = []
    for probe, mult, prune in rungs:
        step = {"n_ivf_probe": probe, "n_full_scores": base * mult}
        if not prune:
            step["centroid_score_threshold"] = -1e9
        out.append(step)
    return out


def pseudo_queries(index, n_queries: int, seed: int, query_tokens: int = QUERY_TOKENS) -> list[np.ndarray]:
    """Seeded queries made from the index's own decompressed documents (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    snap = index.snapshot
    live = np.concatenate([seg.base + np.flatnonzero(seg.live_mask()) for seg in snap.segments]) \
        if snap.segments else np.zeros(0, np.int64)
    if len(live) == 0:
        return []
    chosen = rng.choice(live, size=min(n_queries, len(live)), replace=False)
    dim = snap.codec.dim
    noise = math.sqrt(1 / PERTURB_COSINE ** 2 - 1) / math.sqrt(dim)

    def tokens(position: int) -> np.ndarray:
        seg, local = snap.locate(int(position))
        return seg.decompress(local)

    queries = []
    for position in chosen:
        own = tokens(position)
        n_own = min(len(own), max(1, round(query_tokens * OWN_SHARE)))
        parts = [own[rng.choice(len(own), size=n_own, replace=False)]]
        n_other = query_tokens - n_own
        for other in rng.choice(live, size=n_other):
            t = tokens(other)
            parts.append(t[rng.integers(len(t))][None])
        q = np.concatenate(parts).astype(np.float32)
        scale = np.linalg.norm(q, axis=1, keepdims=True)
        q = q + rng.standard_normal(q.shape).astype(np.float32) * noise * scale
        q *= scale / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)  # keep each token's norm
        queries.append(np.ascontiguousarray(q, dtype=np.float32))
    return queries


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """Per query: the share of the true top-k (positions, -1 = none) that ``found`` recovers."""
    out = np.empty(len(truth))
    for i, (f, t) in enumerate(zip(found, truth)):
        t = t[:k][t[:k] >= 0]
        out[i] = len(np.intersect1d(f[:k], t)) / max(1, len(t))
    return out


def default_target(n_docs: int, nbits: int = 2) -> float:
    """The recall calibration aims for on an index of ``n_docs`` live documents whose residuals take ``nbits`` bits
    per dimension (see :data:`SMALL_DOCS` and :data:`PRECISE_NBITS`)."""
    target = TARGET_SMALL if n_docs <= SMALL_DOCS else TARGET
    return max(target, TARGET_PRECISE) if nbits >= PRECISE_NBITS else target


def options(top_ks: Any, target: Any, n_queries: Any, seed: Any, n_live: int) -> dict[str, Any]:
    """The options of :meth:`gingham.Index.calibrate` checked, with the defaults of those left None (``seed``
    excepted: the caller's build seed). Raises ValueError naming the bad value and what is allowed.

    A ``top_k`` above the ``n_live`` live documents is refused, not clamped: a search cannot ask for it (see
    :func:`gingham.common.validation.top_k`), so its settings would never apply, and the ladder's exact stage would be
    sized for it (n_full_scores ``4 * top_k``) on every later search with a smaller top_k."""
    given = top_ks is not None  # the defaults go past a small index's size: each is then measured at n_live
    if top_ks is None:
        top_ks = TOP_KS
    elif isinstance(top_ks, (str, bytes, Mapping)) or not isinstance(top_ks, Iterable):
        raise ValueError(f"top_ks must be a list of positive integers such as [10, 100], got {top_ks!r}")
    top_ks = list(top_ks)
    if not top_ks:
        raise ValueError("top_ks is empty; give the top_k values to calibrate, such as [10, 100], or leave it out "
                         f"for {list(TOP_KS)}")
    for k in top_ks:
        if not _is_int(k) or k < 1:
            raise ValueError(f"top_ks must hold positive integers such as [10, 100]; it holds {k!r}")
    over = [int(k) for k in top_ks if given and n_live and k > n_live]
    if over:
        raise ValueError(f"top_ks holds {over}, more than the index's {n_live} live documents: a search asks for at "
                         f"most {n_live}; calibrate top_k values up to {n_live}")
    if target is not None and (isinstance(target, bool) or not isinstance(target, numbers.Real)
                               or not 0 < target <= 1):
        raise ValueError(f"target (the recall@k to reach) must be a number in (0, 1], such as 0.95, got {target!r}")
    if n_queries is not None and (not _is_int(n_queries) or n_queries < 1):
        raise ValueError(f"n_queries must be a positive integer (pseudo-queries to draw), got {n_queries!r}; leave "
                         f"it out for {N_QUERIES}")
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return {"top_ks": tuple(int(k) for k in top_ks), "target": None if target is None else float(target),
            "n_queries": N_QUERIES if n_queries is None else int(n_queries),
            "seed": None if seed is None else int(seed)}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def calibrate(index, queries: Sequence[np.ndarray] | None = None, *, top_ks: Sequence[int] = TOP_KS,
              target: float | None = None, n_queries: int = N_QUERIES, seed: int = 0) -> dict[str, Any]:
    """Measure the cheapest ladder rung per ``top_k`` that reaches ``target`` recall@k against exhaustive search
    (None: :func:`default_target`).

    ``queries``: real queries to calibrate with (default: pseudo-queries from the index, seeded by ``seed``).
    Returns the manifest's ``calibration`` record: per top_k the chosen settings and what was measured.
    """
    source = "queries" if queries is not None else "pseudo-queries"
    default = target is None
    if target is None:
        target = default_target(index.n_docs, index.nbits)
    if queries is None:
        queries = pseudo_queries(index, n_queries, seed)
    record: dict[str, Any] = {"source": source, "n_queries": len(queries), "target": target, "seed": seed,
                              "n_docs": index.n_docs, "settings": {}, "measured": {}}
    n_live = index.n_docs
    if n_live < MIN_DOCS or not queries:
        record["skipped"] = f"{n_live} live documents: too few to calibrate (every setting scores them all)"
        return record
    kmax = min(max(top_ks), n_live)
    if index.n_tokens <= EXHAUSTIVE_TRUTH_MAX_TOKENS:
        record["truth"] = "exhaustive"
        truth = index.search(list(queries), top_k=kmax, exhaustive=True, n_threads=1).positions
    else:
        record["truth"] = wide_truth()
        truth = index.search(list(queries), top_k=kmax, n_threads=1, **record["truth"]).positions
    wide = record["truth"] != "exhaustive"
    # the precision target's cost cap (see TARGET_PRECISE): only where it, not the caller or a small corpus, set
    # the target above TARGET
    cap = n_live if (default and target > TARGET and n_live > SMALL_DOCS) else None
    if cap is not None:
        record["cost_cap"] = {"n_full_scores": cap, "after_recall": TARGET}
    for k in sorted(set(top_ks)):
        k_eff = min(k, n_live)
        chosen, tried = None, []
        steps = [s for s in ladder(k) if not wide or (s["n_full_scores"] < WIDE_FULL_SCORES
                                                        and s["n_ivf_probe"] < WIDE_PROBE)] or ladder(k)[:1]
        for step in steps:
            if cap is not None and step["n_full_scores"] > cap and tried and tried[-1]["recall"] >= TARGET:
                chosen = {x: v for x, v in tried[-1].items() if x != "recall"}  # the cost cap: see TARGET_PRECISE
                record.setdefault("capped", []).append(str(k))
                break
            res = index.search(list(queries), top_k=k_eff, n_threads=1, **step)
            recall = float(recall_at_k(res.positions, truth, k_eff).mean())
            tried.append({**step, "recall": round(recall, 4)})
            if recall >= target:
                chosen = step
                break
        if chosen is None:  # nothing reached the target: the most thorough rung tried
            chosen = steps[-1]
            log.warning("calibration: no setting reached recall@%d %.2f on %s (best %.4f); using the most "
                        "thorough", k, target, source, tried[-1]["recall"])
        record["settings"][str(k)] = dict(chosen)
        record["measured"][str(k)] = tried
    return record


def measure(index, queries=None, *, top_ks=None, target=None, n_queries=None, seed=None) -> dict[str, Any]:
    """:meth:`gingham.Index.calibrate`'s measurement: the options checked (:func:`options`; ``seed`` default: the
    build's), real ``queries`` checked and split, then :func:`calibrate`."""
    opts = options(top_ks, target, n_queries, seed, index.n_docs)
    if opts["seed"] is None:
        opts["seed"] = index.build_config.seed
    if queries is not None:
        q_flat, q_offsets, _ = validation.queries(queries, index.dim)
        queries = [q_flat[q_offsets[i]:q_offsets[i + 1]] for i in range(len(q_offsets) - 1)]
    return calibrate(index, queries, **opts)


def settings_for(calibration: Mapping[str, Any] | None, top_k: int) -> dict[str, Any]:
    """The calibrated settings that apply to a search with ``top_k`` (empty: use PLAID's table).

    The smallest calibrated top_k at least ``top_k`` applies; beyond the largest, none does."""
    if not calibration or not calibration.get("settings"):
        return {}
    keys = sorted(int(k) for k in calibration["settings"])
    for k in keys:
        if top_k <= k:
            return dict(calibration["settings"][str(k)])
    return {}

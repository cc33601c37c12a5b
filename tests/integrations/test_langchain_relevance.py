"""LangChain relevance scores (issue 27.9): in [0, 1], increasing in MaxSim, and on real questions relevant
paragraphs score above the others (XQuAD, the offline e5 model)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gingham.search import relevance

DATA = Path(__file__).parents[2] / ".." / "shared" / "data" / "xquad-retrieval"


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.lists(st.floats(-1, 1), min_size=0, max_size=80),
       st.lists(st.floats(-1, 1), min_size=1, max_size=30))
def test_relevance_is_in_0_1_and_increasing_in_maxsim(n_tokens, background, per_token):
    scores = np.sort(np.array(per_token) * n_tokens)
    bg = np.array(background) * n_tokens if background else None
    rel = relevance.relevance(scores, n_tokens, bg)
    assert rel.shape == scores.shape
    assert np.all((rel >= 0) & (rel <= 1))
    assert np.all(np.diff(rel) >= 0)  # sorted MaxSim in, sorted relevance out


def test_fit_logistic_recovers_its_curve():
    rng = np.random.default_rng(0)
    z = rng.normal(2.0, 3.0, 20_000)
    y = rng.random(z.size) < relevance.logistic(z, 1.7, 3.2)
    slope, centre = relevance.fit_logistic(z, y)
    assert slope == pytest.approx(1.7, rel=0.1) and centre == pytest.approx(3.2, abs=0.15)


def test_background_sample_is_seeded_and_in_order():
    ids = [f"d{i}" for i in range(500)]
    a = relevance.background_ids(ids)
    assert a == relevance.background_ids(ids) and len(a) == relevance.BACKGROUND_DOCS
    assert a == sorted(a, key=ids.index) and relevance.background_ids(ids[:10]) == ids[:10]
    with pytest.raises(ValueError, match="n_query_tokens"):
        relevance.relevance([1.0], 0, None)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/xquad-retrieval is not here")
def test_relevant_paragraphs_score_above_the_others_on_real_questions(e5_folder, tmp_path):
    pytest.importorskip("langchain_core")
    from gingham.integrations.langchain import GinghamVectorStore

    paragraphs = _jsonl(DATA / "corpus.jsonl")
    chosen = random.Random(0).sample(paragraphs, 40)
    keep = {p["_id"] for p in chosen}
    qrels = {}
    for line in (DATA / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        q, d, _ = line.split("\t")
        if d in keep:
            qrels[q] = d
    store = GinghamVectorStore.from_texts([p["text"] for p in chosen], ids=[p["_id"] for p in chosen],
                                          path=tmp_path / "index", model=str(e5_folder))
    relevant, other = [], []
    for lang in ("en", "de"):
        questions = [q for q in _jsonl(DATA / f"queries.{lang}.jsonl") if q["_id"] in qrels]
        for q in random.Random(1).sample(questions, 12):
            hits = store.similarity_search_with_relevance_scores(q["text"], k=5)
            scores = [s for _, s in hits]
            assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
            for doc, s in hits:
                (relevant if doc.id == qrels[q["_id"]] else other).append(s)
    assert len(relevant) >= 18  # the judged paragraph is in the top 5 for most questions
    relevant, other = np.array(relevant), np.array(other)
    auc = (relevant[:, None] > other[None, :]).mean()
    assert auc > 0.85, auc
    assert np.median(relevant) > 0.5 > np.median(other), (np.median(relevant), np.median(other))

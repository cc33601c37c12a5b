"""The LangChain drop-in: GinghamVectorStore and GinghamRetriever on the bundled sample with the offline e5 model."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("langchain_core", reason="langchain-core is not installed: pip install 'gingham[langchain]' "
                                             "(the test extra installs it, so CI runs these tests)")
from langchain_core.documents import Document  # noqa: E402

from gingham.integrations.langchain import GinghamRetriever, GinghamVectorStore  # noqa: E402

ROOT = Path(__file__).parents[2]
ROWS = [json.loads(line) for line in (ROOT / "examples" / "sample.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()]


@pytest.fixture(scope="module")
def store(e5_folder, tmp_path_factory):
    return GinghamVectorStore.from_texts(
        [r["text"] for r in ROWS], ids=[r["_id"] for r in ROWS], path=tmp_path_factory.mktemp("lc") / "index",
        model=str(e5_folder), metadatas=[{"n": i, "even": i % 2 == 0} for i in range(len(ROWS))])


def test_search_returns_documents_with_ids_metadata_and_scores(store):
    hits = store.similarity_search_with_score("Wer hat das Penicillin entdeckt?", k=3)
    assert [type(d) for d, _ in hits] == [Document] * 3
    doc, score = hits[0]
    assert doc.id == "penicillin" and doc.page_content.startswith("Alexander Fleming")
    assert doc.metadata == {"n": 3, "even": False}
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True) and isinstance(score, float)
    assert [d.id for d in store.similarity_search("Wer hat das Penicillin entdeckt?", k=3)] == [d.id for d, _ in hits]
    assert len(store.similarity_search("penicillin", k=100)) == len(ROWS)  # k beyond the store: every document


def test_filters(store):
    hits = store.similarity_search("Wer hat das Penicillin entdeckt?", k=3, filter={"even": True})
    assert hits and all(d.metadata["even"] for d in hits)
    hits = store.similarity_search("penicillin", k=2, filter=lambda meta: meta.get("n", 0) >= 18)
    assert {d.metadata["n"] for d in hits} <= {18, 19}
    assert store.similarity_search("penicillin", k=2, filter={"n": 1000}) == []


def test_retrievers_and_relevance(store):
    docs = store.as_retriever(search_kwargs={"k": 2}).invoke("¿En qué año llegó el hombre a la Luna?")
    assert [d.id for d in docs][0] == "moon" and len(docs) == 2
    scored = GinghamRetriever(store=store, k=1, include_score=True).invoke("Wer hat das Penicillin entdeckt?")
    assert scored[0].id == "penicillin" and scored[0].metadata["score"] > 0
    rel = store.similarity_search_with_relevance_scores("Wer hat das Penicillin entdeckt?", k=3)
    assert all(0.0 <= r <= 1.0 for _, r in rel) and rel[0][0].id == "penicillin"
    threshold = store.as_retriever(search_type="similarity_score_threshold",
                                   search_kwargs={"k": 5, "score_threshold": rel[0][1] - 1e-6})
    assert [d.id for d in threshold.invoke("Wer hat das Penicillin entdeckt?")] == ["penicillin"]


def test_add_replace_get_delete(e5_folder, tmp_path):
    store = GinghamVectorStore(tmp_path / "index", model=str(e5_folder), build_options={"calibrate": False})
    assert store.similarity_search("anything") == [] and store.get_by_ids(["x"]) == []
    ids = store.add_documents([Document(page_content=r["text"], metadata={"src": r["_id"]}) for r in ROWS[:8]])
    assert len(set(ids)) == 8 and all(len(i) == 32 for i in ids)  # uuid4 hex where no id was given
    got = store.get_by_ids([ids[3], "missing", ids[0]])
    assert [d.id for d in got] == [ids[3], ids[0]] and got[0].metadata == {"src": ROWS[3]["_id"]}
    assert store.add_texts(["K2 is the second-highest mountain on Earth."], [{"src": "k2"}], ids=["k2"]) == ["k2"]
    assert store.similarity_search("second highest mountain", k=1)[0].id == "k2"
    store.add_texts(["Bananas are berries, botanically speaking."], [{"src": "banana"}], ids=["k2"])  # replaces
    assert store.get_by_ids(["k2"])[0].page_content.startswith("Bananas") and len(store.index) == 9
    assert store.delete(["k2", "never-added"]) is True and store.get_by_ids(["k2"]) == []
    again = GinghamVectorStore(tmp_path / "index")  # reopened: same documents, the encoder the index recorded
    assert {d.id for d in again.similarity_search("penicillin", k=8)} == set(ids)
    store.delete()
    assert store.similarity_search("penicillin") == [] and len(store.index) == 0


def test_from_texts_refuses_an_embedding_and_an_existing_index(store, e5_folder):
    with pytest.raises(ValueError, match="own late-interaction model"):
        GinghamVectorStore.from_texts(["a text"], embedding=object())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        GinghamVectorStore.from_texts(["a text"], path=store.path, model=str(e5_folder))


def test_missing_langchain_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain_core", None)  # import langchain_core now fails
    monkeypatch.delitem(sys.modules, "gingham.integrations.langchain")
    with pytest.raises(ImportError, match=r"pip install 'gingham\[langchain\]'"):
        importlib.import_module("gingham.integrations.langchain")


def test_example_runs(tmp_path, e5_folder):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "langchain_example.py"), "--model", str(e5_folder),
                          "--index-dir", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    assert "penicillin" in out.stdout and "retriever: moon" in out.stdout
    assert "after add: ['k2'" in out.stdout and "after delete: ['everest'" in out.stdout


def test_search_by_vector_equals_search_by_text(store):
    query = "Wer hat das Penicillin entdeckt?"
    q = store.index.encoder.encode_queries([query])[0]
    by_text = [d.id for d in store.similarity_search(query, k=3)]
    assert [d.id for d in store.similarity_search_by_vector(q, k=3)] == by_text
    assert [d.id for d in store.similarity_search_by_vector(q.tolist(), k=3)] == by_text
    assert len(store.similarity_search_by_vector(q[0], k=2)) == 2  # one vector: a one-token query
    with pytest.raises(ValueError, match="n_tokens"):
        store.similarity_search_by_vector(np.zeros((3, 7)), k=2)


def test_max_marginal_relevance(store):
    query = "Wer hat das Penicillin entdeckt?"
    plain = [d.id for d in store.similarity_search(query, k=4)]
    assert [d.id for d in store.max_marginal_relevance_search(query, k=4, fetch_k=10, lambda_mult=1.0)] == plain
    diverse = store.max_marginal_relevance_search(query, k=4, fetch_k=10, lambda_mult=0.3)
    assert diverse[0].id == "penicillin" and len({d.id for d in diverse}) == 4
    q = store.index.encoder.encode_queries([query])[0]
    assert [d.id for d in store.max_marginal_relevance_search_by_vector(q, k=4, fetch_k=10, lambda_mult=0.3)] == [
        d.id for d in diverse]
    assert all(d.metadata["even"] for d in store.max_marginal_relevance_search(query, k=2, filter={"even": True}))
    with pytest.raises(ValueError, match="lambda_mult"):
        store.max_marginal_relevance_search(query, lambda_mult=2)


def test_mmr_against_a_brute_force_reference():
    """The greedy pick equals the definition, recomputed from scratch at each step."""
    from gingham.integrations.langchain import document_similarities, maximal_marginal_relevance

    rng = np.random.default_rng(0)
    tokens = [rng.standard_normal((int(rng.integers(2, 6)), 8)) for _ in range(9)]
    sim = document_similarities(tokens)
    assert np.allclose(sim, sim.T) and np.allclose(np.diag(sim), 1.0) and (np.abs(sim) <= 1 + 1e-12).all()
    relevance = rng.uniform(0.2, 0.9, 9)
    for lam in (0.0, 0.3, 0.7, 1.0):
        picked = maximal_marginal_relevance(relevance, sim, 6, lam)
        ref = [int(np.argmax(relevance))]
        while len(ref) < 6:
            rest = [i for i in range(9) if i not in ref]
            gains = [lam * relevance[i] - (1 - lam) * max(sim[i, j] for j in ref) for i in rest]
            ref.append(rest[int(np.argmax(gains))])
        assert picked == ref

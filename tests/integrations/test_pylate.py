"""The PyLate drop-in: the contract ``pylate.retrieve.ColBERT`` relies on, checked directly (PyLate need not be
installed), and with PyLate's own retriever when it is importable."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gingham import exact_search
from gingham.integrations.pylate import PLAID

from tests.conftest import normalised

DIM = 32
OPTIONS = {"seed": 0, "calibrate": False}


def corpus(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"doc-{i}" for i in range(n)]
    docs = [normalised(rng, int(rng.integers(3, 12)), DIM) for _ in range(n)]
    return ids, docs


def queries(n: int = 4, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [normalised(rng, 5, DIM) for _ in range(n)]


@pytest.fixture()
def index(tmp_path):
    ids, docs = corpus()
    return PLAID(index_folder=tmp_path, index_name="pl", override=True, build_options=OPTIONS).add_documents(
        documents_ids=ids, documents_embeddings=docs)


def test_results_have_pylate_shape_and_match_exact_maxsim(index):
    ids, docs = corpus()
    qs = queries()
    results = index(queries_embeddings=qs, k=5)
    assert isinstance(results, list) and len(results) == len(qs)
    exact = index.index.exact_search(qs, 5)
    for q, row in enumerate(results):
        assert len(row) == 5
        assert all(set(r) == {"id", "score"} and isinstance(r["score"], float) for r in row)
        assert [r["score"] for r in row] == sorted((r["score"] for r in row), reverse=True)
        assert [r["id"] for r in row] == [doc for doc, _ in exact.rows(q)]
    # queries near a document find it, as exact MaxSim over the uncompressed vectors does
    rng = np.random.default_rng(2)
    near = [docs[i][:3] + 0.1 * normalised(rng, min(3, len(docs[i])), DIM) for i in (3, 17, 42, 55)]
    truth = exact_search(near, docs, 1, doc_ids=ids)
    assert [row[0]["id"] for row in index(near, k=1)] == [truth.ids[q, 0] for q in range(4)] == [
        "doc-3", "doc-17", "doc-42", "doc-55"]


def test_inputs_pylate_gives(tmp_path):
    torch = pytest.importorskip("torch", reason="torch tensors as input need torch installed")
    ids, docs = corpus(20)
    padded = np.zeros((20, 11, DIM), np.float32)
    for i, d in enumerate(docs):
        padded[i, :len(d)] = d
    a = PLAID(tmp_path, "tensors", build_options=OPTIONS).add_documents(ids, [torch.from_numpy(d) for d in docs])
    b = PLAID(tmp_path, "numpy", build_options=OPTIONS).add_documents(ids, docs)
    q = queries(1)[0]
    assert a(torch.from_numpy(q), k=3) == b(q, k=3)  # a 2-D query is one query, tensor or array
    assert len(a([q, q], k=3)) == 2 and len(a(np.stack([q, q]), k=3)) == 2
    assert a.index.n_tokens == sum(len(d) for d in docs)
    c = PLAID(tmp_path, "bf16", build_options=OPTIONS).add_documents(
        "one", torch.from_numpy(docs[0]).to(torch.bfloat16).requires_grad_(True))  # one document, as PyLate reads it
    assert c.index.ids() == ["one"]


def test_k_subset_and_missing_ids(index):
    qs = queries(2)
    assert all(len(row) == 60 for row in index(qs, k=500))  # k beyond the corpus: every document, once
    only = ["doc-3", "doc-7", "not-there"]
    rows = index(qs, k=5, subset=only)
    assert all({r["id"] for r in row} == {"doc-3", "doc-7"} for row in rows)
    rows = index(qs, k=5, subset=[["doc-1"], ["doc-2", 17]])  # per query; an id of the other kind is not there
    assert [[r["id"] for r in row] for row in rows] == [["doc-1"], ["doc-2"]]
    assert index(qs, k=5, subset=[]) == [[], []]
    with pytest.raises(ValueError, match="one list per query"):
        index(qs, k=5, subset=[["doc-1"]])
    with pytest.raises(ValueError, match="k must be"):
        index(qs, k=0)


def test_remove_replace_and_reopen(index, tmp_path):
    ids, docs = corpus()
    qs = queries(3)
    assert index.remove_documents(["doc-0", "doc-5", "never-added"]) is index
    assert not {"doc-0", "doc-5"} & {r["id"] for row in index(qs, k=58) for r in row}
    # adding an id that is there replaces it: the query itself becomes that document's tokens
    index.add_documents(["doc-9"], [qs[0]])
    assert index(qs[0], k=1)[0][0]["id"] == "doc-9"
    assert len(index.index) == 58
    again = PLAID(tmp_path, "pl")  # opens what is there
    assert again(qs, k=4) == index(qs, k=4)
    fresh = PLAID(tmp_path, "pl", override=True, build_options=OPTIONS)
    with pytest.raises(ValueError, match="empty"):
        fresh(qs, k=1)
    fresh.add_documents(ids[:10], docs[:10])
    assert len(fresh.index) == 10 and len(PLAID(tmp_path, "pl").index) == 10
    embs = fresh.get_documents_embeddings([["doc-1", "doc-2"], ["doc-3"]])
    assert [[e.shape for e in row] for row in embs] == [[docs[1].shape, docs[2].shape], [docs[3].shape]]
    assert np.mean(np.sum(embs[0][0] * docs[1], axis=1)) > 0.8  # decompressed, close to the original


@pytest.mark.skipif(importlib.util.find_spec("pylate") is None,
                    reason="pylate is not installed (pip install pylate): the contract is checked above without it")
def test_pylate_retriever_runs_on_gingham(index):
    from pylate import retrieve

    qs = queries(3)
    retriever = retrieve.ColBERT(index=index)
    assert retriever.retrieve(queries_embeddings=qs, k=4) == index(qs, k=4)
    assert retriever.retrieve(queries_embeddings=qs, k=4, subset=["doc-1", "doc-2"]) == index(
        qs, k=4, subset=["doc-1", "doc-2"])


def test_example_runs(tmp_path, e5_folder):
    script = Path(__file__).parents[2] / "examples" / "pylate_example.py"
    out = subprocess.run([sys.executable, str(script), "--model", str(e5_folder), "--index-folder", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "moon" in out.stdout and "penicillin" in out.stdout


# PyLate 1.6's PLAID signature (pylate/indexes/plaid.py): the names, in order, and the build defaults.
PYLATE_INIT = ["index_folder", "index_name", "override", "use_fast", "nbits", "kmeans_niters",
               "max_points_per_centroid", "n_ivf_probe", "n_full_scores", "n_samples_kmeans", "batch_size",
               "show_progress", "device"]


def test_same_keyword_names_and_build_defaults_as_pylate():
    import inspect

    params = inspect.signature(PLAID.__init__).parameters
    positional = [n for n, p in params.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == PYLATE_INIT
    assert params["nbits"].default == 4 and params["kmeans_niters"].default == 4
    assert params["index_folder"].default == "indexes" and params["index_name"].default == "colbert"
    assert any(p.kind is p.VAR_KEYWORD for p in params.values())  # the Stanford backend's keywords are accepted
    assert list(inspect.signature(PLAID.get_documents_embeddings).parameters)[1:] == ["document_ids"]
    assert list(inspect.signature(PLAID.add_documents).parameters)[1:3] == ["documents_ids", "documents_embeddings"]


def test_pylates_documented_usage_runs_unchanged(tmp_path, monkeypatch):
    """PyLate's own PLAID docstring example, with the model's output replaced by token vectors of the same shape
    kind (20 documents, 2 queries) and the index class by Gingham's."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(5)
    documents_embeddings = [normalised(rng, int(rng.integers(20, 40)), 128) for _ in range(20)]
    queries_embeddings = [normalised(rng, 32, 128) for _ in range(2)]

    index = PLAID(
        index_folder="test_index",
        index_name="plaid_colbert",
        override=True,
    )
    index = index.add_documents(
        documents_ids=range(len(documents_embeddings)),
        documents_embeddings=documents_embeddings
    )
    scores = index(
        queries_embeddings,
        k=10,
    )
    assert len(scores) == 2 and all(len(row) == 10 for row in scores)
    index = index.add_documents(
        documents_ids=range(len(documents_embeddings), len(documents_embeddings) * 2),
        documents_embeddings=documents_embeddings
    )
    scores = index(
        queries_embeddings,
        k=25,
    )
    assert all(len(row) == 25 for row in scores)
    assert index.index.nbits == 4 and (tmp_path / "test_index" / "plaid_colbert").is_dir()
    embs = index.get_documents_embeddings(document_ids=[[0, 21]])
    assert [e.shape for e in embs[0]] == [documents_embeddings[0].shape, documents_embeddings[1].shape]

"""sentence-transformers' multi-vector output (``output_value="token_embeddings"``: one tensor of token vectors per
text) goes into an index as it comes."""

from __future__ import annotations

import pytest

from gingham import Index

st = pytest.importorskip("sentence_transformers",
                         reason="sentence-transformers is not installed (pip install sentence-transformers); torch "
                                "tensors as input are tested without it in tests/index/test_tensor_inputs.py")

pytestmark = pytest.mark.encoder

TEXTS = ["the quick brown fox jumps over the lazy dog.", "a short query", "hello world",
         "late interaction keeps one vector per token, and scores with maxsim!"]


def test_token_embeddings_from_sentence_transformers(bert_plain, tmp_path):
    model = st.SentenceTransformer(str(bert_plain), device="cpu")
    docs = model.encode(TEXTS, output_value="token_embeddings")
    assert all(hasattr(d, "detach") for d in docs)  # torch tensors, one per text, of different lengths
    ix = Index.create(tmp_path / "ix", docs, calibrate=False)
    assert ix.n_tokens == sum(len(d) for d in docs) and len(ix) == len(TEXTS)
    query = model.encode(["hello world"], output_value="token_embeddings")[0]
    assert ix.search(query, 1).ids[0, 0] == 2

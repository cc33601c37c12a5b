"""Token spans of explanations line up with the vectors the encoder keeps, in every checkpoint layout: a prefix
inserted as a token (PyLate, Stanford), punctuation skiplists, query expansion, byte-level BPE (LFM2)."""

from __future__ import annotations

import string

import pytest

from gingham import Index
from gingham.encoder import load_encoder
from gingham.search.explain import align

from tests.encoder.conftest import CORPUS

pytestmark = pytest.mark.encoder

TEXTS = list(dict.fromkeys(CORPUS))
QUERIES = ["the lazy fox?", "numbers: 1, 2 and 3!", "compressed search"]


@pytest.mark.parametrize("layout", ["bert_pylate", "bert_pylate_96", "bert_stanford", "bert_plain", "lfm2_bidir",
                                    "modernbert_pylate"])
def test_tokens_align_with_kept_vectors(layout, request):
    enc = load_encoder(request.getfixturevalue(layout))
    for text, vectors in zip(TEXTS, enc.encode_documents(TEXTS)):
        tokens = align(enc, text, is_query=False)
        assert len(tokens) == len(vectors)
        if enc.config.skiplist_ids:  # punctuation dropped from documents, as from their vectors
            assert not any(text[a:b] in string.punctuation for a, b in filter(None, tokens.spans))
        if enc.config.document_prefix_id is not None:
            assert tokens.kinds[1] == "prefix"
        for span, kind in zip(tokens.spans, tokens.kinds):
            assert span is None or kind == "text"
    for text, vectors in zip(QUERIES, enc.encode_queries(QUERIES)):
        tokens = align(enc, text, is_query=True)
        assert len(tokens) == len(vectors)
        if enc.config.do_query_expansion:
            assert len(tokens) == enc.config.query_length and tokens.kinds[-1] == "expansion"


def test_explain_on_a_pylate_layout_index(bert_pylate, tmp_path):
    ix = Index.from_texts(tmp_path / "ix", TEXTS, model=str(bert_pylate), show_progress=False, calibrate=False)
    query = "the lazy dog"
    best = ix.search_text(query, 1)
    e = ix.explain(query, int(best.ids[0, 0]))
    assert e.score == pytest.approx(float(best.scores[0, 0]), abs=1e-3)
    assert len(e.doc_tokens) == ix.decompress(int(best.ids[0, 0])).shape[0]
    kinds = e.query_tokens.kinds
    assert kinds[1] == "prefix" and "expansion" in kinds  # [CLS] [Q] text… [SEP] [MASK]…
    text = ix.text(int(best.ids[0, 0]))
    assert e.highlight(color=False).replace("**", "") == text

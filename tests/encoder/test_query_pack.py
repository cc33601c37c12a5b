"""Query packs (gingham.encoder.light): ONNX Runtime and `tokenizers` give the float32 torch encoder's token ids
and vectors, an index's text queries use the pack in a new process that never imports torch or transformers and
rank as the torch encoder does, and a pack that is damaged or does not reproduce torch is never used."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from gingham.encoder.light import pack_applies

CONFIG = {"query_length": 32}  # any recorded config: pack_applies only asks that there is one


@pytest.fixture(autouse=True)
def _packs_on(monkeypatch):
    monkeypatch.setenv("GINGHAM_QUERY_PACK", "1")  # tests/conftest.py turns them off for every other test


@pytest.mark.parametrize("options, applies", [
    ({}, True), ({"dtype": "auto"}, True), ({"dtype": "float32"}, True), ({"dtype": "fp32", "threads": 2}, True),
    ({"dtype": "bfloat16"}, False), ({"dtype": "int8"}, False), ({"dtype": "float16"}, False),
    ({"device": "cuda"}, False), ({"device": "cpu:0"}, True), ({"backend": "onnxruntime"}, True),
])
def test_a_pack_applies_only_where_the_settings_ask_for_float32_vectors(options, applies):
    assert pack_applies({"model": "m", "options": options, "config": CONFIG}) is applies


def test_no_pack_without_a_recorded_encoder_or_when_turned_off(monkeypatch):
    assert not pack_applies(None) and not pack_applies({"model": "m", "options": {}})  # built from embeddings
    monkeypatch.setenv("GINGHAM_QUERY_PACK", "0")
    assert not pack_applies({"model": "m", "options": {}, "config": CONFIG})


pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import gingham  # noqa: E402
from gingham.encoder import load_encoder  # noqa: E402
from gingham.encoder import light  # noqa: E402
from gingham.encoder.light import PackEncoder, load_pack, write_pack  # noqa: E402
from tests.encoder.tiny_checkpoints import CORPUS, rebuild_checkpoint  # noqa: E402

pytestmark = pytest.mark.encoder

QUERIES = ["a short query", "  hello world  ", "¿dónde está la estación?", "日本の首都",
           "late interaction " * 40, "", "numbers 1 2 3 and symbols # $ %"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("query_pack")
    return {name: rebuild_checkpoint(name, root / name) for name in ("bert128", "lfm2_causal128", "modernbert96")}


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GINGHAM_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    light._loaded.clear()
    return tmp_path / "onnx-cache"


def _recorded(encoder) -> dict:
    from gingham.common.config import jsonable

    return json.loads(json.dumps(jsonable(encoder.config)))  # as an index's manifest holds it


@pytest.mark.parametrize("name", ["bert128", "lfm2_causal128", "modernbert96"])
def test_a_pack_gives_the_torch_encoders_ids_and_vectors(folders, cache, name):
    ref = load_encoder(folders[name], dtype="float32")
    config = _recorded(ref)
    folder = write_pack(ref, folders[name], config)
    assert folder is not None and (folder / "pack.json").is_file() and not (folder / "candidate.json").exists()
    pack = load_pack(folders[name], config)
    assert isinstance(pack, PackEncoder) and pack.config == ref.config and pack.parity <= light.PARITY_TOLERANCE
    assert pack.tokenize(QUERIES, is_query=True) == ref.tokenize(QUERIES, is_query=True)  # long ones truncated
    assert pack.tokenize(CORPUS, is_query=False) == ref.tokenize(CORPUS, is_query=False)
    for mine, theirs in [(pack.encode_queries(QUERIES, batch_size=3), ref.encode_queries(QUERIES, batch_size=3)),
                         (pack.encode_documents(CORPUS, batch_size=5), ref.encode_documents(CORPUS, batch_size=5))]:
        for a, b in zip(mine, theirs):
            assert a.shape == b.shape and a.dtype == np.float32
            np.testing.assert_allclose(a, b, atol=1e-5)
    assert write_pack(ref, folders[name], config) == folder  # written once
    other = dict(config, query_length=config["query_length"] - 1)
    assert load_pack(folders[name], other) is None  # other settings, other vectors: not this pack


def test_a_pack_that_does_not_reproduce_torch_is_not_kept(folders, cache, monkeypatch, caplog):
    ref = load_encoder(folders["bert128"], dtype="float32")
    monkeypatch.setattr(light, "PARITY_TOLERANCE", -1.0)
    with caplog.at_level(logging.WARNING, logger="gingham.encoder.light"):
        assert write_pack(ref, folders["bert128"], _recorded(ref)) is None
    assert "does not reproduce the torch encoder" in caplog.text
    assert load_pack(folders["bert128"], _recorded(ref)) is None
    assert not list(cache.glob("packs/*/pack.json"))


PROBE = """
import json, sys
import gingham
ix = gingham.Index.open(sys.argv[1])
res = ix.search_text(json.loads(sys.argv[2]), 5)
print(json.dumps({"ids": res.ids.tolist(), "scores": res.scores.tolist(), "backend": ix.query_encoder.backend,
                  "heavy": [m for m in ("torch", "transformers") if m in sys.modules]}))
"""


def _probe(path, queries, env):
    proc = subprocess.run([sys.executable, "-c", PROBE, str(path), json.dumps(queries)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_an_index_from_texts_answers_text_queries_without_torch_in_a_new_process(folders, cache, tmp_path):
    path = tmp_path / "ix"
    ix = gingham.Index.from_texts(path, CORPUS, model=folders["lfm2_causal128"], nbits=4, calibrate=False,
                                  encoder_options={"dtype": "float32"})  # with the pack off, torch float32 too
    queries = QUERIES[:5]
    torch_res = ix.search_text(queries, 5, encoder=load_encoder(folders["lfm2_causal128"], dtype="float32"))
    env = dict(os.environ, GINGHAM_ONNX_CACHE=str(cache))
    out = _probe(path, queries, env)
    assert out["heavy"] == [] and out["backend"] == "onnxruntime (query pack)"
    assert out["ids"] == torch_res.ids.tolist()
    np.testing.assert_allclose(out["scores"], torch_res.scores, atol=1e-4)
    # turned off, the same index encodes its queries with torch, with the same ranking
    off = _probe(path, queries, dict(env, GINGHAM_QUERY_PACK="0"))
    assert off["backend"] == "torch" and "torch" in off["heavy"] and off["ids"] == out["ids"]


@pytest.mark.parametrize("damage", ["graph", "pack.json", "tokenizer.json"])
def test_a_damaged_pack_is_skipped_and_torch_encodes(folders, cache, tmp_path, damage, caplog):
    path = tmp_path / "ix"
    ix = gingham.Index.from_texts(path, CORPUS, model=folders["bert128"], nbits=2, calibrate=False)
    expected = ix.search_text(QUERIES[:3], 3)
    (pack_folder,) = [p.parent for p in cache.glob("packs/*/pack.json")]
    meta = json.loads((pack_folder / "pack.json").read_text())
    victim = (pack_folder / meta["graph"]).resolve() if damage == "graph" else pack_folder / damage
    victim.write_bytes(b"\x00not what it was" * 3)
    light._loaded.clear()
    with caplog.at_level(logging.WARNING, logger="gingham.encoder.light"):
        reopened = gingham.Index.open(path)
        res = reopened.search_text(QUERIES[:3], 3)
    assert reopened.query_encoder is reopened.encoder and reopened.encoder.backend == "torch"
    assert "ignoring the query pack" in caplog.text
    assert res.ids.tolist() == expected.ids.tolist()

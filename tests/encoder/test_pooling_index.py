"""Token pooling wired through the text paths (from_texts, add_texts, the CLI, streaming builds), and the
encoder revision recorded in the manifest."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from gingham import Index
from gingham.encoder import load_encoder
from gingham.encoder.pooling import n_pooled, pool_documents
from tests.encoder.conftest import CORPUS

pytestmark = pytest.mark.encoder

TEXTS = [t + f" {i}" for i, t in enumerate(CORPUS[:12])]
IDS = [f"d{i}" for i in range(len(TEXTS))]


def test_from_texts_pools_and_add_texts_follows(bert_pylate, tmp_path):
    enc = load_encoder(bert_pylate)
    full = enc.encode_documents(TEXTS)
    ix = Index.from_texts(tmp_path / "ix", TEXTS, IDS, model=str(bert_pylate), pool_factor=2, n_centroids=8,
                          show_progress=False)
    info = ix.manifest["encoder"]
    assert info["pooling"] == {"pool_factor": 2, "renormalize": False, "protected_tokens": 1}
    assert info["config"]["revision"] == 2
    assert ix.info()["n_tokens"] == sum(n_pooled(len(v), 2) for v in full) < sum(len(v) for v in full)
    before = ix.info()["n_tokens"]
    ix.add_texts(["a short query about colbert"], ["new"])
    added = enc.encode_documents(["a short query about colbert"])[0]
    assert Index.open(tmp_path / "ix").info()["n_tokens"] == before + n_pooled(len(added), 2)
    # the pooled vectors are what was indexed: one stored row per pooled vector, each decoding close to it. (A
    # search for d3's own pooled vectors is not a fair check here: this tiny random model's tokens all point
    # nearly the same way, so d3 leads d11 by 0.13 in exact MaxSim, within 2-bit compression error.)
    pooled = np.asarray(pool_documents(enc.encode_documents([TEXTS[3]]), 2)[0])
    stored = ix.decompress("d3")
    assert stored.shape == pooled.shape
    cos = (stored * pooled).sum(1) / (np.linalg.norm(stored, axis=1) * np.linalg.norm(pooled, axis=1))
    assert cos.min() > 0.9, cos
    with pytest.raises(ValueError, match="pool_factor"):
        Index.from_texts(tmp_path / "bad", TEXTS, IDS, model=str(bert_pylate), pool_factor=0)


def test_cli_pool_factor(bert_pylate, tmp_path):
    from typer.testing import CliRunner

    from gingham.app.cli import app

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": i, "text": t}) for i, t in zip(IDS, TEXTS)) + "\n")
    r = CliRunner().invoke(app, ["index", str(corpus), str(tmp_path / "ix"), "--model", str(bert_pylate),
                                 "--pool-factor", "3", "--n-centroids", "8", "-q"])
    assert r.exit_code == 0, r.output
    assert Index.open(tmp_path / "ix").manifest["encoder"]["pooling"]["pool_factor"] == 3
    r = CliRunner().invoke(app, ["build", str(corpus), str(tmp_path / "ix2"), "--model", str(bert_pylate),
                                 "--pool-factor", "2", "--n-centroids", "8", "-q"])
    assert r.exit_code == 0, r.output
    ix2 = Index.open(tmp_path / "ix2")
    assert ix2.manifest["encoder"]["pooling"]["pool_factor"] == 2
    full = load_encoder(bert_pylate).encode_documents(TEXTS)
    assert ix2.info()["n_tokens"] == sum(n_pooled(len(v), 2) for v in full)


def test_text_source_pools(bert_pylate, tmp_path):
    from gingham.build.streaming import TextSource

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": i, "text": t}) for i, t in zip(IDS, TEXTS)) + "\n")
    plain = TextSource(corpus, model=str(bert_pylate), encode_docs=5)
    pooled = TextSource(corpus, model=str(bert_pylate), encode_docs=5, pool_factor=2, pool_renormalize=True)
    assert "pooling" not in plain.fingerprint() and pooled.fingerprint()["pooling"]["pool_factor"] == 2
    assert pooled.encoder["pooling"]["renormalize"] is True
    for a, b in zip(plain.batches(), pooled.batches()):
        assert list(b.lengths) == [n_pooled(int(n), 2) for n in a.lengths]
        np.testing.assert_allclose(np.linalg.norm(b.flat, axis=1), 1.0, atol=1e-5)


def test_encoder_revision_mismatch_is_reported(bert_pylate, tmp_path, caplog):
    """An index built before encoder revisions were recorded (revision 1) still opens; loading its encoder
    for text queries logs the mismatch, and ``encoder_revision_note`` / ``gingham info`` say it."""
    from typer.testing import CliRunner

    from gingham.app.cli import app
    from gingham.common.config import jsonable

    enc = load_encoder(bert_pylate)
    config = jsonable(enc.config)
    config.pop("revision")
    embs = enc.encode_documents(TEXTS)
    Index.create(tmp_path / "old", embs, IDS, n_centroids=8, show_progress=False,
                 encoder={"model": str(bert_pylate), "options": {}, "config": config})
    old = Index.open(tmp_path / "old")
    assert "revision 1" in old.encoder_revision_note and "revision 2" in old.encoder_revision_note
    with caplog.at_level(logging.WARNING, logger="gingham"):
        res = old.search_text([TEXTS[0]], 1)
    assert res.ids[0, 0] == "d0"
    assert any("encoder revision 1" in r.getMessage() for r in caplog.records)
    r = CliRunner().invoke(app, ["info", str(tmp_path / "old")])
    assert r.exit_code == 0 and "encoder_revision_note" in r.output

    new = Index.from_texts(tmp_path / "new", TEXTS, IDS, model=str(bert_pylate), n_centroids=8, show_progress=False)
    assert new.encoder_revision_note is None
    assert Index.create(tmp_path / "vec", embs, IDS, n_centroids=8, show_progress=False).encoder_revision_note is None

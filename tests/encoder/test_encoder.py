"""Encoder behaviour on tiny random checkpoints: layouts, prefixes, expansion, skiplist, padding, references."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from gingham.encoder import EncoderConfig  # noqa: E402
from gingham.encoder import load_encoder as _load_encoder  # noqa: E402
from gingham.encoder.encoder import torch_threads  # noqa: E402


def load_encoder(*args, dtype="float32", **kwargs):
    """These tests compare with float32 references: the reference path, whatever dtype "auto" picks here."""
    return _load_encoder(*args, dtype=dtype, **kwargs)


pytestmark = pytest.mark.encoder

SHORT = "hello world"
LONG = " ".join(["the quick brown fox jumps over the lazy dog, and late interaction keeps vectors."] * 4)
TEXTS = [SHORT, "a short query", LONG, "colbert, plaid and pylate: compressed search engines?"]


def _dense(folder, name="1_Dense"):
    from safetensors.torch import load_file

    return load_file(str(folder / name / "model.safetensors"))["linear.weight"]


def _normalize(x):
    return torch.nn.functional.normalize(x.float(), dim=-1).numpy()


# ------------------------------------------------------------------ PyLate layout, BERT
def test_pylate_bert_config_and_prefixes(bert_pylate):
    enc = load_encoder(bert_pylate)
    c = enc.config
    assert isinstance(c, EncoderConfig)
    assert (c.layout, c.model_type, c.dim, enc.dim) == ("pylate", "bert", 128, 128)
    assert (c.query_length, c.document_length, c.do_query_expansion) == (16, 64, True)
    tok = enc.tokenizer
    q_id, d_id = tok.convert_tokens_to_ids("[Q] "), tok.convert_tokens_to_ids("[D] ")
    (q,) = enc.tokenize([SHORT], is_query=True)
    (d,) = enc.tokenize([SHORT], is_query=False)
    assert q[:2] == [tok.cls_token_id, q_id] and d[:2] == [tok.cls_token_id, d_id]
    assert q[-1] == tok.sep_token_id and q[2:-1] == tok(SHORT, add_special_tokens=False)["input_ids"]
    with pytest.raises(Exception):
        c.query_length = 3  # frozen


def test_query_expansion_with_mask_token(bert_pylate):
    enc = load_encoder(bert_pylate)
    (q,) = enc.encode_queries([SHORT])
    assert q.shape == (16, 128) and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-5)
    # reference: [CLS] [Q] tokens [SEP] then [MASK] up to query_length, masks not attended
    ids = enc.tokenize([SHORT], is_query=True)[0]
    full = ids + [enc.tokenizer.mask_token_id] * (16 - len(ids))
    att = [1] * len(ids) + [0] * (16 - len(ids))
    model = transformers.BertModel.from_pretrained(bert_pylate).eval()
    with torch.no_grad():
        h = model(input_ids=torch.tensor([full]), attention_mask=torch.tensor([att])).last_hidden_state[0]
    ref = _normalize(h @ _dense(bert_pylate).T)
    np.testing.assert_allclose(q, ref, atol=1e-5)
    long_q = enc.encode_queries([LONG])[0]
    assert long_q.shape == (16, 128)  # truncated to query_length


def test_documents_match_reference_and_drop_skiplist(bert_pylate):
    enc = load_encoder(bert_pylate)
    docs = enc.encode_documents(TEXTS, batch_size=3)
    model = transformers.BertModel.from_pretrained(bert_pylate).eval()
    w = _dense(bert_pylate)
    skip = set(enc.config.skiplist_ids)
    assert skip and enc.tokenizer.convert_tokens_to_ids(",") in skip
    for text, got in zip(TEXTS, docs):
        ids = enc.tokenize([text], is_query=False)[0]
        assert len(ids) <= 64
        with torch.no_grad():
            h = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        ref = _normalize(h @ w.T)
        keep = [i for i, t in enumerate(ids) if t not in skip]
        assert got.shape == (len(keep), 128)
        np.testing.assert_allclose(got, ref[keep], atol=1e-5)
    n_punct = sum(1 for t in enc.tokenize([TEXTS[3]], is_query=False)[0] if t in skip)
    assert n_punct == 3  # ',' ':' '?'


def test_skiplist_override_and_lengths(bert_pylate):
    enc = load_encoder(bert_pylate, skiplist=[], document_length=8, query_length=10, query_prefix="[D] ")
    assert enc.config.skiplist_ids == () and enc.config.document_length == 8
    (d,) = enc.encode_documents([TEXTS[3]])
    assert d.shape == (8, 128)
    (q,) = enc.tokenize([SHORT], is_query=True)
    assert q[1] == enc.tokenizer.convert_tokens_to_ids("[D] ")
    assert enc.encode_queries([SHORT])[0].shape == (10, 128)


def test_padding_changes_no_real_token(bert_pylate):
    enc = load_encoder(bert_pylate)
    alone = enc.encode_documents([SHORT])[0]
    batched = enc.encode_documents([LONG, SHORT, LONG], batch_size=8)
    np.testing.assert_allclose(batched[1], alone, atol=1e-5)
    assert batched[0].shape[0] > alone.shape[0]


def test_results_in_input_order(bert_pylate):
    enc = load_encoder(bert_pylate)
    texts = [TEXTS[i % 4] + f" {i}" for i in range(9)]
    together = enc.encode_documents(texts, batch_size=2)
    for text, got in zip(texts, together):
        np.testing.assert_allclose(got, enc.encode_documents([text])[0], atol=1e-5)
    assert enc.encode_documents([]) == []


def test_96_dim_head_attending_expansion(bert_pylate_96):
    enc = load_encoder(bert_pylate_96)
    assert enc.dim == 96 and enc.config.attend_to_expansion_tokens
    (q,) = enc.encode_queries([SHORT])
    assert q.shape == (12, 96)
    ids = enc.tokenize([SHORT], is_query=True)[0]
    full = ids + [enc.tokenizer.mask_token_id] * (12 - len(ids))
    model = transformers.BertModel.from_pretrained(bert_pylate_96).eval()
    with torch.no_grad():
        h = model(input_ids=torch.tensor([full])).last_hidden_state[0]  # everything attended
    np.testing.assert_allclose(q, _normalize(h @ _dense(bert_pylate_96).T), atol=1e-5)


# ------------------------------------------------------------------ Stanford ColBERT and plain layouts
def test_stanford_layout(bert_stanford):
    from safetensors.torch import load_file

    enc = load_encoder(bert_stanford)
    c = enc.config
    assert (c.layout, c.query_length, c.document_length, c.dim) == ("stanford", 16, 48, 128)
    tok = enc.tokenizer
    (q,) = enc.tokenize([SHORT], is_query=True)
    (d,) = enc.tokenize([SHORT], is_query=False)
    assert q[1] == tok.convert_tokens_to_ids("[unused0]") and d[1] == tok.convert_tokens_to_ids("[unused1]")
    state = load_file(str(bert_stanford / "model.safetensors"))
    model = transformers.BertModel.from_pretrained(bert_stanford).eval()
    torch.testing.assert_close(model.embeddings.word_embeddings.weight, state["bert.embeddings.word_embeddings.weight"])
    (qv,) = enc.encode_queries([SHORT])
    full = q + [tok.mask_token_id] * (16 - len(q))
    with torch.no_grad():
        h = model(input_ids=torch.tensor([full]), attention_mask=torch.tensor([[1] * len(q) + [0] * (16 - len(q))]))
    np.testing.assert_allclose(qv, _normalize(h.last_hidden_state[0] @ state["linear.weight"].T), atol=1e-5)
    (dv,) = enc.encode_documents([TEXTS[3]])
    ids = enc.tokenize([TEXTS[3]], is_query=False)[0]
    assert dv.shape[0] == len(ids) - 3  # punctuation masked


def test_plain_encoder(bert_plain):
    enc = load_encoder(bert_plain)
    c = enc.config
    assert (c.layout, c.dim, c.do_query_expansion, c.skiplist_ids) == ("plain", 48, False, ())
    (d,) = enc.encode_documents([TEXTS[3]])
    ids = enc.tokenize([TEXTS[3]], is_query=False)[0]
    model = transformers.BertModel.from_pretrained(bert_plain).eval()
    with torch.no_grad():
        h = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    np.testing.assert_allclose(d, _normalize(h), atol=1e-5)
    (q,) = enc.encode_queries([SHORT])
    assert q.shape == (len(enc.tokenize([SHORT], is_query=True)[0]), 48)


def test_modernbert_pylate(modernbert_pylate):
    enc = load_encoder(modernbert_pylate)
    assert (enc.config.model_type, enc.dim, enc.config.do_query_expansion) == ("modernbert", 96, False)
    batched = enc.encode_documents([LONG, SHORT], batch_size=2)
    alone = enc.encode_documents([SHORT])[0]
    np.testing.assert_allclose(batched[1], alone, atol=1e-4)
    ids = enc.tokenize([SHORT], is_query=False)[0]
    model = transformers.ModernBertModel.from_pretrained(modernbert_pylate).eval()
    with torch.no_grad():
        h = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    np.testing.assert_allclose(alone, _normalize(h.last_hidden_state[0] @ _dense(modernbert_pylate).T), atol=1e-4)
    (q,) = enc.encode_queries([SHORT])
    assert q.shape[0] == len(enc.tokenize([SHORT], is_query=True)[0])


# ------------------------------------------------------------------ LFM2
def _rms(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _lfm2_reference(model, ids: list[int], bidirectional: bool, n_keys: int | None = None) -> torch.Tensor:
    """Slow, plain LFM2 forward of ONE sequence, written from the weights and LiquidAI's description.

    Every position of ``ids`` is part of the sequence for the short convolutions (zeros only past its ends);
    attention looks at the first ``n_keys`` positions only (default: all), from every row, with no
    self-attention added for the others: that is a query with expansion tokens that are not attended
    (``attend_to_expansion_tokens`` false), or a sequence padded without zeroing the convolutions' inputs."""
    cfg = model.config
    n_keys = len(ids) if n_keys is None else n_keys
    eps = cfg.norm_eps
    n = len(ids)
    x = model.embed_tokens.weight[torch.tensor(ids)].double()
    head = cfg.hidden_size // cfg.num_attention_heads
    theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta") or cfg.rope_theta  # transformers 5 / 4
    inv = 1.0 / (theta ** (torch.arange(0, head, 2, dtype=torch.float64) / head))
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)

    def rope(t):  # t: (heads, n, head)
        half = t.shape[-1] // 2
        rot = torch.cat([-t[..., half:], t[..., :half]], -1)
        return t * cos + rot * sin

    for layer in model.layers:
        w = {k: v.double() for k, v in layer.state_dict().items()}
        h = _rms(x, w["operator_norm.weight"], eps)
        if layer.is_attention_layer:
            q = (h @ w["self_attn.q_proj.weight"].T).view(n, -1, head).transpose(0, 1)
            k = (h @ w["self_attn.k_proj.weight"].T).view(n, -1, head).transpose(0, 1)
            v = (h @ w["self_attn.v_proj.weight"].T).view(n, -1, head).transpose(0, 1)
            q, k = _rms(q, w["self_attn.q_layernorm.weight"], eps), _rms(k, w["self_attn.k_layernorm.weight"], eps)
            q, k = rope(q), rope(k)
            rep = q.shape[0] // k.shape[0]
            k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
            s = q @ k.transpose(1, 2) / math.sqrt(head)
            if not bidirectional:
                s = s.masked_fill(torch.ones(n, n).triu(1).bool(), float("-inf"))
            s[..., n_keys:] = float("-inf")
            o = (s.softmax(-1) @ v).transpose(0, 1).reshape(n, -1)
            out = o @ w["self_attn.out_proj.weight"].T
        else:
            b, c, xx = (h @ w["conv.in_proj.weight"].T).chunk(3, -1)
            bx = b * xx  # (n, H)
            kern = w["conv.conv.weight"][:, 0, :]  # (H, K)
            kk = kern.shape[1]
            left = (kk - 1) // 2 if bidirectional else kk - 1
            y = torch.zeros_like(bx)
            for t in range(n):
                for j in range(kk):
                    src = t + j - left
                    if 0 <= src < n:
                        y[t] += kern[:, j] * bx[src]
            out = (c * y) @ w["conv.out_proj.weight"].T
        x = x + out
        f = _rms(x, w["ffn_norm.weight"], eps)
        ff = (torch.nn.functional.silu(f @ w["feed_forward.w1.weight"].T) * (f @ w["feed_forward.w3.weight"].T))
        x = x + ff @ w["feed_forward.w2.weight"].T
    return _rms(x, model.embedding_norm.weight.double(), eps)


def test_lfm2_bidirectional_matches_reference(lfm2_bidir):
    """LFM2.5-ColBERT's published forward: centred convolutions, attention over the whole (real) sequence."""
    enc = load_encoder(lfm2_bidir)  # the folder's remote code raises if executed
    c = enc.config
    assert (c.model_type, c.bidirectional, c.dim) == ("lfm2", True, 128)
    tok = enc.tokenizer
    (q_ids,) = enc.tokenize([SHORT], is_query=True)
    assert q_ids[0] == tok.bos_token_id and q_ids[1] == tok.convert_tokens_to_ids("[Q] ")
    model = transformers.Lfm2Model.from_pretrained(lfm2_bidir).eval()
    w = _dense(lfm2_bidir).double()
    docs = enc.encode_documents([LONG, SHORT, TEXTS[3]], batch_size=3)
    skip = set(c.skiplist_ids)
    for text, got in zip([LONG, SHORT, TEXTS[3]], docs):
        ids = enc.tokenize([text], is_query=False)[0]
        with torch.no_grad():
            ref = _normalize(_lfm2_reference(model, ids, True) @ w.T)
        keep = [i for i, t in enumerate(ids) if t not in skip]
        np.testing.assert_allclose(got, ref[keep], atol=2e-4)


def test_lfm2_expansion_is_eos(lfm2_bidir, lfm2_causal):
    """Fix (a): PyLate expands queries (and pads document batches) with the mask token, else EOS, else pad.
    LFM2 has no mask token: EOS, not <|pad|>."""
    for folder in (lfm2_bidir, lfm2_causal):
        enc = load_encoder(folder)
        tok = enc.tokenizer
        assert tok.mask_token_id is None and tok.eos_token_id != tok.pad_token_id
        assert enc.config.expansion_token_id == tok.eos_token_id
    assert load_encoder(lfm2_bidir).config.revision == 2


@pytest.mark.parametrize("attend", [False, True])
def test_lfm2_bidirectional_queries_match_reference(lfm2_bidir, attend):
    """Fixes (b) and (c) for LFM2.5: expansion positions are part of the sequence for the convolutions (so the
    last real token sees its expansion neighbour), and an expansion row attends to the real keys only."""
    enc = load_encoder(lfm2_bidir, attend_to_expansion_tokens=attend)
    model = transformers.Lfm2Model.from_pretrained(lfm2_bidir).eval()
    w = _dense(lfm2_bidir).double()
    eos = enc.tokenizer.eos_token_id
    texts = [SHORT, TEXTS[3], LONG]
    got = enc.encode_queries(texts, batch_size=2)
    for text, q in zip(texts, got):
        (ids,) = enc.tokenize([text], is_query=True)
        full = ids + [eos] * (16 - len(ids))
        with torch.no_grad():
            ref = _normalize(_lfm2_reference(model, full, True, n_keys=16 if attend else len(ids)) @ w.T)
        assert q.shape == (16, 128)
        np.testing.assert_allclose(q, ref, atol=2e-4)


def test_lfm2_bidirectional_documents_batch_invariant(lfm2_bidir):
    """A deliberate difference from PyLate: PyLate pads a batch of documents with EOS and does not zero the
    padding before the centred convolutions, so the last real token of a short document depends on what
    else is in its batch. Gingham gives every document its unpadded forward, whatever the batch."""
    enc = load_encoder(lfm2_bidir, skiplist=[])
    model = transformers.Lfm2Model.from_pretrained(lfm2_bidir).eval()
    w = _dense(lfm2_bidir).double()
    alone = enc.encode_documents([SHORT])[0]
    batched = enc.encode_documents([LONG, SHORT], batch_size=2)
    np.testing.assert_allclose(batched[1], alone, atol=1e-5)
    (ids,) = enc.tokenize([SHORT], is_query=False)
    eos = enc.tokenizer.eos_token_id
    with torch.no_grad():
        unpadded = _normalize(_lfm2_reference(model, ids, True) @ w.T)
        padded = _normalize(_lfm2_reference(model, ids + [eos] * 5, True, n_keys=len(ids)) @ w.T)[: len(ids)]
    np.testing.assert_allclose(alone, unpadded, atol=2e-4)
    assert np.abs(padded[-1] - unpadded[-1]).max() > 1e-3  # what PyLate's batch padding would change


def test_lfm2_causal_matches_transformers(lfm2_causal):
    enc = load_encoder(lfm2_causal)
    assert enc.config.bidirectional is False
    model = transformers.Lfm2Model.from_pretrained(lfm2_causal).eval()
    w = _dense(lfm2_causal)
    docs = enc.encode_documents([LONG, SHORT], batch_size=2)
    for text, got in zip([LONG, SHORT], docs):
        ids = enc.tokenize([text], is_query=False)[0]
        with torch.no_grad():
            h = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        keep = [i for i, t in enumerate(ids) if t not in set(enc.config.skiplist_ids)]
        np.testing.assert_allclose(got, _normalize(h @ w.T)[keep], atol=1e-4)
    with torch.no_grad():
        ids = enc.tokenize([SHORT], is_query=False)[0]
        ref = _normalize(_lfm2_reference(model, ids, False) @ w.double().T)
    np.testing.assert_allclose(docs[1], ref[[i for i, t in enumerate(ids) if t not in set(enc.config.skiplist_ids)]],
                               atol=2e-4)


def test_bf16_close_to_fp32(lfm2_bidir):
    a = load_encoder(lfm2_bidir).encode_documents([SHORT])[0]
    b = load_encoder(lfm2_bidir, dtype="bfloat16").encode_documents([SHORT])[0]
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.min(np.sum(a * b, axis=1)) > 0.9


# ------------------------------------------------------------------ errors, threads, progress
def test_missing_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="allow_hub=True"):
        load_encoder("nobody/no-such-model-gingham")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_encoder(tmp_path / "empty")


def test_argument_validation(bert_pylate):
    with pytest.raises(ValueError, match="dtype"):
        load_encoder(bert_pylate, dtype="int4")
    with pytest.raises(ValueError, match="cuda|CUDA"):
        if torch.cuda.is_available():
            raise ValueError("cuda present")
        load_encoder(bert_pylate, device="cuda")
    enc = load_encoder(bert_pylate)
    with pytest.raises(TypeError, match="list of texts"):
        enc.encode_documents("one string")
    with pytest.raises(ValueError, match="query_length"):
        EncoderConfig(query_length=2, query_prefix_id=5)


def test_threads_restored(bert_pylate):
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    enc = load_encoder(bert_pylate, threads=1)
    enc.encode_documents([SHORT])
    assert torch.get_num_threads() == before


def test_progress_follows_logging(bert_pylate, capsys):
    enc = load_encoder(bert_pylate)
    enc.encode_documents(TEXTS)
    assert "encode" not in capsys.readouterr().err
    enc.encode_documents(TEXTS, show_progress=True)
    assert "encode documents" in capsys.readouterr().err
    logger = logging.getLogger("gingham")
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        enc.encode_documents(TEXTS)
        assert "encode documents" in capsys.readouterr().err
    finally:
        logger.setLevel(old)


def test_empty_skiplist_in_checkpoint_keeps_punctuation(bert_pylate, tmp_path):
    """Regression: an empty skiplist_words list must not fall back to the punctuation default."""
    import json
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(bert_pylate, folder)
    cfg = json.loads((folder / "config_sentence_transformers.json").read_text())
    cfg["skiplist_words"] = []
    (folder / "config_sentence_transformers.json").write_text(json.dumps(cfg))
    enc = load_encoder(folder)
    assert enc.config.skiplist_ids == ()
    (d,) = enc.encode_documents([TEXTS[3]])
    assert d.shape[0] == len(enc.tokenize([TEXTS[3]], is_query=False)[0])

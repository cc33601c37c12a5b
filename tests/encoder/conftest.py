"""Tiny random checkpoints in every folder layout the encoder reads, built once per session."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

CORPUS = [
    "the quick brown fox jumps over the lazy dog.",
    "late interaction keeps one vector per token, and scores with maxsim!",
    "colbert, plaid and pylate: compressed search engines?",
    "a short query", "hello world", "numbers 1 2 3 and symbols # $ % & ( ) * + - / : ; < = > @ [ ] ^ _ { | } ~",
    "documents are longer than queries; they are truncated at the document length.",
    "bidirectional convolutions must not leak padding into real tokens",
] * 3

PUNCT = list(string.punctuation)


def _wordpiece(extra: list[str]) -> PreTrainedTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials,
                                                              initial_alphabet=PUNCT))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    if extra:
        fast.add_tokens(extra, special_tokens=False)
    return fast


def _bpe_lfm2(extra: list[str]) -> PreTrainedTokenizerFast:
    specials = ["<|pad|>", "<|startoftext|>", "<|endoftext|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=350, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = tok.token_to_id("<|startoftext|>")
    tok.post_processor = processors.TemplateProcessing(single="<|startoftext|> $A", special_tokens=[("<|startoftext|>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|pad|>", model_max_length=512)
    if extra:
        fast.add_tokens(extra, special_tokens=False)
    return fast


def _save_dense(folder: Path, in_f: int, out_f: int, seed: int) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    save_file({"linear.weight": torch.randn(out_f, in_f, generator=g) * 0.2}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(
        {"in_features": in_f, "out_features": out_f, "bias": False,
         "activation_function": "torch.nn.modules.linear.Identity"}))


def _pylate_files(folder: Path, out_f: int, hidden: int, settings: dict) -> None:
    _save_dense(folder / "1_Dense", hidden, out_f, seed=out_f)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    base = {"query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 16, "document_length": 64,
            "attend_to_expansion_tokens": False, "skiplist_words": PUNCT, "do_query_expansion": True,
            "prompts": {"query": "", "document": ""}, "similarity_fn_name": "MaxSim"}
    base.update(settings)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(base))


def _bert_config(vocab: int, hidden: int = 48) -> "transformers.BertConfig":
    return transformers.BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=2 * hidden, max_position_embeddings=256)


def _lfm2_config(vocab: int, pad_id: int, hidden: int = 64) -> "transformers.Lfm2Config":
    return transformers.Lfm2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                                   num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                   layer_types=["conv", "full_attention", "conv"], pad_token_id=pad_id,
                                   max_position_embeddings=512, conv_L_cache=3, block_auto_adjust_ff_dim=False)


def _randomize(model) -> None:
    """Random weights everywhere (norm gains included), so padding leaks would show."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.dim() == 1 else 0.0))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("encoder_models")


@pytest.fixture(scope="session")
def bert_pylate(models_dir) -> Path:
    folder = models_dir / "bert_pylate"
    tok = _wordpiece(["[Q] ", "[D] "])
    torch.manual_seed(1)
    model = transformers.BertModel(_bert_config(len(tok)))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    _pylate_files(folder, 128, model.config.hidden_size, {})
    return folder


@pytest.fixture(scope="session")
def bert_pylate_96(models_dir) -> Path:
    """answerai-colbert-small-v1 style: 96-dim head, attends to expansion tokens."""
    folder = models_dir / "bert_pylate_96"
    tok = _wordpiece(["[Q] ", "[D] "])
    torch.manual_seed(2)
    model = transformers.BertModel(_bert_config(len(tok), hidden=32))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    _pylate_files(folder, 96, 32, {"attend_to_expansion_tokens": True, "query_length": 12})
    return folder


@pytest.fixture(scope="session")
def bert_stanford(models_dir) -> Path:
    """colbert-ir/colbertv2.0 layout: bert.* and linear.weight in one state dict, artifact.metadata."""
    from safetensors.torch import save_file

    folder = models_dir / "bert_stanford"
    folder.mkdir()
    tok = _wordpiece([])
    torch.manual_seed(3)
    model = transformers.BertModel(_bert_config(len(tok)))
    state = {f"bert.{k}": v.contiguous() for k, v in model.state_dict().items()}
    state["linear.weight"] = torch.randn(128, model.config.hidden_size) * 0.2
    save_file(state, str(folder / "model.safetensors"))
    cfg = model.config.to_dict()
    cfg["architectures"] = ["HF_ColBERT"]
    (folder / "config.json").write_text(json.dumps(cfg))
    tok.save_pretrained(folder)
    (folder / "artifact.metadata").write_text(json.dumps(
        {"query_maxlen": 16, "doc_maxlen": 48, "dim": 128, "similarity": "cosine", "mask_punctuation": True,
         "attend_to_mask_tokens": False}))
    return folder


@pytest.fixture(scope="session")
def bert_plain(models_dir) -> Path:
    folder = models_dir / "bert_plain"
    tok = _wordpiece([])
    torch.manual_seed(4)
    model = transformers.BertModel(_bert_config(len(tok)))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _lfm2_folder(folder: Path, *, bidirectional: bool, seed: int) -> Path:
    tok = _bpe_lfm2(["[Q] ", "[D] "])
    torch.manual_seed(seed)
    model = transformers.Lfm2Model(_lfm2_config(len(tok), tok.pad_token_id))
    _randomize(model)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    # LiquidAI/LFM2-ColBERT-350M (Oct 2025) is a causal Lfm2Model; the bidirectional config (remote code we must
    # not run) is that of LiquidAI/LFM2.5-ColBERT-350M (June 2026)
    if bidirectional:
        cfg = json.loads((folder / "config.json").read_text())
        cfg["architectures"] = ["Lfm2BidirectionalModel"]
        cfg["auto_map"] = {"AutoModel": "modeling_lfm2_bidirectional.Lfm2BidirectionalModel"}
        (folder / "config.json").write_text(json.dumps(cfg))
        (folder / "modeling_lfm2_bidirectional.py").write_text("raise RuntimeError('remote code was executed')\n")
    _pylate_files(folder, 128, model.config.hidden_size, {"query_length": 16, "document_length": 96})
    return folder


@pytest.fixture(scope="session")
def lfm2_bidir(models_dir) -> Path:
    return _lfm2_folder(models_dir / "lfm2_bidir", bidirectional=True, seed=5)


@pytest.fixture(scope="session")
def lfm2_causal(models_dir) -> Path:
    return _lfm2_folder(models_dir / "lfm2_causal", bidirectional=False, seed=6)


@pytest.fixture(scope="session")
def modernbert_pylate(models_dir) -> Path:
    folder = models_dir / "modernbert_pylate"
    tok = _wordpiece(["[Q] ", "[D] "])
    torch.manual_seed(7)
    cfg = transformers.ModernBertConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=96,
                                        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=256,
                                        pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id,
                                        sep_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id,
                                        eos_token_id=tok.sep_token_id, local_attention=16, global_attn_every_n_layers=2)
    model = transformers.ModernBertModel(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    _pylate_files(folder, 96, 64, {"do_query_expansion": False})
    return folder

"""Tiny random checkpoints for the PyLate-parity fixtures, rebuilt bit-identically in any environment.

A checkpoint is its committed small files (config.json, tokenizer files, the sentence-transformers / PyLate
files, ``1_Dense/config.json``) under ``fixtures/pylate/checkpoints/<name>/`` plus weights that are NOT
committed: ``weights.json`` lists each weight file's tensors (name, shape) and every tensor is drawn from
numpy's PCG64 seeded by (the recipe's seed, crc32 of the tensor's name). Numpy's generator is stable across
versions, so the weights are the same whichever torch / transformers wrote or reads them; ``weights.json``
also records a sha256 per file, checked on rebuild.

``make_checkpoint`` (run by ``fixtures/make_pylate_fixtures.py`` in PyLate's environment) writes a folder from
a recipe; ``rebuild_checkpoint`` (run by the tests) copies the committed files and regenerates the weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import string
import zlib
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pylate"
PUNCT = list(string.punctuation)

CORPUS = [
    "the quick brown fox jumps over the lazy dog.",
    "late interaction keeps one vector per token, and scores with maxsim!",
    "colbert, plaid and pylate: compressed search engines?",
    "a short query", "hello world", "numbers 1 2 3 and symbols # $ % & ( ) * + - / : ; < = > @ [ ] ^ _ { | } ~",
    "documents are longer than queries; they are truncated at the document length.",
    "bidirectional convolutions must not leak padding into real tokens",
] * 3

# name -> how to build it; "st" is config_sentence_transformers.json's PyLate settings
RECIPES: dict[str, dict] = {
    "bert128": {"kind": "bert", "seed": 11, "hidden": 32, "dim": 128,
                "st": {"query_length": 16, "document_length": 24}},
    "bert96_attend": {"kind": "bert", "seed": 12, "hidden": 32, "dim": 96,
                      "st": {"query_length": 12, "document_length": 24, "attend_to_expansion_tokens": True}},
    "modernbert96": {"kind": "modernbert", "seed": 13, "hidden": 32, "dim": 96,
                     "st": {"query_length": 16, "document_length": 24, "do_query_expansion": False}},
    "lfm2_causal128": {"kind": "lfm2", "seed": 14, "hidden": 32, "dim": 128,
                       "st": {"query_length": 16, "document_length": 24}},
}


# ------------------------------------------------------------------------------------------- weights
def seeded_tensor(seed: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The tensor ``name`` of a checkpoint with ``seed``: random everywhere (norm gains near 1), float32."""
    rng = np.random.Generator(np.random.PCG64([seed, zlib.crc32(name.encode())]))
    x = rng.standard_normal(shape)
    if len(shape) >= 2:
        x = x * (1.5 / np.sqrt(shape[-1]))
    elif name.endswith("weight"):  # norm gains
        x = 1.0 + 0.3 * x
    else:  # biases
        x = 0.3 * x
    return x.astype(np.float32)


def _digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(np.ascontiguousarray(tensors[key], dtype="<f4").tobytes())
    return h.hexdigest()


def write_weights(folder: Path, rel: str, seed: int, shapes: dict[str, list[int]]) -> str:
    from safetensors.numpy import save_file

    tensors = {k: seeded_tensor(seed, k, tuple(s)) for k, s in shapes.items()}
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / rel), metadata={"format": "pt"})
    return _digest(tensors)


def rebuild_checkpoint(name: str, dest: Path) -> Path:
    """Copy the committed files of checkpoint ``name`` to ``dest`` and regenerate its weights (checked)."""
    src = FIXTURES / "checkpoints" / name
    shutil.copytree(src, dest)
    spec = json.loads((dest / "weights.json").read_text())
    for rel, entry in spec["files"].items():
        digest = write_weights(dest, rel, spec["seed"], entry["shapes"])
        if digest != entry["sha256"]:
            raise RuntimeError(f"{name}/{rel}: regenerated weights differ from the recorded ones")
    return dest


# ------------------------------------------------------------------------------------------- making
def _wordpiece(extra: list[str], model_input_names=None):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials,
                                                              initial_alphabet=PUNCT))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512,
                                   **({"model_input_names": model_input_names} if model_input_names else {}))
    fast.add_tokens(extra, special_tokens=False)
    return fast


def _bpe_lfm2(extra: list[str]):
    """Byte-level BPE with LFM2's special-token layout: pad 0, BOS 1, EOS ``<|im_end|>`` 7, no mask token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|fim_pre|>", "<|fim_mid|>", "<|fim_suf|>",
                "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = tok.token_to_id("<|startoftext|>")
    tok.post_processor = processors.TemplateProcessing(single="<|startoftext|> $A",
                                                       special_tokens=[("<|startoftext|>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|im_end|>",
                                   pad_token="<|pad|>", model_max_length=512)
    fast.add_tokens(extra, special_tokens=False)
    return fast


def _config(kind: str, tok, hidden: int):
    import transformers

    n = len(tok)
    if kind == "bert":
        return transformers.BertConfig(vocab_size=n, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=2 * hidden, max_position_embeddings=64)
    if kind == "modernbert":
        return transformers.ModernBertConfig(
            vocab_size=n, hidden_size=hidden, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=64, pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id,
            sep_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
            local_attention=8, global_attn_every_n_layers=2)
    if kind == "lfm2":
        return transformers.Lfm2Config(vocab_size=n, hidden_size=hidden, intermediate_size=2 * hidden,
                                       num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                       layer_types=["conv", "full_attention", "conv"], pad_token_id=tok.pad_token_id,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                       max_position_embeddings=64, conv_L_cache=3, block_auto_adjust_ff_dim=False)
    raise ValueError(kind)


def make_checkpoint(name: str, folder: Path) -> dict:
    """Write checkpoint ``name`` (weights included) to ``folder``; returns its weights.json content."""
    import torch
    import transformers

    recipe = RECIPES[name]
    seed, hidden, dim = recipe["seed"], recipe["hidden"], recipe["dim"]
    if recipe["kind"] == "lfm2":
        tok = _bpe_lfm2(["[Q] ", "[D] "])
    else:  # ModernBERT's tokenizers give no token_type_ids
        names = ["input_ids", "attention_mask"] if recipe["kind"] == "modernbert" else None
        tok = _wordpiece(["[Q] ", "[D] "], names)
    config = _config(recipe["kind"], tok, hidden)
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(config)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items() if v.is_floating_point()}
    folder.mkdir(parents=True)
    config.save_pretrained(folder)
    tok.save_pretrained(folder)
    files = {"model.safetensors": {"shapes": shapes}, "1_Dense/model.safetensors": {"shapes": {"linear.weight": [dim, hidden]}}}
    for rel, entry in files.items():
        entry["sha256"] = write_weights(folder, rel, seed, entry["shapes"])
    (folder / "1_Dense" / "config.json").write_text(json.dumps(
        {"in_features": hidden, "out_features": dim, "bias": False,
         "activation_function": "torch.nn.modules.linear.Identity"}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    st = {"query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 16, "document_length": 24,
          "attend_to_expansion_tokens": False, "skiplist_words": PUNCT, "do_query_expansion": True,
          "prompts": {"query": "", "document": ""}, "similarity_fn_name": "MaxSim"}
    st.update(recipe["st"])
    (folder / "config_sentence_transformers.json").write_text(json.dumps(st, indent=1))
    spec = {"seed": seed, "files": files}
    (folder / "weights.json").write_text(json.dumps(spec))
    return spec

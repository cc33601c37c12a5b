"""Production-size ColBERT architectures with random weights, for timing (speed does not depend on the weights'
values). Kept out of the package: the benchmarks build them on demand and cache the folders.

    python bench/colbert_architectures.py [--cache DIR] [NAME ...]     # build (or find) and print the folders

Each is built from its published configuration, in the PyLate folder layout Gingham reads (backbone at the root,
``1_Dense/``, ``config_sentence_transformers.json``):

- ``lfm2-colbert-350m``: LiquidAI/LFM2-ColBERT-350M, a causal ``Lfm2Model``: 1024 hidden, 16 layers (10 short
  convolutions + 6 GQA attention layers, 16 query / 8 key-value heads), feed-forward 6656 auto-adjusted to 4608,
  vocabulary 64,402, Dense 1024 -> 128; 353,322,752 backbone parameters as on the card (287,375,104 without the
  embeddings). Query length 32, document length 512.
- ``lfm2.5-colbert-350m``: LiquidAI/LFM2.5-ColBERT-350M, the same shapes run bidirectionally (its remote-code
  ``Lfm2BidirectionalModel``; Gingham runs it with its own forward); it shares lfm2-colbert-350m's weight file.
- ``gte-moderncolbert-v1``: lightonai/GTE-ModernColBERT-v1, ModernBERT-base (768 hidden, 22 layers, 12 heads,
  feed-forward 1152, local attention 128 with a global layer every 3), vocabulary 50,370 (ModernBERT's 50,368 plus
  PyLate's ``[Q] `` / ``[D] ``), Dense 768 -> 128. Query length 32, document length 300.

The tokenizers are byte-level BPEs trained here on the local XQuAD / MS MARCO texts (the real ones cannot be
downloaded) with each model's vocabulary size and special tokens: token counts per text are close to, not equal to,
the real tokenizers'. Weights are stored in bfloat16 (half the disk) and loaded in whatever dtype is asked.
"""

from __future__ import annotations

import argparse
import json
import os
import string
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_CACHE = Path(os.environ.get("GINGHAM_BENCH_MODELS", Path.home() / ".cache" / "gingham-bench" / "models"))
PUNCT = list(string.punctuation)

_LFM2_LAYERS = ["conv", "conv", "full_attention", "conv", "conv", "full_attention", "conv", "conv",
                "full_attention", "conv", "full_attention", "conv", "full_attention", "conv", "full_attention", "conv"]

LFM2_CONFIG = dict(
    vocab_size=64402, hidden_size=1024, intermediate_size=6656, num_hidden_layers=16, num_attention_heads=16,
    num_key_value_heads=8, layer_types=_LFM2_LAYERS, conv_L_cache=3, conv_bias=False, block_auto_adjust_ff_dim=True,
    block_multiple_of=256, block_ffn_dim_multiplier=1.0, norm_eps=1e-5, max_position_embeddings=128000,
    rope_theta=1000000.0, pad_token_id=0, bos_token_id=1, eos_token_id=7, tie_word_embeddings=True,
)

MODERNBERT_BASE_CONFIG = dict(
    vocab_size=50370, hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12,
    hidden_activation="gelu", max_position_embeddings=8192, global_attn_every_n_layers=3, local_attention=128,
    global_rope_theta=160000.0, local_rope_theta=10000.0, norm_eps=1e-5, norm_bias=False, attention_bias=False,
    mlp_bias=False, pad_token_id=50283, bos_token_id=50281, eos_token_id=50282, cls_token_id=50281,
    sep_token_id=50282,
)

#: A few-MB LFM2 with the same layer kinds, for dry runs (bench/bench_gpu_check.sh --dry-run) and CI.
LFM2_TINY_CONFIG = dict(LFM2_CONFIG, vocab_size=2000, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                        num_attention_heads=4, num_key_value_heads=2, block_auto_adjust_ff_dim=False,
                        layer_types=["conv", "full_attention", "conv", "full_attention"], max_position_embeddings=2048)

ARCHITECTURES: dict[str, dict] = {
    "lfm2-colbert-350m": {
        "kind": "lfm2", "config": LFM2_CONFIG, "bidirectional": False, "dense": (1024, 128),
        "parameters": 353_322_752, "non_embedding": 287_375_104,
        "settings": {"query_length": 32, "document_length": 512},
    },
    "lfm2.5-colbert-350m": {
        "kind": "lfm2", "config": LFM2_CONFIG, "bidirectional": True, "dense": (1024, 128),
        "parameters": 353_322_752, "non_embedding": 287_375_104, "weights_from": "lfm2-colbert-350m",
        "settings": {"query_length": 32, "document_length": 512},
    },
    "gte-moderncolbert-v1": {
        "kind": "modernbert", "config": MODERNBERT_BASE_CONFIG, "bidirectional": True, "dense": (768, 128),
        "parameters": 149_015_808, "non_embedding": 110_331_648,
        "settings": {"query_length": 32, "document_length": 300},
    },
    "lfm2-colbert-tiny": {
        "kind": "lfm2", "config": LFM2_TINY_CONFIG, "bidirectional": False, "dense": (64, 128),
        "parameters": 284_672, "non_embedding": 156_672,
        "settings": {"query_length": 32, "document_length": 256},
    },
}


def transformers_config(name: str):
    """The transformers configuration object of architecture ``name``."""
    import transformers

    arch = ARCHITECTURES[name]
    cls = transformers.Lfm2Config if arch["kind"] == "lfm2" else transformers.ModernBertConfig
    return cls(**arch["config"])


def count_parameters(name: str) -> tuple[int, int]:
    """(all, non-embedding) parameters of the backbone, counted on the meta device (nothing allocated)."""
    import torch
    import transformers

    with torch.device("meta"):
        model = transformers.AutoModel.from_config(transformers_config(name))
    total = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    return total, total - embed


def _training_texts(limit_chars: int = 6_000_000) -> list[str]:
    texts, n = [], 0
    files = sorted((DATA / "xquad-retrieval").glob("corpus.*.jsonl")) + sorted(
        (DATA / "xquad-retrieval").glob("queries.*.jsonl")) + [DATA / "agentset-subsets" / "msmarco" / "corpus.jsonl"]
    for path in files:
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                t = (row.get("title") or "") + " " + (row.get("text") or "")
                texts.append(t)
                n += len(t)
                if n > limit_chars:
                    return texts
    if not texts:  # no local data: a generated corpus (token counts then differ more from the real tokenizers)
        import random

        rng = random.Random(0)
        words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))) for _ in range(20000)]
        texts = [" ".join(rng.choice(words) for _ in range(200)) for _ in range(5000)]
    return texts


def _tokenizer(kind: str, vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers, decoders
    from transformers import PreTrainedTokenizerFast

    if kind == "lfm2":  # LFM2's layout: pad 0, BOS 1, EOS <|im_end|> 7, no mask token
        specials = ["<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|fim_pre|>", "<|fim_mid|>", "<|fim_suf|>",
                    "<|im_start|>", "<|im_end|>"]
    else:  # ModernBERT's specials, in its tokenizer's order
        specials = ["|||IP_ADDRESS|||", "<|padding|>", "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    extra = ["[Q] ", "[D] "]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(extra), special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_training_texts(6_000_000 if vocab_size > 10_000 else 300_000), trainer)
    if kind == "lfm2":
        bos = tok.token_to_id("<|startoftext|>")
        tok.post_processor = processors.TemplateProcessing(single="<|startoftext|> $A",
                                                           special_tokens=[("<|startoftext|>", bos)])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|im_end|>",
                                       pad_token="<|pad|>", model_max_length=128000)
    else:
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                           special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]", model_max_length=8192,
                                       model_input_names=["input_ids", "attention_mask"])
    fast.add_tokens(extra, special_tokens=False)
    return fast


def _pylate_files(folder: Path, dense: tuple[int, int], settings: dict) -> None:
    import torch
    from safetensors.torch import save_file

    (folder / "1_Dense").mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(dense[1], dense[0], generator=g) / dense[0] ** 0.5
    save_file({"linear.weight": weight}, str(folder / "1_Dense" / "model.safetensors"))
    (folder / "1_Dense" / "config.json").write_text(json.dumps(
        {"in_features": dense[0], "out_features": dense[1], "bias": False,
         "activation_function": "torch.nn.modules.linear.Identity"}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    st = {"query_prefix": "[Q] ", "document_prefix": "[D] ", "attend_to_expansion_tokens": False,
          "skiplist_words": PUNCT, "do_query_expansion": True, "prompts": {"query": "", "document": ""},
          "similarity_fn_name": "MaxSim", **settings}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(st, indent=1))


def build(name: str, cache: Path = DEFAULT_CACHE) -> Path:
    """The model folder of architecture ``name`` under ``cache``, built on first use (random weights, seed 0)."""
    import torch
    import transformers

    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; one of {sorted(ARCHITECTURES)}")
    arch = ARCHITECTURES[name]
    folder = Path(cache) / name
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    config = transformers_config(name)
    source = arch.get("weights_from")
    if source:  # same shapes: share the weight file
        src = build(source, cache)
        target = folder / "model.safetensors"
        if not target.exists():
            os.link(src / "model.safetensors", target)
    else:
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(folder)
        del model
    config.save_pretrained(folder)
    raw = json.loads((folder / "config.json").read_text())
    if arch["kind"] == "lfm2":
        raw["architectures"] = ["Lfm2BidirectionalModel" if arch["bidirectional"] else "Lfm2Model"]
        if arch["bidirectional"]:
            raw["auto_map"] = {"AutoModel": "modeling_lfm2_bidirectional.Lfm2BidirectionalModel"}
    else:
        raw["architectures"] = ["ModernBertModel"]
    (folder / "config.json").write_text(json.dumps(raw, indent=1))
    tok_src = build(source, cache) if source else None
    if tok_src is not None:
        for f in tok_src.iterdir():
            if f.name.startswith(("tokenizer", "special_tokens")):
                (folder / f.name).write_bytes(f.read_bytes())
    else:
        _tokenizer(arch["kind"], config.vocab_size).save_pretrained(folder)
    _pylate_files(folder, arch["dense"], arch["settings"])
    (folder / ".complete").write_text("")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", default=sorted(ARCHITECTURES))
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    for name in args.names:
        total, non_embedding = count_parameters(name)
        print(f"{name}: {build(name, args.cache)} ({total:,} parameters, {non_embedding:,} non-embedding)")


if __name__ == "__main__":
    main()

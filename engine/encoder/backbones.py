"""Backbones: load a transformers encoder without remote code and run it over right-padded batches.

LFM2 checkpoints (``model_type: lfm2``) run through :func:`lfm2_forward`, written on transformers' own LFM2
modules. The bidirectional variant (LiquidAI's ``Lfm2BidirectionalModel``, shipped as remote code that
Gingham never executes) differs from the causal decoder in two places only: attention sees the whole
sequence (minus padding), and each short convolution is centred on its token instead of looking back.

Two masks go in. ``attention_mask`` says which keys attention may look at; every row, a padded or
query-expansion row included, sees exactly the allowed keys (no extra self-attention), as in the original.
``sequence_mask`` says which positions belong to the sequence for the short convolutions: positions
outside it are zeroed before every convolution, so batch padding acts like the zeros past a sequence's
end and never leaks into real tokens (a document's vectors do not depend on its batch). Query-expansion
positions belong to the sequence: the checkpoints were trained on transformers 4.x's eager/sdpa path,
where the convolution receives a 4-D attention mask and so zeroes nothing; queries are always exactly
``query_length`` long, so this stays batch-invariant.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .resolve import CheckpointSpec

logger = logging.getLogger(__name__)


def _torch():
    from gingham.common.errors import require

    return require("torch", "encoder")


def _is_bidirectional(raw: dict) -> bool:
    """A causal LFM2 decoder, or the bidirectional encoder LiquidAI ships as remote code?"""
    names = list(raw.get("architectures") or []) + [str(v) for v in (raw.get("auto_map") or {}).values()]
    if any("bidirectional" in n.lower() for n in names):
        return True
    if raw.get("is_causal") is False or raw.get("bidirectional") is True:
        return True
    return False


class Backbone:
    """A loaded transformer plus how to call it: ``hidden = backbone(input_ids, attention_mask)``."""

    def __init__(self, model, model_type: str, bidirectional: bool, hidden_size: int):
        self.model = model
        self.model_type = model_type
        self.bidirectional = bidirectional
        self.hidden_size = hidden_size

    def __call__(self, input_ids, attention_mask, sequence_mask=None):
        """Token states (B, L, H). ``sequence_mask`` (LFM2 only): positions the convolutions see as the
        sequence (default: ``attention_mask``); other positions are zeroed before each convolution."""
        if self.model_type == "lfm2":
            return lfm2_forward(self.model, input_ids, attention_mask, bidirectional=self.bidirectional,
                                sequence_mask=sequence_mask)
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def load_backbone(spec: CheckpointSpec, *, dtype, device: str) -> Backbone:
    """Build the config class from ``config.json`` by ``model_type`` (ignoring ``auto_map``) and load weights."""
    _torch()
    from gingham.common.errors import require

    transformers = require("transformers", "encoder")
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    raw = json.loads((spec.backbone / "config.json").read_text(encoding="utf-8"))
    model_type = str(raw.get("model_type", ""))
    bidirectional = True
    if model_type.startswith("lfm2") and model_type != "lfm2":
        logger.info("reading model_type %r as 'lfm2'", model_type)
        bidirectional = _is_bidirectional(raw) or "bidirectional" in model_type
        model_type = "lfm2"
    elif model_type == "lfm2":
        bidirectional = _is_bidirectional(raw)
    if model_type not in CONFIG_MAPPING:
        raise ValueError(
            f"{spec.backbone / 'config.json'}: model_type {raw.get('model_type')!r} is not known to transformers "
            f"{transformers.__version__}; upgrade transformers or use a BERT / ModernBERT / LFM2 checkpoint"
        )
    clean = {k: v for k, v in raw.items() if k not in ("auto_map", "model_type", "architectures")}
    config = CONFIG_MAPPING[model_type].from_dict(clean)
    model_cls = MODEL_MAPPING[type(config)]
    kwargs = {"config": config, "dtype": dtype}
    if model_type in ("lfm2", "bert", "modernbert"):
        kwargs["attn_implementation"] = "sdpa"
    if model_type in ("bert", "roberta", "xlm-roberta"):
        kwargs["add_pooling_layer"] = False  # the pooler is unused (and often absent from ColBERT checkpoints)
    model = model_cls.from_pretrained(str(spec.backbone), **kwargs)
    model.eval().to(device)
    hidden = int(getattr(config, "hidden_size"))
    return Backbone(model, model_type, bidirectional, hidden)


def lfm2_forward(model, input_ids, attention_mask, *, bidirectional: bool = True, sequence_mask=None):
    """Run an ``Lfm2Model`` over a right-padded batch; bidirectional or causal; returns (B, L, H) states.

    ``attention_mask`` (B, L): the keys attention may look at. ``sequence_mask`` (B, L), default
    ``attention_mask``: the positions the short convolutions see; the others are zeroed before each one.
    """
    torch = _torch()
    import torch.nn.functional as F

    batch, length = input_ids.shape
    hidden = model.embed_tokens(input_ids)
    dtype = hidden.dtype
    keep = attention_mask.to(torch.bool)
    in_sequence = keep if sequence_mask is None else sequence_mask.to(torch.bool)
    # additive mask (B, 1, L, L): 0 where a query may look, the dtype's minimum elsewhere
    allowed = keep[:, None, None, :].expand(batch, 1, length, length)
    if not bidirectional:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=hidden.device).tril()
    # a row with no allowed key at all (never the case with right padding: the first token is real) would
    # give NaN; only such a row sees itself. Rows with real keys see exactly those, as in the original.
    # (no data-dependent branch: the graph stays exportable, e.g. to ONNX; without empty rows this changes nothing)
    empty = ~allowed.any(dim=-1, keepdim=True)
    allowed = allowed | (empty & torch.eye(length, dtype=torch.bool, device=hidden.device))
    neg = torch.finfo(dtype).min
    attn_mask = torch.zeros(allowed.shape, dtype=dtype, device=hidden.device).masked_fill(~allowed, neg)
    position_ids = torch.arange(length, device=hidden.device)[None, :]
    position_embeddings = model.rotary_emb(hidden, position_ids=position_ids)
    gate = in_sequence[:, :, None].to(dtype)

    for layer in model.layers:
        residual = hidden
        normed = layer.operator_norm(hidden)
        if layer.is_attention_layer:
            out, _ = layer.self_attn(
                hidden_states=normed,
                position_embeddings=position_embeddings,
                attention_mask=attn_mask,
                is_causal=False,
            )
        else:
            conv = layer.conv
            bcx = conv.in_proj(normed * gate) * gate
            b, c, x = bcx.chunk(3, dim=-1)
            bx = (b * x).transpose(1, 2)  # (B, H, L)
            kernel = conv.conv.weight.shape[-1]
            left = (kernel - 1) // 2 if bidirectional else kernel - 1
            bx = F.pad(bx, (left, kernel - 1 - left))
            y = F.conv1d(bx, conv.conv.weight, conv.conv.bias, groups=bx.shape[1])
            out = conv.out_proj((c * y.transpose(1, 2)).contiguous())
        hidden = residual + out
        hidden = hidden + layer.feed_forward(layer.ffn_norm(hidden))
    return model.embedding_norm(hidden)


def load_state_dict(folder: Path) -> dict:
    """Weights of a small module folder (``1_Dense/``) or a full checkpoint, without pickle where possible."""
    torch = _torch()
    st = folder / "model.safetensors"
    if st.exists():
        from safetensors.torch import load_file

        return load_file(str(st))
    binary = folder / "pytorch_model.bin"
    if binary.exists():
        return torch.load(str(binary), map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{folder} holds neither model.safetensors nor pytorch_model.bin")

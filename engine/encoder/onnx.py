"""ONNX Runtime backend for CPU encoding: the backbone, projection and normalisation exported once to ONNX
(``torch.onnx.export``, dynamo exporter, dynamic batch and length), run by ``onnxruntime``; optionally int8
(``onnxruntime.quantization.quantize_dynamic``: int8 weights per channel, activations per tensor).

Tokenisation, batching, masks and the skiplist stay Gingham's (:class:`gingham.encoder.encoder.Encoder`): only the
forward moves. The exported graph is Gingham's own LFM2 forward (:func:`gingham.encoder.backbones.lfm2_forward`,
short convolutions and GQA attention included), so the float32 graph gives the torch path's vectors within 1e-6
(tests/encoder/test_onnx.py). Exported graphs are cached (``~/.cache/gingham/onnx`` by default) under a key of the
model folder's files, the encoder's settings and the library versions.

Needs the ``onnx`` extra (``onnxruntime``, ``onnx``, ``onnxscript``). ORT's int8 quantises each activation matrix
with one scale, so unlike ``dtype="int8"`` in torch (per-token scales) a text's vectors depend slightly on what it
is batched with; see ``docs/benchmarks/encode-production`` for what each path gives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("GINGHAM_ONNX_CACHE", Path.home() / ".cache" / "gingham" / "onnx"))
INPUTS = ("input_ids", "attention_mask", "sequence_mask")


def _require():
    from gingham.common.errors import require

    ort = require("onnxruntime", "onnx")
    require("onnx", "onnx")
    return ort


def _graph_module(encoder):
    """The forward ``Encoder._encode_batch`` runs, as one module: backbone, projection, L2 normalisation."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = encoder.backbone.model  # registered: its weights become the graph's initialisers
            self.linears = torch.nn.ModuleList([linear for linear, _ in encoder.projection.layers])

        def forward(self, input_ids, attention_mask, sequence_mask):
            hidden = encoder.backbone(input_ids, attention_mask, sequence_mask)
            for linear, (_, act) in zip(self.linears, encoder.projection.layers):
                hidden = act(linear(hidden))
            hidden = hidden.float()
            if encoder.config.normalize:
                hidden = torch.nn.functional.normalize(hidden, p=2, dim=-1)
            return hidden

    return Graph().eval()


def hash_folder_files(h, root: Path, suffixes=(".json", ".safetensors", ".bin")) -> None:
    """Feed ``h`` the name, size and modification time of each of ``root``'s files with one of ``suffixes``: what
    a cache of something derived from a model folder depends on."""
    root = Path(root)
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes):
        st = f.stat()
        h.update(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())


def cache_key(root: Path, encoder) -> str:
    """What the exported graph depends on: the folder's files (names, sizes, times), the settings, the versions."""
    import torch
    import transformers

    ort = _require()
    h = hashlib.sha256()
    hash_folder_files(h, root)
    h.update(json.dumps([repr(encoder.config), torch.__version__, transformers.__version__,
                         ort.__version__]).encode())
    return h.hexdigest()[:24]


def export(encoder, path: Path) -> Path:
    """Export ``encoder``'s float32 forward to ``path`` (weights beside it, as ONNX external data)."""
    import torch
    from torch.export import Dim

    if encoder.config.dtype != "float32" or not str(encoder.config.device).startswith("cpu"):
        raise ValueError("export a float32 CPU encoder (load_encoder(..., dtype='float32', device='cpu'))")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _graph_module(encoder)
    ids = torch.tensor([[1, 5, 6, 7, 8, 9, 10, 11], [1, 5, 6, 7, 0, 0, 0, 0]])
    ids = ids.clamp(max=int(graph.model.config.vocab_size) - 1)
    mask = (ids != 0).long()
    batch, length = Dim("batch", min=1, max=4096), Dim("length", min=2, max=8192)
    shapes = {name: {0: batch, 1: length} for name in INPUTS}
    import warnings

    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the exporter's notes on merged dynamic axes
        warnings.simplefilter("ignore", FutureWarning)  # and on torch's own deprecations
        # two distinct mask tensors: the exporter would merge one object passed twice into one graph input
        torch.onnx.export(graph, (ids, mask, mask.clone()), str(path), input_names=list(INPUTS), output_names=["vectors"],
                          dynamic_shapes=shapes, dynamo=True, external_data=True, verbose=False)
    quiet.setLevel(level)
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of ``src``'s MatMuls (int8 weights per output channel)."""
    _require()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     use_external_data_format=True)
    return dst


class OnnxBackbone:
    """Runs the exported graph: ``vectors = backbone(input_ids, attention_mask, sequence_mask)`` (torch in and out,
    as :class:`gingham.encoder.backbones.Backbone`); its output is already projected and normalised."""

    def __init__(self, path: Path, *, threads: int | None, model_type: str, bidirectional: bool, dim: int):
        ort = _require()
        import torch

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]  # an input the graph does not use is dropped
        self.path = Path(path)
        self.model_type = model_type
        self.bidirectional = bidirectional
        self.hidden_size = dim
        self.model = None

    def __call__(self, input_ids, attention_mask, sequence_mask=None):
        import torch

        seq = attention_mask if sequence_mask is None else sequence_mask
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "sequence_mask": seq}
        feed = {name: given[name].cpu().numpy().astype(np.int64) for name in self.inputs}
        return torch.from_numpy(self.session.run(["vectors"], feed)[0])


def onnx_backbone(encoder, root: Path, *, quantize: str = "float32", threads: int | None = None,
                  cache_dir: Path | None = None) -> OnnxBackbone:
    """``encoder``'s (a float32 CPU one) forward as an ONNX Runtime backbone: exported once, cached under
    :func:`cache_key` beside its int8 graph (made for ``quantize="int8"``). :func:`gingham.encoder.encoder.to_onnx`
    wraps it in an :class:`~gingham.encoder.encoder.Encoder`."""
    if quantize not in ("float32", "int8"):
        raise ValueError(f"the onnxruntime backend runs dtype 'float32' or 'int8', got {quantize!r}")
    folder = Path(cache_dir or DEFAULT_CACHE) / cache_key(root, encoder)  # float32 and int8 graphs side by side
    fp32 = folder / "model.onnx"
    if not (folder / "fp32.complete").exists():
        logger.info("exporting %s to ONNX in %s (once)", root, folder)
        export(encoder, fp32)
        (folder / "fp32.complete").write_text("")
    path = fp32
    if quantize == "int8":
        path = folder / "model.int8.onnx"
        if not (folder / "int8.complete").exists():
            quantize_int8(fp32, path)
            (folder / "int8.complete").write_text("")
    c = encoder.config
    return OnnxBackbone(path, threads=threads, model_type=c.model_type, bidirectional=c.bidirectional, dim=c.dim)


__all__ = ["OnnxBackbone", "cache_key", "export", "onnx_backbone", "quantize_int8"]

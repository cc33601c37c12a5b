import os

import numpy as np
import pytest

# numba compiles into the source tree's __pycache__; keep hypothesis deterministic in CI
os.environ.setdefault("GINGHAM_TESTING", "1")


@pytest.fixture(scope="session")
def rng_seed() -> int:
    return 1234


def normalised(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)

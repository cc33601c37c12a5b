import numpy as np


def normalised(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random unit vectors of ``dim`` dimensions (float32)."""
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
